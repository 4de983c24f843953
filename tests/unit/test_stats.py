"""Statistics over seeds: summaries, t-intervals, Holm's adjustment."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from gsmoe.report.stats import holm, sample_std, summary_stats, t_interval


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


def test_holm_by_hand() -> None:
    out = holm([0.01, 0.04, 0.03, math.nan])
    assert out[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(out[3])
    assert holm([]).size == 0
