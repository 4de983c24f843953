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

import importlib.metadata
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.adam import adam
from torch_geometric.data import Data

from gsmoe import __version__
from gsmoe.batching import GraphBatcher, ShuffledBatches
from gsmoe.datasets import load_dataset
from gsmoe.io import write_json
from gsmoe.nn import build_model
from gsmoe.nn.conv import SAGEMoEConv
from gsmoe.nn.gates import NoisyTopKGate
from gsmoe.nn.runtime import keep_freed_memory
from gsmoe.roles import attach_roles, load_roles
from gsmoe.splits import graph_splits

#: Packages whose versions go into every run record.
RECORDED_PACKAGES = ("torch", "torch_geometric", "numpy", "scipy", "graphrole", "networkx", "scikit-learn")


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


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


def environment() -> dict[str, str]:
    """Versions of Python, the platform and the recorded packages."""
    versions = {"python": platform.python_version(), "platform": platform.platform(), "gsmoe": __version__}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass
class _Evaluation:
    """Accuracies of one evaluation."""

    train: float
    val: float
    test: float
    paper: float


def _check_finite_output(log_probs: torch.Tensor) -> None:
    """An evaluation of a diverged model must not become an accuracy: argmax of NaN is 0."""
    if not bool(torch.isfinite(log_probs).all()):
        raise TrainingDivergedError("the model's output is not finite")


def _accuracy(log_probs: torch.Tensor, labels: torch.Tensor) -> float:
    if labels.numel() == 0:
        raise ValueError("cannot measure accuracy on an empty split")
    return float((log_probs.argmax(dim=-1) == labels).float().mean())


class _NodeTask:
    """Full-batch training on one graph with Planetoid's public masks."""

    def __init__(self, data: Data, device: torch.device) -> None:
        self.data = data.to(device)
        for mask in ("train_mask", "val_mask", "test_mask"):
            if int(getattr(self.data, mask).sum()) == 0:
                raise ValueError(f"the dataset's {mask} selects no node")

    def train_epoch(self, model: torch.nn.Module, optimizer: _Optimizer) -> float:
        model.train()
        optimizer.zero_grad()
        out = model(self.data)
        mask = self.data.train_mask
        loss = F.nll_loss(out.log_probs[mask], self.data.y[mask]) + out.aux_loss
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def expert_load(self, model: torch.nn.Module) -> dict[str, list[float]]:
        """Expert load of one eval-mode pass over the graph."""
        model.eval()
        model(self.data)
        return model.expert_load()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> _Evaluation:
        model.eval()
        log_probs = model(self.data).log_probs
        _check_finite_output(log_probs)
        y = self.data.y
        val = _accuracy(log_probs[self.data.val_mask], y[self.data.val_mask])
        return _Evaluation(
            train=_accuracy(log_probs[self.data.train_mask], y[self.data.train_mask]),
            val=val,
            test=_accuracy(log_probs[self.data.test_mask], y[self.data.test_mask]),
            # The authors' test() defaults to is_validation=True: their "test" is this.
            paper=val,
        )


class _GraphTask:
    """Mini-batch training on a seeded, stratified split of a graph dataset."""

    def __init__(self, dataset: Sequence[Data], split: dict[str, Any], batch_size: int,
                 seed: int, device: torch.device) -> None:
        labels = torch.cat([graph.y.view(-1) for graph in dataset])
        self.parts = graph_splits(labels, seed=seed, standard=tuple(split["standard"]))
        generator = torch.Generator().manual_seed(seed)
        # Batches as PyG's DataLoader(shuffle=True, generator) makes them, collated by indexing.
        self.batcher = GraphBatcher(dataset, device)
        self.loader = ShuffledBatches(self.batcher, self.parts["train"], batch_size, generator)
        # Evaluation routes each graph independently (no noise in eval mode), so one batch
        # of every graph gives the same predictions as small batches, in one forward pass.
        # The authors' routing (pool: batch, routing_noise: shared) depends on the batch,
        # so such a model is evaluated in batches of the training size, in dataset order.
        self.batch_size = batch_size
        self.labels = labels.to(device)
        self.device = device

    def train_epoch(self, model: torch.nn.Module, optimizer: _Optimizer) -> float:
        model.train()
        total, graphs = 0.0, 0
        for batch in self.loader:
            optimizer.zero_grad()
            out = model(batch)
            loss = F.nll_loss(out.log_probs, batch.y.view(-1)) + out.aux_loss
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.num_graphs
            graphs += batch.num_graphs
        return total / graphs

    @torch.no_grad()  # on a generator, no_grad holds inside it only, not between the yields
    def _eval_passes(self, model: torch.nn.Module) -> Iterator[tuple[int, torch.Tensor]]:
        """Eval-mode forward passes over every graph, in dataset order: ``(graphs, log_probs)``
        per pass; ``model.expert_load()`` describes the pass just yielded."""
        model.eval()
        if not _routes_per_batch(model):
            yield len(self.batcher), model(self.batcher.full).log_probs
            return
        for batch in self.batcher.in_order(self.batch_size):
            yield batch.num_graphs, model(batch).log_probs

    def evaluate(self, model: torch.nn.Module) -> _Evaluation:
        log_probs = torch.cat([out for _, out in self._eval_passes(model)])
        _check_finite_output(log_probs)

        def acc(part: str) -> float:
            index = self.parts[part].to(self.device)
            return _accuracy(log_probs[index], self.labels[index])

        return _Evaluation(train=acc("train"), val=acc("val"), test=acc("test"), paper=acc("heldout"))

    def expert_load(self, model: torch.nn.Module) -> dict[str, list[float]]:
        """Expert load of an eval-mode pass over every graph; batches weigh by their graphs
        (a batch's routing choice is each of its graphs' choice)."""
        loads = [(graphs, model.expert_load()) for graphs, _ in self._eval_passes(model)]
        if len(loads) == 1:  # one pass over every graph: its load as it is
            return loads[0][1]
        total = sum(graphs for graphs, _ in loads)
        return {
            stage: [sum(graphs * load[stage][j] for graphs, load in loads) / total for j in range(len(shares))]
            for stage, shares in loads[0][1].items()
        }


def _routes_per_batch(model: torch.nn.Module) -> bool:
    """Whether a noisy top-k gate's choice depends on the whole mini-batch: one choice per
    batch (``pool: batch``) or one noise draw per batch, also in evaluation
    (``routing_noise: shared``)."""
    return any(isinstance(m, NoisyTopKGate) and (m.pool == "batch" or m.noise == "shared") for m in model.modules())


class LazyExpertUpdates:
    """Leave the experts a step did not route to untouched by that optimiser step.

    With top-k gating most experts get no gradient in a step, yet Adam's coupled weight
    decay (the authors' optimiser) still moves them: ``wd * w`` is their whole gradient, so
    Adam's normalised step shrinks them towards zero by about ``lr`` per step.  An expert
    then loses what it learned within a few steps of not being chosen; with 128 experts and
    one routing choice per graph (and the router's own decay, see :func:`_parameter_groups`)
    a network of 128 top-4 did not train at all.  Like lazy Adam for sparse embeddings, each
    step updates the routed experts' rows (weight, bias and Adam moments) only.

    The routed rows get exactly the step ``torch.optim.Adam`` would give them (its own
    functional update on the gathered rows, the parameter's shared step count), and the
    unrouted rows cost nothing: with 128 experts and top-4 the full step was most of the
    time of a Cora epoch.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Adam) -> None:
        if type(optimizer) is not torch.optim.Adam:
            raise TypeError(f"LazyExpertUpdates needs torch.optim.Adam, got {type(optimizer).__name__}")
        for group in optimizer.param_groups:
            unsupported = [key for key in ("amsgrad", "maximize", "capturable", "differentiable", "fused") if group.get(key)]
            if unsupported:
                raise ValueError(f"LazyExpertUpdates does not support Adam's {', '.join(unsupported)}")
        self.model = model
        self.optimizer = optimizer
        self._groups = {id(param): group for group in optimizer.param_groups for param in group["params"]}

    def _unused(self) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
        return [
            (param, mask)
            for conv in self.model.modules()
            if isinstance(conv, SAGEMoEConv)
            for experts, mask in conv.unused_experts()
            for param in (experts.weight, experts.bias)
            if param is not None
        ]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        """``optimizer.step()`` for the experts the last forward pass used only."""
        partial = []
        for param, unused in self._unused():
            if param.grad is None or not bool(unused.any()):
                continue
            partial.append((param, param.grad, (~unused).nonzero().view(-1)))
            param.grad = None  # the full step below skips it
        self.optimizer.step()
        for param, grad, used in partial:
            param.grad = grad
            self._step_rows(param, grad, used)

    @torch.no_grad()
    def _step_rows(self, param: torch.nn.Parameter, grad: torch.Tensor, rows: torch.Tensor) -> None:
        group = self._groups[id(param)]
        state = self.optimizer.state[param]
        if not state:  # as torch.optim.Adam initialises it
            scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
            state["step"] = torch.tensor(0.0, dtype=scalar, device="cpu")
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        values, exp_avg, exp_avg_sq = param[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
        beta1, beta2 = group["betas"]
        adam(
            [values], [grad[rows]], [exp_avg], [exp_avg_sq], [], [state["step"]],
            foreach=group["foreach"], decoupled_weight_decay=group.get("decoupled_weight_decay", False),
            amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
            eps=group["eps"], maximize=False,
        )  # fmt: skip
        param[rows] = values
        state["exp_avg"][rows] = exp_avg
        state["exp_avg_sq"][rows] = exp_avg_sq


_Optimizer = torch.optim.Optimizer | LazyExpertUpdates


def _parameter_groups(model: torch.nn.Module, weight_decay: float, lazy: bool) -> list[dict[str, Any]]:
    """Adam's parameter groups: coupled L2 on everything, except (``lazy``) the noisy
    top-k routers.

    A router's gradient reaches only the k chosen columns through a softmax and is tiny
    next to ``weight_decay * w``: with L2 its clean logits stay near zero, the noise alone
    picks the experts in every step, and no expert is trained long enough to be of use.
    """
    routers = {id(p) for m in model.modules() if isinstance(m, NoisyTopKGate) for p in m.parameters()} if lazy else set()
    params = list(model.parameters())
    groups = [{"params": [p for p in params if id(p) not in routers], "weight_decay": weight_decay}]
    if routers:
        groups.append({"params": [p for p in params if id(p) in routers], "weight_decay": 0.0})
    return groups


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, expert_updates: str = "lazy") -> _Optimizer:
    """The trainer's optimiser: Adam with coupled L2 (the authors'), and for
    ``expert_updates="lazy"`` the top-k routers undecayed and unrouted experts left alone
    (:class:`LazyExpertUpdates`); ``"dense"`` is the authors' plain Adam."""
    if expert_updates not in ("lazy", "dense"):
        raise ValueError(f"expert_updates must be 'lazy' or 'dense', got {expert_updates!r}")
    lazy = expert_updates == "lazy"
    optimizer = torch.optim.Adam(_parameter_groups(model, weight_decay, lazy), lr=lr)
    return LazyExpertUpdates(model, optimizer) if lazy else optimizer


def _run_name(run_cfg: dict[str, Any]) -> str:
    return f"{run_cfg['dataset']}/{run_cfg['experiment']}/seed{run_cfg['seed']}"


def make_task(run_cfg: dict[str, Any], dataset: Sequence[Data], device: torch.device) -> _NodeTask | _GraphTask:
    """The run's data as training reads it: the full graph (node task) or the seeded split
    and its shuffled mini-batches (graph task).  ``task.train_epoch(model, optimizer)``
    trains one epoch and returns its loss."""
    if run_cfg["task"] == "node":
        return _NodeTask(dataset[0], device)
    if run_cfg["task"] == "graph":
        split, seed = run_cfg["split"], int(run_cfg["seed"])
        batch_size = int(run_cfg["training"]["batch_size"])
        return _GraphTask(dataset, split, batch_size, seed + int(split.get("seed_offset", 0)), device)
    raise ValueError(f"{_run_name(run_cfg)}: unknown task {run_cfg['task']!r} (expected 'node' or 'graph')")


def train_run(
    run_cfg: dict[str, Any],
    dataset: Sequence[Data],
    *,
    device: torch.device | str = "auto",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one fully resolved run config (see ``docs/design.md``) and return its record.

    ``dataset`` is the loaded PyG dataset (with ``roles`` attached when a role gate is
    used).  Raises :class:`TrainingDivergedError` naming the run and epoch when the loss,
    an evaluation's model output or, after the last epoch, a parameter stops being finite:
    a diverged run has no record, rather than one with a NaN or an arbitrary accuracy.
    """
    device = pick_device(device) if isinstance(device, str) else device
    name = _run_name(run_cfg)
    training = run_cfg["training"]
    seed = int(run_cfg["seed"])
    seed_everything(seed)

    task = make_task(run_cfg, dataset, device)
    model = build_model(run_cfg["model"], dataset.num_features, dataset.num_classes, run_cfg["task"]).to(device)
    # The schema's default; hand-written run configs (tests) may leave it out.
    optimizer = make_optimizer(model, training["lr"], training["weight_decay"], training.get("expert_updates", "lazy"))

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
) -> None:
    """Train several runs of one dataset in this process and write one JSON per run.

    Loading torch, PyG and the dataset costs seconds; training several seeds in one job
    pays that once.  Each record is written atomically as soon as its run ends, so an
    interrupted job keeps the runs it finished and leaves no partial file.
    """
    if len(run_configs) != len(outputs):
        raise ValueError(f"{len(run_configs)} run configs but {len(outputs)} output paths")
    if not run_configs:
        return
    datasets = {(cfg["dataset"], cfg["source"], cfg["pyg_name"]) for cfg in run_configs}
    if len(datasets) != 1:
        raise ValueError(f"one job trains runs of one dataset, got {sorted(d[0] for d in datasets)}")
    (_, source, pyg_name), = datasets
    set_threads(threads)
    # A training job owns its process: keeping freed heap memory for reuse makes large
    # MoE steps 1.2-1.7x faster and changes no number (gsmoe.nn.runtime).
    keep_freed_memory()
    dataset = load_dataset(source, pyg_name, Path(dataset_root))
    if roles_path is not None:
        attach_roles(dataset, load_roles(roles_path))
    elif any(cfg["model"]["gate"] == "roles" for cfg in run_configs):
        raise ValueError("a run uses the roles gate but no roles file was given (roles_path)")
    resolved_device = pick_device(device)
    for cfg, out in zip(run_configs, outputs, strict=True):
        _log(f"[{_run_name(cfg)}] training on {resolved_device} with {torch.get_num_threads()} thread(s)")
        record = train_run(cfg, dataset, device=resolved_device, progress=_log)
        write_json(out, record)
        _log(f"[{_run_name(cfg)}] done: paper last {record['metrics']['paper']['last']:.4f}, "
             f"standard test {record['metrics']['standard']['test']:.4f} in {record['wall_time_s']:.1f}s")
