"""The runs a claim row compares, per seed: ``runs.csv`` checked, one experiment's values by
seed, the paired differences of two experiments, and the paper's values.

Shared by the verdicts (:mod:`gsmoe.report.verdicts`), the confirmatory design
(:mod:`gsmoe.report.design`) and the sanity check (:mod:`gsmoe.report.references`), so that
the three pair seeds the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gsmoe.protocols import COMPARED_COLUMNS

__all__ = ["checked_runs", "paired_differences", "paper_value", "seed_values"]

_RUN_KEY = ["dataset", "experiment", "seed"]


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


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> np.ndarray:
    """``a[s] - b[s]`` over the seeds both have, in seed order (the unmatched seeds are left out)."""
    return np.array([a[s] - b[s] for s in sorted(set(a) & set(b))], dtype=float)


def paper_value(config: Mapping[str, Any], experiment: str, dataset: str) -> float:
    """The paper's accuracy of ``experiment`` on ``dataset``; NaN where the paper gives none."""
    value = config["experiments"][experiment]["paper"].get(dataset)  # absent: the paper gives none
    return float(value) if value is not None else math.nan
