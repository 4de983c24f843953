"""Statistics over seeds: summaries, t-intervals, paired sign-flip test, Welch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gsmoe.report.stats import (
    holm,
    min_attainable_p,
    paired_difference,
    sample_std,
    sign_flip_permutation_test,
    summary_stats,
    t_interval,
    welch,
)


def test_summary_matches_hand_computation() -> None:
    values = [0.70, 0.72, 0.75, 0.71]
    s = summary_stats(values)
    mean = sum(values) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    half = stats.t.ppf(0.975, 3) * std / 2
    assert s.n == 4
    assert s.mean == pytest.approx(mean)
    assert s.std == pytest.approx(std)
    assert (s.ci_low, s.ci_high) == pytest.approx((mean - half, mean + half))
    assert s.ci_low < s.mean < s.ci_high


def test_single_value_has_no_spread() -> None:
    s = summary_stats([0.7])
    assert s.mean == 0.7 and math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert math.isnan(sample_std([1.0]))


def test_zero_spread_gives_degenerate_interval() -> None:
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_bad_input_rejected() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        summary_stats([0.1, float("nan")])
    with pytest.raises(ValueError, match="empty"):
        summary_stats([])
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=95)


def test_permutation_exact_on_tiny_example() -> None:
    # d = (1, 2, 3): |mean| = 2.  Of the 8 sign vectors only (+,+,+) and (-,-,-) reach
    # |sum| = 6; the next largest is 4.  So p = 2/8 exactly.
    p, test = sign_flip_permutation_test([1.0, 2.0, 3.0])
    assert p == 0.25
    assert "exact" in test and "2^3" in test


def test_permutation_counts_ties() -> None:
    # d = (1, 1): sums over signs are 2, 0, 0, -2 -> p = 2/4; all-zero differences -> p = 1.
    assert sign_flip_permutation_test([1.0, 1.0])[0] == 0.5
    assert sign_flip_permutation_test([0.0, 0.0, 0.0])[0] == 1.0


def test_permutation_monte_carlo_is_seeded_and_close_to_exact() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=12)
    exact, _ = sign_flip_permutation_test(d)
    mc1, test = sign_flip_permutation_test(d, exact_max_n=4, n_resamples=20_000, seed=3)
    mc2, _ = sign_flip_permutation_test(d, exact_max_n=4, n_resamples=20_000, seed=3)
    assert "Monte Carlo" in test
    assert mc1 == mc2
    assert mc1 == pytest.approx(exact, abs=0.02)


def test_paired_difference_pairs_by_seed() -> None:
    a = {0: 0.75, 1: 0.74, 2: 0.78}
    b = {2: 0.70, 0: 0.71, 1: 0.71}  # different insertion order: pairing must use the seed
    r = paired_difference(a, b)
    d = [0.04, 0.03, 0.08]
    assert r.n == 3
    assert r.mean == pytest.approx(np.mean(d))
    assert r.ci_low < r.mean < r.ci_high
    half = stats.t.ppf(0.975, 2) * np.std(d, ddof=1) / math.sqrt(3)
    assert (r.ci_low, r.ci_high) == pytest.approx((np.mean(d) - half, np.mean(d) + half))
    assert r.p_value == 0.25  # all three positive: 2 of 8 sign vectors as extreme
    assert "exact" in r.test


def test_paired_difference_seed_mismatch() -> None:
    a, b = {0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.5, 1: 1.0}
    with pytest.raises(ValueError, match="only in a: \\[2\\]"):
        paired_difference(a, b)
    assert paired_difference(a, b, strict=False).n == 2
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: 1.0}, {1: 1.0}, strict=False)


def test_welch_matches_scipy() -> None:
    a = [0.71, 0.73, 0.70, 0.74, 0.72]
    b = {0: 0.69, 1: 0.70, 2: 0.66}
    r = welch(a, b)
    ref = stats.ttest_ind(a, list(b.values()), equal_var=False)
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert r.mean_diff == pytest.approx(np.mean(a) - np.mean(list(b.values())))
    if hasattr(ref, "df"):  # scipy >= 1.11 reports the Welch-Satterthwaite df
        assert r.df == pytest.approx(ref.df)
    assert (r.n_a, r.n_b) == (5, 3)
    with pytest.raises(ValueError, match="at least two"):
        welch([1.0], [1.0, 2.0])


def test_min_attainable_p() -> None:
    assert min_attainable_p(1) == 1.0
    assert min_attainable_p(2) == 0.5
    assert min_attainable_p(5) == pytest.approx(0.0625)
    assert min_attainable_p(6) < 0.05
    assert min_attainable_p(40) < 0.001  # Monte Carlo beyond 16 pairs


def test_holm_by_hand() -> None:
    out = holm([0.01, 0.04, 0.03, math.nan])
    assert out[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(out[3])
    assert holm([]).size == 0
