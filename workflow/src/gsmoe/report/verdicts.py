"""Do the paper's claims hold?  Each claim (:mod:`gsmoe.config.claims`) tested on ``runs.csv``.

Every claim is evaluated per dataset x protocol.  Protocols and the ``runs.csv`` column
each reads (:data:`gsmoe.protocols.COMPARED_COLUMNS`): ``paper`` -> ``paper_last`` (the
authors' evaluation), ``standard`` -> ``standard_test`` (test accuracy at the best
validation accuracy).

**Sample.**  The verdicts are computed on one sample of seeds
(:func:`gsmoe.report.design.design_seed_sets`, docs/claims_design.md): the confirmatory
seeds ``config["claims_design"]["confirmatory_seeds"]`` when there are any, else every seed
of ``config["seeds"]`` (the pilot).  Runs of other seeds are not used.  Pilot and
confirmatory runs are never pooled: with a confirmatory sample, the pilot's own verdicts
are computed separately and given beside (``pilot_verdict``, ``pilot_verdict_holm``),
so that a reader sees where the confirmatory run changed them.

**Tests** (:mod:`gsmoe.report.hypothesis`), on the paired differences ``d = a - b`` of
the seeds both experiments ran in the sample (unmatched seeds are left out and listed in
``note``; all tests are paired):

=============  ======================================  ==============  ====================================
expect         ``p_value`` (supports the claim)         ``verdict``     ``p_contrary`` (against it)
=============  ======================================  ==============  ====================================
greater, less  one-sided sign-flip, claimed direction  holds /         one-sided sign-flip, the opposite
                                                       does not hold /  direction
                                                       inconclusive
equal          TOST against ``±claims_design.margin``  equivalent /    two-sided sign-flip of ``d = 0``
               (the larger of the two one-sided t p)   different /
                                                       undecided
not_greater    one-sided t of H0 ``mean >= margin``    not superior /  one-sided sign-flip of ``a > b``
               (non-superiority)                       superior /
                                                       undecided
=============  ======================================  ==============  ====================================

The verdict is the first that applies: ``p_value < alpha`` gives the first verdict of the
row, else ``p_contrary < alpha`` the second, else the third (``alpha = claims_alpha``;
the rules and the notes of a difference smaller than the margin:
:mod:`gsmoe.report.hypothesis`).  A test that cannot reject (fewer than 2 pairs, zero
spread, too few pairs for the sign-flip test to reach alpha) lands in the third verdict.
``not run``: ``a`` or ``b`` has no run on the dataset in the sample.  ``n_sample`` is the
number of the sample's seeds; the reports mark the verdict of a row paired on fewer
(``n < n_sample``: runs still missing, a report with ``--allow-missing``) "n of n_sample
seeds" (:func:`seeds_mark`).

**The paper's difference** ``paper_diff = paper[a] - paper[b]`` (``config["experiments"]``)
against our two-sided ``1 - alpha`` t-interval ``[ci_low, ci_high]`` of ``d``:
``paper_position`` (inside / above / below / unknown) and ``paper_check`` ("the paper's
+0.060 is excluded: at most +0.031"), so that a claim can hold and still be overstated.

**Power** at the sample's ``n`` pairs (:func:`gsmoe.report.design.row_power`, power
``claims_design.power``): ``mde`` is the smallest true difference the one-sided test
detects (directional rows), or the smallest margin that equivalence or non-superiority can
be shown within at a true difference of 0; ``power`` the power at ``n`` for the row's
target (the paper's difference, or the margin); ``seeds_needed`` the pairs that give it
the requested power (empty beyond ``claims_design.max_confirmatory_seeds`` or without a
target).

**Holm.**  ``p_holm`` / ``p_contrary_holm``: Holm's step-down adjustment over the rows of
one protocol (each protocol a family, each of the two p-values of a row its own family);
``verdict_holm`` applies the rules to the adjusted p-values.  The main verdict is unadjusted.
A row without a p-value ("not run", too few pairs) is not in its family: while rows are
not run yet, the family is smaller than planned and the Holm verdicts are provisional.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gsmoe.config.claims import parse_claims
from gsmoe.protocols import COMPARED_COLUMNS
from gsmoe.report.design import design_seed_sets, row_power
from gsmoe.report.hypothesis import (
    check_paper_difference,
    directional_test,
    directional_verdict,
    equivalence_test,
    equivalence_verdict,
    non_superiority_test,
    non_superiority_verdict,
)
from gsmoe.report.seed_runs import checked_runs, paired_differences, paper_value, seed_values
from gsmoe.report.stats import holm

__all__ = [
    "CLAIM_COLUMNS",
    "CONFIRMATORY",
    "EXPECTATIONS",
    "NOT_RUN",
    "PILOT",
    "decide",
    "evaluate_claims",
    "paired_tests",
    "seeds_mark",
    "verdict_notes",
]

#: The expectations :func:`decide` knows (the schema's ``claim_expectation`` enum).
EXPECTATIONS: tuple[str, ...] = ("greater", "less", "equal", "not_greater")

NOT_RUN = "not run"
PILOT = "pilot"
CONFIRMATORY = "confirmatory"

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
    "sample",
    "paper_a",
    "paper_b",
    "paper_diff",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "confidence",
    "paper_position",
    "paper_check",
    "test",
    "p_value",
    "p_contrary",
    "p_holm",
    "p_contrary_holm",
    "n",
    "n_a",
    "n_b",
    "n_sample",
    "mde",
    "power",
    "seeds_needed",
    "verdict",
    "verdict_holm",
    "pilot_verdict",
    "pilot_verdict_holm",
    "note",
]


def decide(expect: str, p_value: float, p_contrary: float, alpha: float) -> tuple[str, str]:
    """``(verdict, note)`` of one row from its two p-values (the table in the module docstring).

    The p-values may be Holm-adjusted; a NaN p never rejects.
    """
    if expect in ("greater", "less"):
        return directional_verdict(p_value, p_contrary, alpha), ""
    if expect == "equal":
        return equivalence_verdict(p_value, p_contrary, alpha)
    if expect == "not_greater":
        return non_superiority_verdict(p_value, p_contrary, alpha)
    raise ValueError(f"decide: expect must be one of {list(EXPECTATIONS)}, got {expect!r}")


def paired_tests(d: np.ndarray, expect: str, alpha: float, margin: float) -> dict[str, Any]:
    """``test``, ``p_value``, ``p_contrary`` and ``reason`` of the row's test on ``d = a - b``.

    ``reason`` says why there is no p-value ('' when there is one); ``d`` may be empty.
    """
    if d.size == 0:
        return {"test": "", "p_value": math.nan, "p_contrary": math.nan, "reason": "no seed in common"}
    if expect in ("greater", "less"):
        r = directional_test(d, expect, alpha)
        return {"test": r.test, "p_value": r.p_value, "p_contrary": r.p_opposite, "reason": r.reason}
    if expect == "equal":
        e = equivalence_test(d, margin, alpha)
        test = f"TOST, paired t against ±{margin:g}; against: two-sided sign-flip of 0"
        return {"test": test, "p_value": e.p_tost, "p_contrary": e.p_difference, "reason": e.reason}
    if expect == "not_greater":
        s = non_superiority_test(d, margin, alpha)
        test = f"non-superiority, paired t against +{margin:g}; against: one-sided sign-flip of a > b"
        return {"test": test, "p_value": s.p_value, "p_contrary": s.p_superior, "reason": s.reason}
    raise ValueError(f"expect must be one of {list(EXPECTATIONS)}, got {expect!r}")


def _unmatched_note(va: Mapping[int, float], vb: Mapping[int, float]) -> str:
    only_a, only_b = sorted(set(va) - set(vb)), sorted(set(vb) - set(va))
    if not (only_a or only_b):
        return ""
    common = len(set(va) & set(vb))
    return f"paired on {common} common seeds; unmatched seeds a: {only_a}, b: {only_b}"


def seeds_mark(row: Mapping[str, Any]) -> str:
    """``"15 of 29 seeds"`` for a tested row of ``claims.csv`` paired on fewer seeds than its
    sample has (runs still missing); ``""`` for a complete or a "not run" row."""
    if row["verdict"] == NOT_RUN or int(row["n"]) >= int(row["n_sample"]):
        return ""
    return f"{int(row['n'])} of {int(row['n_sample'])} seeds"


def verdict_notes(row: Mapping[str, Any], column: str = "verdict") -> list[str]:
    """What the reports print beside the verdict ``column`` (``verdict`` or ``verdict_holm``)
    of a row of ``claims.csv``: for the main verdict the seeds it rests on where fewer than
    the sample's (:func:`seeds_mark`), and the pilot's verdict where a confirmatory sample
    gave another one."""
    notes = [seeds_mark(row)] if column == "verdict" else []
    pilot = row.get(f"pilot_{column}")
    if isinstance(pilot, str) and pilot and pilot != row[column]:
        notes.append(f"pilot: {pilot}")
    return [note for note in notes if note]


def _tested_row(
    va: Mapping[int, float], vb: Mapping[int, float], expect: str, paper_diff: float, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The statistics, power and verdict columns of one row whose two experiments both ran."""
    alpha = float(config["claims_alpha"])
    design = config["claims_design"]
    margin = float(design["margin"])
    d = paired_differences(va, vb)
    tested = paired_tests(d, expect, alpha, margin)
    verdict, verdict_note = decide(expect, tested["p_value"], tested["p_contrary"], alpha)
    power = row_power(
        d, expect, paper_diff, margin, alpha, float(design["power"]), int(design["max_confirmatory_seeds"])
    )
    check = check_paper_difference(d, paper_diff, alpha) if d.size else None
    notes = [tested["reason"], verdict_note, _unmatched_note(va, vb)]
    if not tested["reason"] and not math.isfinite(power.power):
        notes.append(power.note)  # no target: why there is no "seeds needed"
    return {
        "diff": float(d.mean()) if d.size else math.nan,
        "ci_low": check.ci_low if check else math.nan,
        "ci_high": check.ci_high if check else math.nan,
        "paper_position": check.position if check else "unknown",
        "paper_check": check.text() if check else "",
        "test": tested["test"],
        "p_value": tested["p_value"],
        "p_contrary": tested["p_contrary"],
        "n": int(d.size),
        "mde": power.mde,
        "power": power.power,
        "seeds_needed": power.pairs_needed,
        "verdict": verdict,
        "note": "; ".join(n for n in notes if n),
    }


def _evaluate_sample(runs: pd.DataFrame, config: Mapping[str, Any], sample: str, seeds: Sequence[int]) -> pd.DataFrame:
    """One row per claim x dataset x protocol on the runs of the sample's ``seeds``."""
    runs = runs[runs["seed"].isin(seeds)]
    alpha = float(config["claims_alpha"])
    configured = list(config["datasets"])
    rows: list[dict[str, Any]] = []
    for claim in parse_claims(config):
        for dataset in claim.datasets_for(configured):
            expect = claim.expectation(dataset)
            paper_a, paper_b = paper_value(config, claim.a, dataset), paper_value(config, claim.b, dataset)
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
                    "sample": sample,
                    "paper_a": paper_a,
                    "paper_b": paper_b,
                    "paper_diff": paper_a - paper_b,
                    "mean_a": float(np.mean(list(va.values()))) if va else math.nan,
                    "mean_b": float(np.mean(list(vb.values()))) if vb else math.nan,
                    "confidence": 1.0 - alpha,
                    "n": 0,
                    "n_a": len(va),
                    "n_b": len(vb),
                    "n_sample": len(seeds),
                    "paper_position": "unknown",
                    "paper_check": "",
                    "test": "",
                }
                if va and vb:
                    row.update(_tested_row(va, vb, expect, paper_a - paper_b, config))
                else:
                    absent = [e for e, v in ((claim.a, va), (claim.b, vb)) if not v]
                    row.update(verdict=NOT_RUN, note=f"no runs of {' and '.join(absent)} on {dataset} ({sample} seeds)")
                rows.append(row)
    frame = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    frame["seeds_needed"] = frame["seeds_needed"].astype("Int64")
    frame = frame.astype({"note": str, "test": str, "verdict": str, "paper_check": str, "paper_position": str})
    _add_holm(frame, alpha)
    return frame


def _add_holm(frame: pd.DataFrame, alpha: float) -> None:
    """Fill ``p_holm``, ``p_contrary_holm``, ``verdict_holm`` in place: one Holm family per protocol and p."""
    frame["p_holm"] = math.nan
    frame["p_contrary_holm"] = math.nan
    for _, idx in frame.groupby("protocol", sort=False).groups.items():
        frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p_value"].to_numpy(dtype=float))
        frame.loc[idx, "p_contrary_holm"] = holm(frame.loc[idx, "p_contrary"].to_numpy(dtype=float))
    frame["verdict_holm"] = [
        verdict
        if verdict == NOT_RUN
        else decide(expect, p, p_contrary, alpha)[0]
        for verdict, expect, p, p_contrary in zip(
            frame["verdict"], frame["expect"], frame["p_holm"], frame["p_contrary_holm"], strict=True
        )
    ]


def evaluate_claims(runs: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """One row per claim x dataset x protocol with the columns :data:`CLAIM_COLUMNS`.

    Args:
        runs: ``runs.csv`` as a frame (at least dataset, experiment, seed, paper_last,
            standard_test).
        config: the validated workflow config (at least ``claims``, ``claims_alpha``,
            ``claims_design``, ``seeds``, ``experiments``, ``datasets``).
    """
    runs = checked_runs(runs)
    pilot_seeds, confirmatory_seeds = design_seed_sets(config)
    pilot = _evaluate_sample(runs, config, PILOT, pilot_seeds)
    if not confirmatory_seeds:
        return pilot
    confirmatory = _evaluate_sample(runs, config, CONFIRMATORY, confirmatory_seeds)
    confirmatory["pilot_verdict"] = pilot["verdict"].to_numpy()
    confirmatory["pilot_verdict_holm"] = pilot["verdict_holm"].to_numpy()
    return confirmatory
