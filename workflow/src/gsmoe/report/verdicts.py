"""Do the paper's claims hold?  Each claim (:mod:`gsmoe.config.claims`) tested on ``runs.csv``.

Every claim is evaluated per dataset x protocol.  Protocols and the ``runs.csv`` column
each reads (:data:`gsmoe.protocols.COMPARED_COLUMNS`): ``paper`` -> ``paper_last`` (the
authors' evaluation), ``standard`` -> ``standard_test`` (test accuracy at the best
validation accuracy).

Statistics of one row (dataset x protocol), difference ``a - b`` of accuracies
(:func:`gsmoe.report.stats.compare_seeds`):

* **Paired** (the default): seeds present for both experiments are matched and
  :func:`gsmoe.report.stats.paired_difference` gives the mean difference, its Student-t
  interval at level ``1 - alpha`` and a two-sided sign-flip permutation p-value (exact up
  to 16 pairs).  Seeds run for only one of the two are left out and listed in ``note``.
* **Welch** when the two experiments share no seed: :func:`gsmoe.report.stats.welch`
  p-value, interval ``d ± t_{1-alpha/2, df} · sqrt(s_a²/n_a + s_b²/n_b)``.
* ``paper_diff`` is ``paper[a][dataset] - paper[b][dataset]`` from
  ``config["experiments"][<e>]["paper"]`` (NaN where the paper gives no value).

Verdict rules (``alpha = config["claims_alpha"]``; *significant* means ``p < alpha``; the
direction is the sign of the mean difference):

=============  =====================================  ===========================================
expect         holds                                  does not hold
=============  =====================================  ===========================================
greater        significant and ``a > b``              significant and ``a < b``
less           significant and ``a < b``              significant and ``a > b``
equal          not significant                        significant (either direction)
not_greater    not significant, or significant        significant and ``a > b``
               and ``a < b``
=============  =====================================  ===========================================

Everything else is ``inconclusive`` (for greater/less: not significant).  Before that,
a row is

* ``not run`` when ``a`` or ``b`` has no run on that dataset in ``runs.csv`` (e.g. the
  smoke config runs only Cora and ENZYMES);
* ``inconclusive`` when there are fewer than 2 pairs (paired) or fewer than 2 runs on a
  side (Welch), or when the test *cannot* reach ``alpha`` at all: the exact sign-flip
  test's smallest two-sided p is ``2 / 2^n`` (0.5 for 2 pairs, 0.0625 for 5), and without
  this guard ``equal`` and ``not_greater`` would "hold" merely because too few seeds ran.

"equal holds" therefore means "no significant difference was found", not "shown to be
equal"; the interval column says how large a difference is still compatible with the
runs.  The verdict uses the p-value (not the t-interval), so near the boundary the
interval may just include or exclude 0 while the permutation test says the opposite.
As an extra, ``p_holm`` / ``verdict_holm`` apply Holm's step-down adjustment over the rows
of one protocol that reach a verdict from a p-value (each protocol is a separate family);
the main verdict is unadjusted.  Holm guards greater/less/does-not-hold verdicts against
chance findings; for ``equal`` / ``not_greater`` a larger p makes "holds" *easier*, so
read ``verdict_holm`` of those rows as the lenient reading, not the safe one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gsmoe.config.claims import parse_claims
from gsmoe.protocols import COMPARED_COLUMNS
from gsmoe.report.stats import compare_seeds, holm

__all__ = [
    "CLAIM_COLUMNS",
    "EXPECTATIONS",
    "FAILS",
    "HOLDS",
    "INCONCLUSIVE",
    "NOT_RUN",
    "checked_runs",
    "decide",
    "evaluate_claims",
    "seed_values",
]

#: The expectations :func:`decide` knows (the schema's ``claim_expectation`` enum).
EXPECTATIONS: tuple[str, ...] = ("greater", "less", "equal", "not_greater")

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"

#: Columns of ``claims.csv``, in order.
CLAIM_COLUMNS: list[str] = [
    "claim",
    "group",
    "table",
    "text",
    "a",
    "b",
    "expect",
    "dataset",
    "protocol",
    "metric",
    "paper_a",
    "paper_b",
    "paper_diff",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "confidence",
    "p_value",
    "p_holm",
    "test",
    "paired",
    "n",
    "n_a",
    "n_b",
    "verdict",
    "verdict_holm",
    "note",
]

_RUN_KEY = ["dataset", "experiment", "seed"]


def decide(expect: str, diff: float, p_value: float, alpha: float) -> str:
    """Verdict for one tested row (the table in the module docstring).

    ``diff`` is the mean of ``a - b``; ``p_value`` the two-sided p of "no difference".
    A NaN p gives ``inconclusive``.
    """
    if expect not in EXPECTATIONS:
        raise ValueError(f"decide: expect must be one of {list(EXPECTATIONS)}, got {expect!r}")
    if not math.isfinite(p_value) or not math.isfinite(diff):
        return INCONCLUSIVE
    significant = p_value < alpha
    up = significant and diff > 0
    down = significant and diff < 0
    if expect == "greater":
        return HOLDS if up else FAILS if down else INCONCLUSIVE
    if expect == "less":
        return HOLDS if down else FAILS if up else INCONCLUSIVE
    if expect == "equal":
        return FAILS if significant else HOLDS
    # not_greater
    return FAILS if up else HOLDS


def checked_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with its key columns typed; ``ValueError`` for a missing column or a run twice."""
    missing = [c for c in _RUN_KEY + list(COMPARED_COLUMNS.values()) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {missing}")
    runs = runs.copy()
    runs["dataset"] = runs["dataset"].astype(str)
    runs["experiment"] = runs["experiment"].astype(str)
    runs["seed"] = runs["seed"].astype("int64")
    dup = runs[runs.duplicated(_RUN_KEY, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise ValueError(f"run {first['dataset']}/{first['experiment']}/seed{first['seed']} appears more than once")
    return runs


def seed_values(runs: pd.DataFrame, dataset: str, experiment: str, metric: str) -> dict[int, float]:
    """``{seed: value}`` of one experiment on one dataset (``runs`` from :func:`checked_runs`)."""
    sel = runs[(runs["dataset"] == dataset) & (runs["experiment"] == experiment)]
    values = {int(s): float(v) for s, v in zip(sel["seed"], sel[metric])}
    bad = [s for s, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{dataset}/{experiment}: {metric} is not finite for seed(s) {sorted(bad)}")
    return values


def _paper_value(config: Mapping[str, Any], experiment: str, dataset: str) -> float:
    value = config["experiments"][experiment]["paper"].get(dataset)  # absent: the paper gives none
    return float(value) if value is not None else math.nan


def evaluate_claims(runs: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """One row per claim x dataset x protocol with the columns :data:`CLAIM_COLUMNS`.

    Args:
        runs: ``runs.csv`` as a frame (at least dataset, experiment, seed, paper_last,
            standard_test).
        config: the validated workflow config (at least ``claims``, ``claims_alpha``,
            ``experiments``, ``datasets``).
    """
    runs = checked_runs(runs)
    alpha = config["claims_alpha"]
    configured = list(config["datasets"])
    rows: list[dict[str, Any]] = []
    testable: list[bool] = []  # a verdict was reached from a p-value (Holm may change it)
    for claim in parse_claims(config):
        for dataset in claim.datasets_for(configured):
            expect = claim.expectation(dataset)
            paper_a, paper_b = _paper_value(config, claim.a, dataset), _paper_value(config, claim.b, dataset)
            for protocol, metric in COMPARED_COLUMNS.items():
                va = seed_values(runs, dataset, claim.a, metric)
                vb = seed_values(runs, dataset, claim.b, metric)
                row: dict[str, Any] = {
                    "claim": claim.id,
                    "group": claim.group,
                    "table": claim.table,
                    "text": claim.text,
                    "a": claim.a,
                    "b": claim.b,
                    "expect": expect,
                    "dataset": dataset,
                    "protocol": protocol,
                    "metric": metric,
                    "paper_a": paper_a,
                    "paper_b": paper_b,
                    "paper_diff": paper_a - paper_b,
                    "mean_a": float(np.mean(list(va.values()))) if va else math.nan,
                    "mean_b": float(np.mean(list(vb.values()))) if vb else math.nan,
                    "confidence": 1.0 - alpha,
                    "n_a": len(va),
                    "n_b": len(vb),
                    "test": "",
                    "paired": False,
                    "note": "",
                }
                if not va or not vb:
                    absent = [e for e, v in ((claim.a, va), (claim.b, vb)) if not v]
                    row.update(verdict=NOT_RUN, note=f"no runs of {' and '.join(absent)} on {dataset}")
                    rows.append(row)
                    testable.append(False)
                    continue
                d = compare_seeds(va, vb, alpha)
                row.update(
                    diff=d.diff,
                    ci_low=d.ci_low,
                    ci_high=d.ci_high,
                    p_value=d.p_value,
                    test=d.test,
                    paired=d.paired,
                    n=d.n if d.paired else math.nan,
                    verdict=INCONCLUSIVE if d.reason else decide(expect, d.diff, d.p_value, alpha),
                    note="; ".join([*([d.reason] if d.reason else []), *d.notes]),
                )
                rows.append(row)
                testable.append(not d.reason)
    frame = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    frame = frame.astype({"paired": bool, "note": str, "test": str, "verdict": str})
    _add_holm(frame, alpha, testable)
    return frame


def _add_holm(frame: pd.DataFrame, alpha: float, testable: Sequence[bool]) -> None:
    """Fill ``p_holm`` / ``verdict_holm`` in place: one Holm family per protocol.

    Rows that are not ``testable`` (not run, too few seeds, undefined p) keep their verdict.
    """
    frame["p_holm"] = math.nan
    frame["verdict_holm"] = frame["verdict"]
    # Only rows that can reach a verdict form the family (a test that cannot reject adds nothing).
    p = frame["p_value"].where(pd.Series(list(testable), index=frame.index, dtype=bool))
    for _, idx in frame.groupby("protocol", sort=False).groups.items():
        frame.loc[idx, "p_holm"] = holm(p.loc[idx].to_numpy(dtype=float))
    for i, ok in zip(frame.index, testable):
        if ok and math.isfinite(frame.at[i, "p_holm"]):
            frame.at[i, "verdict_holm"] = decide(
                frame.at[i, "expect"], frame.at[i, "diff"], frame.at[i, "p_holm"], alpha
            )
