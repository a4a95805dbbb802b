"""Shared by the kernel and loss tests: a relative error, and the marks of the GPU comparisons."""

from __future__ import annotations

import pytest
import torch

from lit_gpt import kernels


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _liger_ok() -> bool:
    return torch.cuda.is_available() and kernels.liger_available()


needs_liger = pytest.mark.skipif(not _liger_ok(), reason="needs CUDA and liger-kernel")


gpu = pytest.mark.gpu
