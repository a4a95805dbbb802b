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

from tools.bench.probes import attention_probe
from tools.bench.report import format_table, summarise
from tools.bench.run import Row
from tools.bench.stats import paired_ratio, spread
from tools.bench.timing import round_robin, time_rounds
from tools.bench.variants import HFCausalLM, hf_llama_config
from tools.bench.workload import make_batches
from lit_gpt.config import Config
from lit_gpt.meap import num_masked
from lit_gpt.model import count_parameters

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark.py"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_benchmark_script_reports_every_configuration_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, str(SCRIPT), "--model_name", "micro_LLaMA", "--seq_len", "64", "--micro_batch_size", "2",
        "--steps", "3", "--warmup", "1", "--compile_backend", "aot_eager", "--json", str(out),
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
        assert len(row["step_ms_rounds"]) == 3
        assert (row["step_ms_median"], row["step_ms_min"], row["step_ms_max"]) == pytest.approx(spread(row["step_ms_rounds"]))
        assert row["tokens_per_s"] > 0 and row["tflops"] > 0
        assert row["matmul_fraction"] is None  # a CPU run has no matching ceiling
        assert row["peak_mem_gib"] is None and row["host_syncs_per_step"] is None  # CUDA-only readings
        # A fresh model predicts about uniformly: the loss is near log(vocab).
        assert math.isfinite(row["final_loss"]) and abs(row["final_loss"] - math.log(4096)) < 1.5
    assert set(report["meap_ntp_time_ratio"]) == {"eager", "fused", "compile"}
    assert report["speedup_vs"]["hf"]["speedup"] > 0
    assert report["matmul_fraction_note"].startswith("n/a: CPU")
    # The table comes last on stdout.
    assert "MEAP/NTP step-time ratio" in proc.stdout and "hf_liger" in proc.stdout
    assert "n/a: CPU run" in proc.stdout


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
        (["--micro_batch_size", "2", "--variants", "hf", "eager", "hf"], "--variants: hf given more than once"),
        (["--micro_batch_size", "2", "--device", "tpu"], "unknown --device 'tpu'"),
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


# ----------------------------------------------------------------------------- rounds and statistics
def test_round_robin_gives_every_turn_one_slot_per_round():
    schedule = round_robin(["a", "b", "c"], 3)
    naive = []
    for r in range(3):
        for name in ["a", "b", "c"]:
            naive.append((r, name))
    assert schedule == naive


class FakeDevice:
    """A clock that each fake step advances: a fixed cost per variant, more on its first calls
    (compilation), and a penalty for whatever ran first overall (a cold card)."""

    def __init__(self, cost: dict[str, float]) -> None:
        self.now, self.cost, self.calls, self.log = 0.0, cost, {}, []

    def turn(self, name):
        def step(i):
            n = self.calls.get(name, 0)
            assert n == i  # each turn counts its own calls
            extra = 50.0 if n < 2 else 0.0  # the first two calls of a variant are slow
            extra += 100.0 if not self.log else 0.0  # the very first step of the run: cold
            self.now += self.cost[name] + extra
            self.calls[name] = n + 1
            self.log.append(name)
        return step


@pytest.mark.parametrize("order", [("hf", "eager", "fused"), ("fused", "hf", "eager"), ("eager", "fused", "hf")])
def test_timed_rounds_do_not_depend_on_the_order_of_variants(order):
    cost = {"hf": 8.0, "eager": 6.0, "fused": 4.0}
    device = FakeDevice(cost)
    times = time_rounds({name: device.turn(name) for name in order}, rounds=4, warmup=2,
                        device=torch.device("cpu"), clock=lambda: device.now)
    # Warm-up is round-robin over every variant before anything is timed.
    assert device.log[:6] == list(order) * 2 and device.log[6:] == list(order) * 4
    assert times == {name: [cost[name]] * 4 for name in order}


def test_spread_and_paired_ratio_against_naive_computation():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert spread(values) == (3.0, 1.0, 5.0)
    a, b = [10.0, 30.0, 12.0, 9.0], [5.0, 10.0, 8.0, 3.0]
    per_round = sorted([x / y for x, y in zip(a, b)])  # 1.5, 2, 3, 3
    assert paired_ratio(a, b) == pytest.approx((per_round[1] + per_round[2]) / 2)
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def synthetic_rows() -> list[Row]:
    def row(variant, ratio, rounds, status="ok"):
        r = Row(variant, ratio, status=status)
        if status == "ok":
            r.step_ms_rounds = rounds
            r.step_ms_median, r.step_ms_min, r.step_ms_max = spread(rounds)
            r.tokens_per_s = 1000.0 / r.step_ms_median
            r.tflops = 0.5
        return r

    # Round 2 is slow for everybody (a clock drop): paired ratios ignore it, ratios of medians not.
    return [row("eager", 0.15, [12.0, 12.0, 24.0]), row("eager", 0.0, [10.0, 10.0, 20.0]),
            row("fused", 0.15, [5.05, 5.05, 10.1]), row("fused", 0.0, [5.0, 5.0, 10.0]),
            row("compile", 0.15, [], "OOM"), row("compile", 0.0, [], "OOM"),
            row("hf", 0.0, [8.0, 8.0, 16.0]), row("hf_liger", 0.0, [6.0, 7.0, 12.0])]


def test_ratios_speedups_and_table_from_rows():
    out = {"model_name": "m", "micro_batch_size": 2, "seq_len": 8, "precision": "bf16-mixed", "card": "c",
           "device": "cuda", "torch": "t", "matmul_size": 8, "matmul_tflops": 2.0}
    summarise(out, synthetic_rows(), complete=True)
    assert out["meap_ntp_time_ratio"] == pytest.approx({"eager": 1.2, "fused": 1.01})
    s = out["speedup_vs"]
    assert s["hf"]["best_variant"] == "fused" and s["hf"]["speedup"] == pytest.approx(8.0 / 5.0)
    # Per round 6/5, 7/5, 12/10: the median is 1.2 (the ratio of the medians would be 7/5).
    assert s["hf_liger"]["speedup"] == pytest.approx(1.2)
    assert all(r["matmul_fraction"] == pytest.approx(0.25) for r in out["rows"] if r["status"] == "ok")
    table = format_table(out)
    assert "OOM" in table and "fused vs hf_liger: 1.200x" in table and "fused 1.0100" in table


@pytest.mark.parametrize("device,precision,reason", [("cpu", "32-true", "CPU"), ("cuda", "32-true", "32-true run"),
                                                     ("cpu", "bf16-mixed", "CPU")])
def test_no_matmul_fraction_without_a_matching_ceiling(device, precision, reason):
    out = {"model_name": "m", "micro_batch_size": 2, "seq_len": 8, "precision": precision, "card": "c",
           "device": device, "torch": "t", "matmul_size": 8, "matmul_tflops": 2.0}
    from tools.bench.report import ceiling_mismatch

    out["matmul_fraction_note"] = ceiling_mismatch(device, precision)
    summarise(out, synthetic_rows(), complete=True)
    assert all(r["matmul_fraction"] is None for r in out["rows"])
    assert out["matmul_fraction_note"].startswith("n/a: ") and reason in out["matmul_fraction_note"]
    assert "of mm (fraction of the matmul rate): n/a: " in format_table(out)


def test_hf_liger_patches_only_its_own_forward():
    """hf and hf_liger share a process: Liger's module-wide RoPE must reach hf_liger's forward only."""
    pytest.importorskip("liger_kernel")
    from transformers.models.llama import modeling_llama

    from tools.bench.variants import build_model

    original = modeling_llama.apply_rotary_pos_emb
    model = build_model("hf_liger", Config.from_name("micro_LLaMA", vocab_size=300, n_layer=1))
    assert modeling_llama.apply_rotary_pos_emb is original  # restored right after patching
    module, values = model.module_globals
    assert module is modeling_llama and values["apply_rotary_pos_emb"] is not original
    seen = []

    class Probe(torch.nn.Module):  # stands in for the HF model: records which RoPE it would call
        def forward(self, **_):
            seen.append(modeling_llama.apply_rotary_pos_emb)
            return type("Output", (), {"loss": 0})()

    model.hf = Probe()
    model(torch.zeros(1, 4, dtype=torch.long), targets=torch.zeros(1, 4, dtype=torch.long))
    assert seen == [values["apply_rotary_pos_emb"]] and modeling_llama.apply_rotary_pos_emb is original
    assert build_model("hf", Config.from_name("micro_LLaMA", vocab_size=300, n_layer=1)).module_globals is None


def test_attention_probe_reports_each_backend():
    result = attention_probe(Config.from_name("micro_LLaMA"), 2, 32, torch.device("cpu"), repeats=1)
    assert set(result) == {"auto", "cudnn", "flash", "efficient", "cudnn_repeated_kv"}
    assert isinstance(result["auto"], float) and result["auto"] > 0
    assert all(isinstance(v, float) or v.startswith("n/a: ") for v in result.values())


@pytest.mark.parametrize("flag", ["--megabytes", "--files", "--chunk_size", "--repeats", "--num_workers"])
def test_benchmark_prepare_refuses_sizes_below_one_in_one_line(flag, capsys):
    spec = importlib.util.spec_from_file_location("benchmark_prepare_script", SCRIPT.parent / "benchmark_prepare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_info:
        script.main([flag, "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: {flag} 0") and err.endswith(": must be > 0\n")
    assert err.count("\n") == 1
