"""What the layer, step and epoch benchmark trains: experiments of the config, as training runs them.

Each workload is an experiment of ``config.yaml`` on one dataset, resolved by
:func:`gsmoe.config.resolve_run` (seed 0): its model, learning rate, weight decay, batch
size and split are the configured ones.  Two workloads change one model key of an
experiment, to time what the grid does not run: noisy top-k with Shazeer's per-node
routing, and all 128 experts through the dense path (the cost that top-k avoids).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from gsmoe.config import dataset_config, resolve_run
from gsmoe.datasets import load_dataset
from gsmoe.nn import build_model
from gsmoe.nn.inputs import maybe_sparse, mean_adjacency
from gsmoe.optim import make_optimizer
from gsmoe.tasks import GraphTask, NodeTask, make_task, train_step

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Workload:
    """``experiment`` of the config, with ``model`` keys changed, on ``datasets`` (None: all)."""

    name: str
    experiment: str
    model: Mapping[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] | None = None


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("baseline", "baseline"),
        Workload("moe4_softmax", "moe4_softmax"),
        Workload("moe8", "moe8"),
        Workload("moe16", "moe16"),
        Workload("topk128", "topk128"),
        Workload("topk128_node", "topk128", {"pool": "node"}),
        # Only where it is cheap enough to time (on PubMed one (N, 128 * 32) tensor is 323 MB).
        Workload("moe128", "moe16", {"num_experts": 128}, datasets=("Cora", "ENZYMES")),
    )
}
QUICK_WORKLOADS = ("baseline", "moe4_softmax", "moe16", "topk128")
MEMORY_WORKLOADS = ("moe4_softmax", "topk128", "topk128_node")


def workload_names(dataset: str, names: Sequence[str]) -> list[str]:
    """The workloads of ``names`` that run on ``dataset``."""
    return [n for n in names if WORKLOADS[n].datasets is None or dataset in WORKLOADS[n].datasets]


def workload_run(config: Mapping[str, Any], dataset: str, name: str) -> dict[str, Any]:
    """The run config (seed 0) a workload trains: its experiment's, with its model keys."""
    workload = WORKLOADS[name]
    run = resolve_run(config, dataset, workload.experiment, 0)
    run["model"].update(workload.model)
    return run


def describe(model: Mapping[str, Any]) -> dict[str, Any]:
    """The CSV columns that describe a workload's model (top-k and pool of a noisy top-k gate)."""
    sparse = model["gate"] == "noisy_topk"
    return {
        "num_experts": model["num_experts"],
        "top_k": model["top_k"] if sparse else model["num_experts"],
        "pool": model["pool"] if sparse else "",
    }


def load(config: Mapping[str, Any], dataset: str, data_root: Path) -> Any:
    """The prepared dataset ``<data_root>/<dataset>`` (the prepare rule's folder layout)."""
    spec = dataset_config(config, dataset)
    return load_dataset(spec["source"], spec["pyg_name"], data_root / dataset)


class Tasks:
    """The training data of a dataset's runs, as training reads it (:func:`gsmoe.tasks.make_task`),
    made once per distinct batch size and split."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds
        self._made: dict[str, NodeTask | GraphTask] = {}

    def __call__(self, run: Mapping[str, Any]) -> NodeTask | GraphTask:
        key = json.dumps([run["task"], run["training"]["batch_size"], run.get("split")], sort_keys=True)
        if key not in self._made:
            self._made[key] = make_task(dict(run), self.ds, CPU)
        return self._made[key]


def step_input(task: NodeTask | GraphTask) -> tuple[Data, torch.Tensor | None]:
    """What one training step reads: the graph and its training mask (node task), or the
    first mini-batch of the training graphs (graph task, every graph of it)."""
    if isinstance(task, NodeTask):
        return task.data, task.data.train_mask
    return task.batcher(task.parts["train"][: task.batch_size]), None


def build(run: Mapping[str, Any], ds: Any) -> torch.nn.Module:
    """The run's model, initialised from seed 0."""
    torch.manual_seed(0)
    return build_model(run["model"], ds.num_features, ds.num_classes, run["task"])


def optimizer(model: torch.nn.Module, run: Mapping[str, Any], vectorized: bool) -> Any:
    """What training uses (:func:`gsmoe.optim.make_optimizer` with the run's expert updates)
    for the vectorised model; the straightforward full Adam step for the loop reference."""
    training = run["training"]
    updates = training["expert_updates"] if vectorized else "dense"
    return make_optimizer(model, training["lr"], training["weight_decay"], updates)


def layer_job(conv: torch.nn.Module, data: Data, vectorized: bool) -> Callable[[], None]:
    """Forward + backward of one layer on its input as the model prepares it once per
    graph batch: sparse features and the mean adjacency for the vectorised layer."""
    x = maybe_sparse(data.x) if vectorized else data.x
    batch = getattr(data, "batch", None)
    num_graphs = int(data.num_graphs) if batch is not None else None
    adjacency = mean_adjacency(data.edge_index, data.num_nodes, data.x.dtype) if vectorized else None

    def job() -> None:
        conv.zero_grad(set_to_none=True)
        out, aux = conv(x, data.edge_index, batch=batch, num_graphs=num_graphs, adjacency=adjacency)
        (out.sum() + aux).backward()

    return job


def step_job(model: torch.nn.Module, run: Mapping[str, Any], task: NodeTask | GraphTask,
             vectorized: bool) -> Callable[[], None]:  # fmt: skip
    """One optimiser step on :func:`step_input`."""
    opt = optimizer(model, run, vectorized)
    data, mask = step_input(task)

    def job() -> None:
        model.train()
        train_step(model, opt, data, mask)

    return job


def epoch_job(model: torch.nn.Module, run: Mapping[str, Any], task: NodeTask | GraphTask,
              vectorized: bool) -> Callable[[], None]:  # fmt: skip
    """One training epoch as training runs it (node task: one full-batch step; graph task:
    every mini-batch of the training graphs, collation included)."""
    opt = optimizer(model, run, vectorized)
    return lambda: task.train_epoch(model, opt)
