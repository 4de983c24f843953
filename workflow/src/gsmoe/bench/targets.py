"""The benchmark's targets (issue #6): ratios of measured rows against their bounds."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any


def _row(rows: Sequence[dict[str, Any]], dataset: str, scope: str, workload: str) -> dict[str, Any] | None:
    for row in rows:
        if (row["dataset"], row["scope"], row["config"]) == (dataset, scope, workload):
            return row
    return None


_PASSES = {">=": operator.ge, "<=": operator.le}


def _target(
    dataset: str, scope: str, ratio_name: str, ratio: float, op: str, bound: float, digits: int | None = None
) -> dict[str, Any]:
    """One target row: ``ratio_name op bound`` (its text), the ratio (rounded to ``digits``
    for the table; passing is decided on the unrounded ratio) and whether it passed."""
    return {
        "dataset": dataset,
        "scope": scope,
        "target": f"{ratio_name} {op} {bound:g}",
        "value": ratio if digits is None else round(ratio, digits),
        "bound": bound,
        "passed": _PASSES[op](ratio, bound),
    }


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target per dataset and scope whose rows were measured: the value, the bound,
    pass or fail."""
    checks = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for scope in dict.fromkeys(r["scope"] for r in rows if r["dataset"] == dataset):
            if scope == "memory":
                continue
            d16 = _row(rows, dataset, scope, "moe16")
            d4 = _row(rows, dataset, scope, "moe4_softmax")
            top = _row(rows, dataset, scope, "topk128")
            d128 = _row(rows, dataset, scope, "moe128")
            if d16 and d16["speedup"] != "":
                checks.append(_target(dataset, scope, "moe16: loop reference / vectorized", d16["speedup"], ">=", 3.0))
            if top and d4:
                ratio = top["vectorized_ms"] / d4["vectorized_ms"]
                checks.append(_target(dataset, scope, "topk128 / moe4_softmax", ratio, "<=", 1.5, digits=3))
            if top and top["speedup"] != "":
                name = "all 128 experts (loop reference) / topk128"
                checks.append(_target(dataset, scope, name, top["speedup"], ">=", 10.0))
            if top and d128:
                ratio = d128["vectorized_ms"] / top["vectorized_ms"]
                name = "all 128 experts (vectorized moe128) / topk128"
                checks.append(_target(dataset, scope, name, ratio, ">=", 10.0, digits=3))
        mem_top = _row(rows, dataset, "memory", "topk128")
        mem_d4 = _row(rows, dataset, "memory", "moe4_softmax")
        if mem_top and mem_d4:
            for key, label in (("activation_mb", "activations"), ("peak_rss_mb", "everything")):
                ratio = mem_top[key] / max(mem_d4[key], 0.1)
                name = f"peak memory ({label}) topk128 / moe4_softmax"
                checks.append(_target(dataset, "memory", name, ratio, "<=", 2.0, digits=3))
    return checks
