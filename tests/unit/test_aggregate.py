"""Aggregation of run records into runs.csv and summary.csv."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import make_record, write_records
from scipy import stats

from gsmoe.report.aggregate import (
    RUN_COLUMNS,
    RUN_TEXT_COLUMNS,
    SUMMARY_COLUMNS,
    IncompleteRunsError,
    aggregate_runs,
    check_complete,
    load_runs,
    read_csv_keeping_names,
    runs_frame,
    summarize,
)

EXPERIMENTS = {
    "baseline": {"label": "Baseline", "paper": {"Cora": 0.71, "PubMed": 0.72, "ENZYMES": 0.31}},
    "moe4": {"label": "4 Experts", "paper": {"Cora": 0.75}},
    "extra": {"label": "Not in the paper", "paper": {}},  # as validation fills it
}


def expected_runs(datasets: list[str], experiments: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    return [{"dataset": d, "experiment": e, "seed": s} for d in datasets for e in experiments for s in seeds]


CORA_BASELINE = {0: 0.70, 1: 0.72, 2: 0.75}


@pytest.fixture
def full_set(tmp_path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    records = [make_record("Cora", "baseline", s, v) for s, v in CORA_BASELINE.items()]
    records += [make_record("Cora", "moe4", s, 0.76 + 0.01 * s) for s in range(3)]
    records += [make_record("ENZYMES", "baseline", s, 0.30 + 0.02 * s) for s in range(3)]
    expected = expected_runs(["Cora"], ["baseline", "moe4"], [0, 1, 2]) + expected_runs(["ENZYMES"], ["baseline"], [0, 1, 2])
    return write_records(tmp_path / "runs", records), expected


def test_runs_csv_one_row_per_run(tmp_path: Path, full_set) -> None:
    paths, expected = full_set
    aggregate_runs(paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"))
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs.columns) == RUN_COLUMNS
    assert len(runs) == 9
    assert not runs.duplicated(["dataset", "experiment", "seed"]).any()
    row = runs[(runs.dataset == "Cora") & (runs.experiment == "baseline") & (runs.seed == 1)].iloc[0]
    assert row.paper_last == 0.72
    assert row.paper_best == pytest.approx(0.73)
    assert row.paper_best_epoch == 20
    assert row.standard_test == pytest.approx(0.67)
    assert row.standard_val == pytest.approx(0.70)
    assert row.standard_epoch == 10
    assert row.wall_time_s == 2.5
    assert (row.num_parameters, row.active_parameters, row.device) == (1000, 800, "cpu")


def test_runs_csv_says_which_code_trained_each_run(tmp_path: Path) -> None:
    code = {"sha256": "0123e456" + "0" * 56, "files": 40, "git_commit": "1e5" + "a" * 37, "git_dirty": False}
    records = [
        make_record("Cora", "baseline", 0, provenance={"code": code, "data": {}}),
        make_record("Cora", "baseline", 1, provenance={"code": {**code, "git_dirty": True}, "data": {}}),
        make_record("Cora", "baseline", 2, provenance={"code": {**code, "git_commit": None}, "data": {}}),
    ]
    paths = write_records(tmp_path / "runs", records)
    runs_csv = tmp_path / "runs.csv"
    aggregate_runs(paths, expected_runs(["Cora"], ["baseline"], [0, 1, 2]), str(runs_csv), str(tmp_path / "s.csv"))
    runs = read_csv_keeping_names(runs_csv, RUN_COLUMNS, RUN_TEXT_COLUMNS)
    assert runs["code_sha256"].tolist() == [code["sha256"]] * 3  # a hex string that looks like a number stays text
    assert runs["git_commit"].tolist() == [code["git_commit"], code["git_commit"] + "-dirty", ""]


def test_summary_numbers_match_hand_computation(tmp_path: Path, full_set) -> None:
    paths, expected = full_set
    aggregate_runs(
        paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"), experiments_cfg=EXPERIMENTS
    )
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    # 3 cells (Cora baseline, Cora moe4, ENZYMES baseline) x 3 metrics
    assert len(summary) == 9
    assert set(summary.metric) == {"paper_last", "paper_best", "standard_test"}
    assert dict(zip(summary.metric, summary.protocol)) == {
        "paper_last": "paper",
        "paper_best": "paper",
        "standard_test": "standard",
    }

    cell = summary[(summary.dataset == "Cora") & (summary.experiment == "baseline") & (summary.metric == "paper_last")]
    cell = cell.iloc[0]
    values = np.array(list(CORA_BASELINE.values()))
    mean, std = values.mean(), values.std(ddof=1)
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=std / math.sqrt(3))
    assert cell.n == 3 and cell.n_expected == 3
    assert cell["mean"] == pytest.approx(mean)
    assert cell["std"] == pytest.approx(std)
    assert (cell.ci_low, cell.ci_high) == pytest.approx((low, high))
    assert cell.paper == 0.71

    enz = summary[(summary.dataset == "ENZYMES") & (summary.experiment == "baseline")]
    assert set(enz.paper) == {0.31}
    moe = summary[(summary.dataset == "Cora") & (summary.experiment == "moe4")]
    assert set(moe.paper) == {0.75}


def test_summary_paper_empty_when_not_reported(tmp_path: Path) -> None:
    records = [make_record("PubMed", "extra", s) for s in range(2)]
    paths = write_records(tmp_path / "runs", records)
    out = tmp_path / "summary.csv"
    aggregate_runs(
        paths,
        expected_runs(["PubMed"], ["extra"], [0, 1]),
        str(tmp_path / "r.csv"),
        str(out),
        experiments_cfg=EXPERIMENTS,
    )
    text = out.read_text()
    # trailing empty "paper" cell on every data line
    assert all(line.endswith(",") for line in text.splitlines()[1:])


def test_single_seed_std_is_empty(tmp_path: Path) -> None:
    paths = write_records(tmp_path / "runs", [make_record("Cora", "baseline", 0, 0.7)])
    out = tmp_path / "summary.csv"
    aggregate_runs(
        paths,
        expected_runs(["Cora"], ["baseline"], [0]),
        str(tmp_path / "r.csv"),
        str(out),
        experiments_cfg=EXPERIMENTS,
    )
    line = out.read_text().splitlines()[1]
    # dataset,experiment,protocol,metric,n,n_expected,mean,std,ci_low,ci_high,paper
    assert line == "Cora,baseline,paper,paper_last,1,1,0.7,,,,0.71"


def test_missing_runs_error_lists_every_missing_run(tmp_path: Path, full_set) -> None:
    paths, expected = full_set
    expected = expected + expected_runs(["PubMed"], ["baseline"], [0, 1])
    paths = [p for p in paths if not p.endswith("moe4/seed2.json")]
    with pytest.raises(IncompleteRunsError) as info:
        aggregate_runs(paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"))
    message = str(info.value)
    assert "3 expected run(s) missing" in message
    for needle in ("Cora / moe4 / seed 2", "PubMed / baseline / seed 0", "PubMed / baseline / seed 1"):
        assert needle in message
    assert info.value.missing == [("Cora", "moe4", 2), ("PubMed", "baseline", 0), ("PubMed", "baseline", 1)]
    assert not (tmp_path / "runs.csv").exists() and not (tmp_path / "summary.csv").exists()


def test_absent_record_files_are_listed_as_missing_runs(tmp_path: Path, full_set) -> None:
    """The rule passes every expected path; absent files (e.g. after --keep-going) give the
    list of missing runs, not a FileNotFoundError for the first one."""
    paths, expected = full_set
    for gone in ("Cora/moe4/seed2.json", "ENZYMES/baseline/seed0.json"):
        (tmp_path / "runs" / gone).unlink()
    with pytest.raises(IncompleteRunsError) as info:
        aggregate_runs(paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"))
    assert info.value.missing == [("Cora", "moe4", 2), ("ENZYMES", "baseline", 0)]
    assert not (tmp_path / "runs.csv").exists() and not (tmp_path / "summary.csv").exists()
    # an absent file of a run outside the expected table is still an error
    with pytest.raises(FileNotFoundError, match="run record.s. not found: .*seed2.json"):
        aggregate_runs(paths, expected[:1], str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"))


def test_allow_missing_warns_and_records_true_n(tmp_path: Path, full_set) -> None:
    paths, expected = full_set
    # The path of the missing run is still passed (as a rule would): it must be skipped.
    missing_path = str(tmp_path / "runs" / "Cora" / "moe4" / "seed2.json")
    Path(missing_path).unlink()
    with pytest.warns(UserWarning, match="Cora / moe4 / seed 2"):
        aggregate_runs(paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"), allow_missing=True)
    summary = pd.read_csv(tmp_path / "summary.csv")
    moe = summary[(summary.experiment == "moe4") & (summary.metric == "paper_last")].iloc[0]
    assert (moe.n, moe.n_expected) == (2, 3)
    assert moe["mean"] == pytest.approx(0.765)
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 8


def test_check_complete_returns_missing() -> None:
    records = [make_record("Cora", "baseline", 0)]
    assert check_complete(records, expected_runs(["Cora"], ["baseline"], [0])) == []
    with pytest.warns(UserWarning):
        assert check_complete(records, expected_runs(["Cora"], ["baseline"], [0, 1]), allow_missing=True) == [
            ("Cora", "baseline", 1)
        ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("last", float("nan")), ("best", float("inf")), ("last", None), ("last", "0.7")],
)
def test_non_finite_metric_rejected_naming_the_run(tmp_path: Path, field: str, value: Any) -> None:
    record = make_record("Cora", "moe4", 7)
    record["metrics"]["paper"][field] = value
    path = tmp_path / "bad.json"
    # write_json refuses NaN, as it should; a broken writer elsewhere might not.
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"Cora/moe4/seed7.*metrics\.paper\." + field):
        load_runs([path])


def test_missing_field_and_duplicates_rejected() -> None:
    record = make_record("Cora", "baseline", 0)
    del record["metrics"]["standard"]
    with pytest.raises(ValueError, match="Cora/baseline/seed0: missing field metrics.standard"):
        runs_frame([record])
    with pytest.raises(ValueError, match="more than once"):
        runs_frame([make_record("Cora", "baseline", 0), make_record("Cora", "baseline", 0)])


def test_summarize_without_config_and_confidence() -> None:
    df = runs_frame([make_record("Cora", "baseline", s, v) for s, v in CORA_BASELINE.items()])
    s90 = summarize(df, confidence=0.90)
    s95 = summarize(df)
    assert s90["paper"].isna().all()
    w90 = (s90.ci_high - s90.ci_low)[s90.metric == "paper_last"].iloc[0]
    w95 = (s95.ci_high - s95.ci_low)[s95.metric == "paper_last"].iloc[0]
    assert w90 < w95
