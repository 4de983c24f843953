"""Probe tables: accuracy, training accuracy and expert load of a probe's run records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gsmoe.config import validate_config
from gsmoe.overlay import resolve_base
from gsmoe.provenance import code_fingerprint
from gsmoe.report import probes
from gsmoe.report.aggregate import RUN_COLUMNS, RUN_TEXT_COLUMNS, read_csv_keeping_names
from gsmoe.report.verify import RecordMismatchError
from helpers import CONFIG_YAML, make_record, validated_config, with_provenance, write_records

TOPK = {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 8, "top_k": 2, "pool": "graph"}
PROBE = {"experiments": {"topk8_noiseless": {"label": "probe", "model": {**TOPK, "routing_noise": "none"},
                                             "datasets": ["Cora"]}}}  # fmt: skip
TABLE_METRIC = {"protocol": "paper", "metric": "last"}


def _topk_record(seed: int, last: float, load: list[float], config: dict) -> dict:
    record = make_record("Cora", "topk8_noiseless", seed, last, expert_load={"conv0.update": load, "conv1.update": load})
    record["curves"]["train_acc"][-1] = 0.9 - seed / 5
    return with_provenance(record, config)


def test_rows_hold_accuracy_training_accuracy_and_expert_load() -> None:
    config = validated_config(experiments=PROBE["experiments"], seeds=[0, 1])
    # seed 0 routes everything to experts 0 and 1 (load sums to k = 2); seed 1 spreads
    collapsed = [1.0, 1.0, 0, 0, 0, 0, 0, 0]
    spread = [0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0, 0]
    records = [_topk_record(0, 0.6, collapsed, config), _topk_record(1, 0.8, spread, config)]
    records.append(make_record("Cora", "baseline", 0, 0.5, config={"model": {"gate": "none"}}, expert_load={}))
    rows = probes.probe_rows(records, TABLE_METRIC)
    assert [(r["experiment"], r["n"]) for r in rows] == [("topk8_noiseless", 2), ("baseline", 1)]
    row = rows[0]
    assert row["table"] == "0.700 ± 0.141" and row["standard"] == "0.650 ± 0.141"
    assert row["train"] == "0.800 ± 0.141"  # the last training accuracy: 0.9 and 0.7
    assert row["experts_used"] == "4.0"  # 2 and 6 experts with load > 0
    assert row["busiest_k_share"] == "0.75"  # 2/2 and 1/2
    assert rows[1]["experts_used"] == "--" and rows[1]["table"] == "0.500"
    table = probes.probe_markdown(rows, TABLE_METRIC)
    assert table.splitlines()[0].startswith("| experiment | dataset | seeds | paper protocol, last | standard protocol, test |")
    assert len(table.splitlines()) == 4


def _config_files(tmp_path: Path) -> list[str]:
    probe = tmp_path / "probe.yaml"
    probe.write_text(yaml.safe_dump(PROBE), encoding="utf-8")
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("seeds: [0, 1]\n", encoding="utf-8")
    return [str(CONFIG_YAML), str(seeds), str(probe)]


def test_cli_prints_the_probe_table_of_verified_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _config_files(tmp_path)
    config = validate_config(resolve_base({"base": files}))
    write_records(tmp_path / "results" / "runs", [_topk_record(s, 0.7, [1.0, 1.0, 0, 0, 0, 0, 0, 0], config) for s in (0, 1)])
    assert probes.main(["--config", *files[:1], files[2], "--runs-dir", str(tmp_path / "results" / "runs")]) == 0
    assert "8 configured run(s) not found" in capsys.readouterr().err  # config.yaml's seeds 0-9: 2 of 10 exist
    runs_csv = tmp_path / "probe_runs.csv"
    args = ["--config", *files, "--runs-dir", str(tmp_path / "results" / "runs"), "--runs-csv", str(runs_csv)]
    assert probes.main(args) == 0
    out = capsys.readouterr().out
    assert "| topk8_noiseless | Cora | 2 | 0.700 ± 0.000 |" in out
    runs = read_csv_keeping_names(runs_csv, RUN_COLUMNS, RUN_TEXT_COLUMNS)
    assert runs["seed"].tolist() == [0, 1] and runs["code_sha256"].tolist() == [code_fingerprint()["sha256"]] * 2


def test_cli_refuses_records_of_other_settings(tmp_path: Path) -> None:
    files = _config_files(tmp_path)
    config = validated_config(experiments={"topk8_noiseless": {**PROBE["experiments"]["topk8_noiseless"],
                                                               "model": TOPK}}, seeds=[0, 1])  # fmt: skip
    write_records(tmp_path / "results" / "runs", [_topk_record(0, 0.7, [1.0, 1.0, 0, 0, 0, 0, 0, 0], config)])
    with pytest.raises(RecordMismatchError, match="routing_noise"):
        probes.main(["--config", *files, "--runs-dir", str(tmp_path / "results" / "runs")])
