"""What the device can do, measured in the same run: the bf16 matmul ceiling, attention per SDPA
backend, the host's collate time, and host synchronisations of a step."""

from __future__ import annotations

import contextlib
import statistics
import warnings
from typing import Any, Callable

import torch

from tools.bench.timing import time_calls
from lit_gpt.config import Config
from lit_gpt.meap import MEAPCollator


def matmul_tflops(device: torch.device, n: int, repeats: int = 20) -> float:
    """Median bf16 rate of an n×n×n product on random data (zeros run faster than real data)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, torch.bfloat16)
    b = torch.randn(n, n, generator=gen).to(device, torch.bfloat16)
    times = time_calls(lambda _: torch.mm(a, b), device, warmup=3, repeats=repeats)
    return 2 * n**3 / statistics.median(times) / 1e12


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
                times = time_calls(fwd_bwd, device, warmup=2, repeats=repeats)
            out[name] = round(1e3 * statistics.median(times), 3)
        except RuntimeError as error:  # the backend refuses these inputs
            out[name] = "n/a: " + str(error).splitlines()[0][:160]
        q.grad = k.grad = v.grad = None
    return out


def collate_ms(config: Config, batch_size: int, seq_len: int, mask_ratio: float, repeats: int = 20) -> float:
    """Median host time of the collate step for one micro batch (runs beside the device's work)."""
    collate = MEAPCollator(mask_ratio=mask_ratio, mask_token_id=config.vocab_size - 1, seed=0)
    blocks = torch.randint(0, config.vocab_size - 1, (batch_size, seq_len + 1))
    times = time_calls(lambda i: collate(blocks, step=i, micro_step=0), torch.device("cpu"), 2, repeats)
    return 1e3 * statistics.median(times)


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
