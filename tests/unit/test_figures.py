"""Figures 2-3: accuracy curves, one legend entry per experiment, PDF/PNG written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import make_record, write_records

from gsmoe.report.figures import build_figure, curves_frame, write_figure

EXPERIMENTS: dict[str, Any] = {
    "baseline": {"label": "Baseline"},
    "moe4_softmax": {"label": "4 Experts (softmax)"},
    "moe8": {"label": "8 Experts"},
}

FIGURE: dict[str, Any] = {
    "title": "Test Accuracy on Cora Dataset",
    "dataset": "Cora",
    "experiments": ["baseline", "moe4_softmax", "moe8"],
    "metric": "paper_acc",
}


def _accuracy(seed: int, offset: float) -> list[float]:
    """Five evaluations, rising with the epoch, the experiment's offset and the seed."""
    return [min(1.0, 0.3 + 0.1 * i + offset + 0.01 * seed) for i in range(5)]


def all_records() -> list[dict[str, Any]]:
    records = [
        make_record(dataset, experiment, seed, curve=_accuracy(seed, 0.02 * i))
        for i, experiment in enumerate(EXPERIMENTS)
        for dataset in ("Cora", "ENZYMES")
        for seed in range(3)
    ]
    return records


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_one_legend_entry_per_experiment_with_labels() -> None:
    fig = build_figure(all_records(), FIGURE, EXPERIMENTS)
    ax = fig.axes[0]
    assert _legend_texts(fig) == ["Baseline", "4 Experts (softmax)", "8 Experts"]
    assert ax.get_legend().get_title().get_text() == "mean ± 1 s.d. over 3 seeds"
    assert ax.get_xlabel() == "Epoch"
    assert ax.get_ylabel().startswith("Test accuracy (paper")
    assert ax.get_title() == "Test Accuracy on Cora Dataset"
    # one mean line per experiment (the legend adds its own handles, not Axes lines)
    assert len([line for line in ax.get_lines() if len(line.get_xdata()) == 5]) == 3


def test_only_the_figure_dataset_is_plotted() -> None:
    data = curves_frame(all_records(), "ENZYMES", ["baseline"], "paper_acc")
    assert len(data) == 3 * 5
    assert set(data.experiment) == {"baseline"}


def test_ci_band_and_unequal_seed_counts() -> None:
    records = [r for r in all_records() if not (r["experiment"] == "moe8" and r["seed"] == 2)]
    fig = build_figure(records, {**FIGURE, "errorbar": "ci"}, EXPERIMENTS)
    assert _legend_texts(fig) == ["Baseline (n=3)", "4 Experts (softmax) (n=3)", "8 Experts (n=2)"]
    assert fig.axes[0].get_legend().get_title().get_text() == "mean, 95 % bootstrap CI over n seeds"


def test_missing_experiment_warns_and_is_left_out() -> None:
    records = [r for r in all_records() if r["experiment"] != "moe8"]
    with pytest.warns(UserWarning, match="moe8"):
        fig = build_figure(records, FIGURE, EXPERIMENTS)
    assert _legend_texts(fig) == ["Baseline", "4 Experts (softmax)"]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="no runs"):
        build_figure(all_records(), {**FIGURE, "dataset": "PubMed"}, EXPERIMENTS)
    with pytest.raises(ValueError, match="unknown experiments"):
        build_figure(all_records(), {**FIGURE, "experiments": ["nope"]}, EXPERIMENTS)
    bad = all_records()
    bad[0]["curves"]["paper_acc"][2] = float("nan")
    with pytest.raises(ValueError, match="Cora/baseline/seed0.*non-finite"):
        build_figure(bad, FIGURE, EXPERIMENTS)
    with pytest.raises(ValueError, match="errorbar"):
        build_figure(all_records(), {**FIGURE, "errorbar": "se"}, EXPERIMENTS)


def test_write_figure_pdf_png_deterministic(tmp_path: Path) -> None:
    paths = write_records(tmp_path / "runs", all_records())
    pdf, png = tmp_path / "fig" / "figure2.pdf", tmp_path / "fig" / "figure2.png"
    write_figure(paths, FIGURE, EXPERIMENTS, str(pdf), str(png))
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"CreationDate" not in pdf.read_bytes()
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["figure2.pdf", "figure2.png"]  # no temp files left
    first = (pdf.read_bytes(), png.read_bytes())
    write_figure(paths, FIGURE, EXPERIMENTS, str(pdf), str(png))
    assert (pdf.read_bytes(), png.read_bytes()) == first


def test_write_figure_rejects_non_finite_record(tmp_path: Path) -> None:
    record = make_record("Cora", "baseline", 0)
    record["metrics"]["paper"]["last"] = float("nan")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="Cora/baseline/seed0"):
        write_figure([str(path)], FIGURE, EXPERIMENTS, str(tmp_path / "f.pdf"), str(tmp_path / "f.png"))
    assert not (tmp_path / "f.pdf").exists()
