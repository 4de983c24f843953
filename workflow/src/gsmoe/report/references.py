"""Sanity check of our plain GraphSAGE against published accuracies (``config["references"]``).

Per dataset, the mean accuracy of a plain GraphSAGE run (``experiment``) under
``protocol`` against a published reference value; ``|ours - reference| > tolerance`` is
flagged.  References come from other papers with other protocols and sometimes another
model (each entry says which), so a flag asks for a look, not a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from gsmoe.protocols import COMPARED_COLUMNS
from gsmoe.report.stats import summary_stats
from gsmoe.report.verdicts import checked_runs, seed_values

__all__ = ["REFERENCE_COLUMNS", "check_references"]

#: Columns of the sanity table (:func:`check_references`).
REFERENCE_COLUMNS: list[str] = [
    "dataset",
    "experiment",
    "protocol",
    "metric",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "reference",
    "reference_model",
    "source",
    "difference",
    "tolerance",
    "flag",
    "note",
]


def check_references(runs: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Our plain-GraphSAGE accuracy per dataset against ``config["references"]``.

    ``config`` is validated (``references`` with defaults filled, ``claims_alpha``: the
    interval is at level ``1 - claims_alpha``).  One row per reference (columns
    :data:`REFERENCE_COLUMNS`); ``flag`` is True when ``|mean - reference| > tolerance``;
    no runs -> ``n`` 0, no flag, a note.
    """
    runs = checked_runs(runs)
    confidence = 1.0 - config["claims_alpha"]
    rows = []
    for dataset, ref in config["references"].items():
        experiment, protocol = ref["experiment"], ref["protocol"]
        metric = COMPARED_COLUMNS[protocol]
        tolerance = float(ref["tolerance"])
        value = float(ref["value"])
        values = seed_values(runs, str(dataset), experiment, metric)
        row: dict[str, Any] = {
            "dataset": dataset,
            "experiment": experiment,
            "protocol": protocol,
            "metric": metric,
            "n": len(values),
            "reference": value,
            "reference_model": ref["model"],
            "source": ref["source"],
            "tolerance": tolerance,
            "flag": False,
            "note": ref["note"],
        }
        if values:
            s = summary_stats(list(values.values()), confidence)
            diff = s.mean - value
            flag = abs(diff) > tolerance
            row.update(mean=s.mean, ci_low=s.ci_low, ci_high=s.ci_high, difference=diff, flag=flag)
            if flag:
                side = "below" if diff < 0 else "above"
                row["note"] = "; ".join(
                    x
                    for x in (
                        f"far from the reference: {abs(diff):.3f} {side} (tolerance {tolerance:.2f})",
                        row["note"],
                    )
                    if x
                )
        else:
            row["note"] = "; ".join(x for x in (f"no runs of {experiment} on {dataset}", row["note"]) if x)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=REFERENCE_COLUMNS)
    frame["flag"] = frame["flag"].astype(bool)
    return frame
