"""The two evaluation protocols and their metric names, for the whole package.

Every run is evaluated under both protocols (docs/design.md, "Run record"):

* ``paper``: the authors' protocol (Planetoid's validation mask, ENZYMES' 20 % held-out
  part); metrics ``last`` (the last evaluation) and ``best`` (the best one).
* ``standard``: train / validation / test with model selection on validation; metric
  ``test`` (test accuracy at the best validation accuracy).

A metric is ``metrics.<protocol>.<metric>`` in a run record and the column
``<protocol>_<metric>`` of ``runs.csv`` and ``summary.csv``.  The schema's enums of
``table_metric`` and ``references.<d>.protocol`` name the same things; a unit test keeps
them equal to this module.  Torch- and pandas-free: config validation reads it.
"""

from __future__ import annotations

__all__ = [
    "COMPARED_COLUMNS",
    "PROTOCOLS",
    "PROTOCOL_METRICS",
    "STANDARD_METRIC",
    "SUMMARY_METRICS",
    "TABLE_METRICS",
    "metric_column",
]

#: Protocol -> the metrics summarised (and tabulated) for it, in ``summary.csv`` order.
PROTOCOL_METRICS: dict[str, tuple[str, ...]] = {"paper": ("last", "best"), "standard": ("test",)}

#: The protocols, paper first.
PROTOCOLS: tuple[str, ...] = tuple(PROTOCOL_METRICS)

#: The metric of each protocol that claims and references compare: the paper's number
#: (its last evaluation) and the standard protocol's test accuracy.
_COMPARED_METRICS: dict[str, str] = {"paper": "last", "standard": "test"}


def metric_column(protocol: str, metric: str) -> str:
    """The ``runs.csv`` / ``summary.csv`` name of ``metrics.<protocol>.<metric>``."""
    return f"{protocol}_{metric}"


#: ``summary.csv`` metric -> its protocol (``paper_last``, ``paper_best``, ``standard_test``).
SUMMARY_METRICS: dict[str, str] = {
    metric_column(protocol, metric): protocol for protocol, metrics in PROTOCOL_METRICS.items() for metric in metrics
}

#: The ``(protocol, metric)`` pairs ``summary.csv`` holds, so the ones ``table_metric`` may name.
TABLE_METRICS: tuple[tuple[str, str], ...] = tuple(
    (protocol, metric) for protocol, metrics in PROTOCOL_METRICS.items() for metric in metrics
)

#: ``(protocol, metric)`` of the standard protocol's test accuracy: the second version of
#: every table, beside the configured ``table_metric``.
STANDARD_METRIC: tuple[str, str] = ("standard", _COMPARED_METRICS["standard"])

#: Protocol -> the ``runs.csv`` column claims and references compare.
COMPARED_COLUMNS: dict[str, str] = {protocol: metric_column(protocol, m) for protocol, m in _COMPARED_METRICS.items()}
