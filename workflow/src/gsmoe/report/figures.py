"""The paper's Figures 2-3: accuracy against epoch, one line per experiment, band over seeds.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no
pyplot), so nothing here depends on, or changes, the process-wide backend or keeps figures
alive in pyplot's registry.  Output is written atomically and made as byte-stable as
matplotlib allows (no creation dates or version strings in the files; a seeded bootstrap
when a confidence band is asked for).
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

from gsmoe.io import atomic_path
from gsmoe.report.aggregate import load_runs

__all__ = ["build_figure", "curves_frame", "write_figure"]

#: y-axis label per curve.  The paper's "test" curve is its held-out split (Planetoid
#: validation mask; ENZYMES 20 % held out), not the standard test split, so say which.
_Y_LABELS: dict[str, str] = {
    "paper_acc": "Test accuracy (paper's held-out split)",
    "test_acc": "Test accuracy (standard test split)",
    "val_acc": "Validation accuracy (standard split)",
    "train_acc": "Training accuracy",
    "train_loss": "Training loss",
}

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


def _errorbar(figure_cfg: Mapping[str, Any]) -> tuple[Any, str]:
    """seaborn ``errorbar`` argument and how the legend describes the band."""
    kind = figure_cfg.get("errorbar", "sd")
    if kind == "sd":
        return "sd", "mean ± 1 s.d."
    if kind == "ci":
        return ("ci", 95), "mean, 95 % bootstrap CI"
    raise ValueError(f"figure errorbar must be 'sd' or 'ci', got {kind!r}")


def build_figure(
    records: Sequence[Mapping[str, Any]], figure_cfg: Mapping[str, Any], experiments_cfg: Mapping[str, Any]
) -> Figure:
    """Draw one figure and return it (not saved), so tests can inspect its Axes.

    Args:
        records: run records (see docs/design.md); other datasets/experiments are ignored.
        figure_cfg: ``{title, dataset, experiments: [...], metric (curve, default paper_acc),
            errorbar ('sd' default, or 'ci')}``.
        experiments_cfg: ``config["experiments"]`` (line labels).

    An experiment without runs for the dataset is left out with a warning; no runs at all
    is an error.
    """
    dataset = str(figure_cfg["dataset"])
    experiments = [str(e) for e in figure_cfg["experiments"]]
    metric = str(figure_cfg.get("metric", "paper_acc"))
    unknown = [e for e in experiments if e not in experiments_cfg]
    if unknown:
        raise ValueError(f"figure names unknown experiments {unknown}")
    data = curves_frame(records, dataset, experiments, metric)
    if data.empty:
        raise ValueError(f"no runs of {experiments} on {dataset} to plot")

    seeds = data.groupby("experiment")["seed"].nunique()
    present = [e for e in experiments if e in seeds.index]
    absent = [e for e in experiments if e not in seeds.index]
    if absent:
        warnings.warn(f"figure {figure_cfg.get('title', '')!r}: no runs on {dataset} for {absent}", stacklevel=2)
    same_n = seeds.nunique() == 1
    # Per-line seed counts only when they differ; otherwise once in the legend title.
    labels = {
        e: str((experiments_cfg[e] or {}).get("label", e)) + ("" if same_n else f" (n={seeds[e]})") for e in present
    }
    data["label"] = data["experiment"].map(labels)
    errorbar, band = _errorbar(figure_cfg)
    legend_title = f"{band} over {int(seeds.iloc[0])} seeds" if same_n else f"{band} over n seeds"

    with matplotlib.rc_context({"pdf.fonttype": 42}), sns.axes_style("whitegrid"):
        fig = Figure(figsize=(6.4, 4.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        sns.lineplot(
            data=data,
            x="epoch",
            y="value",
            hue="label",
            hue_order=[labels[e] for e in present],
            palette=sns.color_palette("colorblind", len(present)),
            errorbar=errorbar,
            seed=0,  # the bootstrap of errorbar="ci" is random; fixed for reproducible bands
            ax=ax,
        )
        ax.set_xlabel("Epoch")
        ax.set_ylabel(_Y_LABELS.get(metric, metric))
        ax.set_title(str(figure_cfg.get("title", f"{dataset}")))
        legend = ax.get_legend()  # seaborn's own legend: its handles carry the band style
        legend.set_title(legend_title, prop={"size": "small"})
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
