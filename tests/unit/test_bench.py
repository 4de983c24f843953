"""gsmoe.bench: the target checks, and quick end-to-end runs on ENZYMES from the mirror."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from gsmoe.bench import BATCH_SIZE, CONFIGS, DATASETS, QUICK_CONFIGS, WEIGHT_DECAY, main, targets
from gsmoe.config import experiment_datasets, load_config, resolve_run
from gsmoe.datasets import prepare_dataset

ROOT = Path(__file__).resolve().parents[2]
MIRROR = ROOT.parent / "shared" / "datasets"


def _row(config: str, scope: str = "layer", vectorized: float = 10.0, speedup: float | str = "", **memory: float) -> dict:
    return {"dataset": "Cora", "scope": scope, "config": config, "vectorized_ms": vectorized, "speedup": speedup, **memory}


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_workloads_use_the_configured_hyper_parameters(dataset: str) -> None:
    """The benchmark's fixed workloads (issue #6) train as config.yaml's runs do: a changed
    learning rate, dropout, weight decay or batch size there must be changed here too."""
    config = load_config(ROOT / "config.yaml")
    experiment = next(e for e in config["experiments"] if dataset in experiment_datasets(config, e))
    run = resolve_run(config, dataset, experiment, 0)
    expected = {"source": run["source"], "task": run["task"], "lr": run["training"]["lr"], "dropout": run["model"]["dropout"]}
    assert {key: DATASETS[dataset][key] for key in expected} == expected
    assert (run["training"]["weight_decay"], run["training"]["batch_size"], run["pyg_name"]) == (WEIGHT_DECAY, BATCH_SIZE, dataset)


def test_targets_pass_and_fail_on_their_bounds() -> None:
    rows = [
        _row("dense4", vectorized=10.0),
        _row("dense16", vectorized=20.0, speedup=3.0),  # exactly the bound: passes
        _row("top4of128_graph", vectorized=15.1, speedup=9.9),  # 1.51x dense4: fails; 9.9 < 10: fails
        _row("dense128", vectorized=151.0),  # 10x top-k: passes
        _row("dense4", "memory", activation_mb=10.0, peak_rss_mb=100.0),
        _row("top4of128_graph", "memory", activation_mb=20.0, peak_rss_mb=201.0),
    ]
    results = {(c["scope"], c["target"]): (c["value"], c["passed"]) for c in targets(rows)}
    assert results == {
        ("layer", "dense16: loop reference / vectorized >= 3"): (3.0, True),
        ("layer", "top4of128 (graph) / dense4 <= 1.5"): (1.51, False),
        ("layer", "all 128 experts (loop reference) / top4of128 (graph) >= 10"): (9.9, False),
        ("layer", "all 128 experts (vectorized dense128) / top4of128 (graph) >= 10"): (10.0, True),
        ("memory", "peak memory (activations) top4of128 (graph) / dense4 <= 2"): (2.0, True),
        ("memory", "peak memory (everything) top4of128 (graph) / dense4 <= 2"): (2.01, False),
    }


def test_targets_skip_what_was_not_measured() -> None:
    # no reference timing (speedup "") and no dense128: only the top-k / dense4 ratio is checked
    rows = [_row("dense4"), _row("dense16", speedup=""), _row("top4of128_graph", vectorized=12.0, speedup="")]
    assert [c["target"] for c in targets(rows)] == ["top4of128 (graph) / dense4 <= 1.5"]


@pytest.mark.skipif(not MIRROR.is_dir(), reason="local dataset mirror not available")
def test_quick_benchmark_writes_csv_and_markdown(tmp_path: Path) -> None:
    prepare_dataset("tu", "ENZYMES", [MIRROR / "tu" / "ENZYMES.zip"], tmp_path / "pyg" / "ENZYMES")
    out = tmp_path / "bench"
    threads = torch.get_num_threads()  # main() sets the process's torch threads (--threads 1)
    try:
        assert main(["--quick", "--no-memory", "--datasets", "ENZYMES", "--data-root", str(tmp_path / "pyg"),
                     "--out-dir", str(out)]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    with open(out / "moe_layer.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["scope"], r["config"]) for r in rows} == {(s, c) for s in ("layer", "step") for c in QUICK_CONFIGS}
    for row in rows:
        assert float(row["vectorized_ms"]) > 0 and float(row["reference_ms"]) > 0
        assert float(row["speedup"]) == pytest.approx(float(row["reference_ms"]) / float(row["vectorized_ms"]), rel=1e-2)
        assert int(row["num_experts"]) == CONFIGS[row["config"]]["num_experts"]
    markdown = (out / "moe_layer.md").read_text(encoding="utf-8")
    assert "## Targets" in markdown and "| ENZYMES | step | dense16: loop reference / vectorized >= 3 |" in markdown
    assert "- commit: " in markdown and "- threads: 1" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["moe_layer.csv", "moe_layer.md"]  # no temporary files left


@pytest.mark.skipif(not MIRROR.is_dir(), reason="local dataset mirror not available")
def test_products_measure_share_and_grid_floor(tmp_path: Path) -> None:
    prepare_dataset("tu", "ENZYMES", [MIRROR / "tu" / "ENZYMES.zip"], tmp_path / "pyg" / "ENZYMES")
    out = tmp_path / "bench"
    threads = torch.get_num_threads()
    try:
        assert main(["--products", "--product-epochs", "1", "--datasets", "ENZYMES", "--data-root", str(tmp_path / "pyg"),
                     "--out-dir", str(out), "--config", str(ROOT / "config.yaml")]) == 0  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    with open(out / "products.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    config = load_config(ROOT / "config.yaml")
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
