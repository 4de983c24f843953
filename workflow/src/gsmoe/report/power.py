"""Power of the paired tests of :mod:`gsmoe.report.hypothesis`, from a paired standard deviation.

All functions take the standard deviation ``sd`` of the paired differences (in a design:
the pilot's observed one, treated as the true one) and the number of pairs ``n``:

* :func:`t_test_power`: power of the paired t-test against a true mean difference
  ``effect``, exact from the noncentral t distribution (``scipy.stats.nct``, noncentrality
  ``effect * sqrt(n) / sd``, ``n - 1`` degrees of freedom), one-sided (``greater``: the
  effect is in the tested direction) or two-sided.
* :func:`tost_power`: power of the two one-sided tests of equivalence within ``±margin``
  at a true difference ``true_diff``.  TOST rejects when ``|mean| < margin - t_{1-alpha} s/sqrt(n)``:
  conditional on the sample sd ``s`` that is a normal probability for the mean, and ``s``
  has a scaled chi distribution, so the power is one integral over ``s`` (exact, no
  approximation beyond quadrature).
* :func:`minimal_detectable_effect`, :func:`minimal_equivalence_margin`: the smallest
  effect (margin) shown with the requested power at ``n`` pairs.
* :func:`pairs_needed`: the smallest ``n`` reaching the power, or None beyond a cap.

The verdicts of directional rows use the sign-flip permutation test, not the t-test; for
10 or more pairs the two have nearly the same power, and the t-test's is the one with a
closed form, so it is the planning figure (the permutation test's minimum p, ``1 / 2^n``
one-sided, is the other constraint: :func:`min_pairs_for_alpha`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from scipy import integrate as _integrate
from scipy import optimize as _optimize
from scipy import special as _special
from scipy import stats as _sps

__all__ = [
    "DEFAULT_POWER",
    "min_pairs_for_alpha",
    "minimal_detectable_effect",
    "minimal_equivalence_margin",
    "pairs_needed",
    "t_test_power",
    "tost_power",
]

DEFAULT_POWER = 0.8

Alternative = Literal["greater", "two-sided"]


def _check_inputs(sd: float, n: int, alpha: float) -> None:
    """The inputs every power and sample-size function shares: a positive spread of the
    differences, at least two pairs, alpha in (0, 0.5)."""
    if not (math.isfinite(sd) and sd > 0.0):
        raise ValueError(f"power needs a positive standard deviation of the differences, got {sd}")
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {n}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")


def _check_power(power: float) -> None:
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")


def t_test_power(effect: float, sd: float, n: int, alpha: float, alternative: Alternative = "greater") -> float:
    """Power of the paired t-test with ``n`` pairs when the true mean difference is ``effect``.

    ``greater``: one-sided test of ``mean > 0`` (a negative ``effect`` gives a power below
    ``alpha``); ``two-sided``: rejection in either tail.
    """
    _check_inputs(sd, n, alpha)
    df = n - 1
    nc = effect * math.sqrt(n) / sd
    if alternative == "greater":
        return float(_sps.nct.sf(_sps.t.ppf(1.0 - alpha, df), df, nc))
    if alternative == "two-sided":
        crit = _sps.t.ppf(1.0 - alpha / 2.0, df)
        return float(_sps.nct.sf(crit, df, nc) + _sps.nct.cdf(-crit, df, nc))
    raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")


def tost_power(true_diff: float, sd: float, n: int, margin: float, alpha: float) -> float:
    """Power of TOST (each one-sided test at ``alpha``) to show ``|mean| < margin``."""
    _check_inputs(sd, n, alpha)
    if not margin > 0.0:
        raise ValueError(f"margin must be positive, got {margin}")
    df = n - 1
    crit = float(_sps.t.ppf(1.0 - alpha, df))
    se = sd / math.sqrt(n)
    # Given s, TOST rejects iff |mean| < margin - crit * s / sqrt(n); (n-1) s^2 / sd^2 ~ chi2(df).
    # Beyond u_max the acceptance region is empty.
    u_max = df * (margin / (crit * se)) ** 2

    # The chi2(df) density by hand: scipy.stats' pdf costs more than the rest of the integrand.
    log_norm = -(df / 2.0) * math.log(2.0) - math.lgamma(df / 2.0)

    def given_u(u: float) -> float:
        if u <= 0.0:
            return 0.0
        half = margin - crit * se * math.sqrt(u / df)
        inside = _special.ndtr((half - true_diff) / se) - _special.ndtr((-half - true_diff) / se)
        return float(inside) * math.exp(log_norm + (df / 2.0 - 1.0) * math.log(u) - u / 2.0)

    value, _ = _integrate.quad(given_u, 0.0, u_max, limit=200)
    return min(1.0, max(0.0, value))


def _smallest(power_of: Callable[[float], float], power: float, scale: float) -> float:
    """Smallest x > 0 with ``power_of(x) >= power`` (power increasing in x); bracketed from ``scale``."""
    low, high = 1e-9 * scale, scale
    while power_of(high) < power:
        high *= 2.0
    return float(_optimize.brentq(lambda x: power_of(x) - power, low, high, xtol=1e-10 * scale))


def minimal_detectable_effect(
    sd: float, n: int, alpha: float, power: float = DEFAULT_POWER, alternative: Alternative = "greater"
) -> float:
    """Smallest true mean difference the paired t-test detects with ``power`` at ``n`` pairs."""
    _check_inputs(sd, n, alpha)
    _check_power(power)
    return _smallest(lambda e: t_test_power(e, sd, n, alpha, alternative), power, sd)


def minimal_equivalence_margin(
    sd: float, n: int, alpha: float, power: float = DEFAULT_POWER, true_diff: float = 0.0
) -> float:
    """Smallest margin TOST shows with ``power`` at ``n`` pairs when the true difference is ``true_diff``."""
    _check_inputs(sd, n, alpha)
    _check_power(power)
    return _smallest(lambda m: tost_power(true_diff, sd, n, m, alpha), power, sd + abs(true_diff))


def pairs_needed(power_at: Callable[[int], float], power: float, cap: int, start: int = 2) -> int | None:
    """Smallest ``n`` in ``[start, cap]`` with ``power_at(n) >= power``; None if none up to ``cap``.

    Scans every ``n`` (the power of a t-test is not exactly monotone in ``n`` at small ``n``
    for every configuration, and a cap of a few hundred costs milliseconds).
    """
    _check_power(power)
    if cap < start:
        raise ValueError(f"cap ({cap}) is below the smallest number of pairs ({start})")
    for n in range(start, cap + 1):
        if power_at(n) >= power:
            return n
    return None


def min_pairs_for_alpha(alpha: float, family_size: int = 1) -> int:
    """Fewest pairs for which the one-sided sign-flip test can reach ``alpha / family_size``.

    Its smallest p is ``1 / 2^n`` (all differences of one sign); Holm's first step compares
    the smallest p of a family of ``m`` with ``alpha / m``, so a family needs ``2^n > m / alpha``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if family_size < 1:
        raise ValueError(f"family_size must be at least 1, got {family_size}")
    return math.floor(math.log2(family_size / alpha)) + 1
