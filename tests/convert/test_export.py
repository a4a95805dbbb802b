"""lit <-> Hugging Face conversion, checked against `transformers.LlamaForCausalLM` itself."""

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_gpt.config import Config
from lit_gpt.convert.checkpoint import load_lit_checkpoint
from lit_gpt.convert.export import export_hf, import_hf, lit_to_hf, parse_dtype
from lit_gpt.errors import UserError
from lit_gpt.generate import generate
from lit_gpt.model import GPT
from tests.convert.helpers import OFFLINE_ENV, random_lit_model, randomize_, tokens

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GROUPS = {"mha": 4, "gqa": 2, "mqa": 1}


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A 99-word tokenizer (BOS 1, EOS 2); with [MASK] it has 100 tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(96)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    folder = tmp_path_factory.mktemp("tiny_tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>").save_pretrained(folder)
    return folder


def tiny_config(n_query_groups: int, vocab_size: int = 100, name: str = "test_tiny") -> Config:
    return Config(name=name, block_size=64, vocab_size=vocab_size, padding_multiple=64, n_layer=2, n_embd=64,
                  n_head=4, n_query_groups=n_query_groups, intermediate_size=96)


def save_trainer_checkpoint(path: Path, model: GPT, tokenizer_dir=None, dtype=torch.float32) -> Path:
    state = {k: v.to(dtype) for k, v in model.state_dict().items()}
    checkpoint = {"model": state, "optimizer": {"state": {}, "param_groups": []}, "config": model.config.to_dict(),
                  "step": 3, "iter_num": 12}
    if tokenizer_dir is not None:
        checkpoint["tokenizer_dir"] = str(tokenizer_dir)
    torch.save(checkpoint, path)
    return path


def no_partial_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


# ----------------------------------------------------------------------------- lit -> HF
@pytest.mark.parametrize("kind", GROUPS)
def test_exported_folder_gives_the_logits_of_the_lit_model(kind, tmp_path, tiny_tokenizer_dir):
    config = tiny_config(GROUPS[kind])
    model = random_lit_model(config, seed=GROUPS[kind])
    ckpt = save_trainer_checkpoint(tmp_path / "step-00000003.pth", model, tiny_tokenizer_dir)
    out = tmp_path / "hf"
    export_hf(ckpt, out, dtype="float32")

    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["model_type"] == "llama" and hf_config["architectures"] == ["LlamaForCausalLM"]
    assert hf_config["num_key_value_heads"] == GROUPS[kind] and hf_config["num_attention_heads"] == 4
    assert hf_config["vocab_size"] == 128  # the padded vocabulary: 100 tokens padded to a multiple of 64
    assert (hf_config["bos_token_id"], hf_config["eos_token_id"]) == (1, 2)
    assert hf_config["rope_theta"] == 10000 and hf_config["rms_norm_eps"] == 1e-5
    assert hf_config["max_position_embeddings"] == 64 and hf_config["tie_word_embeddings"] is False

    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32).eval()
    assert isinstance(hf, LlamaForCausalLM)
    idx = tokens(seed=1)
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["gqa", "mqa"])
def test_greedy_generation_gives_the_same_tokens(kind, tmp_path, tiny_tokenizer_dir):
    model = random_lit_model(tiny_config(GROUPS[kind]), seed=7)
    ckpt = save_trainer_checkpoint(tmp_path / "ckpt.pth", model, tiny_tokenizer_dir)
    hf, tokenizer = lit_to_hf(ckpt, dtype="float32")
    assert tokenizer is not None and tokenizer.convert_tokens_to_ids("[MASK]") == 99
    for seed in range(3):
        prompt = tokens(seed=seed, shape=(1, 6))
        ours = generate(model, prompt, max_new_tokens=20, eos_id=2)
        theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                             eos_token_id=2, pad_token_id=2)
        assert ours.tolist() == theirs.tolist()
        assert ours.size(1) > prompt.size(1) + 1


@pytest.mark.parametrize("kind,dtype", [("mha", torch.float32), ("gqa", torch.bfloat16), ("mqa", torch.float32)])
def test_lit_to_hf_to_lit_is_bit_identical(kind, dtype, tmp_path, tiny_tokenizer_dir):
    model = random_lit_model(tiny_config(GROUPS[kind]), seed=3)
    ckpt = save_trainer_checkpoint(tmp_path / "ckpt.pth", model, tiny_tokenizer_dir, dtype=dtype)
    export_hf(ckpt, tmp_path / "hf", dtype=str(dtype).removeprefix("torch."))
    import_hf(tmp_path / "hf", tmp_path / "back.pth")

    original = torch.load(ckpt, weights_only=True)
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert back["model"].keys() == original["model"].keys()
    for key, tensor in original["model"].items():
        assert back["model"][key].dtype == dtype
        assert torch.equal(back["model"][key], tensor), key
    expected = {**original["config"], "name": "hf"}
    assert back["config"] == expected  # vocab_size comes back from the exported tokenizer (100)
    assert back["tokenizer_dir"] == str((tmp_path / "hf").resolve())


def test_export_shards_above_max_shard_size_and_the_index_loads(tmp_path, tiny_tokenizer_dir):
    model = random_lit_model(tiny_config(2), seed=5)
    ckpt = save_trainer_checkpoint(tmp_path / "ckpt.pth", model, tiny_tokenizer_dir)
    out = tmp_path / "hf"
    result = export_hf(ckpt, out, dtype="float32", max_shard_size="40KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    assert result.n_shards == len(shards) > 3 and not (out / "model.safetensors").exists()
    assert set(index["weight_map"].values()) == set(shards)
    expected_bytes = sum(4 * t.numel() for t in model.state_dict().values())
    assert index["metadata"]["total_size"] == expected_bytes
    assert all(p.stat().st_size <= 40_000 + 4096 for p in out.glob("model-*"))  # + the JSON header
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32).eval()
    idx = tokens(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- HF -> lit
def random_hf_llama(vocab_size: int, n_kv: int, intermediate: int = 96, seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=intermediate, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=n_kv, max_position_embeddings=64,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    randomize_(model, seed)
    return model.eval()


@pytest.mark.parametrize("weights_format", ["safetensors", "bin"])
def test_import_of_a_random_hf_llama_gives_its_logits(weights_format, tmp_path):
    hf = random_hf_llama(vocab_size=128, n_kv=2)
    hf.save_pretrained(tmp_path / "hf")
    if weights_format == "bin":
        (tmp_path / "hf" / "model.safetensors").unlink()
        torch.save(hf.state_dict(), tmp_path / "hf" / "pytorch_model.bin")
    import_hf(tmp_path / "hf", tmp_path / "lit.pth")

    state_dict, config, meta = load_lit_checkpoint(tmp_path / "lit.pth")
    assert (config.n_layer, config.n_query_groups, config.padded_vocab_size) == (2, 2, 128)
    assert meta["tokenizer_dir"] is None
    lit = GPT(config, fused=False)
    lit.load_state_dict(state_dict)
    idx = tokens(seed=4, vocab=128)
    with torch.no_grad():
        torch.testing.assert_close(lit.eval()(idx), hf(idx).logits, atol=1e-5, rtol=0)


def test_import_writes_its_entries_in_the_order_of_earlier_releases(tmp_path):
    # The order of the entries is part of the file's bytes: the same folder gives the same file as before.
    random_hf_llama(vocab_size=128, n_kv=2).save_pretrained(tmp_path / "hf")
    import_hf(tmp_path / "hf", tmp_path / "lit.pth")
    assert list(torch.load(tmp_path / "lit.pth", weights_only=True)) == ["model", "config", "tokenizer_dir", "source"]


def test_import_grows_the_vocabulary_with_mean_rows(tmp_path):
    # micro_LLaMA: 2 layers, 64 wide, 4 heads, 2 query groups, intermediate 176, 4096 padded rows.
    hf = random_hf_llama(vocab_size=4000, n_kv=2, intermediate=176, seed=1)
    hf.save_pretrained(tmp_path / "hf")
    assert main_of("convert_hf_checkpoint.py", ["--checkpoint_dir", str(tmp_path / "hf"), "--model_name", "micro_LLaMA",
                                                 "--out", str(tmp_path / "lit.pth")]) == 0
    sd, config, _ = load_lit_checkpoint(tmp_path / "lit.pth")
    assert config.name == "micro_LLaMA" and config.padded_vocab_size == 4096
    for lit_key, hf_weight in (("transformer.wte.weight", hf.model.embed_tokens.weight), ("lm_head.weight", hf.lm_head.weight)):
        assert sd[lit_key].shape == (4096, 64)
        assert torch.equal(sd[lit_key][:4000], hf_weight.detach())
        mean = hf_weight.detach().double().mean(dim=0).float()
        torch.testing.assert_close(sd[lit_key][4000:], mean.expand(96, -1), atol=1e-6, rtol=0)
    lit = GPT(config, fused=False).eval()
    lit.load_state_dict(sd)
    idx = tokens(seed=6, vocab=4000)
    with torch.no_grad():
        torch.testing.assert_close(lit(idx)[..., :4000], hf(idx).logits, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- command lines
def run_script(script: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "convert" / script), *args], capture_output=True, text=True, env=env, timeout=120)


def main_of(script: str, args: list[str]) -> int:
    """Runs an entry point in this process, as `python convert/SCRIPT ARGS` would; returns its exit code."""
    saved = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(REPO / "convert" / script), run_name="__main__")
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved


def test_cli_export_with_a_llama_tokenizer_loads_offline(tmp_path, llama_tokenizer_dir):
    config = tiny_config(2, vocab_size=32001, name="test_tiny_32k")
    model = random_lit_model(config, seed=11)
    ckpt = save_trainer_checkpoint(tmp_path / "step-00000100.pth", model, tokenizer_dir=llama_tokenizer_dir)
    out = tmp_path / "exported"
    # The upstream command: --model_only is accepted; the tokenizer comes from the checkpoint.
    proc = run_script("convert_lit_checkpoint.py", ["--checkpoint_name", str(ckpt), "--out_dir", str(out),
                                                    "--model_only", "false"])
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "with tokenizer" in proc.stdout
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}

    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert len(tokenizer) == 32001 and tokenizer.convert_tokens_to_ids("[MASK]") == 32000
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert hf.config.vocab_size == 32064 and hf.dtype == torch.bfloat16
    assert (hf.config.bos_token_id, hf.config.eos_token_id) == (1, 2)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2
    # bf16 weights: the lit model with the same rounding gives the same logits.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    idx = tokenizer("The quick brown fox jumps over the lazy dog", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(hf.float()(idx).logits, model(idx), atol=1e-5, rtol=0)


@pytest.mark.parametrize("protocol", [2, 5])  # 5: what upstream's converter writes
def test_convert_safetensors_rewrites_an_upstream_bin(tmp_path, tiny_tokenizer_dir, protocol):
    hf = random_hf_llama(vocab_size=128, n_kv=1, seed=2)
    src = tmp_path / "upstream"
    hf.save_pretrained(src)
    (src / "model.safetensors").unlink()
    torch.save(hf.state_dict(), src / "pytorch_model.bin", pickle_protocol=protocol)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_tokenizer_dir / name, src / name)
    out = tmp_path / "st"
    assert main_of("convert_safetensors.py", ["--checkpoint_path", str(src / "pytorch_model.bin"), "--out_dir", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    reloaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32).eval()
    AutoTokenizer.from_pretrained(out, local_files_only=True)
    idx = tokens(seed=8, vocab=128)
    with torch.no_grad():
        assert torch.equal(reloaded(idx).logits, hf(idx).logits)


# ----------------------------------------------------------------------------- bad inputs
def test_cli_wrong_model_name_is_one_line_and_writes_nothing(tmp_path, tiny_tokenizer_dir):
    plain = tmp_path / "plain.pth"
    torch.save(random_lit_model(tiny_config(2)).state_dict(), plain)  # no recorded config
    out = tmp_path / "out"
    proc = run_script("convert_lit_checkpoint.py", ["--checkpoint_path", str(plain), "--out_dir", str(out),
                                                    "--model_name", "micro_LLaMA", "--tokenizer_dir", str(tiny_tokenizer_dir)])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "micro_LLaMA" in lines[0] and "wrong shapes" in lines[0] and "lm_head.weight [128, 64] (expected [4096, 64])" in lines[0]
    assert not out.exists() and no_partial_leftovers(tmp_path)


def _bad_export(tmp_path, capsys, args) -> str:
    out = tmp_path / "out"
    code = main_of("convert_lit_checkpoint.py", ["--out_dir", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert no_partial_leftovers(tmp_path)
    return lines[0]


def test_bad_checkpoints_are_listed_and_nothing_is_written(tmp_path, capsys):
    config = tiny_config(2)
    sd = random_lit_model(config).state_dict()
    ckpt = tmp_path / "ckpt.pth"

    torch.save({"model": sd, "config": config.to_dict()}, ckpt)
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(ckpt), "--model_name", "micro_LLaMA"])
    assert "trained as 'test_tiny', not --model_name 'micro_LLaMA'" in line


    broken = {"_forward_module." + k: v for k, v in sd.items() if not k.startswith("transformer.h.1.mlp")}
    broken["transformer.h.2.attn.attn.weight"] = sd["transformer.h.1.attn.attn.weight"]
    broken["_forward_module.lm_head.weight"] = torch.zeros(100, 64)
    torch.save({"model": broken, "config": config.to_dict()}, ckpt)
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(ckpt)])
    assert "missing keys: transformer.h.{1}.mlp.swiglu.w1.weight" in line
    assert "unexpected keys: transformer.h.{2}.attn.attn.weight" in line
    assert "wrong shapes: lm_head.weight [100, 64] (expected [128, 64])" in line

    torch.save(sd, ckpt)
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(ckpt)])
    assert "records no model config: pass --model_name (e.g. tiny_LLaMA_1b_mask) to convert/convert_lit_checkpoint.py" in line
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(ckpt), "--model_name", "tiny_LLaMA_1x"])
    assert "unknown model name 'tiny_LLaMA_1x'" in line
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(tmp_path / "missing.pth"), "--model_name", "micro_LLaMA"])
    assert "checkpoint not found" in line
    assert not (tmp_path / "out").exists()


def test_existing_out_dir_is_kept_unless_overwrite(tmp_path, capsys, tiny_tokenizer_dir):
    model = random_lit_model(tiny_config(2))
    ckpt = save_trainer_checkpoint(tmp_path / "ckpt.pth", model, tiny_tokenizer_dir)
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(ckpt)])
    assert "is not empty; pass --overwrite" in line
    assert [p.name for p in out.iterdir()] == ["precious.txt"] and (out / "precious.txt").read_text() == "keep me"

    # The training folder itself is never replaced, even with --overwrite.
    line = _bad_export(tmp_path, capsys, ["--checkpoint_name", str(ckpt), "--out_dir", str(tmp_path), "--overwrite"])
    assert "it holds" in line and ckpt.is_file()

    assert main_of("convert_lit_checkpoint.py", ["--checkpoint_name", str(ckpt), "--out_dir", str(out), "--overwrite"]) == 0
    assert not (out / "precious.txt").exists() and (out / "model.safetensors").is_file()
    assert no_partial_leftovers(tmp_path)


# ----------------------------------------------------------------------------- full disks, read-only folders
ENOSPC_SAFETENSORS = "Error while serializing: I/O error: No space left on device (os error 28)"
ENOSPC_TORCH_SAVE = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def disk_fills_up(monkeypatch, after_files: int) -> list:
    """Writers that behave as on a full disk from their `after_files + 1`-th file on: part of the
    file is written, then the error each library raises on a real ENOSPC (both seen on a 200 KB
    tmpfs: safetensors raises SafetensorError, torch.save a RuntimeError from its zip writer)."""
    import safetensors.torch
    from safetensors import SafetensorError

    calls = []
    real_save_file, real_torch_save = safetensors.torch.save_file, torch.save

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) > after_files:
            Path(filename).write_bytes(b"\0" * 4096)
            raise SafetensorError(ENOSPC_SAFETENSORS)
        real_save_file(tensors, filename, metadata=metadata)

    def torch_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) > after_files:
            Path(f).write_bytes(b"PK\3\4" + b"\0" * 4096)
            raise RuntimeError(ENOSPC_TORCH_SAVE)
        real_torch_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(torch, "save", torch_save)
    return calls


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_full_disk_while_exporting_leaves_nothing_behind(tmp_path, monkeypatch, capsys, tiny_tokenizer_dir):
    ckpt = save_trainer_checkpoint(tmp_path / "ckpt.pth", random_lit_model(tiny_config(2)), tiny_tokenizer_dir)
    calls = disk_fills_up(monkeypatch, after_files=1)
    out = tmp_path / "new" / "nested" / "out"
    assert main_of("convert_lit_checkpoint.py", ["--checkpoint_name", str(ckpt), "--out_dir", str(out), "--max_shard_size", "40KB"]) == 2
    line = one_line(capsys)
    assert f"could not write --out_dir {out}: No space left on device" in line and "nothing was written" in line
    assert len(calls) == 2 and not (tmp_path / "new").exists() and no_partial_leftovers(tmp_path)

    # With --overwrite, the folder being replaced stays as it was.
    out.mkdir(parents=True)
    (out / "precious.txt").write_text("keep me")
    calls.clear()
    assert main_of("convert_lit_checkpoint.py", ["--checkpoint_name", str(ckpt), "--out_dir", str(out), "--overwrite",
                                                 "--max_shard_size", "40KB"]) == 2
    assert "No space left on device" in one_line(capsys)
    assert [p.name for p in out.iterdir()] == ["precious.txt"] and (out / "precious.txt").read_text() == "keep me"
    assert no_partial_leftovers(out.parent)


def test_a_full_disk_while_importing_leaves_the_old_file(tmp_path, monkeypatch, capsys):
    random_hf_llama(vocab_size=128, n_kv=2).save_pretrained(tmp_path / "hf")
    out = tmp_path / "lit.pth"
    out.write_bytes(b"an earlier checkpoint")
    capsys.readouterr()
    disk_fills_up(monkeypatch, after_files=0)
    assert main_of("convert_hf_checkpoint.py", ["--checkpoint_dir", str(tmp_path / "hf"), "--out", str(out), "--overwrite"]) == 2
    assert f"could not write --out {out}" in one_line(capsys)
    assert out.read_bytes() == b"an earlier checkpoint" and no_partial_leftovers(tmp_path)


def _mount(point: Path, options: str) -> bool:
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 KB file system, so a full disk and a read-only one are not simulated (needs root
    and the right to mount; skipped elsewhere)."""
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or not _mount(point, "size=200k"):
        pytest.skip("cannot mount a tmpfs here")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def conversions(tmp_path, tiny_tokenizer_dir, out: Path) -> list:
    """Each convert/ entry point with its output in `out`; inputs of ~300 KB each."""
    ckpt = save_trainer_checkpoint(tmp_path / "ckpt.pth", random_lit_model(tiny_config(2)), tiny_tokenizer_dir)
    hf = random_hf_llama(vocab_size=128, n_kv=2)
    hf.save_pretrained(tmp_path / "hf")
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin", pickle_protocol=5)
    return [
        ("convert_lit_checkpoint.py", ["--checkpoint_name", ckpt, "--out_dir", out / "hf_out", "--dtype", "float32"]),
        ("convert_hf_checkpoint.py", ["--checkpoint_dir", tmp_path / "hf", "--out", out / "lit.pth"]),
        ("convert_safetensors.py", ["--checkpoint_path", tmp_path / "pytorch_model.bin", "--out_dir", out / "st"]),
    ]


def test_a_real_full_disk_is_one_line_and_leaves_the_disk_empty(tmp_path, capsys, small_disk, tiny_tokenizer_dir):
    for script, args in conversions(tmp_path, tiny_tokenizer_dir, small_disk):
        capsys.readouterr()
        assert main_of(script, [str(a) for a in args]) == 2, script
        line = one_line(capsys)
        assert "could not write" in line and "no space left on device" in line.lower(), line
        assert list(small_disk.iterdir()) == [], script


def test_a_read_only_destination_is_one_line_and_keeps_what_is_there(tmp_path, capsys, tiny_tokenizer_dir):
    """Real: a folder without write permission, or, where permissions do not bind (root), a read-only tmpfs."""
    folder = tmp_path / "ro"
    folder.mkdir()
    runs = conversions(tmp_path, tiny_tokenizer_dir, folder)
    runs[2][1].append("--overwrite")  # replacing a folder there must fail without touching it
    mounted = not permissions_bind(folder)
    if mounted and not (shutil.which("mount") and _mount(folder, "size=1m")):
        pytest.skip("write permissions do not bind here (root) and a read-only tmpfs cannot be mounted")
    (folder / "st").mkdir()
    (folder / "st" / "precious.txt").write_text("keep me")
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        for script, args in runs:
            capsys.readouterr()
            assert main_of(script, [str(a) for a in args]) == 2, script
            line = one_line(capsys)
            assert "cannot write" in line and ("Read-only file system" in line or "Permission denied" in line), line
        assert [p.name for p in folder.iterdir()] == ["st"] and (folder / "st" / "precious.txt").read_text() == "keep me"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)


def permissions_bind(folder: Path) -> bool:
    """Whether a folder without write permission refuses new files here (not for root)."""
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)
    (folder / "probe").unlink()
    return False


def test_import_with_a_mismatched_model_name_writes_nothing(tmp_path, capsys):
    random_hf_llama(vocab_size=128, n_kv=1).save_pretrained(tmp_path / "hf")
    capsys.readouterr()
    out = tmp_path / "lit.pth"
    code = main_of("convert_hf_checkpoint.py", ["--checkpoint_dir", str(tmp_path / "hf"), "--model_name", "micro_LLaMA",
                                                "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "n_query_groups 1 (checkpoint) vs 2" in err[0] and "intermediate_size 96 (checkpoint) vs 176" in err[0]
    assert not out.exists() and no_partial_leftovers(tmp_path)


@pytest.mark.parametrize("text", ["[1, 2]", '"llama"', "not json"])
def test_import_of_a_config_json_that_is_no_object_is_one_line(tmp_path, capsys, text):
    random_hf_llama(vocab_size=128, n_kv=1).save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "config.json").write_text(text)
    capsys.readouterr()
    out = tmp_path / "lit.pth"
    code = main_of("convert_hf_checkpoint.py", ["--checkpoint_dir", str(tmp_path / "hf"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "config.json" in err[0]
    assert not out.exists()


def test_parse_dtype_takes_full_and_short_names_and_refuses_others():
    for names, expected in ((("bfloat16", "bf16"), torch.bfloat16), (("float16", "fp16", "half"), torch.float16),
                            (("float32", "fp32"), torch.float32)):
        assert [parse_dtype(name) for name in names] == [expected] * len(names)
    assert parse_dtype(torch.float64) is torch.float64
    with pytest.raises(UserError, match="unknown dtype 'int8'"):
        parse_dtype("int8")
