"""Training faults: divergence ends a run with an error, degenerate graphs train end to end.

Everything here runs in-process on small synthetic datasets (seconds); the workflow-level
counterparts are in ``test_workflow_faults.py``.  docs/faults.md maps each fault to its test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

import gsmoe.train as train_mod
from gsmoe.config import model_defaults
from gsmoe.io import read_json, write_json
from gsmoe.report.aggregate import load_runs, runs_frame
from gsmoe.roles import attach_roles, dataset_roles
from gsmoe.tasks import GraphTask, NodeTask
from gsmoe.train import TrainingDivergedError, train_and_save, train_run

N_ROLES = 4


class TinyDataset(InMemoryDataset):
    """An in-memory PyG dataset built from a list of graphs (no files)."""

    def __init__(self, graphs: list[Data]) -> None:
        super().__init__(None)
        self._data, self.slices = self.collate(graphs)


def run_config(task: str, model: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
    """A resolved run config (docs/design.md) for the tiny datasets below."""
    cfg: dict[str, Any] = {
        "dataset": "Tiny",
        "experiment": "exp",
        "seed": 0,
        "task": task,
        "source": "planetoid" if task == "node" else "tu",
        "pyg_name": "Tiny",
        "model": {
            **model_defaults(),
            "hidden": 8,
            "num_layers": 2,
            "dropout": 0.0,
            "placement": "none",
            "num_experts": 1,
            "gate": "none",
            **(model or {}),
        },
        "training": {
            "lr": 0.01, "weight_decay": 0.0, "epochs": 3, "eval_every": 1, "batch_size": 4, "expert_updates": "lazy",
            **training,
        },
    }
    if task == "graph":
        cfg["split"] = {"seed_offset": 0, "standard": [0.8, 0.1, 0.1], "paper": [0.8, 0.2]}
    return cfg


def node_dataset(num_nodes: int = 40, edges: bool = True, seed: int = 0) -> TinyDataset:
    """One graph with Planetoid-style masks (train 0-19, val 20-29, test 30-39)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, 6, generator=gen)
    y = torch.randint(0, 3, (num_nodes,), generator=gen)
    if edges:
        pairs = torch.randint(0, num_nodes, (2, 2 * num_nodes), generator=gen)
        edge_index = torch.cat([pairs, pairs.flip(0)], 1)
    else:
        edge_index = torch.empty(2, 0, dtype=torch.long)
    masks = {name: torch.zeros(num_nodes, dtype=torch.bool) for name in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][:20] = True
    masks["val_mask"][20:30] = True
    masks["test_mask"][30:] = True
    return TinyDataset([Data(x=x, y=y, edge_index=edge_index, **masks)])


def _graph(num_nodes: int, edges: list[tuple[int, int]], label: int, gen: torch.Generator) -> Data:
    edge_index = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    return Data(x=torch.randn(num_nodes, 3, generator=gen), edge_index=edge_index, y=torch.tensor([label]))


def degenerate_graph_dataset() -> TinyDataset:
    """20 graphs in 2 classes; the odd ones break role extraction or pooling.

    Graph 0 has no edges, graph 1 is a single node, graph 2 has 2 nodes (fewer than the 4
    roles), graph 3 is a triangle plus 3 isolated nodes; the rest are small cycles with a
    chord.  Stratified 80/10/10 gives 8/1/1 graphs of each class.
    """
    gen = torch.Generator().manual_seed(0)
    graphs = [
        _graph(5, [], 0, gen),
        _graph(1, [], 1, gen),
        _graph(2, [(0, 1)], 0, gen),
        _graph(6, [(0, 1), (1, 2), (2, 0)], 1, gen),
    ]
    for i in range(4, 20):
        n = 5 + i % 4
        graphs.append(_graph(n, [(j, (j + 1) % n) for j in range(n)] + [(0, n // 2)], i % 2, gen))
    return TinyDataset(graphs)


def assert_complete_record(record: dict[str, Any]) -> None:
    """The record is what aggregate accepts: every metric finite, every curve finite."""
    runs_frame([record])  # raises on a missing field or a non-finite metric
    for name, values in record["curves"].items():
        assert all(math.isfinite(v) for v in values), name
    assert all(math.isfinite(v) for v in record["loss_per_epoch"])


# ----------------------------------------------------------------------------- divergence


@pytest.mark.parametrize("epochs", [1, 4])
def test_huge_lr_raises_naming_run_and_epoch(epochs: int) -> None:
    """lr 1e30: the first step overflows the weights.  With one epoch the loss never becomes
    NaN (it was computed before the step), so the evaluation's output must catch it; before
    that check such a run was recorded with an arbitrary accuracy (argmax of NaN)."""
    cfg = run_config("node", lr=1e30, epochs=epochs)
    with pytest.raises(TrainingDivergedError, match=r"run Tiny/exp/seed0: .* after epoch 0\b"):
        train_run(cfg, node_dataset(), device="cpu")


@pytest.mark.parametrize("task", ["node", "graph"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_raises_naming_run_and_epoch(monkeypatch: pytest.MonkeyPatch, task: str, bad: float) -> None:
    """The loss of epoch 2 becomes NaN/inf: the error names the run and that epoch."""
    task_class = NodeTask if task == "node" else GraphTask
    original = task_class.train_epoch
    calls = []

    def train_epoch(self: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
        loss = original(self, model, optimizer)
        calls.append(loss)
        return bad if len(calls) == 3 else loss

    monkeypatch.setattr(task_class, "train_epoch", train_epoch)
    dataset = node_dataset() if task == "node" else degenerate_graph_dataset()
    with pytest.raises(TrainingDivergedError, match=rf"run Tiny/exp/seed0: training loss became {bad} at epoch 2;"):
        train_run(run_config(task, epochs=5), dataset, device="cpu")
    assert len(calls) == 3  # stopped at once, not after the remaining epochs


def test_divergence_after_last_evaluation_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last step overflows the weights, and no evaluation follows it (epochs 3,
    evaluated at epoch 0 only): the final parameter check fails the run."""
    original = NodeTask.train_epoch
    calls = []

    def train_epoch(self: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
        loss = original(self, model, optimizer)
        calls.append(loss)
        if len(calls) == 3:
            with torch.no_grad():
                next(model.parameters()).fill_(math.inf)  # as if this step had overflowed
        return loss

    monkeypatch.setattr(NodeTask, "train_epoch", train_epoch)
    cfg = run_config("node", epochs=3, eval_every=5)
    with pytest.raises(
        TrainingDivergedError, match=r"run Tiny/exp/seed0: parameters \[.*\] are not finite after the last epoch \(2\)"
    ):
        train_run(cfg, node_dataset(), device="cpu")


def test_diverged_run_writes_no_record_and_keeps_finished_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """train_and_save (the train rule): the job's finished run keeps its complete record,
    the diverged one has none (no partial or temporary file either)."""
    dataset = node_dataset()
    monkeypatch.setattr(train_mod, "load_dataset", lambda source, name, root: dataset)
    monkeypatch.setattr(train_mod, "read_prepared_manifest", lambda processed: {"raw": {}})
    good = run_config("node")
    bad = {**run_config("node", lr=1e30), "seed": 1}
    outputs = [tmp_path / "runs" / "seed0.json", tmp_path / "runs" / "seed1.json"]
    with pytest.raises(TrainingDivergedError, match=r"run Tiny/exp/seed1: "):
        train_and_save([good, bad], outputs, tmp_path / "pyg", device="cpu", threads=1)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["seed0.json"]
    assert_complete_record(read_json(outputs[0]))


def test_write_json_refuses_nan_and_leaves_nothing(tmp_path: Path) -> None:
    """The last line of defence: a NaN never reaches a run record on disk."""
    path = tmp_path / "run.json"
    write_json(path, {"acc": 0.5})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json(path, {"acc": math.nan})
    assert read_json(path) == {"acc": 0.5}  # the previous complete file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left


def test_aggregate_rejects_a_nan_record(tmp_path: Path) -> None:
    """A record with a NaN metric (written by some other tool) is refused, naming the run."""
    record = train_run(run_config("node"), node_dataset(), device="cpu")
    record["metrics"]["paper"]["last"] = math.nan
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"run Tiny/exp/seed0 .*metrics\.paper\.last is not a finite number: nan"):
        load_runs([path])


# ---------------------------------------------------------------------- degenerate graphs


GRAPH_VARIANTS = {
    "baseline": {},
    "roles-message": {"placement": "message", "gate": "roles", "num_experts": N_ROLES},
    "roles-aggregate": {
        "placement": "aggregate",
        "gate": "roles",
        "num_experts": N_ROLES,
        "update_activation": "outside",
    },
    "dense": {"placement": "aggregate", "gate": "dense", "num_experts": 4},
    "dense-nosoftmax": {"placement": "aggregate", "gate": "dense", "num_experts": 4, "softmax": False},
    "topk-graph": {
        "placement": "aggregate",
        "gate": "noisy_topk",
        "num_experts": 8,
        "top_k": 2,
        "pool": "graph",
        "balance_loss_weight": 0.01,
    },
    "topk-node": {"placement": "both", "gate": "noisy_topk", "num_experts": 8, "top_k": 2, "pool": "node"},
    "shared": {"placement": "both", "gate": "shared", "num_experts": 4},
}


@pytest.fixture(scope="module")
def graph_dataset_with_roles() -> TinyDataset:
    dataset = degenerate_graph_dataset()
    table = dataset_roles(dataset, n_roles=N_ROLES, seed=0, workers=1, progress=False)
    # edgeless, single node, fewer nodes than roles: uniform fallback; the rest: GraphRole
    assert table.fallback[:3].tolist() == [True, True, True]
    np.testing.assert_allclose(table.roles[: 5 + 1 + 2], 1.0 / N_ROLES)
    attach_roles(dataset, table)
    return dataset


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("variant", sorted(GRAPH_VARIANTS))
def test_graph_task_with_degenerate_graphs_trains(
    graph_dataset_with_roles: TinyDataset, variant: str, batch_size: int, tmp_path: Path
) -> None:
    """Edgeless, single-node and 2-node graphs, with roles attached, through train_run.

    ``batch_size=1`` makes every training batch a single graph (the single-node graph
    among them); ``3`` leaves a last batch of one graph (16 training graphs).
    """
    cfg = run_config("graph", GRAPH_VARIANTS[variant], batch_size=batch_size)
    record = train_run(cfg, graph_dataset_with_roles, device="cpu")
    assert_complete_record(record)
    write_json(tmp_path / "run.json", record)  # JSON-safe: no NaN anywhere
    for load in record["expert_load"].values():
        assert all(math.isfinite(v) for v in load)


@pytest.mark.parametrize("variant", ["roles-message", "roles-aggregate", "topk-graph", "shared"])
@pytest.mark.parametrize("edges", [True, False], ids=["edges", "edgeless"])
def test_node_task_isolated_nodes_and_no_edges(variant: str, edges: bool) -> None:
    """A node-classification graph with isolated nodes, or none of its nodes connected."""
    dataset = node_dataset(edges=edges)
    table = dataset_roles(dataset, n_roles=N_ROLES, seed=0, workers=1, progress=False)
    assert bool(table.fallback[0]) is (not edges)
    attach_roles(dataset, table)
    record = train_run(run_config("node", GRAPH_VARIANTS[variant]), dataset, device="cpu")
    assert_complete_record(record)
