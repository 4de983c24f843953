"""The paper's Figures 2-3: accuracy against epoch, one line per experiment, band over seeds.

Honest about what is plotted: the title and the y-axis name the protocol and the nodes or
graphs a curve is measured on (the paper protocol's "test" curve is the Planetoid validation
mask, or the graphs held out; :mod:`gsmoe.report.evaluation_sets`).  Epochs are numbered as in the
training log (1-based: the evaluation after the first epoch is epoch 1), on integer ticks.
Where bands overlap (ENZYMES), each line keeps its own dash pattern and marker, bands are
light, and the legend sits below the axes, outside the data.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no
pyplot), so nothing here depends on, or changes, the process-wide backend or keeps figures
alive in pyplot's registry.  Output is written atomically and made as byte-stable as
matplotlib allows (no creation dates or version strings in the files).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gsmoe.io import atomic_path
from gsmoe.report.aggregate import load_runs
from gsmoe.report.evaluation_sets import evaluation_set

__all__ = ["build_figure", "curves_frame", "write_figure"]

#: Curve of the run record -> (protocol in words, set it reads: gsmoe.report.evaluation_sets).
_CURVES: dict[str, tuple[str, str]] = {
    "paper_acc": ("Paper protocol: the authors' test accuracy", "paper"),
    "test_acc": ("Standard protocol: test accuracy", "test"),
    "val_acc": ("Standard protocol: validation accuracy", "val"),
    "train_acc": ("Training accuracy", "train"),
    "train_loss": ("Training loss", "train"),
}

#: Line styles, cycled: a line stays recognisable where its band overlaps others.
_DASHES: list[tuple[float, ...]] = [(), (5, 2), (1.5, 1.5), (6, 2, 1.5, 2), (3, 1.2, 3, 1.2, 1, 1.2)]
_MARKERS: list[str] = ["o", "s", "^", "D", "v", "P", "X"]

# Fixed metadata: matplotlib otherwise stamps the creation time and its version into both
# files, so identical data would give different bytes (and spurious diffs) on every run.
_PDF_METADATA: dict[str, Any] = {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}
_PNG_METADATA: dict[str, Any] = {"Software": None}


def curves_frame(
    records: Sequence[Mapping[str, Any]], dataset: str, experiments: Sequence[str], metric: str
) -> pd.DataFrame:
    """Long frame ``experiment, seed, epoch, value`` of ``curves[metric]`` for one dataset.

    Raises ``ValueError`` naming the run if a curve is missing, has a length other than
    ``curves["epoch"]`` or holds a non-finite value.
    """
    rows = []
    for record in records:
        if record["dataset"] != dataset or record["experiment"] not in experiments:
            continue
        rid = f"{record['dataset']}/{record['experiment']}/seed{record['seed']}"
        curves = record.get("curves") or {}
        if "epoch" not in curves or metric not in curves:
            raise ValueError(f"run {rid}: curves lack 'epoch' or {metric!r}")
        epochs, values = curves["epoch"], curves[metric]
        if len(epochs) != len(values):
            raise ValueError(f"run {rid}: curves.{metric} has {len(values)} points, curves.epoch {len(epochs)}")
        for epoch, value in zip(epochs, values, strict=True):
            if value is None or not math.isfinite(value):
                raise ValueError(f"run {rid}: curves.{metric} has a non-finite value at epoch {epoch}")
            rows.append(
                {"experiment": record["experiment"], "seed": int(record["seed"]), "epoch": epoch, "value": value}
            )
    return pd.DataFrame(rows, columns=["experiment", "seed", "epoch", "value"])


def _describe(records: Sequence[Mapping[str, Any]], dataset: str, metric: str) -> tuple[str, str]:
    """Subtitle and y-label of ``metric`` on ``dataset``, from the task and split its records ran with."""
    protocol, which = _CURVES[metric]
    runs = [r for r in records if r["dataset"] == dataset]
    lacking = [f"{r['dataset']}/{r['experiment']}/seed{r['seed']}" for r in runs if "task" not in r]
    if lacking:
        raise ValueError(f"run record(s) {lacking[:3]} lack 'task' (node | graph); rerun them to rewrite the records")
    tasks = {str(r["task"]) for r in runs}
    if len(tasks) != 1:
        raise ValueError(f"runs on {dataset} must share one task to describe the curve, got {sorted(tasks)}")
    split = (runs[0].get("config") or {}).get("split")
    where = evaluation_set(which, tasks.pop(), split)
    if metric == "train_loss":
        return f"{protocol}, mean over {where}", "Training loss"
    return f"{protocol}, measured on {where}", f"Accuracy on {where}"


def build_figure(
    records: Sequence[Mapping[str, Any]], figure_cfg: Mapping[str, Any], experiments_cfg: Mapping[str, Any]
) -> Figure:
    """Draw one figure and return it (not saved), so tests can inspect its Axes.

    Args:
        records: run records (see docs/design.md); other datasets/experiments are ignored.
        figure_cfg: ``{title, dataset, experiments: [...], metric (curve)}``, a validated
            ``config["figures"]`` entry.
        experiments_cfg: ``config["experiments"]`` (its labels label the lines).

    The band is ± 1 sample standard deviation over seeds.  Title and y-label say what the
    curve measures on this dataset, from the records' ``task`` and ``config.split``.

    An experiment without runs for the dataset is left out with a warning; no runs at all
    is an error.
    """
    dataset = str(figure_cfg["dataset"])
    experiments = [str(e) for e in figure_cfg["experiments"]]
    metric = str(figure_cfg["metric"])
    unknown = [e for e in experiments if e not in experiments_cfg]
    if unknown:
        raise ValueError(f"figure names unknown experiments {unknown}")
    if metric not in _CURVES:
        raise ValueError(f"unknown figure metric {metric!r}; known: {sorted(_CURVES)}")
    data = curves_frame(records, dataset, experiments, metric)
    if data.empty:
        raise ValueError(f"no runs of {experiments} on {dataset} to plot")

    seeds = data.groupby("experiment")["seed"].nunique()
    present = [e for e in experiments if e in seeds.index]
    absent = [e for e in experiments if e not in seeds.index]
    if absent:
        warnings.warn(f"figure {figure_cfg['title']!r}: no runs on {dataset} for {absent}", stacklevel=2)
    same_n = seeds.nunique() == 1
    # Per-line seed counts only when they differ; otherwise once in the legend title.
    labels = {
        e: str(experiments_cfg[e]["label"]) + ("" if same_n else f" (n={seeds[e]})") for e in present
    }
    data["label"] = data["experiment"].map(labels)
    legend_title = f"mean ± 1 s.d. over {int(seeds.iloc[0]) if same_n else 'n'} seeds"
    subtitle, y_label = _describe(records, dataset, metric)
    # The record's curves.epoch is the 0-based loop index of the epoch after which the model
    # was evaluated; the training log numbers that epoch from 1 (epoch 1/300 ... 300/300).
    data["epoch"] = data["epoch"] + 1
    n_points = data["epoch"].nunique()
    hue_order = [labels[e] for e in present]

    with matplotlib.rc_context({"pdf.fonttype": 42}), sns.axes_style("whitegrid"):
        fig = Figure(figsize=(7.0, 5.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        sns.lineplot(
            data=data,
            x="epoch",
            y="value",
            hue="label",
            hue_order=hue_order,
            style="label",
            style_order=hue_order,
            palette=sns.color_palette("colorblind", len(present)),
            dashes=[_DASHES[i % len(_DASHES)] for i in range(len(present))],
            markers=[_MARKERS[i % len(_MARKERS)] for i in range(len(present))],
            errorbar="sd",
            err_kws={"alpha": 0.1, "linewidth": 0},
            linewidth=1.6,
            markersize=4.5,
            markevery=max(1, round(n_points / 10)),  # about ten markers a line, not one per evaluation
            ax=ax,
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Epoch (as numbered in the training log)")
        ax.set_ylabel(y_label)
        ax.set_title(f"{figure_cfg['title']}\n{subtitle}", fontsize="medium")
        handles, texts = ax.get_legend_handles_labels()
        ax.get_legend().remove()
        fig.legend(
            handles,
            texts,
            loc="outside lower center",
            ncols=2,
            title=legend_title,
            title_fontsize="small",
            fontsize="small",
            frameon=False,
        )
    return fig


def write_figure(
    run_paths: Sequence[str],
    figure_cfg: Mapping[str, Any],
    experiments_cfg: Mapping[str, Any],
    out_pdf: str,
    out_png: str,
) -> None:
    """Load run records, draw the figure (:func:`build_figure`) and write PDF and PNG atomically."""
    fig = build_figure(load_runs(run_paths), figure_cfg, experiments_cfg)
    with atomic_path(out_pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=_PDF_METADATA)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=200, metadata=_PNG_METADATA)
