"""Run records -> ``runs.csv`` (one row per run) and ``summary.csv`` (one row per cell).

A *cell* is one dataset x experiment x metric.  ``summary.csv`` is what the tables read,
so everything a table shows (n, mean, std, interval, the paper's value) is computed here
once.  :func:`aggregate_runs` is the single entry point the Snakemake rule calls.

Metric names in ``summary.csv`` are ``<protocol>_<name>`` (``paper_last``, ``paper_best``,
``standard_test``) with the protocol also in its own column, so a table configured as
``table_metric: {protocol: paper, metric: last}`` selects ``metric == "paper_last"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gsmoe.io import atomic_open, read_json
from gsmoe.protocols import SUMMARY_METRICS  # summarised metric -> its protocol
from gsmoe.report.stats import summary_stats
from gsmoe.report.verify import verify_records

__all__ = [
    "IncompleteRunsError",
    "RUN_COLUMNS",
    "RUN_TEXT_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_METRICS",
    "aggregate_runs",
    "check_complete",
    "load_runs",
    "read_csv_keeping_names",
    "runs_frame",
    "summarize",
    "write_csv",
]

# (path in the record, column in runs.csv); all must be finite numbers.
_NUMERIC_FIELDS: list[tuple[tuple[str, ...], str]] = [
    (("metrics", "paper", "last"), "paper_last"),
    (("metrics", "paper", "best"), "paper_best"),
    (("metrics", "paper", "best_epoch"), "paper_best_epoch"),
    (("metrics", "standard", "test"), "standard_test"),
    (("metrics", "standard", "val"), "standard_val"),
    (("metrics", "standard", "epoch"), "standard_epoch"),
    (("wall_time_s",), "wall_time_s"),
    (("num_parameters",), "num_parameters"),
    (("active_parameters",), "active_parameters"),
]

#: What produced each run, from its record's provenance: the package code's fingerprint
#: and the git commit it was trained at ("-dirty" with local changes; empty outside git).
_PROVENANCE_COLUMNS: list[str] = ["code_sha256", "git_commit"]

#: Columns of ``runs.csv``, in order.
RUN_COLUMNS: list[str] = [
    "dataset", "experiment", "seed", *(column for _, column in _NUMERIC_FIELDS), "device", *_PROVENANCE_COLUMNS,
]  # fmt: skip

#: The columns of ``runs.csv`` that hold text (the others are numbers).
RUN_TEXT_COLUMNS: tuple[str, ...] = ("dataset", "experiment", "device", *_PROVENANCE_COLUMNS)

#: Columns of ``summary.csv``, in order.
SUMMARY_COLUMNS: list[str] = [
    "dataset",
    "experiment",
    "protocol",
    "metric",
    "n",
    "n_expected",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "paper",
]



class IncompleteRunsError(RuntimeError):
    """Expected runs are missing; ``missing`` lists them as ``(dataset, experiment, seed)``."""

    def __init__(self, missing: list[tuple[str, str, int]]) -> None:
        self.missing = missing
        super().__init__(self.message())

    @property
    def listing(self) -> str:
        """The missing runs, without the advice."""
        lines = "\n".join(f"  {d} / {e} / seed {s}" for d, e, s in self.missing)
        return f"{len(self.missing)} expected run(s) missing (dataset / experiment / seed):\n{lines}"

    def message(self, switch: str = "allow_missing=True") -> str:
        """The listing and what to do, naming ``switch`` (the caller's way to allow missing runs)."""
        return f"{self.listing}\nRun them, or aggregate anyway with {switch} (n then records the true count)."


def _run_id(record: Mapping[str, Any], source: str | None = None) -> str:
    """``dataset/experiment/seedN`` (plus the file) for error messages."""
    rid = f"{record.get('dataset', '?')}/{record.get('experiment', '?')}/seed{record.get('seed', '?')}"
    return f"{rid} ({source})" if source else rid


def _get(record: Mapping[str, Any], keys: tuple[str, ...], rid: str) -> Any:
    node: Any = record
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"run {rid}: missing field {'.'.join(keys)}")
        node = node[key]
    return node


def _validate(record: Mapping[str, Any], source: str | None = None) -> None:
    """Raise ``ValueError`` naming the run if a field is missing or a metric is not finite."""
    rid = _run_id(record, source)
    for key in ("dataset", "experiment", "seed"):
        if key not in record:
            raise ValueError(f"run {rid}: missing field {key}")
    for keys, _ in _NUMERIC_FIELDS:
        value = _get(record, keys, rid)
        # bool is an int subclass; a True accuracy is a bug upstream, not a number.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"run {rid}: {'.'.join(keys)} is not a finite number: {value!r}")


def load_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read run records (JSON, see docs/design.md) and validate them.

    Raises ``ValueError`` naming the run and file for a missing field or a non-finite
    metric (a NaN accuracy would otherwise vanish from a mean without a trace).
    """
    records: list[dict[str, Any]] = []
    for path in paths:
        record = read_json(path)
        if not isinstance(record, dict):
            raise ValueError(f"{path}: a run record must be a JSON object")
        _validate(record, str(path))
        records.append(record)
    return records


def runs_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run with the columns :data:`RUN_COLUMNS`, sorted by dataset, experiment, seed.

    Raises ``ValueError`` on a duplicated (dataset, experiment, seed): two records for one
    run mean a stale file or a wrong path, and averaging both would count a seed twice.
    """
    rows = []
    seen: dict[tuple[str, str, int], str] = {}
    for record in records:
        _validate(record)
        key = (str(record["dataset"]), str(record["experiment"]), int(record["seed"]))
        if key in seen:
            raise ValueError(f"run {_run_id(record)} appears more than once")
        seen[key] = _run_id(record)
        row: dict[str, Any] = {"dataset": key[0], "experiment": key[1], "seed": key[2]}
        for keys, column in _NUMERIC_FIELDS:
            row[column] = _get(record, keys, _run_id(record))
        row["device"] = str(record.get("device", ""))
        code = (record.get("provenance") or {}).get("code") or {}
        row["code_sha256"] = code.get("sha256") or ""
        row["git_commit"] = (code.get("git_commit") or "") + ("-dirty" if code.get("git_dirty") else "")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    frame = frame.astype(
        {
            "seed": "int64",
            "paper_last": "float64",
            "paper_best": "float64",
            "paper_best_epoch": "int64",
            "standard_test": "float64",
            "standard_val": "float64",
            "standard_epoch": "int64",
            "wall_time_s": "float64",
            "num_parameters": "int64",
            "active_parameters": "int64",
        }
    )
    return frame.sort_values(["dataset", "experiment", "seed"], kind="stable").reset_index(drop=True)


def _paper_value(experiments_cfg: Mapping[str, Any] | None, experiment: str, dataset: str) -> float:
    """The paper's reported value for a cell, NaN if none (or no config given)."""
    if not experiments_cfg:
        return math.nan
    value = experiments_cfg[experiment]["paper"].get(dataset)  # absent: the paper gives none
    return float(value) if value is not None else math.nan


def summarize(
    runs_df: pd.DataFrame,
    confidence: float = 0.95,
    *,
    experiments_cfg: Mapping[str, Any] | None = None,
    expected: Sequence[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per dataset x experiment x metric with n, mean, sample std and t-interval.

    Args:
        runs_df: output of :func:`runs_frame`.
        confidence: level of the Student-t interval over seeds.
        experiments_cfg: ``config["experiments"]``; fills the ``paper`` column from each
            experiment's ``paper: {dataset: value}`` (NaN where absent).
        expected: the expected runs (``{dataset, experiment, seed}``); fills ``n_expected``
            so a table can flag cells with fewer seeds.  Without it, ``n_expected`` = ``n``.

    ``std``, ``ci_low`` and ``ci_high`` are NaN when ``n == 1`` (written as empty cells).
    """
    expected_counts: dict[tuple[str, str], int] = {}
    for run in expected or []:
        key = (str(run["dataset"]), str(run["experiment"]))
        expected_counts[key] = expected_counts.get(key, 0) + 1

    rows = []
    for (dataset, experiment), group in runs_df.groupby(["dataset", "experiment"], sort=True):
        for metric, protocol in SUMMARY_METRICS.items():
            s = summary_stats(group[metric].to_numpy(), confidence)
            rows.append(
                {
                    "dataset": dataset,
                    "experiment": experiment,
                    "protocol": protocol,
                    "metric": metric,
                    "n": s.n,
                    "n_expected": expected_counts.get((dataset, experiment), s.n) if expected is not None else s.n,
                    "mean": s.mean,
                    "std": s.std,
                    "ci_low": s.ci_low,
                    "ci_high": s.ci_high,
                    "paper": _paper_value(experiments_cfg, str(experiment), str(dataset)),
                }
            )
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame.astype({"n": "int64", "n_expected": "int64"})


def check_complete(
    records: Sequence[Mapping[str, Any]],
    expected: Sequence[Mapping[str, Any]],
    allow_missing: bool = False,
) -> list[tuple[str, str, int]]:
    """Compare records with the expected runs; return the missing ``(dataset, experiment, seed)``.

    Raises :class:`IncompleteRunsError` listing every missing run, unless ``allow_missing``,
    in which case it warns with the same list (and the summary's ``n`` shows the true count).
    """
    have = {(str(r["dataset"]), str(r["experiment"]), int(r["seed"])) for r in records}
    missing = sorted({(str(e["dataset"]), str(e["experiment"]), int(e["seed"])) for e in expected} - have)
    if missing:
        error = IncompleteRunsError(missing)
        if not allow_missing:
            raise error
        warnings.warn(error.listing, stacklevel=2)
    return missing


def read_csv_keeping_names(path: str | Path, columns: Sequence[str], text_columns: Sequence[str]) -> pd.DataFrame:
    """A CSV of ``columns`` this module wrote (``runs.csv``, ``summary.csv``): ``text_columns``
    as strings, the others numeric.  Only numeric columns read an empty cell as NaN, so a
    dataset or experiment called "NA" (or "None", "null", "nan") stays a name."""
    numeric = [column for column in columns if column not in text_columns]
    frame = pd.read_csv(
        path, dtype=dict.fromkeys(text_columns, str), keep_default_na=False, na_values={c: [""] for c in numeric}
    )
    for column in numeric:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column])
    return frame


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """``frame`` as ``runs.csv`` / ``summary.csv`` are written (atomically)."""
    # NaN -> empty cell (std when n = 1, no paper value); \n endings on every platform.
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, na_rep="", lineterminator="\n")


def aggregate_runs(
    run_paths: Sequence[str],
    expected: Sequence[Mapping[str, Any]],
    runs_csv: str,
    summary_csv: str,
    allow_missing: bool = False,
    *,
    experiments_cfg: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Load run records, verify them, check completeness, write ``runs.csv`` and
    ``summary.csv`` atomically.

    Args:
        run_paths: run record files.  Paths that do not exist are skipped and their runs
            reported as missing: :class:`IncompleteRunsError` lists every missing expected
            run (with ``allow_missing``, a warning does), not just the first absent file.
        expected: the run table, ``[{dataset, experiment, seed}, ...]``.
        runs_csv, summary_csv: output paths.
        allow_missing: warn instead of failing when expected runs are absent.
        experiments_cfg: ``config["experiments"]``, for the ``paper`` column of the summary
            (default: that of ``config``).
        confidence: level of the t-interval.
        config: today's validated config.  Every record is first verified against the
            run it stands for (:func:`gsmoe.report.verify.verify_records`, code checked as
            ``config["verify_code"]`` says); a mismatch raises
            :class:`~gsmoe.report.verify.RecordMismatchError` and nothing is written.  The
            workflow and ``python -m gsmoe report`` always pass it; without it (tests of
            the statistics) records are not verified.
    """
    present, absent = [], []
    for path in run_paths:
        (present if Path(path).exists() else absent).append(str(path))
    records = load_runs(present)
    if config is not None:
        verify_records(list(zip(present, records, strict=True)), config, verify_code=config["verify_code"])
        if experiments_cfg is None:
            experiments_cfg = config["experiments"]
    check_complete(records, expected, allow_missing=allow_missing)  # names every missing run
    if absent and not allow_missing:  # absent files of runs outside ``expected``
        raise FileNotFoundError(f"run record(s) not found: {', '.join(absent)}")
    runs = runs_frame(records)
    summary = summarize(runs, confidence, experiments_cfg=experiments_cfg, expected=expected)
    write_csv(runs, runs_csv)
    write_csv(summary, summary_csv)
