"""MEAP-SFT end to end on CPU: a tiny random LlamaForCausalLM and a tokenizer trained in the test."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.sft.train import main, resize_embeddings_with_mean

REPO = Path(__file__).resolve().parents[2]
# The project's own code; a virtual environment inside the repository (.venv/) is not ours.
SOURCE_FOLDERS = {"lit_gpt", "MEAP-SFT", "MEAP-Pretrain", "convert", "data_process", "scripts", "tools"}


def our_frames(stderr: str) -> list[str]:
    """The traceback lines of `stderr` that point into the project's source."""
    frames = []
    for path in re.findall(r'File "([^"]+)"', stderr):
        try:
            parts = Path(path).resolve().relative_to(REPO).parts
        except ValueError:
            continue
        if parts and parts[0] in SOURCE_FOLDERS:
            frames.append(path)
    return frames
ANSWER = "the quick brown fox jumps over the lazy dog and the cat sleeps in the warm sun all day long"
RECORDS = [
    {"instruction": "Tell me about the fox.", "input": "", "output": ANSWER},
    {"instruction": "Repeat after me.", "input": "the cat sleeps", "output": "the cat sleeps"},
    {"conversations": [{"from": "human", "value": "Who sleeps?"}, {"from": "gpt", "value": "the cat sleeps"},
                       {"from": "human", "value": "And the fox?"}, {"from": "gpt", "value": ANSWER}]},
    {"instruction": "Where is the dog?", "input": "", "output": "the lazy dog is in the warm sun"},
]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_llama_vocab_config(vocab_size):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=3,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A byte-level BPE trained on a few sentences (no [MASK] yet) and a random 2-layer Llama."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_llama")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [ANSWER, "USER: ASSISTANT: Tell me about the fox. Repeat after me. Who sleeps? Where is the dog?",
              "A chat between a curious user and an artificial intelligence assistant."] * 5
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    ))
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    assert tokenizer.eos_token_id == 2 and "[MASK]" not in tokenizer.get_vocab()
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_vocab_config(len(tokenizer))).save_pretrained(folder)
    return folder


def base_vocab_size(model_dir):
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


@pytest.fixture()
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS * 4))
    return path


def args(model_dir, train_file, out, *extra):
    return [
        "--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
        "--cache_dir", str(Path(out).parent / "datasets_cache"), "--template_name", "vicuna",
        "--meap_mode", "concat", "--mask_ratio", "0.2", "--min_answer_tokens", "10", "--model_max_length", "256",
        "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_strategy", "no",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false", *extra,
    ]


def test_three_steps_write_a_model_from_pretrained_loads(model_dir, train_file, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    result = main(args(model_dir, train_file, out, "--max_steps", "3", "--validation_split_percentage", "25",
                       "--eval_strategy", "steps", "--eval_steps", "3"))
    assert [h["step"] for h in result.log_history if "loss" in h] == [1, 2, 3]
    assert any("eval_loss" in h for h in result.log_history)
    assert result.train_summary.examples == 12 and result.eval_summary.examples == 4
    assert result.collator_stats["masked_copies"] > 0
    base_vocab = base_vocab_size(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(out)
    mask_id = tokenizer.convert_tokens_to_ids("[MASK]")
    assert mask_id == base_vocab and len(tokenizer) == base_vocab + 1
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == base_vocab + 1
    with torch.no_grad():
        logits = model(torch.tensor([[1, 5, mask_id, 7]])).logits
    assert logits.shape == (1, 4, base_vocab + 1) and torch.isfinite(logits).all()


def test_loss_falls_on_a_repeated_dataset(model_dir, train_file, tmp_path):
    result = main(args(model_dir, train_file, tmp_path / "out", "--max_steps", "20", "--learning_rate", "1e-2",
                       "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--seed", "1"))
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(losses) == 20
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, losses


def test_resize_with_mean():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_vocab_config(50))
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    assert resize_embeddings_with_mean(model, 53) == 3
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert new_in.shape == (53, 32) and new_out.shape == (53, 32)
    torch.testing.assert_close(new_in[:50], old_in, rtol=0, atol=0)
    torch.testing.assert_close(new_out[:50], old_out, rtol=0, atol=0)
    for row in range(50, 53):
        torch.testing.assert_close(new_in[row], old_in.sum(0) / 50)
        torch.testing.assert_close(new_out[row], old_out.sum(0) / 50)
    assert resize_embeddings_with_mean(model, 53) == 0 and resize_embeddings_with_mean(model, 40) == 0


def test_lora_saves_an_adapter_and_a_merged_model(model_dir, train_file, tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    main(args(model_dir, train_file, out, "--max_steps", "2", "--use_lora", "--lora_r", "4", "--learning_rate", "1e-2"))
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    rows, base_rows = merged.get_input_embeddings().weight, base.get_input_embeddings().weight
    n = base_vocab_size(model_dir)
    torch.testing.assert_close(rows[:n], base_rows)  # frozen base rows
    assert not torch.allclose(rows[n], base_rows.mean(0))  # the [MASK] row is trained


def test_lora_without_peft_is_a_user_error(model_dir, train_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(UserError, match="--use_lora needs the peft package"):
        main(args(model_dir, train_file, tmp_path / "out", "--max_steps", "1", "--use_lora"))


def test_bad_input_is_one_clear_error(model_dir, train_file, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--train_file", str(tmp_path / "nope.jsonl")], r"--train_file: file not found: .*nope.jsonl"),
        (["--template_name", "vicunaa"], r"--template_name.*: invalid choice: 'vicunaa' \(choose from 'alpaca', 'chatml', "
                                         r"'llama3', 'vicuna'\)"),
        (["--meap_mode", "mlm"], r"--meap_mode.*: invalid choice: 'mlm' \(choose from 'concat', 'separate', 'ntp'\)"),
        (["--model_name_or_path", str(tmp_path / "no_model")], r"no such local folder"),
        (["--no_such_option", "1"], r"unknown arguments: --no_such_option 1"),
        (["--mask_ratio", "x"], r"argument --mask_ratio.*: invalid float value: .x."),
        (["--eval_strategy", "steps"], r"--eval_strategy steps needs --validation_file"),
    ]
    for extra, message in cases:
        with pytest.raises(UserError, match=message):
            main(args(model_dir, train_file, out, *extra))
    with pytest.raises(UserError, match="--output_dir is required"):
        main(["--model_name_or_path", str(model_dir), "--train_file", str(train_file)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"text": "no instruction"}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl: record 2 has neither instruction/output nor conversations"):
        main(args(model_dir, bad, out))
    assert not out.exists()


def test_existing_output_is_not_overwritten(model_dir, train_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(UserError, match="already holds config.json; pass --resume_from_checkpoint"):
        main(args(model_dir, train_file, out, "--max_steps", "1"))
    assert (out / "config.json").read_text() == "{}"


def test_entry_point_exits_with_one_line(model_dir, tmp_path):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([RECORDS[0], {"conversation": []}]))
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "MEAP-SFT" / "sft.py"), *args(model_dir, data, tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.json: record 2 has neither instruction/output nor conversations" in errors[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_converted_lit_checkpoint_fine_tunes(model_dir, train_file, tmp_path):
    """lit pretraining output -> convert -> MEAP-SFT: the padded vocabulary (with [MASK]) is kept."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lit_gpt.config import Config
    from lit_gpt.convert.export import export_hf
    from lit_gpt.model import GPT

    base_vocab = base_vocab_size(model_dir)
    config = Config(name="lit_tiny", block_size=256, vocab_size=base_vocab + 1, padding_multiple=16, n_layer=2,
                    n_embd=32, n_head=4, n_query_groups=2, intermediate_size=64)
    torch.manual_seed(0)
    checkpoint = tmp_path / "step-00000010.pth"
    torch.save({"model": GPT(config).state_dict(), "config": config.to_dict(), "tokenizer_dir": str(model_dir)}, checkpoint)
    hf_dir = tmp_path / "hf"
    export_hf(checkpoint, hf_dir, dtype="float32")

    out = tmp_path / "sft"
    result = main(args(hf_dir, train_file, out, "--max_steps", "2"))
    assert [h["step"] for h in result.log_history if "loss" in h] == [1, 2]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("[MASK]") == base_vocab
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == config.padded_vocab_size


def test_preset_upstream_trains_with_separate_masked_copies(model_dir, train_file, tmp_path):
    out = tmp_path / "out"
    extra = ["--preset", "upstream", "--meap_mode", "separate", "--template_name", "llama3", "--max_steps", "2"]
    result = main(args(model_dir, train_file, out, *extra))  # the later options win
    summary = result.train_summary
    assert summary.records == 16 and summary.examples == 20 + summary.masked_copies  # one example per turn
    assert summary.masked_copies > 0 and result.collator_stats["masked_copies"] > 0
    assert [h["step"] for h in result.log_history if "loss" in h] == [1, 2]


def test_wrong_types_and_empty_answers_are_refused(model_dir, tmp_path):
    out = tmp_path / "out"
    cases = [
        ([{"instruction": 5, "input": "", "output": "a"}], r"record 1: instruction must be a string, got int 5"),
        ([RECORDS[0], {"instruction": "x", "input": "", "output": ["a"]}], r"record 2: output must be a string, got list \[\"a\"\]"),
        ([RECORDS[2], {"conversations": [{"from": "human", "value": 5}]}],
         r"record 2: conversation turn 1 \(human\): value must be a string, got int 5"),
    ]
    for records, message in cases:
        data = tmp_path / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in records))
        with pytest.raises(UserError, match=r"data.jsonl: " + message):
            main(args(model_dir, data, out))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([{"instruction": "Say nothing.", "input": "", "output": ""}] * 3))
    with pytest.raises(UserError, match=r"empty.json: every answer of the 3 usable training records is empty"):
        main(args(model_dir, empty, out))
    assert not out.exists()


def test_remote_code_needs_trust_remote_code_and_never_runs(tmp_path):
    folder = tmp_path / "custom_model"
    folder.mkdir()
    marker = tmp_path / "custom_code_ran"
    (folder / "config.json").write_text(json.dumps({
        "model_type": "meap_custom", "architectures": ["CustomForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig", "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"},
    }))
    for module in ("configuration_custom.py", "modeling_custom.py"):
        (folder / module).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    data = tmp_path / "d.json"
    data.write_text(json.dumps(RECORDS))
    with pytest.raises(UserError, match=r"custom_model: config.json maps to custom code in that folder .*AutoModelForCausalLM="
                                        r"modeling_custom.CustomForCausalLM.*pass --trust_remote_code"):
        main(args(folder, data, tmp_path / "out"))
    assert not marker.exists() and not (tmp_path / "out").exists()


def malicious_pickle(marker):
    """A torch.save file whose unpickling would create `marker` (via builtins.open)."""
    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")
    return {"state": Payload()}


def test_resume_refuses_truncated_or_malicious_files(model_dir, train_file, tmp_path):
    from lit_gpt.sft.checks import check_checkpoint_files

    out = tmp_path / "out"
    main(args(model_dir, train_file, out, "--max_steps", "1", "--save_strategy", "steps", "--save_steps", "1"))
    checkpoint = out / "checkpoint-1"
    names = ["optimizer.pt", "scheduler.pt", "rng_state.pth"]
    assert all((checkpoint / n).is_file() for n in names)
    check_checkpoint_files(str(checkpoint))  # what the Trainer wrote passes
    originals = {n: (checkpoint / n).read_bytes() for n in names}
    marker = tmp_path / "payload_ran"
    for name in names:
        torch.save(malicious_pickle(marker), checkpoint / name)
        with pytest.raises(UserError, match=rf"--resume_from_checkpoint: refusing .*checkpoint-1/{name}: it holds more than tensors"):
            main(args(model_dir, train_file, out, "--max_steps", "2", "--resume_from_checkpoint", str(checkpoint)))
        (checkpoint / name).write_bytes(originals[name][: len(originals[name]) // 2])
        with pytest.raises(UserError, match=rf"cannot read .*checkpoint-1/{name} \(truncated or corrupt\?\)"):
            main(args(model_dir, train_file, out, "--max_steps", "2", "--resume_from_checkpoint", "true"))
        (checkpoint / name).write_bytes(originals[name])
    assert not marker.exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-1"]


def run_launcher(model_dir, data, out, num_gpus, *extra, preset="default"):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", BACKEND="none",
               NUM_GPUS=str(num_gpus), GLOBAL_BATCH=str(2 * num_gpus), MICRO_BATCH="1", PRESET=preset,
               MODEL_DIR=str(model_dir), DATA=str(data), OUT=str(out), PYTHON=sys.executable)
    return subprocess.run(["bash", str(REPO / "scripts" / "MEAP-SFT.sh"), "--max_steps", "2", "--model_max_length", "256",
                           "--cache_dir", str(out.parent / "datasets_cache"), *extra],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU launch")
def test_launcher_backend_none_trains_on_cpu(model_dir, tmp_path):
    """scripts/MEAP-SFT.sh with every flag it passes, on CPU, one process, two steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps([r for r in RECORDS if "instruction" in r] * 2))
    out = tmp_path / "out"
    # short answers and 256 positions would leave no masked copy (refused): copies from 10 answer
    # tokens, and room for original + copy
    proc = run_launcher(model_dir, data, out, 1, "--use_cpu", "--min_answer_tokens", "10", "--model_max_length", "512")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "masked copies" in proc.stdout and " 0 masked copies" not in proc.stdout.splitlines()[-2], proc.stdout[-2000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == base_vocab_size(model_dir) + 1


def test_our_frames_leave_out_a_venv_inside_the_repository():
    venv = REPO / ".venv" / "lib" / "python3.11" / "site-packages" / "torch" / "distributed" / "run.py"
    ours = REPO / "lit_gpt" / "sft" / "train.py"
    stderr = f'  File "{venv}", line 9, in main\n  File "{ours}", line 3, in main\n  File "/usr/lib/x.py", line 1\n'
    assert our_frames(stderr) == [str(ours)]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where the Trainer sees one CPU process")
def test_torchrun_without_a_shared_world_is_refused(model_dir, tmp_path):
    """torchrun --nproc_per_node 2 on CPU without --use_cpu: each rank would train alone; both refuse.

    PRESET=upstream here, so the launcher's flags for the upstream preset are parsed too."""
    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps([r for r in RECORDS if "instruction" in r] * 2))
    out = tmp_path / "out"
    proc = run_launcher(model_dir, data, out, 2, "--bf16", "false", preset="upstream")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors and all("the launcher started WORLD_SIZE=2 processes but the Trainer sees a world of 1" in e
                          for e in errors), proc.stderr[-3000:]
    assert not our_frames(proc.stderr), proc.stderr[-3000:]  # torchrun reports the failed ranks; no traceback of ours
    assert not out.exists()


@pytest.mark.parametrize("code", [28, 30])  # ENOSPC, EROFS
def test_a_full_or_read_only_output_folder_is_one_line(model_dir, train_file, tmp_path, monkeypatch, code):
    """The final model written into --output_dir on a failing disk: one UserError naming the folder."""
    import transformers.modeling_utils

    from lit_gpt.errors import UserError

    def failing_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 64)  # part of the file, as a full disk leaves it
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", failing_save)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        main(args(model_dir, train_file, out, "--max_steps", "1"))
    message = str(err.value)
    assert "\n" not in message and f"--output_dir {out}" in message and os.strerror(code) in message


@pytest.mark.parametrize("flags, message", [
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be >= 1"),
    (["--use_lora", "--lora_r", "0"], "--lora_r 0: must be >= 1"),
    (["--learning_rate", "nan"], "--learning_rate nan: must be a finite number"),
    (["--mask_ratio", "1.5"], "--mask_ratio 1.5: must be in [0, 1]"),
    (["--validation_split_percentage", "100"], "--validation_split_percentage 100.0: must be in [0, 100)"),
    (["--max_train_samples", "0"], "--max_train_samples 0: must be >= 1"),
    (["--max_eval_samples", "0"], "--max_eval_samples 0: must be >= 1"),
    (["--preprocessing_num_workers", "0"], "--preprocessing_num_workers 0: must be >= 1"),
    (["--pad_to_multiple_of", "0"], "--pad_to_multiple_of 0: must be >= 1"),
])
def test_sft_numbers_are_checked_before_anything_loads(flags, message, tmp_path):
    from lit_gpt.errors import UserError
    from lit_gpt.sft.train import parse_arguments

    with pytest.raises(UserError) as err:
        parse_arguments(["--model_name_or_path", "m", "--output_dir", str(tmp_path), "--train_file", "t", *flags])
    assert str(err.value) == message


def test_help_shows_the_sft_options_and_points_at_the_trainers(capsys):
    """--help is SFT's own options (one screen); --help_trainer is the Trainer's; its flags still parse."""
    from lit_gpt.sft.train import LoraArguments, MEAPArguments, parse_arguments
    from transformers import HfArgumentParser, TrainingArguments

    with pytest.raises(SystemExit) as exit_:
        parse_arguments(["--help"], prog="meap-sft")
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: meap-sft ") and len(out.splitlines()) < 100
    own = [f"--{f.name}" for cls in (MEAPArguments, LoraArguments) for f in dataclasses.fields(cls)]
    assert all(f"  {flag} " in out for flag in own + ["--model_name_or_path", "--train_file"])
    assert "--help_trainer" in out and "--num_train_epochs" in out and "--adam_beta1" not in out
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(["--help_trainer"], prog="meap-sft")
    trainer_help = capsys.readouterr().out
    assert exit_.value.code == 0
    assert trainer_help == HfArgumentParser(TrainingArguments, prog="meap-sft").format_help()
    assert "--adam_beta1" in trainer_help and "--mask_ratio" not in trainer_help
    *_, training = parse_arguments(["--model_name_or_path", "m", "--output_dir", "o", "--train_file", "t",
                                    "--num_train_epochs", "3", "--adam_beta1", "0.8", "--mask_ratio", "0.2"])
    assert (training.num_train_epochs, training.adam_beta1) == (3, 0.8)


def long_answer_records(n=8, repeats=24):
    """Alpaca-style records whose answers fill 512 tokens (they are cut there)."""
    return [{"instruction": f"Tell me about the fox, part {i}.", "input": "", "output": " ".join([ANSWER] * repeats)}
            for i in range(n)]


def test_meap_that_would_train_ntp_is_refused(model_dir, tmp_path):
    """The issue's case: concat, mask_ratio 0.1, min_answer_tokens 50, model_max_length 512 -> 0 copies."""
    from lit_gpt.sft.data import select_trainable, tokenize_files
    from lit_gpt.sft.templates import get_template
    from transformers import AutoTokenizer

    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps(long_answer_records()))
    tokenized = tokenize_files([data], AutoTokenizer.from_pretrained(model_dir), get_template("vicuna"),
                               cache_dir=str(tmp_path / "cache"))
    assert all(550 < n < 1000 for n in tokenized["n_tokens"])  # the original alone fills 512
    common = dict(min_answer_tokens=50, mask_ratio=0.1)
    assert select_trainable(tokenized, max_length=512, mode="concat", **common)[1].with_copy == 0
    assert select_trainable(tokenized, max_length=4096, mode="concat", **common)[1].with_copy == 8
    assert select_trainable(tokenized, max_length=512, mode="separate", **common)[1].with_copy == 8
    assert select_trainable(tokenized, max_length=512, mode="concat", make_room=True, **common)[1].with_copy == 8

    def run(out, *extra):
        return main(args(model_dir, data, tmp_path / out, "--mask_ratio", "0.1", "--min_answer_tokens", "50",
                         "--model_max_length", "512", "--max_steps", "1", *extra))

    with pytest.raises(UserError, match=r"^--meap_mode concat: 0 of the 8 training samples will carry a masked copy, "
                                        r"of 8 with at least --min_answer_tokens 50 answer tokens: .*--model_max_length "
                                        r"than 512.*--make_room_for_copy.*--meap_mode separate.*--allow_few_masked_copies"):
        run("refused")
    assert not (tmp_path / "refused").exists()
    # each remedy gives every sample of the step its copy (4 per batch); ntp and the explicit flag train without
    assert run("room", "--make_room_for_copy").collator_stats["masked_copies"] == 4
    assert run("separate", "--meap_mode", "separate").collator_stats["masked_copies"] == 4
    assert run("allowed", "--allow_few_masked_copies").collator_stats["masked_copies"] == 0
    assert run("ntp", "--meap_mode", "ntp").collator_stats["masked_copies"] == 0


def test_masking_counts_survive_dataloader_workers(model_dir, train_file, tmp_path, monkeypatch):
    """The logged counts equal a count made from what the model received, with 2 DataLoader workers."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    seen = []
    forward = LlamaForCausalLM.forward

    def counting_forward(self, *a, **kw):
        seen.append((kw["input_ids"].clone(), kw["labels"].clone()))
        return forward(self, *a, **kw)

    monkeypatch.setattr(LlamaForCausalLM, "forward", counting_forward)
    out = tmp_path / "out"
    result = main(args(model_dir, train_file, out, "--max_steps", "4", "--logging_steps", "2",
                       "--dataloader_num_workers", "2"))
    mask_id = AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("[MASK]")
    per_step = []
    for input_ids, labels in seen:  # concat mode: one row per sample, its copy inside it
        masked = (input_ids == mask_id) & (labels != -100)
        per_step.append([input_ids.shape[0], int(masked.any(dim=1).sum()), int(masked.sum()), int((labels != -100).sum())])
    assert len(per_step) == 4 and sum(s[2] for s in per_step) > 0
    logs = [h for h in result.log_history if "meap_samples" in h]
    assert [h["step"] for h in logs] == [2, 4]
    for log, steps in zip(logs, (per_step[:2], per_step[2:])):
        samples, copies, masked, loss_tokens = (sum(column) for column in zip(*steps))
        assert (log["meap_samples"], log["meap_masked_copies"], log["meap_masked_tokens"]) == (samples, copies, masked)
        assert log["meap_masked_share"] == pytest.approx(masked / loss_tokens)
    totals = [sum(column) for column in zip(*per_step)]
    counts = result.collator_stats
    assert [counts[k] for k in ("samples", "masked_copies", "masked_tokens", "loss_tokens")] == totals


def test_bad_model_and_data_files_are_one_line(model_dir, train_file, tmp_path):
    """A Latin-1 data file, a truncated model.safetensors, a malicious pytorch_model.bin, an auto_map
    folder of a known model_type: each refused in one line naming the file, nothing written or run."""
    import shutil

    out = tmp_path / "out"
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"instruction": "x", "output": "y"}\n{"instruction": "caf\xe9", "output": "ok"}\n')
    with pytest.raises(UserError, match=r"latin.jsonl: line 2 is not UTF-8 text \(byte 0xe9 at offset 56\)"):
        main(args(model_dir, latin, out))

    truncated = tmp_path / "truncated"
    shutil.copytree(model_dir, truncated)
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(UserError, match=r"truncated/model.safetensors is not a readable safetensors file"):
        main(args(truncated, train_file, out))

    pickled = tmp_path / "pickled"
    shutil.copytree(model_dir, pickled)
    (pickled / "model.safetensors").unlink()
    marker = tmp_path / "payload_ran"
    torch.save(malicious_pickle(marker), pickled / "pytorch_model.bin")
    with pytest.raises(UserError, match=r"^--model_name_or_path: .*pickled/pytorch_model.bin: not loaded for safety: it calls for"):
        main(args(pickled, train_file, out))
    assert not marker.exists()

    mapped = tmp_path / "mapped"
    shutil.copytree(model_dir, mapped)
    config = json.loads((mapped / "config.json").read_text())
    assert config["model_type"] == "llama"
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (mapped / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"mapped: config.json maps to custom code in that folder.*--trust_remote_code"):
        main(args(mapped, train_file, out))
    assert not out.exists()


def test_no_special_token_notice_nor_deprecated_flag_warning(model_dir, train_file, tmp_path, capfd):
    """The README's command (--activation_checkpointing) on a model whose config names another PAD id:
    the ids are aligned before the Trainer (no notice), and the saved config carries the tokenizer's."""
    import shutil

    folder = tmp_path / "other_pad"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "pad_token_id": 0}))
    out = tmp_path / "out"
    main(args(folder, train_file, out, "--max_steps", "1", "--activation_checkpointing"))
    err = capfd.readouterr().err
    assert "PAD/BOS/EOS" not in err and "FutureWarning" not in err, err
    saved = json.loads((out / "config.json").read_text())
    assert (saved["pad_token_id"], saved["bos_token_id"], saved["eos_token_id"]) == (3, 1, 2)


def test_preset_arguments():
    from lit_gpt.sft.train import parse_arguments

    base = ["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "o", "--preset", "upstream"]
    _, data_args, meap_args, _, _ = parse_arguments(base)
    assert (meap_args.meap_mode, meap_args.min_answer_tokens, data_args.template_name) == ("separate", 51, "llama3")
    _, data_args, meap_args, _, _ = parse_arguments(base[:-2])
    assert (meap_args.meap_mode, meap_args.min_answer_tokens, data_args.template_name) == ("concat", 50, "vicuna")
    with pytest.raises(UserError, match="--preset upstream makes its masked copies separate examples"):
        parse_arguments(base + ["--meap_mode", "concat"])
    with pytest.raises(UserError, match="--preset upstream: template 'vicuna' is not one of upstream's: llama3"):
        parse_arguments(base + ["--template_name", "vicuna"])
    with pytest.raises(UserError, match=r"--preset: invalid choice: 'paper' \(choose from 'default', 'upstream'\)"):
        parse_arguments(base[:-1] + ["paper"])


def test_preset_upstream_holds_out_one_percent_by_default():
    from lit_gpt.sft.train import parse_arguments

    base = ["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "o"]
    assert parse_arguments(base + ["--preset", "upstream"])[1].validation_split_percentage == 1.0
    assert parse_arguments(base)[1].validation_split_percentage == 0.0
    assert parse_arguments(base + ["--preset", "upstream", "--validation_split_percentage", "0"]
                           )[1].validation_split_percentage == 0.0
