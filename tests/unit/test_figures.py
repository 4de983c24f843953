"""Figures 2-3: accuracy curves, one legend entry per experiment, honest labels, PDF/PNG written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import make_record, validated_config, write_records

from gsmoe.report.figures import build_figure, curves_frame, write_figure

CONFIG: dict[str, Any] = validated_config(
    experiments={
        "baseline": {"label": "Baseline", "model": {}},
        "moe4_softmax": {"label": "4 Experts (softmax)", "model": {}},
        "moe8": {"label": "8 Experts", "model": {}},
    },
    figures={
        "figure2": {"title": "Figure 2: Cora", "dataset": "Cora", "experiments": ["baseline", "moe4_softmax", "moe8"]}
    },
)
EXPERIMENTS: dict[str, Any] = CONFIG["experiments"]
FIGURE: dict[str, Any] = CONFIG["figures"]["figure2"]  # metric: the default, paper_acc


def figure_record(
    dataset: str, experiment: str, seed: int, offset: float = 0.0, epochs: list[int] | None = None
) -> dict[str, Any]:
    """A run record whose paper accuracy rises with the epoch, ``offset`` and the seed,
    evaluated at ``epochs`` (default 0, 10, ..., 40); ENZYMES is a graph dataset."""
    epochs = list(range(0, 50, 10)) if epochs is None else epochs
    curve = [min(1.0, 0.3 + 0.1 * i + offset + 0.01 * seed) for i in range(len(epochs))]
    graph = dataset == "ENZYMES"
    record = make_record(
        dataset,
        experiment,
        seed,
        curve=curve,
        task="graph" if graph else "node",
        config={"split": {"standard": [0.8, 0.1, 0.1], "paper": [0.8, 0.2], "seed_offset": 0}} if graph else {},
    )
    record["curves"]["epoch"] = list(epochs)
    return record


def all_records() -> list[dict[str, Any]]:
    records = [
        figure_record(dataset, experiment, seed, 0.02 * i)
        for i, experiment in enumerate(EXPERIMENTS)
        for dataset in ("Cora", "ENZYMES")
        for seed in range(3)
    ]
    return records


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def _mean_lines(fig, points: int = 5) -> list:
    """The mean line of each experiment (the legend's handles are not Axes lines)."""
    return [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == points]


def test_one_legend_entry_per_experiment_with_labels() -> None:
    fig = build_figure(all_records(), FIGURE, EXPERIMENTS)
    ax = fig.axes[0]
    assert _legend_texts(fig) == ["Baseline", "4 Experts (softmax)", "8 Experts"]
    assert fig.legends[0].get_title().get_text() == "mean ± 1 s.d. over 3 seeds"
    assert ax.get_legend() is None  # the figure's legend, not one inside the axes
    assert len(_mean_lines(fig)) == 3


def test_labels_say_what_each_protocol_measures() -> None:
    """Under the paper protocol Cora's "test" curve is the validation mask, ENZYMES' the 20 % held out."""
    fig = build_figure(all_records(), FIGURE, EXPERIMENTS)
    ax = fig.axes[0]
    assert ax.get_title() == (
        "Figure 2: Cora\nPaper protocol: the authors' test accuracy, measured on the Planetoid validation mask"
    )
    assert ax.get_ylabel() == "Accuracy on the Planetoid validation mask"
    assert ax.get_xlabel() == "Epoch (as numbered in the training log)"
    enzymes = build_figure(all_records(), {**FIGURE, "dataset": "ENZYMES"}, EXPERIMENTS).axes[0]
    assert enzymes.get_ylabel() == "Accuracy on the 20 % of graphs held out"
    standard = build_figure(all_records(), {**FIGURE, "metric": "test_acc"}, EXPERIMENTS).axes[0]
    assert standard.get_ylabel() == "Accuracy on the Planetoid test mask"
    assert "Standard protocol: test accuracy" in standard.get_title()


def test_epochs_numbered_as_in_the_log_on_integer_ticks() -> None:
    """curves.epoch is the 0-based loop index; the log (and so the plot) numbers epochs from 1."""
    fig = build_figure(all_records(), FIGURE, EXPERIMENTS)
    assert [list(line.get_xdata()) for line in _mean_lines(fig)] == [[1, 11, 21, 31, 41]] * 3
    # a smoke run's three epochs: ticks 1, 2, 3, not 0.25 steps
    smoke = [figure_record("Cora", e, s, epochs=[0, 1, 2]) for e in EXPERIMENTS for s in range(2)]
    fig = build_figure(smoke, FIGURE, EXPERIMENTS)
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks == [1, 2, 3]


def test_legend_outside_the_data_and_lines_distinguishable() -> None:
    fig = build_figure(all_records(), FIGURE, EXPERIMENTS)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend, axes = fig.legends[0].get_window_extent(renderer), fig.axes[0].get_window_extent(renderer)
    assert not legend.overlaps(axes)
    # where the bands overlap, each line keeps its own dash pattern and marker
    lines = _mean_lines(fig)
    assert len({line.get_marker() for line in lines}) == 3
    assert [line.get_linestyle() for line in lines].count("-") == 1  # the others dashed


def test_only_the_figure_dataset_is_plotted() -> None:
    data = curves_frame(all_records(), "ENZYMES", ["baseline"], "paper_acc")
    assert len(data) == 3 * 5
    assert set(data.experiment) == {"baseline"}


def test_unequal_seed_counts() -> None:
    records = [r for r in all_records() if not (r["experiment"] == "moe8" and r["seed"] == 2)]
    fig = build_figure(records, FIGURE, EXPERIMENTS)
    assert _legend_texts(fig) == ["Baseline (n=3)", "4 Experts (softmax) (n=3)", "8 Experts (n=2)"]
    assert fig.legends[0].get_title().get_text() == "mean ± 1 s.d. over n seeds"


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
    with pytest.raises(ValueError, match="unknown figure metric"):
        build_figure(all_records(), {**FIGURE, "metric": "roles"}, EXPERIMENTS)
    old = all_records()
    del old[0]["task"]
    with pytest.raises(ValueError, match=r"Cora/baseline/seed0.*lack 'task'"):
        build_figure(old, FIGURE, EXPERIMENTS)


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
