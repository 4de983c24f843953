"""The benchmark's targets (issue #6): ratios of measured rows against their bounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _row(rows: Sequence[dict[str, Any]], dataset: str, scope: str, workload: str) -> dict[str, Any] | None:
    for row in rows:
        if (row["dataset"], row["scope"], row["config"]) == (dataset, scope, workload):
            return row
    return None


def _check(dataset: str, scope: str, target: str, value: float, bound: float, passed: bool) -> dict[str, Any]:
    return {"dataset": dataset, "scope": scope, "target": target, "value": value, "bound": bound, "passed": passed}


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
                checks.append(_check(dataset, scope, "moe16: loop reference / vectorized >= 3",
                                     d16["speedup"], 3.0, d16["speedup"] >= 3.0))  # fmt: skip
            if top and d4:
                ratio = top["vectorized_ms"] / d4["vectorized_ms"]
                checks.append(_check(dataset, scope, "topk128 / moe4_softmax <= 1.5", round(ratio, 3), 1.5, ratio <= 1.5))
            if top and top["speedup"] != "":
                checks.append(_check(dataset, scope, "all 128 experts (loop reference) / topk128 >= 10",
                                     top["speedup"], 10.0, top["speedup"] >= 10.0))  # fmt: skip
            if top and d128:
                ratio = d128["vectorized_ms"] / top["vectorized_ms"]
                checks.append(_check(dataset, scope, "all 128 experts (vectorized moe128) / topk128 >= 10",
                                     round(ratio, 3), 10.0, ratio >= 10.0))  # fmt: skip
        mem_top = _row(rows, dataset, "memory", "topk128")
        mem_d4 = _row(rows, dataset, "memory", "moe4_softmax")
        if mem_top and mem_d4:
            for key, label in (("activation_mb", "activations"), ("peak_rss_mb", "everything")):
                ratio = mem_top[key] / max(mem_d4[key], 0.1)
                checks.append(_check(dataset, "memory", f"peak memory ({label}) topk128 / moe4_softmax <= 2",
                                     round(ratio, 3), 2.0, ratio <= 2.0))  # fmt: skip
    return checks
