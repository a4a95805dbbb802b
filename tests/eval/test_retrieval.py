"""End to end: a tiny random LlamaForCausalLM evaluated by `python -m lit_gpt.eval.retrieval`."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_gpt.eval import retrieval
from lit_gpt.eval.haystack import load_corpus
from lit_gpt.eval.prompts import build_prompts
from lit_gpt.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "lit_gpt.eval.retrieval", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def run_main(*args):
    return retrieval.main([str(a) for a in args])


def test_cli_writes_results_and_heatmap(model_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "--model_dir", model_dir, "--task", "passkey", "--context_lengths", "128,256", "--depths", "0,1",
        "--samples", 2, "--batch_size", 3, "--out_dir", out, "--device", "cpu", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "mean" in proc.stdout  # the summary table

    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    assert results["task"] == "passkey" and Path(results["model"]) == model_dir.resolve()
    assert settings["context_lengths"] == [128, 256] and settings["depths"] == [0.0, 1.0]
    assert settings["samples"] == 2 and settings["seed"] == 0 and settings["metric"] == "substring"
    assert settings["device"] == "cpu" and settings["dtype"] == "float32"

    records = results["records"]
    assert len(records) == 2 * 2 * 2
    for r in records:
        assert abs(r["prompt_tokens"] - r["context_length"]) <= 0.02 * r["context_length"]
        assert re.fullmatch(r"\d{5}", r["expected"])
        assert r["correct"] == (r["expected"] in r["predicted"])
    # the accuracies are the means of the records
    acc = results["accuracy"]
    for length in (128, 256):
        for depth, key in ((0.0, "0"), (1.0, "1")):
            cell = [r["correct"] for r in records if r["context_length"] == length and r["depth"] == depth]
            assert len(cell) == 2
            assert acc["by_length_depth"][str(length)][key] == pytest.approx(sum(cell) / 2)
    assert acc["overall"] == pytest.approx(sum(r["correct"] for r in records) / len(records))
    # the continuous score: a log-probability per record, cells are their means
    logprob = results["logprob"]
    assert all(r["answer_logprob"] < 0 and r["answer_tokens"] >= 1 for r in records)
    cell = [r["answer_logprob"] for r in records if r["context_length"] == 256 and r["depth"] == 1.0]
    assert logprob["by_length_depth"]["256"]["1"] == pytest.approx(sum(cell) / len(cell))
    assert logprob["overall"] == pytest.approx(sum(r["answer_logprob"] for r in records) / len(records))
    assert "log-probability" in proc.stdout
    assert (out / "logprob_heatmap.png").read_bytes().startswith(b"\x89PNG")

    png = (out / "heatmap.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    assert matplotlib.image.imread(out / "heatmap.png").ndim == 3


def test_batched_decoding_matches_one_prompt_at_a_time(model_dir, tmp_path):
    from transformers import LlamaForCausalLM

    corpus_path = tmp_path / "corpus.jsonl"
    corpus_path.write_text("".join(json.dumps({"text": f"Paragraph {i} is about rivers and hills."}) + "\n" for i in range(200)))
    out = tmp_path / "out"
    results = run_main(
        "--model_dir", model_dir, "--task", "niah", "--context_lengths", "128,200", "--depths", "0.5",
        "--samples", 2, "--batch_size", 3, "--max_new_tokens", 6, "--haystack_file", corpus_path,
        "--out_dir", out, "--device", "cpu",
    )  # fmt: skip
    assert results["settings"]["haystack"] == str(corpus_path)

    # Reference: the same prompts, each decoded alone (no padding) by transformers.
    tokenizer = load_tokenizer(model_dir, add_mask_token=False)
    model = LlamaForCausalLM.from_pretrained(model_dir).eval()
    prompts = build_prompts(tokenizer, "niah", [128, 200], [0.5], 2, seed=0, corpus=load_corpus(corpus_path))
    assert len(prompts) == len(results["records"]) == 4
    for prompt, record in zip(prompts, results["records"]):
        assert "rivers and hills" in prompt.text
        ids = torch.tensor([prompt.input_ids])
        with torch.no_grad():
            new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
        assert record["generation"] == tokenizer.decode(new[0, ids.shape[1] :], skip_special_tokens=True)
        assert record["expected"] == prompt.answer and record["prompt_tokens"] == len(prompt.input_ids)


def test_kv_task(model_dir, tmp_path):
    results = run_main(
        "--model_dir", model_dir, "--task", "kv", "--context_lengths", "300", "--depths", "0.5",
        "--samples", 1, "--out_dir", tmp_path / "kv", "--device", "cpu", "--max_new_tokens", 4,
    )  # fmt: skip
    (record,) = results["records"]
    assert results["settings"]["metric"] == "best_subspan_em"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", record["expected"])
    assert abs(record["needle_depth"] - 0.5) * 300 <= 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model_dir", "{tmp}/missing", "--task", "passkey"], "model not found"),
        (["--model_dir", "{model}", "--task", "qa"], "invalid choice"),
        (["--model_dir", "{model}", "--task", "niah", "--depths", "0,1.5"], "outside [0, 1]"),
        (["--model_dir", "{model}", "--task", "niah", "--context_lengths", "1k,abc"], "not a number of tokens"),
    ],
)
def test_bad_input_is_one_line(model_dir, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, model=model_dir) for a in args]
    proc = run_cli(*args, "--out_dir", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_lengths_beyond_the_models_positions_are_refused_before_any_work(model_dir, tmp_path):
    proc = run_cli("--model_dir", model_dir, "--task", "passkey", "--context_lengths", "100000",
                   "--out_dir", tmp_path / "out", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "tokens exceed the model's 1024 positions; use shorter lengths, or pass --allow_beyond_context" in errors[0]
    assert not (tmp_path / "out").exists()


def test_earlier_results_are_not_overwritten(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("earlier")
    with pytest.raises(SystemExit) as exit_info:
        run_main("--model_dir", model_dir, "--task", "passkey", "--out_dir", out)
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_text() == "earlier"


@pytest.mark.parametrize("code", [28, 30])  # ENOSPC, EROFS
def test_a_full_or_read_only_output_folder_is_one_line(model_dir, tmp_path, monkeypatch, capsys, code):
    """results.json and the heatmaps go through the atomic helper: a failing disk is one line naming
    the file, with no temporary left and the earlier results.json kept."""
    import lit_gpt.io.atomic as atomic

    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if ".partial-" in str(file) and "w" in mode:
            f.close()
            raise OSError(code, os.strerror(code))
        return f

    monkeypatch.setattr(atomic, "open", failing_open, raising=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("earlier")
    with pytest.raises(SystemExit) as exit_info:
        run_main("--model_dir", model_dir, "--task", "passkey", "--context_lengths", "128", "--depths", "0",
                 "--samples", 1, "--out_dir", out, "--device", "cpu", "--overwrite")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("Loading weights")]  # a library's bar
    assert len(lines) == 1 and "Traceback" not in err and os.strerror(code) in lines[0], err
    assert str(out / "results.json") in lines[0]
    assert (out / "results.json").read_text() == "earlier" and sorted(p.name for p in out.iterdir()) == ["results.json"]


