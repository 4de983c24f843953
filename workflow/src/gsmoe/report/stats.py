"""Small, general statistics over seeds: summaries, Student-t intervals, Holm's adjustment.

Everything here works on plain numbers, so the aggregation, the tables and the claims share
one definition of "mean ± std" and "95 % interval" instead of re-deriving them.  The tests
that decide a claim are in :mod:`gsmoe.report.hypothesis`.

Conventions:

* ``std`` is the sample standard deviation (``ddof=1``); with one value it is NaN, because
  a spread cannot be estimated from one seed (0 would claim a certainty we do not have).
* Intervals are Student-t intervals of the mean, ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)``;
  NaN when ``n < 2``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

__all__ = [
    "SummaryStats",
    "holm",
    "sample_std",
    "summary_stats",
    "t_interval",
]

@dataclass(frozen=True)
class SummaryStats:
    """Mean, sample std and Student-t interval of one set of values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def _as_array(values: Iterable[float] | Mapping[Hashable, float]) -> np.ndarray:
    """Values as a 1-D float array; a mapping contributes its values."""
    if isinstance(values, Mapping):
        values = list(values.values())
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"non-finite value among {arr.tolist()}")
    return arr


def sample_std(values: Iterable[float]) -> float:
    """Sample standard deviation (ddof=1); NaN for fewer than two values."""
    arr = _as_array(values)
    return float(np.std(arr, ddof=1)) if arr.size >= 2 else math.nan


def t_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean; ``(nan, nan)`` for fewer than two values."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    arr = _as_array(values)
    n = arr.size
    if n < 2:
        return math.nan, math.nan
    mean = float(arr.mean())
    # Computed by hand rather than scipy's t.interval so that a zero spread gives the
    # degenerate interval (mean, mean) instead of NaN.
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * float(np.std(arr, ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def summary_stats(values: Iterable[float], confidence: float = 0.95) -> SummaryStats:
    """n, mean, sample std and t-interval of ``values`` (at least one value)."""
    arr = _as_array(values)
    if arr.size == 0:
        raise ValueError("cannot summarise an empty set of values")
    low, high = t_interval(arr, confidence)
    return SummaryStats(n=int(arr.size), mean=float(arr.mean()), std=sample_std(arr), ci_low=low, ci_high=high)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as given; NaN stays NaN, not counted)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
