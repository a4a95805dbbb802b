"""hyperparameters.yaml (lit_gpt/io/hyperparameters.py): a run's resolved settings, in pretraining and SFT."""

import json
import socket

import pytest
import yaml

from lit_gpt.io.run_lock import HOLDER
from lit_gpt.pretrain import PretrainArgs, pretrain
from lit_gpt.pretrain.recipe import parse_args
from tests.io.helpers import dead_pid, write_lock
from tests.pretrain_helpers import tiny_settings


pytestmark = pytest.mark.usefixtures("one_thread")


def test_stale_lock_run_and_hyperparameters_yaml_round_trip(data, tmp_path, capsys):
    out = tmp_path / "run"
    write_lock(out, host=socket.gethostname(), pid=dead_pid())
    args = PretrainArgs(**tiny_settings(*data, out, max_steps=1, eval_iters=0, save_interval=1))
    assert pretrain(args) == 0
    assert "taking over the lock" in capsys.readouterr().err
    assert not (out / HOLDER).exists()

    saved = yaml.safe_load((out / "hyperparameters.yaml").read_text())
    assert PretrainArgs(**saved) == args
    # The file is a recipe too: rerunning from it gives the same settings.
    assert parse_args(["--config", str(out / "hyperparameters.yaml")]) == args
    # A resume rewrites it with the settings of that invocation.
    assert pretrain(args.replace(resume="auto", max_steps=2)) == 0
    assert yaml.safe_load((out / "hyperparameters.yaml").read_text())["budget"]["max_steps"] == 2


def test_sft_writes_its_settings_to_hyperparameters_yaml(tmp_path):
    from dataclasses import asdict

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from lit_gpt.sft.train import main as sft_main, parse_arguments

    model_dir = tmp_path / "model"
    words = "tell me about the fox it jumps over a dog and sleeps".split()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            pad_token="</s>").save_pretrained(model_dir)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                                 bos_token_id=1, eos_token_id=2)).save_pretrained(model_dir)
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"instruction": "tell me about the fox", "input": "",
                                "output": "it jumps over a dog and sleeps " * 3}) + "\n")
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(model_dir), "--train_file", str(data), "--output_dir", str(out),
            "--template_name", "alpaca", "--mask_ratio", "0.2", "--min_answer_tokens", "5", "--max_steps", "1",
            "--per_device_train_batch_size", "1", "--save_strategy", "no", "--report_to", "none",
            "--cache_dir", str(tmp_path / "cache"), "--disable_tqdm", "true", "--dataloader_pin_memory", "false"]
    sft_main(argv)
    saved = yaml.safe_load((out / "hyperparameters.yaml").read_text())
    model_args, data_args, meap_args, lora_args, training_args = parse_arguments(argv)
    assert saved["model"] == asdict(model_args) and saved["data"] == asdict(data_args)
    assert saved["meap"] == asdict(meap_args) and saved["lora"] == asdict(lora_args)
    assert saved["training"]["max_steps"] == 1 and saved["training"]["output_dir"] == str(out)
    assert not (out / HOLDER).exists()
