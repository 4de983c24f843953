"""gsmoe.bench: workloads from the config, the target checks, and quick end-to-end runs on
ENZYMES from the mirror (each measurement alone, writing only its own files)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch

from gsmoe.bench.cli import main
from gsmoe.bench.memory import bench_memory
from gsmoe.bench.targets import targets
from gsmoe.bench.workloads import QUICK_WORKLOADS, WORKLOADS, workload_run
from gsmoe.config import load_config, resolve_run
from gsmoe.datasets import prepare_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"
MIRROR = ROOT.parent / "shared" / "datasets"
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason="local dataset mirror not available")


def _row(config: str, scope: str = "layer", vectorized: float = 10.0, speedup: float | str = "", **memory: float) -> dict:
    return {"dataset": "Cora", "scope": scope, "config": config, "vectorized_ms": vectorized, "speedup": speedup, **memory}


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workloads_train_the_configured_runs(name: str) -> None:
    """A workload is its experiment's run as the config resolves it: a changed learning rate,
    dropout or model there is what the benchmark trains."""
    config = load_config(CONFIG)
    workload = WORKLOADS[name]
    assert workload.experiment in config["experiments"]
    changed = copy.deepcopy(config)
    changed["datasets"]["ENZYMES"]["training"]["lr"] = 0.123
    changed["datasets"]["ENZYMES"]["model"]["dropout"] = 0.25
    for cfg in (config, changed):
        expected = resolve_run(cfg, "ENZYMES", workload.experiment, 0)
        expected["model"].update(workload.model)
        assert workload_run(cfg, "ENZYMES", name) == expected
    run = workload_run(changed, "ENZYMES", name)
    assert (run["training"]["lr"], run["model"]["dropout"]) == (0.123, 0.25)


def test_targets_pass_and_fail_on_their_bounds() -> None:
    rows = [
        _row("moe4_softmax", vectorized=10.0),
        _row("moe16", vectorized=20.0, speedup=3.0),  # exactly the bound: passes
        _row("topk128", vectorized=15.1, speedup=9.9),  # 1.51x moe4_softmax: fails; 9.9 < 10: fails
        _row("moe128", vectorized=151.0),  # 10x top-k: passes
        _row("moe4_softmax", "memory", activation_mb=10.0, peak_rss_mb=100.0),
        _row("topk128", "memory", activation_mb=20.0, peak_rss_mb=201.0),
    ]
    results = {(c["scope"], c["target"]): (c["value"], c["passed"]) for c in targets(rows)}
    assert results == {
        ("layer", "moe16: loop reference / vectorized >= 3"): (3.0, True),
        ("layer", "topk128 / moe4_softmax <= 1.5"): (1.51, False),
        ("layer", "all 128 experts (loop reference) / topk128 >= 10"): (9.9, False),
        ("layer", "all 128 experts (vectorized moe128) / topk128 >= 10"): (10.0, True),
        ("memory", "peak memory (activations) topk128 / moe4_softmax <= 2"): (2.0, True),
        ("memory", "peak memory (everything) topk128 / moe4_softmax <= 2"): (2.01, False),
    }


def test_targets_skip_what_was_not_measured() -> None:
    # no reference timing (speedup "") and no moe128: only the top-k / moe4_softmax ratio is checked
    rows = [_row("moe4_softmax"), _row("moe16", speedup=""), _row("topk128", vectorized=12.0, speedup="")]
    assert [c["target"] for c in targets(rows)] == ["topk128 / moe4_softmax <= 1.5"]


@pytest.fixture(scope="module")
def pyg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyg")
    prepare_dataset("tu", "ENZYMES", [MIRROR / "tu" / "ENZYMES.zip"], root / "ENZYMES")
    return root


def _main(*args: str) -> int:
    threads = torch.get_num_threads()  # main() sets the process's torch threads (--threads 1)
    try:
        return main([*args, "--config", str(CONFIG)])
    finally:
        torch.set_num_threads(threads)


@needs_mirror
def test_quick_benchmark_writes_csv_and_markdown(tmp_path: Path, pyg_root: Path) -> None:
    out = tmp_path / "bench"
    assert _main("--quick", "--no-memory", "--datasets", "ENZYMES", "--data-root", str(pyg_root), "--out-dir", str(out)) == 0
    with open(out / "moe_layer.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["scope"], r["config"]) for r in rows} == {(s, c) for s in ("layer", "step") for c in QUICK_WORKLOADS}
    config = load_config(CONFIG)
    for row in rows:
        assert float(row["vectorized_ms"]) > 0 and float(row["reference_ms"]) > 0
        assert float(row["speedup"]) == pytest.approx(float(row["reference_ms"]) / float(row["vectorized_ms"]), rel=1e-2)
        assert int(row["num_experts"]) == workload_run(config, "ENZYMES", row["config"])["model"]["num_experts"]
    markdown = (out / "moe_layer.md").read_text(encoding="utf-8")
    assert "## Targets" in markdown and "| ENZYMES | step | moe16: loop reference / vectorized >= 3 |" in markdown
    assert "- commit: " in markdown and "- threads: 1" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["moe_layer.csv", "moe_layer.md"]  # no temporary files left


@needs_mirror
def test_memory_child_measures_a_workload(pyg_root: Path) -> None:
    rows = bench_memory(load_config(CONFIG), CONFIG, ["ENZYMES"], ["moe4_softmax"], pyg_root, 1, lambda _: None)
    assert [(r["dataset"], r["scope"], r["config"], r["num_experts"]) for r in rows] == [
        ("ENZYMES", "memory", "moe4_softmax", 4)
    ]
    memory = rows[0]
    assert memory["persistent_mb"] >= 0 and memory["step_mb"] >= memory["activation_mb"] >= 0
    assert memory["peak_rss_mb"] == pytest.approx(memory["persistent_mb"] + memory["step_mb"], abs=0.11)


@needs_mirror
def test_runs_time_every_experiment_alone(tmp_path: Path, pyg_root: Path) -> None:
    out = tmp_path / "bench"
    assert _main("runs", "--epochs", "1", "--datasets", "ENZYMES", "--data-root", str(pyg_root), "--out-dir", str(out)) == 0
    with open(out / "run_times.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    config = load_config(CONFIG)
    assert [r["experiment"] for r in rows] == list(config["experiments"])
    assert {int(r["full_epochs"]) for r in rows} == {config["datasets"]["ENZYMES"]["training"]["epochs"]}
    assert sorted(p.name for p in out.iterdir()) == ["run_times.csv"]  # no layer benchmark with it


@needs_mirror
def test_products_measure_share_and_grid_floor(tmp_path: Path, pyg_root: Path) -> None:
    out = tmp_path / "bench"
    args = ["--epochs", "1", "--datasets", "ENZYMES", "--data-root", str(pyg_root), "--out-dir", str(out)]
    assert _main("products", *args) == 0
    with open(out / "products.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    config = load_config(CONFIG)
    assert [r["experiment"] for r in rows] == list(config["experiments"])
    for row in rows:
        share, epoch_ms = float(row["product_share"]), float(row["epoch_ms"])
        assert 0 < share < 1 and epoch_ms > 0
        assert float(row["product_ms"]) == pytest.approx(share * epoch_ms, rel=1e-2)
        grid_epochs = config["datasets"]["ENZYMES"]["training"]["epochs"] * len(config["seeds"])
        assert float(row["grid_product_s"]) == pytest.approx(share * epoch_ms / 1e3 * grid_epochs, rel=1e-2)
    markdown = (out / "products.md").read_text(encoding="utf-8")
    total = sum(float(r["grid_product_s"]) for r in rows)
    assert f"All datasets: {total:.0f} core-seconds" in markdown and "| ENZYMES |" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["products.csv", "products.md"]


def test_unknown_dataset_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("runs", "--datasets", "enzymes") == 1
    assert capsys.readouterr().err.startswith("error: config: no dataset 'enzymes'; use one of Cora, PubMed, ENZYMES")
