"""Small, general statistics over seeds: summaries, paired differences, Welch's test,
the comparison of two experiments a claim is decided on, Holm's adjustment.

Everything here works on plain numbers (sequences, or ``{seed: value}`` mappings for the
paired functions) so the aggregation, the tables and the claims share one definition of
"mean ± std" and "95 % interval" instead of re-deriving them.

Conventions:

* ``std`` is the sample standard deviation (``ddof=1``); with one value it is NaN, because
  a spread cannot be estimated from one seed (0 would claim a certainty we do not have).
* Intervals are Student-t intervals of the mean, ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)``;
  NaN when ``n < 2``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

__all__ = [
    "Comparison",
    "DiffResult",
    "SummaryStats",
    "WelchResult",
    "compare_seeds",
    "holm",
    "min_attainable_p",
    "paired_difference",
    "sample_std",
    "sign_flip_permutation_test",
    "summary_stats",
    "t_interval",
    "welch",
]

#: Largest number of pairs for which the sign-flip test enumerates all 2^n sign vectors
#: (2^16 = 65,536 rows of n numbers: milliseconds).  Beyond it, a seeded Monte Carlo.
EXACT_MAX_N = 16


@dataclass(frozen=True)
class SummaryStats:
    """Mean, sample std and Student-t interval of one set of values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class DiffResult:
    """A paired difference ``a - b`` over matched seeds.

    ``test`` names the test that produced ``p_value``, e.g.
    ``"sign-flip permutation (exact, 2^5)"`` or ``"sign-flip permutation (Monte Carlo, 10000, seed 0)"``.
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float
    test: str


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test of ``mean(a) - mean(b)``."""

    mean_diff: float
    statistic: float
    df: float
    p_value: float
    n_a: int
    n_b: int


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


def sign_flip_permutation_test(
    differences: Sequence[float],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    exact_max_n: int = EXACT_MAX_N,
) -> tuple[float, str]:
    """Two-sided paired sign-flip permutation test of ``mean(differences) == 0``.

    Under the null the sign of each paired difference is exchangeable, so the reference
    distribution is ``mean(s * d)`` over sign vectors ``s``.  All ``2^n`` vectors are
    enumerated when ``n <= exact_max_n`` (p is then exact, smallest possible ``2 / 2^n``
    for a two-sided test); otherwise ``n_resamples`` random vectors drawn with ``seed``,
    with the ``(1 + hits) / (1 + n_resamples)`` estimate so that p is never 0.

    Returns ``(p_value, description of the test)``.
    """
    d = _as_array(differences)
    n = d.size
    if n == 0:
        raise ValueError("no paired differences")
    observed = abs(float(d.mean()))
    # Tolerance: sign vectors that reproduce |mean| up to float rounding must count as
    # "at least as extreme", otherwise ties (which always exist: s and -s) are lost.
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= exact_max_n:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        null = np.abs(signs @ d) / n
        p = float(np.mean(null >= observed - tol))
        return p, f"sign-flip permutation (exact, 2^{n})"
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_resamples, n))
    null = np.abs(signs @ d) / n
    hits = int(np.sum(null >= observed - tol))
    p = (1.0 + hits) / (1.0 + n_resamples)
    return p, f"sign-flip permutation (Monte Carlo, {n_resamples}, seed {seed})"


def paired_difference(
    a: Mapping[Hashable, float],
    b: Mapping[Hashable, float],
    confidence: float = 0.95,
    *,
    strict: bool = True,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> DiffResult:
    """Mean of ``a[s] - b[s]`` over seeds ``s``, its t-interval and a sign-flip p-value.

    Pairing by seed removes the between-seed variation the two runs share (same split,
    same initialisation stream), which an unpaired test would count as noise.

    Args:
        a, b: ``{seed: value}``.
        confidence: level of the t-interval of the mean difference.
        strict: if True (default) the two seed sets must be equal, so that a silently
            dropped run cannot change the comparison; if False, the common seeds are used.
        n_resamples, seed: Monte Carlo settings, used only when there are more than
            ``EXACT_MAX_N`` pairs.
    """
    seeds_a, seeds_b = set(a), set(b)
    if strict and seeds_a != seeds_b:
        raise ValueError(
            "paired_difference: seed sets differ; only in a: "
            f"{sorted(seeds_a - seeds_b, key=str)}, only in b: {sorted(seeds_b - seeds_a, key=str)}"
        )
    common = sorted(seeds_a & seeds_b, key=lambda s: (str(type(s)), s))
    if not common:
        raise ValueError("paired_difference: no seed in common")
    d = np.array([float(a[s]) - float(b[s]) for s in common])
    summary = summary_stats(d, confidence)
    p, test = sign_flip_permutation_test(d, n_resamples=n_resamples, seed=seed)
    return DiffResult(
        mean=summary.mean, ci_low=summary.ci_low, ci_high=summary.ci_high, n=summary.n, p_value=p, test=test
    )


def welch(a: Iterable[float] | Mapping[Hashable, float], b: Iterable[float] | Mapping[Hashable, float]) -> WelchResult:
    """Welch's t-test (unequal variances, two-sided) of ``mean(a) - mean(b)``.

    Unpaired: use it when the seeds of the two groups are not comparable (or as a check
    next to :func:`paired_difference`).  Needs at least two values per group.
    """
    xa, xb = _as_array(a), _as_array(b)
    if xa.size < 2 or xb.size < 2:
        raise ValueError(f"welch needs at least two values per group, got {xa.size} and {xb.size}")
    res = _sps.ttest_ind(xa, xb, equal_var=False)
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    # Welch–Satterthwaite degrees of freedom; NaN when both groups have zero spread.
    denom = va**2 / (xa.size - 1) + vb**2 / (xb.size - 1)
    df = float((va + vb) ** 2 / denom) if denom > 0 else math.nan
    return WelchResult(
        mean_diff=float(xa.mean() - xb.mean()),
        statistic=float(res.statistic),
        df=df,
        p_value=float(res.pvalue),
        n_a=int(xa.size),
        n_b=int(xb.size),
    )


# --------------------------------------------------------------------------- two experiments


def min_attainable_p(n_pairs: int, exact_max_n: int = EXACT_MAX_N) -> float:
    """Smallest two-sided p the sign-flip test can give with ``n_pairs`` pairs.

    Exact enumeration: the observed sign vector and its negation are always as extreme,
    so ``p >= 2 / 2^n`` (1 for one pair).  Monte Carlo (``n > exact_max_n``, 10,000
    resamples): ``1 / 10001``, far below any usual alpha.
    """
    if n_pairs < 1:
        return 1.0
    if n_pairs <= exact_max_n:
        return min(1.0, 2.0 / 2.0**n_pairs)
    return 1.0 / 10_001


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


@dataclass(frozen=True)
class Comparison:
    """The difference ``a - b`` of two experiments over seeds (:func:`compare_seeds`)."""

    diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    test: str = ""
    paired: bool = False
    n: int = 0
    reason: str = ""  # why no verdict can be reached from it (empty if one can)
    notes: tuple[str, ...] = ()


def _welch_comparison(va: np.ndarray, vb: np.ndarray, confidence: float) -> Comparison:
    se = math.sqrt(va.var(ddof=1) / va.size + vb.var(ddof=1) / vb.size)
    if se == 0.0:
        # Both groups constant (scipy would warn and give NaN): the interval is the point,
        # p is 1 for equal means and undefined otherwise -> inconclusive, stated as such.
        diff = float(va.mean() - vb.mean())
        p = 1.0 if diff == 0.0 else math.nan
        reason = "" if math.isfinite(p) else "both experiments have zero spread over seeds"
        return Comparison(diff, diff, diff, p, "Welch t-test", False, 0, reason)
    w = welch(va, vb)
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, w.df)) * se
    return Comparison(w.mean_diff, w.mean_diff - half, w.mean_diff + half, w.p_value, "Welch t-test", False, 0)


def compare_seeds(a: Mapping[int, float], b: Mapping[int, float], alpha: float) -> Comparison:
    """``a - b`` ({seed: value} each): paired on the common seeds, Welch if none in common.

    Paired: :func:`paired_difference` on the common seeds (the unmatched ones are listed in
    ``notes``); fewer than 2 pairs, or too few for the exact test to reach ``alpha``
    (:func:`min_attainable_p`), give a ``reason``.  Welch: interval
    ``d ± t_{1-alpha/2, df} · sqrt(s_a²/n_a + s_b²/n_b)``; fewer than 2 runs on a side give
    a ``reason``.  Intervals are at level ``1 - alpha``.
    """
    confidence = 1.0 - alpha
    common = sorted(set(a) & set(b))
    notes: list[str] = []
    if common:
        unmatched_a, unmatched_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if unmatched_a or unmatched_b:
            notes.append(f"paired on {len(common)} common seeds; unmatched seeds a: {unmatched_a}, b: {unmatched_b}")
        if len(common) < 2:
            reason = f"n too small ({len(common)} pair)"
            return Comparison(n=len(common), paired=True, reason=reason, notes=tuple(notes))
        r = paired_difference({s: a[s] for s in common}, {s: b[s] for s in common}, confidence)
        reason = ""
        floor = min_attainable_p(r.n)
        if floor >= alpha:
            reason = f"n too small: with {r.n} pairs the smallest attainable p is {floor:.3g} >= alpha {alpha:g}"
        return Comparison(r.mean, r.ci_low, r.ci_high, r.p_value, r.test, True, r.n, reason, tuple(notes))
    va, vb = np.array(list(a.values()), float), np.array(list(b.values()), float)
    notes.append("no seed in common: unpaired Welch test")
    if va.size < 2 or vb.size < 2:
        return Comparison(reason=f"n too small ({va.size} and {vb.size} runs, unpaired)", notes=tuple(notes))
    d = _welch_comparison(va, vb, confidence)
    return Comparison(d.diff, d.ci_low, d.ci_high, d.p_value, d.test, False, 0, d.reason, tuple(notes))
