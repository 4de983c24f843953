"""The paired tests that decide a claim: directional, the paper's difference, TOST, non-superiority."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from gsmoe.report import hypothesis as h


def _enumerated_p(d: np.ndarray, alternative: str) -> float:
    """Sign-flip p by listing all 2^n sign vectors (the definition)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    null = signs @ d / d.size
    observed = d.mean()
    tol = 1e-12
    if alternative == "greater":
        return float(np.mean(null >= observed - tol))
    if alternative == "less":
        return float(np.mean(null <= observed + tol))
    return float(np.mean(np.abs(null) >= abs(observed) - tol))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("case", range(6))
def test_sign_flip_p_equals_enumeration(alternative: str, case: int) -> None:
    rng = np.random.default_rng(case)
    n = 3 + case
    # Accuracy-like differences on a grid of 1/1000, so ties between sign vectors occur.
    d = np.round(rng.normal(0.01, 0.02, n), 3)
    p, test = h.sign_flip_p(d, alternative)
    assert p == pytest.approx(_enumerated_p(d, alternative), abs=1e-12)
    assert f"exact, 2^{n}" in test


def own_verdict(
    r: h.DirectionalTest | h.EquivalenceTest | h.NonSuperiorityTest, alpha: float
) -> str | tuple[str, str]:
    """The verdict of one test result from its own (unadjusted) p-values."""
    if isinstance(r, h.DirectionalTest):
        return h.directional_verdict(r.p_value, r.p_opposite, alpha)
    if isinstance(r, h.EquivalenceTest):
        return h.equivalence_verdict(r.p_tost, r.p_difference, alpha)
    return h.non_superiority_verdict(r.p_value, r.p_superior, alpha)


def test_sign_flip_monte_carlo_beyond_exact_size() -> None:
    d = np.random.default_rng(3).normal(0.005, 0.02, 20)
    p1, test = h.sign_flip_p(d, "greater", n_resamples=2000, seed=5)
    p2, _ = h.sign_flip_p(d, "greater", n_resamples=2000, seed=5)
    assert p1 == p2 and "Monte Carlo, 2000, seed 5" in test
    # Close to the t-test's p for 20 near-normal differences.
    assert p1 == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue, abs=0.03)


def test_directional_one_sided_p_and_bound() -> None:
    d = np.array([0.01, 0.02, 0.03, 0.005, 0.012, 0.018, 0.004, 0.02, 0.01, 0.03])
    r = h.directional_test(d, "greater", 0.05)
    # All ten differences positive: only the observed sign vector is as extreme.
    assert r.p_value == 1 / 1024 and r.p_opposite == 1.0
    # Passes Holm's first step over 30 comparisons, which the two-sided 2/1024 cannot.
    assert own_verdict(r, 0.05 / 30) == h.HOLDS
    assert r.bound == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="greater").confidence_interval(0.95).low)
    mirrored = h.directional_test(-d, "less", 0.05)
    assert mirrored.p_value == r.p_value and mirrored.bound == pytest.approx(-r.bound)
    against = h.directional_test(d, "less", 0.05)
    assert own_verdict(against, 0.05) == h.DOES_NOT_HOLD
    assert against.bound == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="less").confidence_interval(0.95).high)


@pytest.mark.parametrize(
    ("p_claimed", "p_opposite", "verdict"),
    [
        (0.01, 0.99, h.HOLDS),
        (0.99, 0.01, h.DOES_NOT_HOLD),
        (0.2, 0.8, h.INCONCLUSIVE),
        (0.05, 0.95, h.INCONCLUSIVE),  # p must be below alpha
        (0.93, 0.07, h.INCONCLUSIVE),
        (math.nan, math.nan, h.INCONCLUSIVE),
    ],
)
def test_directional_verdict(p_claimed: float, p_opposite: float, verdict: str) -> None:
    assert h.directional_verdict(p_claimed, p_opposite, 0.05) == verdict


def test_paper_difference_against_our_interval() -> None:
    d = np.array([0.01, 0.02, 0.015, 0.005, 0.025, 0.012])
    low, high = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    above = h.check_paper_difference(d, 0.06, 0.05)
    assert (above.ci_low, above.ci_high) == pytest.approx((low, high))
    assert above.position == "above"
    assert above.text() == f"the paper's +0.060 is excluded: at most {high:+.3f}"
    below = h.check_paper_difference(d, -0.01, 0.05)
    assert below.position == "below" and below.text() == f"the paper's -0.010 is excluded: at least {low:+.3f}"
    inside = h.check_paper_difference(d, 0.015, 0.05)
    assert inside.position == "inside" and "is inside" in inside.text()
    assert h.check_paper_difference(d, math.nan, 0.05).position == "unknown"
    assert h.check_paper_difference([0.01], 0.02, 0.05).position == "unknown"


def test_tost_equals_ttest_rel_with_an_offset() -> None:
    rng = np.random.default_rng(11)
    b = rng.uniform(0.6, 0.8, 10)
    a = b + rng.normal(0.002, 0.006, 10)
    margin = 0.01
    r = h.equivalence_test(a - b, margin, 0.05)
    assert r.p_lower == pytest.approx(stats.ttest_rel(a + margin, b, alternative="greater").pvalue)
    assert r.p_upper == pytest.approx(stats.ttest_rel(a - margin, b, alternative="less").pvalue)
    assert r.p_tost == max(r.p_lower, r.p_upper)
    assert r.p_difference == pytest.approx(h.sign_flip_p(a - b, "two-sided")[0])


def test_equivalent_exactly_when_the_90_interval_is_inside_the_margin() -> None:
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.015, 0.015), 0.01, 8)
        r = h.equivalence_test(d, 0.01, 0.05)
        inside = -0.01 < r.ci_low and r.ci_high < 0.01
        assert (r.p_tost < 0.05) == inside
        seen.add(inside)
    assert seen == {True, False}


@pytest.mark.parametrize(
    ("p_tost", "p_difference", "verdict", "note"),
    [
        (0.01, 0.5, h.EQUIVALENT, ""),
        (0.01, 0.01, h.EQUIVALENT, h.SMALL_DIFFERENCE_NOTE),
        (0.4, 0.01, h.DIFFERENT, ""),
        (0.4, 0.4, h.UNDECIDED, ""),
        (math.nan, 0.4, h.UNDECIDED, ""),
    ],
)
def test_equivalence_verdict(p_tost: float, p_difference: float, verdict: str, note: str) -> None:
    assert h.equivalence_verdict(p_tost, p_difference, 0.05) == (verdict, note)


@pytest.mark.parametrize(
    ("p_non_superior", "p_superior", "verdict", "note"),
    [
        (0.01, 0.5, h.NOT_SUPERIOR, ""),
        (0.01, 0.01, h.NOT_SUPERIOR, h.SMALL_SUPERIORITY_NOTE),
        (0.4, 0.01, h.SUPERIOR, ""),
        (0.4, 0.4, h.UNDECIDED, ""),
        (math.nan, 0.4, h.UNDECIDED, ""),
        (math.nan, math.nan, h.UNDECIDED, ""),
    ],
)
def test_non_superiority_verdict(p_non_superior: float, p_superior: float, verdict: str, note: str) -> None:
    assert h.non_superiority_verdict(p_non_superior, p_superior, 0.05) == (verdict, note)


@pytest.mark.parametrize("verdict", [h.equivalence_verdict, h.non_superiority_verdict])
def test_margin_verdicts_check_alpha(verdict: Callable[[float, float, float], tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        verdict(0.01, 0.01, 0.5)


def test_equivalence_on_data() -> None:
    tight = np.array([0.001, -0.002, 0.0, 0.002, -0.001, 0.001, 0.0, -0.001, 0.002, 0.0])
    assert own_verdict(h.equivalence_test(tight, 0.01, 0.05), 0.05) == (h.EQUIVALENT, "")
    # Significantly different from 0, but well within the margin.
    small = np.array([0.003, 0.004, 0.002, 0.003, 0.005, 0.004, 0.003, 0.002, 0.004, 0.003])
    assert own_verdict(h.equivalence_test(small, 0.01, 0.05), 0.05) == (h.EQUIVALENT, h.SMALL_DIFFERENCE_NOTE)
    far = small + 0.03
    assert own_verdict(h.equivalence_test(far, 0.01, 0.05), 0.05) == (h.DIFFERENT, "")
    noisy = np.array([0.05, -0.04, 0.03, -0.06, 0.02, -0.01, 0.04, -0.03])
    assert own_verdict(h.equivalence_test(noisy, 0.01, 0.05), 0.05) == (h.UNDECIDED, "")


def test_non_superiority() -> None:
    rng = np.random.default_rng(5)
    b = rng.uniform(0.6, 0.8, 10)
    a = b - np.array([0.02, 0.03, 0.01, 0.025, 0.02, 0.015, 0.03, 0.02, 0.01, 0.02])
    r = h.non_superiority_test(a - b, 0.01, 0.05)
    assert r.p_value == pytest.approx(stats.ttest_rel(a - 0.01, b, alternative="less").pvalue)
    assert r.upper == pytest.approx(stats.ttest_1samp(a - b, 0.0, alternative="less").confidence_interval(0.95).high)
    assert (r.p_value < 0.05) == (r.upper < 0.01)
    assert own_verdict(r, 0.05) == (h.NOT_SUPERIOR, "")
    better = np.full(10, 0.004) + rng.normal(0, 0.001, 10)
    assert own_verdict(h.non_superiority_test(better, 0.01, 0.05), 0.05) == (h.NOT_SUPERIOR, h.SMALL_SUPERIORITY_NOTE)
    assert own_verdict(h.non_superiority_test(better + 0.03, 0.01, 0.05), 0.05) == (h.SUPERIOR, "")
    noisy = np.array([0.05, -0.04, 0.03, -0.06, 0.02, -0.01, 0.04, -0.03])
    assert own_verdict(h.non_superiority_test(noisy, 0.01, 0.05), 0.05) == (h.UNDECIDED, "")


@pytest.mark.parametrize(
    ("d", "reason"), [([0.01], "fewer than 2 pairs"), ([0.01, 0.01, 0.01], "zero spread over seeds")]
)
def test_t_tests_undefined_say_why(d: list[float], reason: str) -> None:
    eq = h.equivalence_test(d, 0.05, 0.05)
    ns = h.non_superiority_test(d, 0.05, 0.05)
    assert eq.reason == ns.reason == reason
    assert math.isnan(eq.p_tost) and math.isnan(ns.p_value)
    assert own_verdict(eq, 0.05)[0] in (h.UNDECIDED, h.DIFFERENT)
    assert own_verdict(ns, 0.05)[0] in (h.UNDECIDED, h.SUPERIOR)


def test_one_pair_is_no_test() -> None:
    r = h.directional_test([0.02], "greater", 0.05)
    assert math.isnan(r.p_value) and r.reason == "fewer than 2 pairs"
    assert own_verdict(r, 0.05) == h.INCONCLUSIVE
    assert own_verdict(h.equivalence_test([0.0], 0.01, 0.05), 0.05) == (h.UNDECIDED, "")
    with pytest.raises(ValueError, match="at least 2 pairs"):
        h.sign_flip_p([0.02], "greater")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="non-empty 1-D"):
        h.directional_test([], "greater", 0.05)
    with pytest.raises(ValueError, match="non-finite"):
        h.sign_flip_p([0.1, math.nan, 0.2], "greater")
    with pytest.raises(ValueError, match="direction"):
        h.directional_test([0.1, 0.2], "bigger", 0.05)
    with pytest.raises(ValueError, match="margin"):
        h.equivalence_test([0.1, 0.2], 0.0, 0.05)
    with pytest.raises(ValueError, match="alpha"):
        h.non_superiority_test([0.1, 0.2], 0.01, 0.5)
