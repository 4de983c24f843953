"""The sets each protocol measures on a dataset, in words, for figure labels and report pages.

The paper's "test" accuracy is not a test split: on Planetoid datasets it is the validation
mask, on graph datasets the part held out of training (the authors have no validation
split).  The standard protocol reads the test split at the best validation accuracy.  The
words come from a dataset's task and split (``config["datasets"][<d>]``), so a figure or a
page never calls a validation curve "test".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gsmoe.config import experiment_datasets

__all__ = ["evaluation_set", "protocol_descriptions", "run_datasets"]

#: Curve or metric -> which set of an evaluation it reads (``paper`` = the authors' "test").
_SETS = ("paper", "test", "val", "train")


def _percent(fraction: float) -> str:
    return f"{100 * float(fraction):g} %"


def evaluation_set(which: str, task: str, split: Mapping[str, Any] | None = None) -> str:
    """The nodes or graphs an accuracy of ``which`` (paper | test | val | train) is measured on.

    Args:
        which: ``paper`` (the authors' "test"), ``test``, ``val`` (standard protocol) or ``train``.
        task: ``node`` (Planetoid public masks) or ``graph`` (seeded stratified splits).
        split: the dataset's ``split`` (``{standard: [train, val, test], paper: [train,
            held-out]}``); needed for ``graph``.
    """
    if which not in _SETS:
        raise ValueError(f"unknown evaluation set {which!r}; known: {list(_SETS)}")
    if task == "node":
        return {
            "paper": "the Planetoid validation mask",
            "test": "the Planetoid test mask",
            "val": "the Planetoid validation mask",
            "train": "the Planetoid training mask",
        }[which]
    if task != "graph":
        raise ValueError(f"unknown task {task!r}; known: node, graph")
    if not split or "paper" not in split or "standard" not in split:
        raise ValueError("a graph dataset needs its split {standard: [...], paper: [...]} to name its sets")
    train, val, test = split["standard"]
    return {
        "paper": f"the {_percent(split['paper'][1])} of graphs held out",
        "test": f"the {_percent(test)} test graphs",
        "val": f"the {_percent(val)} validation graphs",
        "train": f"the {_percent(train)} training graphs",
    }[which]


def _by_set(which: str, datasets: Mapping[str, Mapping[str, Any]]) -> str:
    """``Cora, PubMed: the Planetoid validation mask; ENZYMES: the 20 % of graphs held out``."""
    groups: dict[str, list[str]] = {}
    for name, ds in datasets.items():
        groups.setdefault(evaluation_set(which, str(ds["task"]), ds.get("split")), []).append(str(name))
    return "; ".join(f"{', '.join(names)}: {where}" for where, names in groups.items())


def protocol_descriptions(datasets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Plain text on what each protocol (``paper``, ``standard``) measures on ``datasets``
    (``{name: {task, split}}``)."""
    return {
        "paper": (
            "Paper protocol: what the authors call test accuracy, measured on "
            f"{_by_set('paper', datasets)}; at the last evaluation (paper_last) or the best one (paper_best)."
        ),
        "standard": (
            f"Standard protocol: test accuracy, measured on {_by_set('test', datasets)}, at the "
            f"evaluation with the best validation accuracy (validation: {_by_set('val', datasets)}) "
            "(standard_test)."
        ),
    }


def run_datasets(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{dataset: {task, split}}`` of the datasets some experiment runs on (config order):
    what :func:`protocol_descriptions` needs, and no more (a report rule's parameters)."""
    used = {d for e in config["experiments"] for d in experiment_datasets(config, e)}
    out = {}
    for name, ds in config["datasets"].items():
        if name in used:
            split = {"split": ds["split"]} if ds["task"] == "graph" else {}  # filled at validation
            out[name] = {"task": ds["task"], **split}
    return out
