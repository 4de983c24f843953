"""Power of the paired tests: textbook values, Monte Carlo checks, inverses and the cap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gsmoe.report import power as pw


def test_textbook_sample_sizes() -> None:
    # Paired t-test, standardised effect 0.5, alpha 0.05, power 0.8 (G*Power, Cohen 1988):
    # 34 pairs two-sided, 27 one-sided.
    assert pw.pairs_needed(lambda n: pw.t_test_power(0.5, 1.0, n, 0.05, "two-sided"), 0.8, 200) == 34
    assert pw.pairs_needed(lambda n: pw.t_test_power(0.5, 1.0, n, 0.05, "greater"), 0.8, 200) == 27


def _simulated_t_power(effect: float, sd: float, n: int, alpha: float, alternative: str, reps: int = 40_000) -> float:
    x = np.random.default_rng(0).normal(effect, sd, (reps, n))
    alt = "greater" if alternative == "greater" else "two-sided"
    return float(np.mean(stats.ttest_1samp(x, 0.0, axis=1, alternative=alt).pvalue < alpha))


@pytest.mark.parametrize(
    ("effect", "n", "alternative"), [(0.01, 10, "greater"), (0.02, 6, "two-sided"), (-0.005, 12, "greater")]
)
def test_t_test_power_matches_simulation(effect: float, n: int, alternative: str) -> None:
    expected = _simulated_t_power(effect, 0.02, n, 0.05, alternative)
    assert pw.t_test_power(effect, 0.02, n, 0.05, alternative) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_power_at_no_effect_is_alpha(alternative: str) -> None:
    assert pw.t_test_power(0.0, 0.02, 8, 0.05, alternative) == pytest.approx(0.05, abs=1e-9)


def _simulated_tost_power(
    true_diff: float, sd: float, n: int, margin: float, alpha: float, reps: int = 100_000
) -> float:
    x = np.random.default_rng(1).normal(true_diff, sd, (reps, n))
    mean, se = x.mean(axis=1), x.std(axis=1, ddof=1) / np.sqrt(n)
    crit = stats.t.ppf(1 - alpha, n - 1)
    return float(np.mean((mean - crit * se > -margin) & (mean + crit * se < margin)))


@pytest.mark.parametrize(("true_diff", "n", "margin"), [(0.0, 10, 0.02), (0.005, 15, 0.015), (0.0, 4, 0.03)])
def test_tost_power_matches_simulation(true_diff: float, n: int, margin: float) -> None:
    expected = _simulated_tost_power(true_diff, 0.015, n, margin, 0.05)
    assert pw.tost_power(true_diff, 0.015, n, margin, 0.05) == pytest.approx(expected, abs=0.006)


def test_minimal_effects_invert_the_power() -> None:
    mde = pw.minimal_detectable_effect(0.02, 10, 0.05)
    assert pw.t_test_power(mde, 0.02, 10, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert pw.minimal_detectable_effect(1.0, 34, 0.05, alternative="two-sided") == pytest.approx(0.495, abs=0.002)
    # More pairs detect smaller effects.
    assert pw.minimal_detectable_effect(0.02, 30, 0.05) < mde
    margin = pw.minimal_equivalence_margin(0.02, 10, 0.05)
    assert pw.tost_power(0.0, 0.02, 10, margin, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert pw.minimal_equivalence_margin(0.02, 10, 0.05, true_diff=0.005) > margin


def test_pairs_needed_is_the_smallest_and_capped() -> None:
    def power_at(n: int) -> float:
        return pw.t_test_power(0.01, 0.02, n, 0.05)

    needed = pw.pairs_needed(power_at, 0.8, 100)
    assert needed is not None and power_at(needed) >= 0.8 > power_at(needed - 1)
    assert pw.pairs_needed(power_at, 0.8, needed - 1) is None
    assert pw.pairs_needed(power_at, 0.8, needed) == needed
    assert pw.pairs_needed(power_at, 0.8, 100, start=needed + 3) == needed + 3
    with pytest.raises(ValueError, match="cap"):
        pw.pairs_needed(power_at, 0.8, 1)


@pytest.mark.parametrize(("alpha", "family", "pairs"), [(0.05, 1, 5), (0.05, 30, 10), (0.0625, 1, 5), (0.05, 20, 9)])
def test_min_pairs_for_alpha(alpha: float, family: int, pairs: int) -> None:
    assert pw.min_pairs_for_alpha(alpha, family) == pairs
    assert 0.5**pairs < alpha / family <= 0.5 ** (pairs - 1)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="positive standard deviation"):
        pw.t_test_power(0.01, 0.0, 10, 0.05)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        pw.tost_power(0.0, 0.01, 1, 0.01, 0.05)
    with pytest.raises(ValueError, match="alternative"):
        pw.t_test_power(0.01, 0.01, 10, 0.05, "less")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="power"):
        pw.minimal_detectable_effect(0.01, 10, 0.05, power=80)
