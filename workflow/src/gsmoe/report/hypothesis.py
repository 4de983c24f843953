"""The paired tests that decide a claim, over the differences ``d = a - b`` of matched seeds.

Each kind of claim gets the test that answers what it asks (issue #17):

* **Directional** ("a beats b", "a is below b"): a one-sided sign-flip permutation test in
  the claimed direction (:func:`directional_test`).  With ``n`` pairs its smallest p is
  ``1 / 2^n`` (the two-sided test's is ``2 / 2^n``), so 10 seeds can pass Holm's correction
  over 30 comparisons (``1/1024 < 0.05/30``), which the two-sided test cannot.
* **The paper's own difference against our interval** (:func:`check_paper_difference`):
  a claim can hold and still be overstated ("the paper's +0.060 is excluded: at most
  +0.031").
* **"No significant difference"**: equivalence by two one-sided t-tests (TOST) against a
  margin (:func:`equivalence_test`).
* **"Does not outperform"**: non-superiority, a one-sided t-test against the same margin
  (:func:`non_superiority_test`).

Which test for which question:

* Tests of *a difference from zero* (directional, and "different" in the equivalence
  verdict) use the sign-flip permutation test, ``scipy.stats.permutation_test`` with
  ``permutation_type="samples"`` on the one sample ``d`` (it flips the signs), statistic the
  mean: it assumes only that, with no difference, a pair's sign is as likely either way.
  Exact (all ``2^n`` sign vectors) up to :data:`EXACT_MAX_N` pairs, else ``n_resamples``
  random ones from ``seed`` (scipy's ``(hits + 1) / (n_resamples + 1)``).
* Tests against a *margin* use Student's t on the differences,
  ``scipy.stats.ttest_1samp(d, popmean=±margin, alternative=...)`` (``ttest_rel(a, b)`` with
  ``b`` offset by the margin is the same test).  Their verdicts can then be read off the
  reported t-intervals: equivalent exactly when the ``1 - 2 alpha`` interval lies inside
  ``(-margin, +margin)``, not superior exactly when the one-sided ``1 - alpha`` upper bound is
  below ``+margin``.

Verdicts (``alpha`` the significance level of each one-sided test; the ``*_verdict``
functions take the p-values, so Holm-adjusted ones can be passed in their place):

=====================  ====================================  =================================
test                   verdict                               when
=====================  ====================================  =================================
directional            ``holds``                             p in the claimed direction < alpha
                       ``does not hold``                     p in the opposite direction < alpha
                       ``inconclusive``                      otherwise
equivalence (TOST)     ``equivalent``                        both one-sided p < alpha (max p)
                       ``different``                         not equivalent, and the two-sided
                                                             sign-flip p of zero < alpha
                       ``undecided``                         otherwise
non-superiority        ``not superior``                      p of H0 ``mean >= margin`` < alpha
                       ``superior``                          not "not superior", and the one-sided
                                                             sign-flip p of ``mean > 0`` < alpha
                       ``undecided``                         otherwise
=====================  ====================================  =================================

Equivalence comes before difference on purpose: a difference smaller than the margin is,
by the margin's definition, too small to matter, so a row that is both significantly
different from zero and shown to lie within the margin is ``equivalent``, with the note
:data:`SMALL_DIFFERENCE_NOTE`; likewise ``not superior`` with
:data:`SMALL_SUPERIORITY_NOTE` when ``a`` is significantly better by less than the margin.

Every test needs at least two pairs, the t-tests also a non-zero spread; otherwise the p
is NaN, the result's ``reason`` says why, and a NaN p never passes ``p < alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from gsmoe.report.stats import t_interval

__all__ = [
    "DIFFERENT",
    "DOES_NOT_HOLD",
    "EQUIVALENT",
    "EXACT_MAX_N",
    "HOLDS",
    "INCONCLUSIVE",
    "NOT_SUPERIOR",
    "SMALL_DIFFERENCE_NOTE",
    "SMALL_SUPERIORITY_NOTE",
    "SUPERIOR",
    "UNDECIDED",
    "DirectionalTest",
    "EquivalenceTest",
    "NonSuperiorityTest",
    "PaperCheck",
    "check_paper_difference",
    "directional_test",
    "directional_verdict",
    "equivalence_test",
    "equivalence_verdict",
    "non_superiority_test",
    "non_superiority_verdict",
    "sign_flip_p",
]

Direction = Literal["greater", "less"]

#: Largest number of pairs for which :func:`sign_flip_p` enumerates all 2^n sign vectors
#: (2^16 = 65,536: milliseconds).  Beyond it, a seeded Monte Carlo.
EXACT_MAX_N = 16

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
EQUIVALENT = "equivalent"
DIFFERENT = "different"
UNDECIDED = "undecided"
NOT_SUPERIOR = "not superior"
SUPERIOR = "superior"

SMALL_DIFFERENCE_NOTE = "a difference smaller than the margin"
SMALL_SUPERIORITY_NOTE = "a is better than b by less than the margin"

_OPPOSITE: dict[str, Direction] = {"greater": "less", "less": "greater"}


def _differences(d: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(d, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"paired differences must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"non-finite paired difference among {arr.tolist()}")
    return arr


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) for one-sided tests, got {alpha}")


def _check_margin(margin: float) -> None:
    if not (math.isfinite(margin) and margin > 0.0):
        raise ValueError(f"margin must be a positive accuracy difference, got {margin}")


def _check_direction(direction: str) -> Direction:
    if direction not in _OPPOSITE:
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    return direction  # type: ignore[return-value]


def sign_flip_p(
    d: npt.ArrayLike,
    alternative: Literal["greater", "less", "two-sided"],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    exact_max_n: int = EXACT_MAX_N,
) -> tuple[float, str]:
    """p of the paired sign-flip permutation test of ``mean(d)`` (module docstring).

    Returns ``(p, description of the test)``.  Needs at least two pairs (as scipy does):
    one pair is no test.
    """
    arr = _differences(d)
    n = arr.size
    if n < 2:
        raise ValueError(f"the sign-flip test needs at least 2 pairs, got {n}")
    exact = n <= exact_max_n
    result = _sps.permutation_test(
        (arr,),
        np.mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=math.inf if exact else n_resamples,
        alternative=alternative,
        rng=None if exact else np.random.default_rng(seed),
    )
    side = "two-sided" if alternative == "two-sided" else f"one-sided, {alternative}"
    how = f"exact, 2^{n}" if exact else f"Monte Carlo, {n_resamples}, seed {seed}"
    return float(result.pvalue), f"sign-flip permutation ({side}; {how})"


def _sign_flip_or_nan(
    d: np.ndarray, alternative: Literal["greater", "less", "two-sided"], n_resamples: int, seed: int
) -> float:
    """:func:`sign_flip_p`, NaN for a single pair (the results' ``reason`` says why)."""
    return sign_flip_p(d, alternative, n_resamples=n_resamples, seed=seed)[0] if d.size >= 2 else math.nan


def _t_reason(d: np.ndarray) -> str:
    """Why a t-test of ``d`` is undefined ('' when it is defined)."""
    if d.size < 2:
        return "fewer than 2 pairs"
    if float(np.std(d, ddof=1)) == 0.0:
        return "zero spread over seeds"
    return ""


def _t_p(d: np.ndarray, popmean: float, alternative: Direction) -> float:
    if _t_reason(d):
        return math.nan
    return float(_sps.ttest_1samp(d, popmean=popmean, alternative=alternative).pvalue)


def _one_sided_bound(d: np.ndarray, alpha: float, direction: Direction) -> float:
    """Lower (``greater``) or upper (``less``) one-sided ``1 - alpha`` t bound of the mean."""
    if d.size < 2:
        return math.nan
    # t_interval at level 1 - 2 alpha has each tail alpha; it also gives the point for zero spread.
    low, high = t_interval(d, 1.0 - 2.0 * alpha)
    return low if direction == "greater" else high


# --------------------------------------------------------------------------- directional


@dataclass(frozen=True)
class DirectionalTest:
    """One-sided paired test of the claim ``mean(a - b)`` > 0 (``greater``) or < 0 (``less``).

    ``bound`` is the one-sided ``1 - alpha`` t bound in the claimed direction: "a beats b
    by at least ``bound``" (greater) or "a is below b by at least ``-bound``" (less).
    """

    direction: Direction
    n: int
    mean: float
    p_value: float  # sign-flip, claimed direction
    p_opposite: float  # sign-flip, the opposite direction
    bound: float
    test: str
    reason: str  # why there is no test ('' when there is one)


def directional_test(
    d: npt.ArrayLike, direction: str, alpha: float, *, n_resamples: int = 10_000, seed: int = 0
) -> DirectionalTest:
    """One-sided sign-flip tests of ``d`` in the claimed ``direction`` and against it."""
    arr = _differences(d)
    _check_alpha(alpha)
    direction = _check_direction(direction)
    p, test = sign_flip_p(arr, direction, n_resamples=n_resamples, seed=seed) if arr.size >= 2 else (math.nan, "")
    p_opposite = _sign_flip_or_nan(arr, _OPPOSITE[direction], n_resamples, seed)
    return DirectionalTest(
        direction=direction,
        n=int(arr.size),
        mean=float(arr.mean()),
        p_value=p,
        p_opposite=p_opposite,
        bound=_one_sided_bound(arr, alpha, direction),
        test=test,
        reason="fewer than 2 pairs" if arr.size < 2 else "",
    )


def directional_verdict(p_claimed: float, p_opposite: float, alpha: float) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` from the two one-sided p-values.

    Both cannot be below ``alpha < 0.5``: the two one-sided p of one sample add up to at
    least 1.
    """
    _check_alpha(alpha)
    if p_claimed < alpha:
        return HOLDS
    if p_opposite < alpha:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


# --------------------------------------------------------------------------- the paper's difference


@dataclass(frozen=True)
class PaperCheck:
    """Where the paper's difference lies against our two-sided ``confidence`` t-interval.

    ``position``: ``inside`` the interval, ``above`` or ``below`` it (excluded by our runs),
    or ``unknown`` (no paper value, or fewer than two pairs).
    """

    paper_diff: float
    ci_low: float
    ci_high: float
    confidence: float
    position: Literal["inside", "above", "below", "unknown"]

    def text(self) -> str:
        """One sentence for a report, e.g. "the paper's +0.060 is excluded: at most +0.031"."""
        if self.position == "unknown":
            return "the paper gives no difference" if not math.isfinite(self.paper_diff) else "too few pairs"
        paper = f"the paper's {self.paper_diff:+.3f}"
        if self.position == "above":
            return f"{paper} is excluded: at most {self.ci_high:+.3f}"
        if self.position == "below":
            return f"{paper} is excluded: at least {self.ci_low:+.3f}"
        return f"{paper} is inside [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"


def check_paper_difference(d: npt.ArrayLike, paper_diff: float, alpha: float) -> PaperCheck:
    """Is the paper's ``paper_diff`` (a - b) compatible with our ``1 - alpha`` interval of ``d``?

    A claim can hold (our difference is significantly positive) and be overstated (the
    paper's difference lies above our interval): this says which.  NaN ``paper_diff`` (the
    paper gives no value) gives ``unknown``.
    """
    arr = _differences(d)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    low, high = t_interval(arr, 1.0 - alpha)
    if not math.isfinite(paper_diff) or not math.isfinite(low):
        position = "unknown"
    elif paper_diff > high:
        position = "above"
    elif paper_diff < low:
        position = "below"
    else:
        position = "inside"
    return PaperCheck(float(paper_diff), low, high, 1.0 - alpha, position)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- equivalence


@dataclass(frozen=True)
class EquivalenceTest:
    """TOST of ``|mean(a - b)| < margin``, with the two-sided sign-flip test of zero beside it.

    ``p_lower`` tests H0 ``mean <= -margin``, ``p_upper`` H0 ``mean >= +margin``; ``p_tost``
    is their maximum.  ``ci_low`` / ``ci_high``: the ``1 - 2 alpha`` t-interval, inside
    ``(-margin, margin)`` exactly when ``p_tost < alpha``.
    """

    n: int
    mean: float
    margin: float
    p_lower: float
    p_upper: float
    p_tost: float
    p_difference: float
    ci_low: float
    ci_high: float
    reason: str  # why the t-tests are undefined ('' when they are defined)


def equivalence_test(
    d: npt.ArrayLike, margin: float, alpha: float, *, n_resamples: int = 10_000, seed: int = 0
) -> EquivalenceTest:
    """Two one-sided t-tests of ``d`` against ``-margin`` and ``+margin`` (TOST)."""
    arr = _differences(d)
    _check_alpha(alpha)
    _check_margin(margin)
    p_lower = _t_p(arr, -margin, "greater")
    p_upper = _t_p(arr, margin, "less")
    low, high = t_interval(arr, 1.0 - 2.0 * alpha)
    p_difference = _sign_flip_or_nan(arr, "two-sided", n_resamples, seed)
    return EquivalenceTest(
        n=int(arr.size),
        mean=float(arr.mean()),
        margin=float(margin),
        p_lower=p_lower,
        p_upper=p_upper,
        p_tost=max(p_lower, p_upper) if math.isfinite(p_lower + p_upper) else math.nan,
        p_difference=p_difference,
        ci_low=low,
        ci_high=high,
        reason=_t_reason(arr),
    )


def _margin_verdict(
    p_margin: float, p_zero: float, alpha: float, *, shown: str, small_note: str, against: str
) -> tuple[str, str]:
    """``(verdict, note)`` of a test against the margin with a test of zero beside it.

    ``shown`` when the margin test passes (with ``small_note`` when the test of zero passes
    too: a difference within the margin), else ``against`` when the test of zero passes,
    else ``undecided``.  The margin comes first (module docstring).
    """
    _check_alpha(alpha)
    significant = p_zero < alpha
    if p_margin < alpha:
        return shown, small_note if significant else ""
    if significant:
        return against, ""
    return UNDECIDED, ""


def equivalence_verdict(p_tost: float, p_difference: float, alpha: float) -> tuple[str, str]:
    """``(verdict, note)``: ``equivalent`` / ``different`` / ``undecided`` (module docstring)."""
    return _margin_verdict(
        p_tost, p_difference, alpha, shown=EQUIVALENT, small_note=SMALL_DIFFERENCE_NOTE, against=DIFFERENT
    )


# --------------------------------------------------------------------------- non-superiority


@dataclass(frozen=True)
class NonSuperiorityTest:
    """One-sided t-test of H0 ``mean(a - b) >= margin`` against ``mean < margin``.

    ``p_superior`` is the one-sided sign-flip p of ``mean > 0`` (is a better at all);
    ``upper`` the one-sided ``1 - alpha`` upper t bound, below ``margin`` exactly when
    ``p_value < alpha``.
    """

    n: int
    mean: float
    margin: float
    p_value: float
    p_superior: float
    upper: float
    reason: str


def non_superiority_test(
    d: npt.ArrayLike, margin: float, alpha: float, *, n_resamples: int = 10_000, seed: int = 0
) -> NonSuperiorityTest:
    """Is ``a`` shown not to beat ``b`` by ``margin`` or more?"""
    arr = _differences(d)
    _check_alpha(alpha)
    _check_margin(margin)
    p_superior = _sign_flip_or_nan(arr, "greater", n_resamples, seed)
    return NonSuperiorityTest(
        n=int(arr.size),
        mean=float(arr.mean()),
        margin=float(margin),
        p_value=_t_p(arr, margin, "less"),
        p_superior=p_superior,
        upper=_one_sided_bound(arr, alpha, "less"),
        reason=_t_reason(arr),
    )


def non_superiority_verdict(p_non_superior: float, p_superior: float, alpha: float) -> tuple[str, str]:
    """``(verdict, note)``: ``not superior`` / ``superior`` / ``undecided`` (module docstring)."""
    return _margin_verdict(
        p_non_superior, p_superior, alpha, shown=NOT_SUPERIOR, small_note=SMALL_SUPERIORITY_NOTE, against=SUPERIOR
    )
