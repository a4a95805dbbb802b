"""scripts/benchmark.py end to end on a tiny CPU config, and the pieces it is built from.

No timing assertions: CPU numbers only show that every configuration runs and is reported.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lit_gpt.benchmark import (
    HFCausalLM,
    Row,
    attention_probe,
    format_table,
    hf_llama_config,
    make_batches,
    meap_ntp_ratios,
    speedups,
)
from lit_gpt.config import Config
from lit_gpt.meap import num_masked
from lit_gpt.model import count_parameters

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "benchmark.py"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_benchmark_script_reports_every_configuration_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, str(SCRIPT), "--model_name", "micro_LLaMA", "--seq_len", "64", "--micro_batch_size", "2",
        "--steps", "2", "--warmup", "1", "--compile_backend", "aot_eager", "--json", str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    for key in ("card", "torch", "date", "command", "matmul_tflops", "n_params", "flops_per_token", "collate_ms"):
        assert key in report, key
    assert "--model_name micro_LLaMA" in report["command"] and report["complete"] is True
    assert report["device"] == "cpu" and report["precision"] == "32-true"
    assert report["micro_batch_size"] == 2 and report["seq_len"] == 64
    assert report["matmul_tflops"] > 0
    assert report["n_params"] == count_parameters(Config.from_name("micro_LLaMA"))

    rows = {(r["variant"], r["mask_ratio"]): r for r in report["rows"]}
    expected = {(v, m) for v in ("eager", "fused", "compile") for m in (0.15, 0.0)} | {("hf", 0.0), ("hf_liger", 0.0)}
    assert set(rows) == expected
    for key, row in rows.items():
        if key[0] == "hf_liger":
            assert row["status"] == "skipped" and "CUDA" in row["message"]
            continue
        assert row["status"] == "ok", (key, row["message"])
        assert row["step_ms_min"] <= row["step_ms_median"] <= row["step_ms_max"]
        assert row["tokens_per_s"] > 0 and row["tflops"] > 0 and row["matmul_fraction"] > 0
        assert row["peak_mem_gib"] is None and row["host_syncs_per_step"] is None  # CUDA-only readings
        # A fresh model predicts about uniformly: the loss is near log(vocab).
        assert math.isfinite(row["final_loss"]) and abs(row["final_loss"] - math.log(4096)) < 1.5
    assert set(report["meap_ntp_time_ratio"]) == {"eager", "fused", "compile"}
    assert report["speedup_vs"]["hf"]["speedup"] > 0
    # The table comes last on stdout.
    assert "MEAP/NTP step-time ratio" in proc.stdout and "hf_liger" in proc.stdout


def run_main(argv, capsys):
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--micro_batch_size", "two"], "--micro_batch_size 'two'"),
        (["--micro_batch_size", "auto", "--device", "cpu"], "auto needs CUDA"),
        (["--micro_batch_size", "2", "--model_name", "tiny_LLaMA_9b"], "--model_name 'tiny_LLaMA_9b'"),
        (["--micro_batch_size", "2", "--steps", "0"], "--steps 0"),
        (["--micro_batch_size", "2", "--mask_ratio", "1.5"], "--mask_ratio 1.5"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, extra, message):
    argv = ["--seq_len", "8", "--json", str(tmp_path / "x.json")]
    if "--model_name" not in extra:
        argv += ["--model_name", "micro_LLaMA"]
    code, err = run_main(argv + extra, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()


def test_existing_result_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "old.json"
    out.write_text("{}")
    code, err = run_main(["--model_name", "micro_LLaMA", "--seq_len", "8", "--micro_batch_size", "1",
                          "--json", str(out)], capsys)
    assert code == 2 and "exists" in err
    assert out.read_text() == "{}"


def test_batches_are_masked_like_the_trainer_does():
    config = Config.from_name("micro_LLaMA")
    mask_id = config.vocab_size - 1
    T = 40
    meap = make_batches(config, 3, T, 0.15, 2, seed=1, device=torch.device("cpu"))
    ntp = make_batches(config, 3, T, 0.0, 2, seed=1, device=torch.device("cpu"))
    for (mi, mt), (ni, nt) in zip(meap, ntp):
        assert mi.shape == mt.shape == (3, T) and mi.dtype == torch.long
        assert torch.equal(mt, nt)  # same data, targets never masked
        assert torch.all((mi == mask_id).sum(dim=1) == num_masked(0.15, T))
        assert not (ni == mask_id).any()
        unmasked = mi != mask_id
        assert torch.equal(mi[unmasked], ni[unmasked])
        assert torch.equal(ni[:, 1:], nt[:, :-1])  # inputs and targets are one token apart
    assert not torch.equal(meap[0][0], meap[1][0])  # distinct batches


def test_hf_reference_has_our_shape_and_loss_over_all_targets():
    transformers = pytest.importorskip("transformers")
    config = Config.from_name("micro_LLaMA", vocab_size=300)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM._from_config(hf_llama_config(config), attn_implementation="sdpa")
    assert sum(p.numel() for p in hf.parameters()) == count_parameters(config)
    model = HFCausalLM(hf).train()
    x = torch.randint(0, 300, (2, 16))
    y = torch.randint(0, 300, (2, 16))
    loss = model(x, targets=y)
    logits = hf(input_ids=x).logits
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)))


def synthetic_report() -> dict:
    def row(variant, ratio, ms, status="ok"):
        r = Row(variant, ratio, status=status)
        if status == "ok":
            r.step_ms_median = r.step_ms_min = r.step_ms_max = ms
            r.tokens_per_s = 1000.0 / ms
            r.tflops, r.matmul_fraction = 0.5, 0.25
        return r

    rows = [row("eager", 0.15, 12.0), row("eager", 0.0, 10.0), row("fused", 0.15, 5.05), row("fused", 0.0, 5.0),
            row("compile", 0.15, 0, "OOM"), row("compile", 0.0, 0, "OOM"), row("hf", 0.0, 8.0), row("hf_liger", 0.0, 6.0)]
    return rows


def test_ratios_speedups_and_table_from_rows():
    rows = synthetic_report()
    ratios = meap_ntp_ratios(rows)
    assert ratios == pytest.approx({"eager": 1.2, "fused": 1.01})
    s = speedups(rows)
    assert s["hf"]["best_variant"] == "fused" and s["hf"]["speedup"] == pytest.approx(8.0 / 5.0)
    assert s["hf_liger"]["speedup"] == pytest.approx(6.0 / 5.0)
    from dataclasses import asdict

    report = {"model_name": "m", "micro_batch_size": 2, "seq_len": 8, "precision": "bf16-mixed", "card": "c",
              "torch": "t", "matmul_size": 8, "matmul_tflops": 2.0, "rows": [asdict(r) for r in rows],
              "meap_ntp_time_ratio": ratios, "speedup_vs": s}
    table = format_table(report)
    assert "OOM" in table and "fused vs hf_liger: 1.200x" in table and "fused 1.0100" in table


def test_attention_probe_reports_each_backend():
    result = attention_probe(Config.from_name("micro_LLaMA"), 2, 32, torch.device("cpu"), repeats=1)
    assert set(result) == {"auto", "cudnn", "flash", "efficient", "cudnn_repeated_kv"}
    assert isinstance(result["auto"], float) and result["auto"] > 0
    assert all(isinstance(v, float) or v.startswith("n/a: ") for v in result.values())
