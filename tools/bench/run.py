"""The whole benchmark run: the ceiling, then every variant built, warmed up and timed in rounds.

Every selected variant is built up front (model, optimizer, batches, each with its own Fabric as
the trainer sets it up) and stays on the device for the whole run. Warm-up rounds come first
(compilation, Triton JIT, allocator growth), then timed rounds in which each variant, with MEAP
and then NTP batches, takes one training step (`lit_gpt.pretrain.step.train_step`). Per-variant
numbers are medians (with min and max) over the rounds; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import math
import platform
import sys
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

import torch

from tools.bench import probes, report, workload
from tools.bench.batch_search import largest_micro_batch, resident_bytes_per_model
from tools.bench.stats import spread
from tools.bench.timing import time_rounds
from tools.bench.variants import PROJECT_VARIANTS, VARIANTS, build_model, skip_reason, variant_kernels
from lit_gpt.config import Config
from lit_gpt.model import count_parameters, flops_per_token

MEAP_RATIO = 0.15
PRECISIONS = ("bf16-mixed", "bf16-true", "32-true")


@dataclass
class BenchSettings:
    model_name: str
    micro_batch_size: Optional[int]  # None: the largest that fits (CUDA only)
    seq_len: int
    steps: int = 10  # timed rounds
    warmup: int = 3  # untimed rounds first
    grad_accum: int = 1
    precision: Optional[str] = None  # default: bf16-mixed on CUDA, 32-true on CPU
    variants: Sequence[str] = tuple(VARIANTS)
    mask_ratio: float = MEAP_RATIO
    compile_backend: str = "inductor"
    compile_mode: Optional[str] = None
    matmul_size: Optional[int] = None  # default: 8192 on CUDA, 256 on CPU
    seed: int = 1234
    device: Optional[str] = None  # default: cuda if available


@dataclass
class Row:
    variant: str
    mask_ratio: float
    status: str = "ok"  # ok | OOM | error | skipped | warm (built and warmed up, not yet timed)
    message: str = ""
    kernels: dict = field(default_factory=dict)
    step_ms_median: Optional[float] = None
    step_ms_min: Optional[float] = None
    step_ms_max: Optional[float] = None
    step_ms_rounds: list = field(default_factory=list)  # one per timed round, in round order
    tokens_per_s: Optional[float] = None
    tflops: Optional[float] = None
    matmul_fraction: Optional[float] = None  # None where no matching ceiling exists (see report)
    peak_mem_gib: Optional[float] = None  # device peak during this row's steps (all variants resident)
    mem_before_gib: Optional[float] = None  # allocated before this variant was built
    host_syncs_per_step: Optional[int] = None
    final_loss: Optional[float] = None


def mask_ratios(variant: str, settings: BenchSettings) -> list[float]:
    """MEAP and NTP for the project's variants; NTP only for Hugging Face (no MEAP masking there)."""
    return [settings.mask_ratio, 0.0] if variant in PROJECT_VARIANTS else [0.0]


class Contestant:
    """One variant on the device: model, optimizer and batches, and one step per mask ratio."""

    def __init__(self, variant: str, config: Config, settings: BenchSettings, batch_size: int,
                 device: torch.device, precision: str) -> None:
        self.variant, self.device, self.settings = variant, device, settings
        self.fabric = workload.make_fabric(device, precision)
        torch.manual_seed(settings.seed)
        compile_kwargs = {"backend": settings.compile_backend}
        if settings.compile_mode:
            compile_kwargs["mode"] = settings.compile_mode
        with self.fabric.init_module():
            model = build_model(variant, config, compile_kwargs)
        # Set up in the trainer's order (lit_gpt.pretrain.train.main).
        self.model = self.fabric.setup(model)
        self.optimizer = self.fabric.setup_optimizers(workload.make_optimizer(self.model, device))
        n_batches = max(1, min(4, settings.steps)) * settings.grad_accum
        self.batches = {r: workload.make_batches(config, batch_size, settings.seq_len, r, n_batches, settings.seed, device)
                        for r in mask_ratios(variant, settings)}
        self.losses: dict[float, list] = {r: [] for r in self.batches}
        self.peak: dict[float, int] = {r: 0 for r in self.batches}

    def step(self, ratio: float, i: int) -> None:
        from lit_gpt.pretrain.step import train_step

        k = self.settings.grad_accum
        batches = self.batches[ratio]
        micro = [batches[(i * k + j) % len(batches)] for j in range(k)]
        cuda = self.device.type == "cuda"
        if cuda:  # allocator statistics are kept on the host: reading them does not synchronise
            torch.cuda.reset_peak_memory_stats(self.device)
        self.losses[ratio].append(train_step(self.fabric, self.model, self.optimizer, micro, grad_clip=1.0).loss)
        if cuda:
            self.peak[ratio] = max(self.peak[ratio], torch.cuda.max_memory_allocated(self.device))

    def host_syncs(self, ratio: float) -> Optional[int]:
        if self.device.type != "cuda":
            return None
        return probes.count_host_syncs(lambda: self.step(ratio, 0))


# ----------------------------------------------------------------------------- the whole run
def environment(device: torch.device) -> dict:
    def version(name: str) -> Optional[str]:
        from importlib.metadata import PackageNotFoundError, version as v

        try:
            return v(name)
        except PackageNotFoundError:
            return None

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {
        "card": card,
        "device": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": version("triton"),
        "transformers": version("transformers"),
        "liger_kernel": version("liger-kernel"),
        "flash_attn": version("flash-attn"),
        "lightning": version("lightning"),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _failed(rows: list[Row], error: BaseException) -> None:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        status, message = "OOM", str(error).splitlines()[0][:200]
    else:
        traceback.print_exc(file=sys.stderr)
        status, message = "error", f"{type(error).__name__}: {error}".splitlines()[0][:300]
    for row in rows:
        row.status, row.message = status, message


def run_benchmark(
    settings: BenchSettings,
    command: str = "",
    progress: Callable[[str], None] = print,
    on_update: Optional[Callable[[dict], None]] = None,
) -> dict:
    """Runs the benchmark; `on_update(report)` gets the report so far after each variant is built
    and warmed up (`report["complete"]` is False until the end), so a run cut short keeps them."""
    if len(set(settings.variants)) != len(settings.variants):
        raise ValueError(f"variants repeat: {list(settings.variants)}")
    device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = settings.precision or ("bf16-mixed" if device.type == "cuda" else "32-true")
    config = Config.from_name(settings.model_name)
    if settings.seq_len > config.block_size:
        config = Config.from_name(settings.model_name, block_size=settings.seq_len)
    if device.type == "cuda":
        # Any fp32 matmul left (bf16-mixed keeps few) may use TF32, as fast pretraining code does.
        torch.set_float32_matmul_precision("high")

    out: dict[str, Any] = {"command": command, **environment(device), "settings": asdict(settings),
                           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    out["settings"]["variants"] = list(settings.variants)
    n = settings.matmul_size or (8192 if device.type == "cuda" else 256)
    progress(f"matmul {n}^3 bf16 ...")
    out["matmul_size"] = n
    out["matmul_tflops"] = probes.matmul_tflops(device, n)

    batch_size = settings.micro_batch_size
    if batch_size is None:
        if device.type != "cuda":
            raise ValueError("the largest micro batch is searched on CUDA only; give a number on CPU")
        progress("searching the largest micro batch ...")
        others = resident_bytes_per_model(config, precision) * max(0, len(settings.variants) - 1)
        out["micro_batch_search"] = largest_micro_batch(config, settings, device, precision, others)
        batch_size = out["micro_batch_search"]["chosen"]
    out.update(
        model_name=settings.model_name, precision=precision, micro_batch_size=batch_size, seq_len=settings.seq_len,
        grad_accum=settings.grad_accum, n_params=count_parameters(config),
        flops_per_token=flops_per_token(config, settings.seq_len),
        timing="round-robin: every variant warmed up, then one step per variant and mask ratio in each round",
        collate_ms={"meap": probes.collate_ms(config, batch_size, settings.seq_len, settings.mask_ratio),
                    "ntp": probes.collate_ms(config, batch_size, settings.seq_len, 0.0)},
    )
    out["matmul_fraction_note"] = report.ceiling_mismatch(device.type, precision)
    if device.type == "cuda":
        progress("attention backends ...")
        out["attention_fwd_bwd_ms"] = probes.attention_probe(config, batch_size, settings.seq_len, device)

    rows: list[Row] = []
    contestants: dict[str, Contestant] = {}

    def update(complete: bool) -> dict:
        report.summarise(out, rows, complete)
        if on_update is not None:
            on_update(out)
        return out

    update(complete=False)
    # Build and warm up each variant alone first, so one that fails (OOM, an import, a compile
    # error) is reported and dropped before the rounds instead of stopping them.
    for variant in settings.variants:
        own = [Row(variant, r, kernels=variant_kernels(variant, device)) for r in mask_ratios(variant, settings)]
        rows.extend(own)
        reason = skip_reason(variant, device)
        if reason:
            for row in own:
                row.status, row.message = "skipped", reason
            update(complete=False)
            continue
        progress(f"{variant}: build and warm up ...")
        mem_before = torch.cuda.memory_allocated(device) / 2**30 if device.type == "cuda" else None
        try:
            contestant = Contestant(variant, config, settings, batch_size, device, precision)
            for i in range(max(1, settings.warmup)):
                for row in own:
                    contestant.step(row.mask_ratio, i)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            contestants[variant] = contestant
            for row in own:  # "ok" once timed: a run cut short during the rounds shows this
                row.status, row.message = "warm", "built and warmed up; the timed rounds did not finish"
        except Exception as error:  # noqa: BLE001 - one failing variant must not end the run
            _failed(own, error)
            contestant = None
            if variant == "compile":
                torch._dynamo.reset()  # compiled code may keep the model alive
            workload.free_device_memory(device)
        for row in own:
            row.mem_before_gib = mem_before
        update(complete=False)

    turns = {(v, r.mask_ratio): (lambda i, c=contestants[v], m=r.mask_ratio: c.step(m, i))
             for r in rows for v in [r.variant] if v in contestants}
    if turns:
        progress(f"{settings.steps} timed rounds of {len(turns)} steps ...")
        try:
            # Warm-up already happened per variant; one more untimed round puts them all in the
            # state the timed rounds see (each variant's step follows another's).
            times = time_rounds(turns, rounds=settings.steps, warmup=1, device=device)
        except Exception as error:  # noqa: BLE001
            _failed([r for r in rows if (r.variant, r.mask_ratio) in turns], error)
            times = {}
        tokens_per_step = batch_size * settings.seq_len * settings.grad_accum
        flops = flops_per_token(config, settings.seq_len)
        for row in rows:
            key = (row.variant, row.mask_ratio)
            if key not in times:
                continue
            contestant = contestants[row.variant]
            seconds = times[key]
            row.status, row.message = "ok", ""
            median, low, high = spread(seconds)
            row.step_ms_median, row.step_ms_min, row.step_ms_max = 1e3 * median, 1e3 * low, 1e3 * high
            row.step_ms_rounds = [1e3 * s for s in seconds]
            row.tokens_per_s = tokens_per_step / median
            row.tflops = row.tokens_per_s * flops / 1e12
            row.peak_mem_gib = contestant.peak[row.mask_ratio] / 2**30 if device.type == "cuda" else None
            row.final_loss = float(contestant.losses[row.mask_ratio][-1])
            if not math.isfinite(row.final_loss):
                row.status, row.message = "error", "non-finite loss"
        for row in rows:
            if (row.variant, row.mask_ratio) in times:
                row.host_syncs_per_step = contestants[row.variant].host_syncs(row.mask_ratio)
    contestants.clear()
    torch._dynamo.reset()
    workload.free_device_memory(device)
    return update(complete=True)
