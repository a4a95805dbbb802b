"""Throughput of the training step, per kernel set, MEAP vs NTP, against Hugging Face.

Everything runs in one process: first the bf16 matmul rate of the device (the ceiling that MFU
is measured against), then one training configuration after another. Each configuration times
`lit_gpt.pretrain.step.train_step` — the trainer's own step: forward, backward, clipping, fused
AdamW — on batches made by the trainer's collate step (`lit_gpt.meap.MEAPCollator`), pinned and
moved without blocking. MEAP (mask_ratio 0.15) and NTP (0) steps alternate on the same model, so
slow drifts of the clock hit both alike and their ratio is measured, not inferred.

Timing follows the usual rules: warm-up steps are excluded (they include compilation), the device
is timed with CUDA events (the host only synchronises after the last step), and the median step
is reported. FLOPs per token are 6N + 12·L·d·T (`lit_gpt.model.flops_per_token`).
"""

from __future__ import annotations

import contextlib
import gc
import math
import platform
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from lit_gpt import kernels
from lit_gpt.compile import compile_blocks
from lit_gpt.config import Config
from lit_gpt.meap import MEAPCollator
from lit_gpt.model import GPT, count_parameters, flops_per_token

VARIANTS = {
    "eager": "GPT(fused=False): PyTorch reference kernels, SDPA attention, chunked linear CE",
    "fused": "GPT(fused=True): Liger RMSNorm/RoPE/SwiGLU/fused linear CE on CUDA, flash-attn if installed",
    "compile": "GPT(fused=True) + lit_gpt.compile.compile_blocks: each Block torch.compile'd, loss fused",
    "hf": "transformers LlamaForCausalLM, SDPA attention",
    "hf_liger": "LlamaForCausalLM + Liger apply_liger_kernel_to_llama(rope, rms_norm, swiglu, fused_linear_cross_entropy)",
}
PROJECT_VARIANTS = ("eager", "fused", "compile")
MEAP_RATIO = 0.15
PRECISIONS = ("bf16-mixed", "bf16-true", "32-true")


@dataclass
class BenchSettings:
    model_name: str
    micro_batch_size: Optional[int]  # None: the largest that fits (CUDA only)
    seq_len: int
    steps: int = 10
    warmup: int = 3
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
    status: str = "ok"  # ok | OOM | error | skipped
    message: str = ""
    kernels: dict = field(default_factory=dict)
    step_ms_median: Optional[float] = None
    step_ms_min: Optional[float] = None
    step_ms_max: Optional[float] = None
    tokens_per_s: Optional[float] = None
    tflops: Optional[float] = None
    matmul_fraction: Optional[float] = None
    peak_mem_gib: Optional[float] = None
    mem_before_gib: Optional[float] = None  # allocated before the model was built: a leak shows here
    host_syncs_per_step: Optional[int] = None
    final_loss: Optional[float] = None


# ----------------------------------------------------------------------------- the ceiling
def matmul_tflops(device: torch.device, n: int, repeats: int = 20) -> float:
    """Median bf16 rate of an n×n×n product on random data (zeros run faster than real data)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, torch.bfloat16)
    b = torch.randn(n, n, generator=gen).to(device, torch.bfloat16)
    times = _time_calls(lambda _: torch.mm(a, b), device, warmup=3, repeats=repeats)
    return 2 * n**3 / statistics.median(times) / 1e12


def _time_calls(fn: Callable[[int], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of fn(i): CUDA events on the GPU (one sync at the end), wall clock on CPU."""
    for i in range(warmup):
        fn(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = []
        for i in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(i)
            end.record()
            events.append((start, end))
        torch.cuda.synchronize(device)
        return [s.elapsed_time(e) / 1e3 for s, e in events]
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return times


def attention_probe(config: Config, batch_size: int, seq_len: int, device: torch.device, repeats: int = 5) -> dict:
    """Causal GQA attention, forward + backward, per SDPA backend (CUDA): median ms or why not.

    "auto" is what the model gets (enable_gqa, K/V not repeated); "cudnn_repeated_kv" shows
    what repeating K/V in memory would buy where cuDNN refuses grouped K/V.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator(device="cpu").manual_seed(0)
    B, H, G, hs = batch_size, config.n_head, config.n_query_groups, config.head_size

    def rand(heads):
        x = torch.randn(B, seq_len, heads, hs, generator=gen).to(device, torch.bfloat16)
        return x.transpose(1, 2).requires_grad_()  # (B, heads, T, hs) over (B, T, heads, hs), as the model has it

    q, k, v = rand(H), rand(G), rand(G)
    grad = torch.randn(B, H, seq_len, hs, generator=gen).to(device, torch.bfloat16).transpose(1, 2).contiguous().transpose(1, 2)
    cases = {
        "auto": (None, False),
        "cudnn": ([SDPBackend.CUDNN_ATTENTION], False),
        "flash": ([SDPBackend.FLASH_ATTENTION], False),
        "efficient": ([SDPBackend.EFFICIENT_ATTENTION], False),
        "cudnn_repeated_kv": ([SDPBackend.CUDNN_ATTENTION], True),
    }
    out = {}
    for name, (backends, repeat) in cases.items():
        def fwd_bwd(_):
            kk, vv = (k.repeat_interleave(H // G, 1), v.repeat_interleave(H // G, 1)) if repeat else (k, v)
            y = torch.nn.functional.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=not repeat and H != G)
            y.backward(grad)

        try:
            with sdpa_kernel(backends) if backends else contextlib.nullcontext():
                times = _time_calls(fwd_bwd, device, warmup=2, repeats=repeats)
            out[name] = round(1e3 * statistics.median(times), 3)
        except RuntimeError as error:  # the backend refuses these inputs
            out[name] = "n/a: " + str(error).splitlines()[0][:160]
        q.grad = k.grad = v.grad = None
    return out


# ----------------------------------------------------------------------------- batches
def make_batches(
    config: Config, batch_size: int, seq_len: int, mask_ratio: float, count: int, seed: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` distinct micro batches prepared as the trainer prepares them.

    Random token blocks of T+1 tokens go through the trainer's collate step (`MEAPCollator`,
    which masks the inputs), are pinned and copied to the device without blocking the host.
    The mask id is the vocabulary's last id (the `[MASK]` of the *_mask shapes; a stand-in for
    shapes without one, which changes no FLOP).
    """
    mask_id = config.vocab_size - 1
    collate = MEAPCollator(mask_ratio=mask_ratio, mask_token_id=mask_id, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(count):
        blocks = torch.randint(0, mask_id, (batch_size, seq_len + 1), generator=gen)
        inputs, targets = collate(blocks, step=i, micro_step=0)
        if device.type == "cuda":
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        batches.append((inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)))
    return batches


def collate_ms(config: Config, batch_size: int, seq_len: int, mask_ratio: float, repeats: int = 20) -> float:
    """Median host time of the collate step for one micro batch (runs beside the device's work)."""
    collate = MEAPCollator(mask_ratio=mask_ratio, mask_token_id=config.vocab_size - 1, seed=0)
    blocks = torch.randint(0, config.vocab_size - 1, (batch_size, seq_len + 1))
    times = _time_calls(lambda i: collate(blocks, step=i, micro_step=0), torch.device("cpu"), 2, repeats)
    return 1e3 * statistics.median(times)


# ----------------------------------------------------------------------------- models
class HFCausalLM(nn.Module):
    """`model(inputs, targets=t)` -> mean loss for a transformers causal LM, as train_step calls it.

    `shift_labels` hands the targets over unshifted, so the loss covers the same T targets as ours.
    """

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=inputs, labels=targets, shift_labels=targets).loss


def hf_llama_config(config: Config):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.padded_vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_query_groups,
        head_dim=config.head_size,
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_base)},
        tie_word_embeddings=False,
        use_cache=False,  # a KV cache built during training would only cost memory
        attention_dropout=0.0,
    )


@contextlib.contextmanager
def _liger_patched_llama():
    """apply_liger_kernel_to_llama replaces transformers' RoPE function module-wide; undo it after."""
    from transformers.models.llama import modeling_llama

    saved = {name: getattr(modeling_llama, name) for name in ("apply_rotary_pos_emb", "LlamaRMSNorm", "LlamaMLP")}
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(modeling_llama, name, value)


def build_model(variant: str, config: Config, settings: BenchSettings) -> nn.Module:
    """The module train_step will call, built on the current device (inside fabric.init_module())."""
    if variant == "eager":
        return GPT(config, fused=False)
    if variant == "fused":
        return GPT(config, fused=True)
    if variant == "compile":
        kwargs = {"backend": settings.compile_backend}
        if settings.compile_mode:
            kwargs["mode"] = settings.compile_mode
        return compile_blocks(GPT(config, fused=True), **kwargs)
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM._from_config(hf_llama_config(config), attn_implementation="sdpa")
    if variant == "hf_liger":
        from liger_kernel.transformers import apply_liger_kernel_to_llama

        # Signature checked against liger-kernel 0.8.5 (transformers/monkey_patch.py).
        apply_liger_kernel_to_llama(
            rope=True, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=True, swiglu=True, model=hf
        )
    hf.train()  # Liger's loss skips the logits only in training mode
    return HFCausalLM(hf)


def variant_kernels(variant: str, device: torch.device) -> dict:
    if variant == "eager":
        return kernels.active_kernels(device, fused=False)
    if variant == "fused":
        return kernels.active_kernels(device, fused=True)
    if variant == "compile":
        loss = kernels.active_kernels(device, fused=True)["loss"]
        return {"blocks": "torch.compile(reference kernels)", "attention": "torch_sdpa", "loss": loss}
    return {"model": "transformers", "liger": variant == "hf_liger"}


def skip_reason(variant: str, device: torch.device) -> Optional[str]:
    if variant in ("hf", "hf_liger") and not kernels.package_available("transformers"):
        return "transformers not installed"
    if variant == "hf_liger":
        if device.type != "cuda":
            return "Liger-Kernel needs CUDA"
        if not kernels.liger_available():
            return "liger-kernel not installed"
    return None


# ----------------------------------------------------------------------------- one configuration
def make_fabric(device: torch.device, precision: str):
    import lightning as L

    return L.Fabric(accelerator=device.type, devices=1, precision=precision)


def make_optimizer(model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    # The upstream recipe's AdamW; fused (one kernel for all parameters) on CUDA.
    return torch.optim.AdamW(
        model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=device.type == "cuda"
    )


def count_host_syncs(fn: Callable[[], Any]) -> int:
    """Host synchronisations during fn() on CUDA, as reported by torch's sync debug mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_configuration(
    variant: str, config: Config, settings: BenchSettings, batch_size: int, device: torch.device, precision: str
) -> list[Row]:
    """Times `variant` with MEAP and NTP batches (project variants) or NTP only (Hugging Face)."""
    from lit_gpt.pretrain.step import train_step

    ratios = [settings.mask_ratio, 0.0] if variant in PROJECT_VARIANTS else [0.0]
    rows = [Row(variant, r, kernels=variant_kernels(variant, device)) for r in ratios]
    reason = skip_reason(variant, device)
    if reason:
        for row in rows:
            row.status, row.message = "skipped", reason
        return rows

    mem_before = torch.cuda.memory_allocated(device) / 2**30 if device.type == "cuda" else None
    fabric = make_fabric(device, precision)
    guard = _liger_patched_llama() if variant == "hf_liger" else contextlib.nullcontext()
    try:
        with guard:
            torch.manual_seed(settings.seed)
            with fabric.init_module():
                model = build_model(variant, config, settings)
            # Set up in the trainer's order (lit_gpt.pretrain.train.main).
            model = fabric.setup(model)
            optimizer = fabric.setup_optimizers(make_optimizer(model, device))
            n_batches = max(1, min(4, settings.steps)) * settings.grad_accum
            batches = {r: make_batches(config, batch_size, settings.seq_len, r, n_batches, settings.seed, device) for r in ratios}
            results: dict[float, list] = {r: [] for r in ratios}

            def one_step(ratio: float, i: int):
                k = settings.grad_accum
                start = (i * k) % len(batches[ratio])
                micro = [batches[ratio][(start + j) % len(batches[ratio])] for j in range(k)]
                results[ratio].append(train_step(fabric, model, optimizer, micro, grad_clip=1.0).loss)

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            # Steps alternate between the ratios: call i runs ratio i % len(ratios).
            times = _time_calls(
                lambda i: one_step(ratios[i % len(ratios)], i // len(ratios)),
                device,
                warmup=settings.warmup * len(ratios),
                repeats=settings.steps * len(ratios),
            )
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            syncs = {}
            if device.type == "cuda":
                for r in ratios:
                    syncs[r] = count_host_syncs(lambda: one_step(r, 0))
    except torch.cuda.OutOfMemoryError as error:
        for row in rows:
            row.status, row.message = "OOM", str(error).splitlines()[0][:200]
        return rows
    except Exception as error:  # noqa: BLE001 - one failing configuration must not end the run
        traceback.print_exc(file=sys.stderr)
        for row in rows:
            row.status, row.message = "error", f"{type(error).__name__}: {error}".splitlines()[0][:300]
        return rows
    finally:
        model = optimizer = batches = fabric = None
        if variant == "compile":
            torch._dynamo.reset()  # compiled code may keep the model alive
        _free_device_memory(device)

    tokens_per_step = batch_size * settings.seq_len * settings.grad_accum
    flops = flops_per_token(config, settings.seq_len)
    for index, row in enumerate(rows):
        own = times[index :: len(ratios)]
        median = statistics.median(own)
        row.step_ms_median, row.step_ms_min, row.step_ms_max = 1e3 * median, 1e3 * min(own), 1e3 * max(own)
        row.tokens_per_s = tokens_per_step / median
        row.tflops = row.tokens_per_s * flops / 1e12
        row.peak_mem_gib, row.mem_before_gib = peak, mem_before
        row.host_syncs_per_step = syncs.get(row.mask_ratio)
        row.final_loss = float(results[row.mask_ratio][-1])
        if not math.isfinite(row.final_loss):
            row.status, row.message = "error", "non-finite loss"
    return rows


# ----------------------------------------------------------------------------- micro batch search
def largest_micro_batch(config: Config, settings: BenchSettings, device: torch.device, precision: str) -> dict:
    """The largest micro batch whose training step fits, for the `fused` kernel set.

    Peak memory is affine in the micro batch: two probe steps (B = 1, 2) give its slope, which
    predicts the largest B under 94% of the card; that B is then tried, stepping down on OOM.
    """
    from lit_gpt.pretrain.step import train_step

    capacity = torch.cuda.get_device_properties(device).total_memory
    fabric = make_fabric(device, precision)
    with fabric.init_module():
        model = GPT(config, fused=True)
    model = fabric.setup(model)
    optimizer = fabric.setup_optimizers(make_optimizer(model, device))

    def peak_of(batch_size: int) -> int:
        batch = make_batches(config, batch_size, settings.seq_len, 0.0, 1, settings.seed, device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):  # the first step also allocates the optimizer state
            train_step(fabric, model, optimizer, batch, grad_clip=1.0)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)

    probes = {1: peak_of(1), 2: peak_of(2)}
    slope = max(1, probes[2] - probes[1])
    predicted = max(1, int((0.94 * capacity - probes[1]) // slope) + 1)
    chosen = predicted
    while chosen >= 1:
        try:
            peak_of(chosen)
            break
        except torch.cuda.OutOfMemoryError:
            _free_device_memory(device)
            chosen = chosen - 1 if chosen <= 8 else int(chosen * 0.9)
    model = optimizer = fabric = None
    _free_device_memory(device)
    if chosen < 1:
        raise RuntimeError("not even a micro batch of 1 fits")
    return {"probe_peak_gib": {b: p / 2**30 for b, p in probes.items()}, "capacity_gib": capacity / 2**30,
            "predicted": predicted, "chosen": chosen}


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


def run_benchmark(
    settings: BenchSettings,
    command: str = "",
    progress: Callable[[str], None] = print,
    on_update: Optional[Callable[[dict], None]] = None,
) -> dict:
    """Runs every configuration; `on_update(report)` gets the report so far after each one
    (`report["complete"]` is False until the end), so a run cut short still leaves its numbers."""
    device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = settings.precision or ("bf16-mixed" if device.type == "cuda" else "32-true")
    config = Config.from_name(settings.model_name)
    if settings.seq_len > config.block_size:
        config = Config.from_name(settings.model_name, block_size=settings.seq_len)
    if device.type == "cuda":
        # Any fp32 matmul left (bf16-mixed keeps few) may use TF32, as fast pretraining code does.
        torch.set_float32_matmul_precision("high")

    report: dict[str, Any] = {"command": command, **environment(device), "settings": asdict(settings),
                              "float32_matmul_precision": torch.get_float32_matmul_precision()}
    report["settings"]["variants"] = list(settings.variants)
    n = settings.matmul_size or (8192 if device.type == "cuda" else 256)
    progress(f"matmul {n}^3 bf16 ...")
    report["matmul_size"] = n
    report["matmul_tflops"] = matmul_tflops(device, n)

    batch_size = settings.micro_batch_size
    if batch_size is None:
        if device.type != "cuda":
            raise ValueError("the largest micro batch is searched on CUDA only; give a number on CPU")
        progress("searching the largest micro batch ...")
        report["micro_batch_search"] = largest_micro_batch(config, settings, device, precision)
        batch_size = report["micro_batch_search"]["chosen"]
    report.update(
        model_name=settings.model_name, precision=precision, micro_batch_size=batch_size, seq_len=settings.seq_len,
        grad_accum=settings.grad_accum, n_params=count_parameters(config),
        flops_per_token=flops_per_token(config, settings.seq_len),
        collate_ms={"meap": collate_ms(config, batch_size, settings.seq_len, settings.mask_ratio),
                    "ntp": collate_ms(config, batch_size, settings.seq_len, 0.0)},
    )

    if device.type == "cuda":
        progress("attention backends ...")
        report["attention_fwd_bwd_ms"] = attention_probe(config, batch_size, settings.seq_len, device)

    rows: list[Row] = []

    def summarise(complete: bool) -> dict:
        for row in rows:
            if row.tflops is not None:
                row.matmul_fraction = row.tflops / report["matmul_tflops"]
        report["rows"] = [asdict(r) for r in rows]
        report["meap_ntp_time_ratio"] = meap_ntp_ratios(rows)
        report["speedup_vs"] = speedups(rows)
        report["complete"] = complete
        return report

    if on_update is not None:
        on_update(summarise(complete=False))
    for variant in settings.variants:
        progress(f"{variant} ...")
        rows.extend(run_configuration(variant, config, settings, batch_size, device, precision))
        if on_update is not None:
            on_update(summarise(complete=False))
    return summarise(complete=True)


def _ok(rows: list[Row], variant: str, ratio: float) -> Optional[Row]:
    return next((r for r in rows if r.variant == variant and r.mask_ratio == ratio and r.status == "ok"), None)


def meap_ntp_ratios(rows: list[Row]) -> dict:
    """Median step time with MEAP over that with NTP, per project variant (1.0 = free)."""
    out = {}
    for variant in dict.fromkeys(r.variant for r in rows):
        ntp = _ok(rows, variant, 0.0)
        meap = next((r for r in rows if r.variant == variant and r.mask_ratio > 0 and r.status == "ok"), None)
        if ntp and meap:
            out[variant] = meap.step_ms_median / ntp.step_ms_median
    return out


def speedups(rows: list[Row]) -> dict:
    """NTP tokens/s of the fastest project variant over each Hugging Face reference."""
    best = max((r for r in rows if r.variant in PROJECT_VARIANTS and r.mask_ratio == 0 and r.status == "ok"),
               key=lambda r: r.tokens_per_s, default=None)
    out = {}
    for ref in ("hf", "hf_liger"):
        base = _ok(rows, ref, 0.0)
        if best and base:
            out[ref] = {"best_variant": best.variant, "speedup": best.tokens_per_s / base.tokens_per_s}
    return out


def format_table(report: dict) -> str:
    head = (f"{report['model_name']}  B={report['micro_batch_size']} T={report['seq_len']} "
            f"{report['precision']}  on {report['card']} (torch {report['torch']})  "
            f"matmul {report['matmul_size']}^3 bf16: {report['matmul_tflops']:.1f} TFLOP/s")
    cols = f"{'variant':<9} {'mask':>5} {'status':<7} {'step ms':>9} {'tokens/s':>10} {'TFLOP/s':>8} {'of mm':>6} {'peak GiB':>8} {'syncs':>5}"
    lines = [head, cols, "-" * len(cols)]

    def fmt(value, spec, missing="n/a"):
        if isinstance(value, float) and spec.endswith("f") and 0 < abs(value) < 1:
            spec = spec.split(".")[0] + ".3f"  # CPU smoke runs: keep small rates readable
        return missing if value is None else format(value, spec)

    for r in report["rows"]:
        lines.append(
            f"{r['variant']:<9} {r['mask_ratio']:>5.2f} {r['status']:<7} {fmt(r['step_ms_median'], '9.1f'):>9} "
            f"{fmt(r['tokens_per_s'], '10.0f'):>10} {fmt(r['tflops'], '8.1f'):>8} {fmt(r['matmul_fraction'], '6.3f'):>6} "
            f"{fmt(r['peak_mem_gib'], '8.1f'):>8} {fmt(r['host_syncs_per_step'], 'd'):>5}"
            + (f"  {r['message']}" if r["status"] != "ok" else "")
        )
    if "attention_fwd_bwd_ms" in report:
        lines.append("attention fwd+bwd ms: " + ", ".join(
            f"{k} {v if isinstance(v, float) else 'n/a'}" for k, v in report["attention_fwd_bwd_ms"].items()))
    ratios = ", ".join(f"{k} {v:.4f}" for k, v in report["meap_ntp_time_ratio"].items())
    lines.append(f"MEAP/NTP step-time ratio: {ratios or 'n/a'}")
    for ref, s in report["speedup_vs"].items():
        lines.append(f"{s['best_variant']} vs {ref}: {s['speedup']:.3f}x tokens/s")
    return "\n".join(lines)
