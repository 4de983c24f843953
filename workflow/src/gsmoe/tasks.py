"""What a run trains on and how it is evaluated: the full graph of a node task, the seeded
split and shuffled mini-batches of a graph task, the training step they share, and the
accuracies of both evaluation protocols (see :mod:`gsmoe.train`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gsmoe.batching import GraphBatcher, ShuffledBatches
from gsmoe.nn.gates import Gate
from gsmoe.optim import Optimizer
from gsmoe.splits import graph_splits


class TrainingDivergedError(RuntimeError):
    """The training loss, the model's output or its parameters stopped being finite."""


@dataclass
class Evaluation:
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
    """Correct / total as a Python float: exactly 348 / 500 = 0.696, where a float32 mean
    recorded 0.6959999799728394."""
    if labels.numel() == 0:
        raise ValueError("cannot measure accuracy on an empty split")
    return int((log_probs.argmax(dim=-1) == labels).sum()) / labels.numel()


def training_loss(model: torch.nn.Module, data: Data, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The loss a training step minimises: NLL of the model's predictions (the rows ``mask``
    of a node task, every graph of a batch without it) plus the gates' auxiliary loss."""
    out = model(data)
    if mask is None:
        return F.nll_loss(out.log_probs, data.y.view(-1)) + out.aux_loss
    return F.nll_loss(out.log_probs[mask], data.y[mask]) + out.aux_loss


def train_step(model: torch.nn.Module, optimizer: Optimizer, data: Data, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One optimiser step on ``data`` (see :func:`training_loss`); returns the detached loss."""
    optimizer.zero_grad()
    loss = training_loss(model, data, mask)
    loss.backward()
    optimizer.step()
    return loss.detach()


def routes_per_batch(model: torch.nn.Module) -> bool:
    """Whether a gate's choice depends on the whole mini-batch, also in evaluation: noisy
    top-k with one choice per batch (``pool: batch``) or one noise draw per batch
    (``routing_noise: shared``)."""
    return any(isinstance(m, Gate) and m.batch_dependent for m in model.modules())


class NodeTask:
    """Full-batch training on one graph with Planetoid's public masks."""

    def __init__(self, data: Data, device: torch.device) -> None:
        self.data = data.to(device)
        for mask in ("train_mask", "val_mask", "test_mask"):
            if getattr(self.data, mask, None) is None:
                raise ValueError(f"a node task needs data.{mask} (Planetoid's public split); this graph has none")
            if int(getattr(self.data, mask).sum()) == 0:
                raise ValueError(f"the dataset's {mask} selects no node")

    def train_epoch(self, model: torch.nn.Module, optimizer: Optimizer) -> float:
        """One full-batch step; returns its loss."""
        model.train()
        return float(train_step(model, optimizer, self.data, self.data.train_mask))

    @torch.no_grad()
    def expert_load(self, model: torch.nn.Module) -> dict[str, list[float]]:
        """Expert load of one eval-mode pass over the graph."""
        model.eval()
        model(self.data)
        return model.expert_load()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> Evaluation:
        model.eval()
        log_probs = model(self.data).log_probs
        _check_finite_output(log_probs)
        y = self.data.y
        val = _accuracy(log_probs[self.data.val_mask], y[self.data.val_mask])
        return Evaluation(
            train=_accuracy(log_probs[self.data.train_mask], y[self.data.train_mask]),
            val=val,
            test=_accuracy(log_probs[self.data.test_mask], y[self.data.test_mask]),
            # The authors' test() defaults to is_validation=True: their "test" is this.
            paper=val,
        )


class GraphTask:
    """Mini-batch training on a seeded, stratified split of a graph dataset."""

    def __init__(self, dataset: Sequence[Data], split: dict[str, Any], batch_size: int,
                 seed: int, device: torch.device) -> None:  # fmt: skip
        labels = torch.cat([graph.y.view(-1) for graph in dataset])
        # On the CPU: ShuffledBatches samples the training part there.
        self.parts = graph_splits(labels, seed=seed, standard=tuple(split["standard"]))
        self._eval_index = {part: index.to(device) for part, index in self.parts.items()}
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

    def train_epoch(self, model: torch.nn.Module, optimizer: Optimizer) -> float:
        """One step per mini-batch; returns the mean loss over the training graphs."""
        model.train()
        total, graphs = 0.0, 0
        for batch in self.loader:
            total += float(train_step(model, optimizer, batch)) * batch.num_graphs
            graphs += batch.num_graphs
        return total / graphs

    @torch.no_grad()  # on a generator, no_grad holds inside it only, not between the yields
    def _eval_passes(self, model: torch.nn.Module) -> Iterator[tuple[int, torch.Tensor]]:
        """Eval-mode forward passes over every graph, in dataset order: ``(graphs, log_probs)``
        per pass; ``model.expert_load()`` describes the pass just yielded."""
        model.eval()
        if not routes_per_batch(model):
            yield len(self.batcher), model(self.batcher.full).log_probs
            return
        for batch in self.batcher.in_order(self.batch_size):
            yield batch.num_graphs, model(batch).log_probs

    def evaluate(self, model: torch.nn.Module) -> Evaluation:
        log_probs = torch.cat([out for _, out in self._eval_passes(model)])
        _check_finite_output(log_probs)

        def acc(part: str) -> float:
            index = self._eval_index[part]
            return _accuracy(log_probs[index], self.labels[index])

        return Evaluation(train=acc("train"), val=acc("val"), test=acc("test"), paper=acc("heldout"))

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


def make_task(run_cfg: dict[str, Any], dataset: Sequence[Data], device: torch.device) -> NodeTask | GraphTask:
    """The run's data as training reads it: the full graph (node task) or the seeded split
    and its shuffled mini-batches (graph task).  ``task.train_epoch(model, optimizer)``
    trains one epoch and returns its loss."""
    if run_cfg["task"] == "node":
        return NodeTask(dataset[0], device)
    if run_cfg["task"] == "graph":
        split, seed = run_cfg["split"], int(run_cfg["seed"])
        batch_size = int(run_cfg["training"]["batch_size"])
        return GraphTask(dataset, split, batch_size, seed + int(split["seed_offset"]), device)
    raise ValueError(f"run config: unknown task {run_cfg['task']!r} (expected 'node' or 'graph')")
