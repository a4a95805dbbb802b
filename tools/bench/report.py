"""What a run's rows add up to: MEAP/NTP ratios, speedups over Hugging Face, and the table.

Ratios are paired: each round's ratio of two steps timed in that round, then the median over
rounds (`tools.bench.stats.paired_ratio`). The fraction of the matmul rate is only given where
the ceiling matches the run: a bf16 run on CUDA against the bf16 matmul rate measured in it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

from tools.bench.stats import paired_ratio
from tools.bench.variants import PROJECT_VARIANTS


def ceiling_mismatch(device_type: str, precision: str) -> Optional[str]:
    """Why the bf16 matmul rate is no ceiling for this run, or None when it is one."""
    if device_type != "cuda":
        return "n/a: CPU run (the CPU matmul rate is no training ceiling)"
    if not precision.startswith("bf16"):
        return f"n/a: {precision} run against a bf16 matmul rate"
    return None


def summarise(out: dict, rows: list, complete: bool) -> dict:
    """Fills `out` (the JSON report) from the rows so far."""
    mismatch = ceiling_mismatch(out["device"], out["precision"]) if "precision" in out else "n/a"
    for row in rows:
        row.matmul_fraction = None if mismatch or row.tflops is None else row.tflops / out["matmul_tflops"]
    out["rows"] = [asdict(r) for r in rows]
    out["meap_ntp_time_ratio"] = meap_ntp_ratios(out["rows"])
    out["speedup_vs"] = speedups(out["rows"])
    out["complete"] = complete
    return out


def _ok(rows: list[dict], variant: str, ratio: float) -> Optional[dict]:
    return next((r for r in rows if r["variant"] == variant and r["mask_ratio"] == ratio and r["status"] == "ok"
                 and r["step_ms_rounds"]), None)


def meap_ntp_ratios(rows: list[dict]) -> dict:
    """Per project variant: median over rounds of (MEAP step time / NTP step time) (1.0 = free)."""
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        ntp = _ok(rows, variant, 0.0)
        meap = next((r for r in rows if r["variant"] == variant and r["mask_ratio"] > 0 and r["status"] == "ok"
                     and r["step_ms_rounds"]), None)
        if ntp and meap:
            out[variant] = paired_ratio(meap["step_ms_rounds"], ntp["step_ms_rounds"])
    return out


def speedups(rows: list[dict]) -> dict:
    """NTP speedup of the fastest project variant (by median tokens/s) over each HF reference:
    median over rounds of (reference step time / variant step time), same tokens per step."""
    best = max((r for r in rows if r["variant"] in PROJECT_VARIANTS and r["mask_ratio"] == 0 and r["status"] == "ok"
                and r["step_ms_rounds"]), key=lambda r: r["tokens_per_s"], default=None)
    out = {}
    for ref in ("hf", "hf_liger"):
        base = _ok(rows, ref, 0.0)
        if best and base:
            out[ref] = {"best_variant": best["variant"],
                        "speedup": paired_ratio(base["step_ms_rounds"], best["step_ms_rounds"])}
    return out


def format_table(report: dict) -> str:
    head = (f"{report['model_name']}  B={report['micro_batch_size']} T={report['seq_len']} "
            f"{report['precision']}  on {report['card']} (torch {report['torch']})  "
            f"matmul {report['matmul_size']}^3 bf16: {report['matmul_tflops']:.1f} TFLOP/s")
    cols = (f"{'variant':<9} {'mask':>5} {'status':<7} {'step ms':>9} {'min':>9} {'max':>9} {'tokens/s':>10} "
            f"{'TFLOP/s':>8} {'of mm':>6} {'peak GiB':>8} {'syncs':>5}")
    lines = [head, cols, "-" * len(cols)]

    def fmt(value, spec, missing="n/a"):
        if isinstance(value, float) and spec.endswith("f") and 0 < abs(value) < 1:
            spec = spec.split(".")[0] + ".3f"  # CPU smoke runs: keep small rates readable
        return missing if value is None else format(value, spec)

    for r in report["rows"]:
        lines.append(
            f"{r['variant']:<9} {r['mask_ratio']:>5.2f} {r['status']:<7} {fmt(r['step_ms_median'], '9.1f'):>9} "
            f"{fmt(r['step_ms_min'], '9.1f'):>9} {fmt(r['step_ms_max'], '9.1f'):>9} "
            f"{fmt(r['tokens_per_s'], '10.0f'):>10} {fmt(r['tflops'], '8.1f'):>8} {fmt(r['matmul_fraction'], '6.3f'):>6} "
            f"{fmt(r['peak_mem_gib'], '8.1f'):>8} {fmt(r['host_syncs_per_step'], 'd'):>5}"
            + (f"  {r['message']}" if r["status"] != "ok" else "")
        )
    if report.get("matmul_fraction_note"):
        lines.append(f"of mm (fraction of the matmul rate): {report['matmul_fraction_note']}")
    if "attention_fwd_bwd_ms" in report:
        lines.append("attention fwd+bwd ms: " + ", ".join(
            f"{k} {v if isinstance(v, float) else 'n/a'}" for k, v in report["attention_fwd_bwd_ms"].items()))
    ratios = ", ".join(f"{k} {v:.4f}" for k, v in report["meap_ntp_time_ratio"].items())
    lines.append(f"MEAP/NTP step-time ratio (median of per-round ratios): {ratios or 'n/a'}")
    for ref, s in report["speedup_vs"].items():
        lines.append(f"{s['best_variant']} vs {ref}: {s['speedup']:.3f}x tokens/s (median of per-round ratios)")
    return "\n".join(lines)
