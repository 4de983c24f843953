"""Train and evaluate one run (dataset, experiment, seed) and record everything about it.

Two evaluation protocols are measured in the same training run:

``paper``
    What the authors measured.  Their ``test()`` defaults to the *validation* mask on
    Planetoid and to a 20 % held-out part on ENZYMES, evaluated every ``eval_every``
    epochs (epochs 0, 10, ..., 290 for 300 epochs).  We report the last evaluation and the
    best one.
``standard``
    Test accuracy at the evaluation with the best validation accuracy (earliest on ties):
    Planetoid's public split; ENZYMES stratified 80/10/10.

On ENZYMES both protocols share the same 80 % training part: the paper's 20 % held-out part
is the union of the standard validation and test parts, so a single run serves both.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from gsmoe.console import announce
from gsmoe.datasets import load_dataset, prepared_file
from gsmoe.io import write_json
from gsmoe.modelspec import needs_roles
from gsmoe.nn import GraphSAGEMoE, build_model
from gsmoe.nn.runtime import keep_freed_memory
from gsmoe.optim import Optimizer, make_optimizer
from gsmoe.provenance import RECORD_SCHEMA_VERSION, code_fingerprint, environment, read_prepared_manifest
from gsmoe.roles import attach_roles, load_roles
from gsmoe.tasks import GraphTask, NodeTask, TrainingDivergedError, make_task

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class OrphanedJobError(RuntimeError):
    """The process that started this training job is gone; the job stops without a record."""


class ParentWatch:
    """Ties a training job to the process that started it (Snakemake).

    A job whose Snakemake was SIGKILLed (out of memory, a lost login shell) would go on
    training and minutes later replace the record of a newer run with one trained under
    the old settings.  On Linux the kernel sends this process SIGTERM when its parent dies
    (``PR_SET_PDEATHSIG``); everywhere, :meth:`check` (between epochs and right before a
    record is written) sees that the parent changed, the sign that it died.
    """

    def __init__(self) -> None:
        self.parent = os.getppid()
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                _log(f"prctl(PR_SET_PDEATHSIG) failed (errno {ctypes.get_errno()}); relying on parent checks")
        self.check("at start")  # the parent may have died before prctl

    def check(self, when: str) -> None:
        """Raise :class:`OrphanedJobError` if the parent process is gone."""
        if os.getppid() != self.parent:
            raise OrphanedJobError(
                f"the process that started this training job (pid {self.parent}) is gone ({when}); "
                "stopping without writing a record: a newer run may own the output"
            )


def pick_device(preference: str = "auto") -> torch.device:
    """Return the torch device for ``preference`` (``auto``, ``cpu`` or ``cuda[:i]``).

    ``auto`` takes CUDA when a GPU is visible, so the same config runs on a laptop and on
    a GPU node of a cluster.  Asking for ``cuda`` without a GPU is an error, not a silent
    fallback: a cluster job that lost its GPU should say so.
    """
    if preference == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {preference!r} was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}); set `device: auto` or `device: cpu` in the config"
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # cuBLAS needs this workspace setting for deterministic matmuls on CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(threads: int | None) -> None:
    """Use exactly ``threads`` intra-op threads so that parallel jobs do not oversubscribe."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def _run_name(run_cfg: dict[str, Any]) -> str:
    return f"{run_cfg['dataset']}/{run_cfg['experiment']}/seed{run_cfg['seed']}"


def start_run(
    run_cfg: dict[str, Any], dataset: Sequence[Data], device: torch.device
) -> tuple[NodeTask | GraphTask, GraphSAGEMoE, Optimizer]:
    """Seed everything with the run's seed, then build its data, model and optimiser, in
    the order that fixes every random draw of the run (``train_run`` starts here)."""
    seed_everything(int(run_cfg["seed"]))
    task = make_task(run_cfg, dataset, device)
    model = build_model(run_cfg["model"], dataset.num_features, dataset.num_classes, run_cfg["task"]).to(device)
    training = run_cfg["training"]
    # The schema's default; hand-written run configs (tests) may leave it out.
    optimizer = make_optimizer(model, training["lr"], training["weight_decay"], training["expert_updates"])
    return task, model, optimizer


def train_run(
    run_cfg: dict[str, Any],
    dataset: Sequence[Data],
    *,
    device: torch.device | str = "auto",
    progress: Callable[[str], None] | None = None,
    after_epoch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one fully resolved run config (see ``docs/design.md``) and return its record.

    ``dataset`` is the loaded PyG dataset (with ``roles`` attached when a role gate is
    used).  Raises :class:`TrainingDivergedError` naming the run and epoch when the loss,
    an evaluation's model output or, after the last epoch, a parameter stops being finite:
    a diverged run has no record, rather than one with a NaN or an arbitrary accuracy.
    ``after_epoch(epoch)`` is called after every epoch (the job's parent check).
    """
    device = pick_device(device) if isinstance(device, str) else device
    name = _run_name(run_cfg)
    training = run_cfg["training"]
    seed = int(run_cfg["seed"])
    task, model, optimizer = start_run(run_cfg, dataset, device)

    epochs, eval_every = int(training["epochs"]), int(training["eval_every"])
    curves: dict[str, list[float]] = {key: [] for key in ("epoch", "train_loss", "train_acc", "val_acc", "test_acc", "paper_acc")}
    loss_per_epoch: list[float] = []
    start = time.perf_counter()
    for epoch in range(epochs):
        loss = task.train_epoch(model, optimizer)
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                f"run {name}: training loss became {loss} at epoch {epoch}; "
                "lower training.lr or check the input features"
            )
        loss_per_epoch.append(loss)
        # Same schedule as the authors' `if epoch % 10 == 0` (0, 10, ..., 290 for 300 epochs).
        if epoch % eval_every == 0:
            # The loss above was computed before this epoch's step; a step that made the
            # weights overflow shows only here (or in the next epoch's loss).
            try:
                evaluation = task.evaluate(model)
            except TrainingDivergedError as err:
                raise TrainingDivergedError(
                    f"run {name}: {err} at the evaluation after epoch {epoch} (training loss "
                    f"was {loss}); lower training.lr or check the input features"
                ) from None
            curves["epoch"].append(epoch)
            curves["train_loss"].append(loss)
            curves["train_acc"].append(evaluation.train)
            curves["val_acc"].append(evaluation.val)
            curves["test_acc"].append(evaluation.test)
            curves["paper_acc"].append(evaluation.paper)
            if progress is not None:
                progress(
                    f"[{name}] epoch {epoch + 1}/{epochs} loss {loss:.4f} "
                    f"val {evaluation.val:.3f} test {evaluation.test:.3f} "
                    f"({time.perf_counter() - start:.1f}s)"
                )
        if after_epoch is not None:
            after_epoch(epoch)
    wall_time = time.perf_counter() - start
    # Steps after the last evaluation can still have diverged; such weights are no result.
    bad = [pname for pname, param in model.named_parameters() if not bool(torch.isfinite(param).all())]
    if bad:
        raise TrainingDivergedError(
            f"run {name}: parameters {bad[:3]}{' ...' if len(bad) > 3 else ''} are not finite after "
            f"the last epoch ({epochs - 1}); lower training.lr or check the input features"
        )

    # Expert load of the trained model: one eval-mode pass over the whole dataset (the last
    # forward of the loop may have been a training step on one batch).
    expert_load = task.expert_load(model)

    best = int(np.argmax(curves["val_acc"]))  # argmax takes the earliest of equal maxima
    best_paper = int(np.argmax(curves["paper_acc"]))
    return {
        "dataset": run_cfg["dataset"],
        "experiment": run_cfg["experiment"],
        "seed": seed,
        "task": run_cfg["task"],
        "config": run_cfg,
        "environment": environment(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "curves": curves,
        "loss_per_epoch": loss_per_epoch,
        "metrics": {
            "paper": {
                "last": curves["paper_acc"][-1],
                "best": curves["paper_acc"][best_paper],
                "best_epoch": curves["epoch"][best_paper],
            },
            "standard": {"test": curves["test_acc"][best], "val": curves["val_acc"][best], "epoch": curves["epoch"][best]},
        },
        "wall_time_s": wall_time,
        "num_parameters": model.num_parameters(),
        "active_parameters": model.active_parameters(),
        "expert_load": expert_load,
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_and_save(
    run_configs: Sequence[dict[str, Any]],
    outputs: Sequence[str | os.PathLike[str]],
    dataset_root: str | os.PathLike[str],
    roles_path: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    threads: int | None = None,
    die_with_parent: bool = False,
) -> None:
    """Train several runs of one dataset in this process and write one JSON per run.

    Loading torch, PyG and the dataset costs seconds; training several seeds in one job
    pays that once.  Each record is written atomically as soon as its run ends, so an
    interrupted job keeps the runs it finished and leaves no partial file.  Each record
    gets ``schema_version`` and ``provenance`` (the code fingerprint taken when the job
    started, and the raw-file checksums of the prepared dataset; docs/design.md).

    ``die_with_parent`` (the train rule): the job ends without writing another record
    once the process that started it is gone (:class:`ParentWatch`).
    """
    if len(run_configs) != len(outputs):
        raise ValueError(f"{len(run_configs)} run configs but {len(outputs)} output paths")
    if not run_configs:
        return
    datasets = {(cfg["dataset"], cfg["source"], cfg["pyg_name"]) for cfg in run_configs}
    if len(datasets) != 1:
        raise ValueError(f"one job trains runs of one dataset, got {sorted(d[0] for d in datasets)}")
    (_, source, pyg_name), = datasets
    watch = ParentWatch() if die_with_parent else None
    after_epoch = (lambda epoch: watch.check(f"after epoch {epoch}")) if watch is not None else None
    code = code_fingerprint()  # the code this process imported, before it trains
    set_threads(threads)
    # A training job owns its process: keeping freed heap memory for reuse makes large
    # MoE steps 1.2-1.7x faster and changes no number (gsmoe.nn.runtime).
    keep_freed_memory()
    dataset = load_dataset(source, pyg_name, Path(dataset_root))
    provenance = {"code": code, "data": read_prepared_manifest(prepared_file(dataset_root, pyg_name))["raw"]}
    if roles_path is not None:
        attach_roles(dataset, load_roles(roles_path))
    elif any(needs_roles(cfg["model"]) for cfg in run_configs):
        raise ValueError("a run uses the roles gate but no roles file was given (roles_path)")
    resolved_device = pick_device(device)
    for cfg, out in zip(run_configs, outputs, strict=True):
        _log(f"[{_run_name(cfg)}] training on {resolved_device} with {torch.get_num_threads()} thread(s)")
        record = train_run(cfg, dataset, device=resolved_device, progress=_log, after_epoch=after_epoch)
        if watch is not None:
            watch.check("before writing the record")
        write_json(out, {"schema_version": RECORD_SCHEMA_VERSION, **record, "provenance": provenance})
        announce(_finished_line(record))


def _finished_line(record: dict[str, Any]) -> str:
    """One line per finished run, for the log and the terminal: both protocols and the time."""
    paper, standard = record["metrics"]["paper"], record["metrics"]["standard"]
    return (
        f"[{_run_name(record['config'])}] done in {record['wall_time_s']:.1f}s: "
        f"paper protocol {paper['last']:.4f} (last evaluation), "
        f"standard protocol {standard['test']:.4f} (test at best validation)"
    )
