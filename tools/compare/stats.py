"""Confidence intervals for MEAP - NTP differences from paired runs.

Both arms are trained with the same seeds and evaluated on the same prompts, so the difference is
taken prompt by prompt within a seed. The 95 % interval comes from a hierarchical bootstrap that
mirrors the two sources of noise: resample the seeds with replacement, then, within every drawn
seed, resample its prompts with replacement (the same prompts for both arms, which keeps the
pairing), and take the mean difference; the interval is the 2.5th and 97.5th percentiles.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

BETTER, WORSE, TIE = "MEAP better", "NTP better", "no significant difference at this scale"


def hierarchical_paired_bootstrap(
    meap: Sequence[Sequence[float]],
    ntp: Sequence[Sequence[float]],
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """meap[s][p], ntp[s][p]: the score of prompt p under seed s. -> the mean MEAP - NTP difference
    and its bootstrap interval (seeds resampled, then prompts within each seed)."""
    a, b = np.asarray(meap, dtype=np.float64), np.asarray(ntp, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected two equal (seeds, prompts) arrays, got {a.shape} and {b.shape}")
    diff = a - b
    n_seeds, n_prompts = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    prompts = rng.integers(0, n_prompts, size=(n_resamples, n_seeds, n_prompts))
    resampled = diff[seeds[:, :, None], prompts].mean(axis=(1, 2))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return {
        "meap_mean": float(a.mean()),
        "ntp_mean": float(b.mean()),
        "difference": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "n_seeds": n_seeds,
        "n_prompts": n_prompts,
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
    }


def seed_bootstrap(meap: Sequence[float], ntp: Sequence[float], n_resamples: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> dict:
    """One number per seed (e.g. the validation loss): the paired bootstrap over seeds alone."""
    return hierarchical_paired_bootstrap([[x] for x in meap], [[x] for x in ntp], n_resamples, seed, confidence)


def verdict(result: dict, higher_is_better: bool = True) -> str:
    """'MEAP better' / 'NTP better' when the interval excludes 0, else no significant difference."""
    low, high = result["ci_low"], result["ci_high"]
    if low > 0 or high < 0:
        meap_higher = low > 0
        return BETTER if meap_higher == higher_is_better else WORSE
    return TIE


def seed_spread(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation over seeds (None for fewer than 2)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None
