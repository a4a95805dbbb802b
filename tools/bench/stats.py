"""Statistics of timed rounds: per-variant spread, and ratios taken within each round."""

from __future__ import annotations

import statistics
from typing import Sequence


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of the values."""
    if not values:
        raise ValueError("no values")
    return statistics.median(values), min(values), max(values)


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median over rounds of numerator[r] / denominator[r].

    Both were timed in the same round, a few seconds apart, so a drift of the clock or of the
    card's temperature divides out of each round's ratio instead of landing on one side.
    """
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(f"need the same number (> 0) of rounds, got {len(numerators)} and {len(denominators)}")
    return statistics.median(a / b for a, b in zip(numerators, denominators))
