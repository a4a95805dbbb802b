"""Intervals for MEAP - NTP differences from paired runs, and the verdicts they support.

Both arms are trained with the same seeds and evaluated on the same prompts, so the difference d[s, p]
is taken prompt by prompt within a seed. Two sources of noise move its mean: which seeds were drawn
(seed-to-seed spread of trained models) and which prompts were drawn; every seed sees the same prompts,
so the design is seeds x prompts crossed. The seed-level interval treats both as random: the variance of
the mean difference is estimated from the two-way mean squares, (MS_seeds + MS_prompts) / (S * P), which
bounds sigma_seed^2/S + sigma_prompt^2/P + sigma_residual^2/(S * P) from above, with Satterthwaite's
degrees of freedom and a Student t quantile (one number per seed, e.g. the validation loss: the paired t
interval over seeds). A verdict needs MIN_SEEDS_FOR_VERDICT seeds: with 2 the seed spread is estimated
from a single difference (1 degree of freedom), which leaves the approximation without support. With
fewer seeds only the prompt-level interval is given: a bootstrap over prompts with the seeds held fixed,
which says how much the prompts move the result for these trained models, not how another seed would.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

BETTER, WORSE, TIE = "MEAP better", "NTP better", "no significant difference at this scale"
NO_VERDICT = "not enough seeds for a verdict"
MIN_SEEDS_FOR_VERDICT = 3
CONFIDENCE = 0.95
# Student t 97.5 % quantiles for 1..30 degrees of freedom (standard tables); beyond, interpolated in 1/df
# towards the normal 1.95996.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964

METHOD = (
    "Each difference is MEAP - NTP for the same seed and prompt. The seed-level 95 % interval treats seeds and "
    "prompts as random draws (crossed: every seed sees the same prompts): the variance of the mean difference is "
    "(MS_seeds + MS_prompts) / (seeds x prompts) from the two-way table of differences, a conservative estimate, with "
    "Satterthwaite's degrees of freedom and a Student t quantile; for one number per seed (validation loss) this is "
    f"the paired t interval over seeds. A verdict (MEAP or NTP better) is given only when that interval excludes 0 "
    f"and at least {MIN_SEEDS_FOR_VERDICT} seeds were run: with 2 seeds the seed-to-seed spread rests on a single "
    "difference (1 degree of freedom). With fewer seeds the table shows the prompt-level interval instead (a paired "
    "bootstrap over prompts, 2.5th-97.5th percentiles, seeds held fixed): it is conditional on these seeds and "
    "supports no verdict. A simulation with no true difference keeps the verdict rate near 5 % (tests/tools)."
)


def t_quantile(df: float) -> float:
    """The 97.5 % quantile of Student's t with `df` (possibly fractional) degrees of freedom."""
    if df <= 1:
        return _T975[0]
    if df >= len(_T975):
        return _Z975 + (_T975[-1] - _Z975) * len(_T975) / df
    low = int(df)
    if low == df:
        return _T975[low - 1]
    # linear in 1/df between the neighbouring table entries
    w = (1 / low - 1 / df) / (1 / low - 1 / (low + 1))
    return _T975[low - 1] + w * (_T975[low] - _T975[low - 1])


def seed_interval(diff: np.ndarray) -> tuple[float, float, float]:
    """(low, high, degrees of freedom) of the mean of diff[seed, prompt], seeds and prompts random."""
    n_seeds, n_prompts = diff.shape
    mean = diff.mean()
    ms_seeds = n_prompts * np.sum((diff.mean(axis=1) - mean) ** 2) / (n_seeds - 1)
    ms_prompts = n_seeds * np.sum((diff.mean(axis=0) - mean) ** 2) / (n_prompts - 1) if n_prompts > 1 else 0.0
    variance = (ms_seeds + ms_prompts) / (n_seeds * n_prompts)
    denominator = ms_seeds**2 / (n_seeds - 1) + (ms_prompts**2 / (n_prompts - 1) if n_prompts > 1 else 0.0)
    df = (ms_seeds + ms_prompts) ** 2 / denominator if denominator > 0 else float(n_seeds - 1)
    half = t_quantile(df) * float(np.sqrt(variance))
    return float(mean - half), float(mean + half), float(df)


def prompt_bootstrap(diff: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    """2.5th-97.5th percentiles of the mean difference when the prompts are resampled (the same draw for
    every seed, as they saw the same prompts) and the seeds held fixed."""
    n_prompts = diff.shape[1]
    rng = np.random.default_rng(seed)
    prompts = rng.integers(0, n_prompts, size=(n_resamples, n_prompts))
    resampled = diff[:, prompts].mean(axis=(0, 2))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)


def paired_comparison(meap: Sequence[Sequence[float]], ntp: Sequence[Sequence[float]], n_resamples: int = 2000,
                      seed: int = 0, higher_is_better: bool = True) -> dict:
    """meap[s][p], ntp[s][p]: the score of prompt p under seed s. -> the mean MEAP - NTP difference, its
    seed-level interval (`ci_low`/`ci_high`, None with fewer than MIN_SEEDS_FOR_VERDICT seeds), the
    prompt-level interval given these seeds, and the verdict."""
    a, b = np.asarray(meap, dtype=np.float64), np.asarray(ntp, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected two equal (seeds, prompts) arrays, got {a.shape} and {b.shape}")
    diff = a - b
    n_seeds, n_prompts = diff.shape
    result = {
        "meap_mean": float(a.mean()), "ntp_mean": float(b.mean()), "difference": float(diff.mean()),
        "confidence": CONFIDENCE, "n_seeds": n_seeds, "n_prompts": n_prompts,
        "ci_low": None, "ci_high": None, "df": None, "prompt_ci_low": None, "prompt_ci_high": None,
    }
    if n_seeds >= MIN_SEEDS_FOR_VERDICT:
        result["ci_low"], result["ci_high"], result["df"] = seed_interval(diff)
    if n_prompts > 1:
        result["prompt_ci_low"], result["prompt_ci_high"] = prompt_bootstrap(diff, n_resamples, seed)
        result.update(n_resamples=n_resamples, bootstrap_seed=seed)
    result["verdict"] = verdict(result, higher_is_better)
    return result


def seed_comparison(meap: Sequence[float], ntp: Sequence[float], higher_is_better: bool = True) -> dict:
    """One number per seed (e.g. the validation loss): the paired t interval over seeds."""
    return paired_comparison([[x] for x in meap], [[x] for x in ntp], higher_is_better=higher_is_better)


def verdict(result: dict, higher_is_better: bool = True) -> str:
    """'MEAP better' / 'NTP better' when the seed-level interval excludes 0; no verdict without one."""
    low, high = result.get("ci_low"), result.get("ci_high")
    if low is None or high is None:
        return NO_VERDICT
    if low > 0 or high < 0:
        meap_higher = low > 0
        return BETTER if meap_higher == higher_is_better else WORSE
    return TIE


def seed_spread(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation over seeds (None for fewer than 2)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None
