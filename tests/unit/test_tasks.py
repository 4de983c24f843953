"""gsmoe.tasks: what a node task refuses, exact accuracies, which models evaluate in batches."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gsmoe.modelspec import model_defaults
from gsmoe.nn import build_model
from gsmoe.tasks import NodeTask, _accuracy, routes_per_batch


def _graph(**masks: torch.Tensor) -> Data:
    return Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([0, 1, 0, 1]), **masks)


def test_node_task_needs_the_three_masks() -> None:
    full = torch.tensor([True, True, False, False])
    with pytest.raises(ValueError, match=r"a node task needs data\.test_mask \(Planetoid's public split\)"):
        NodeTask(_graph(train_mask=full, val_mask=full), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"the dataset's val_mask selects no node"):
        NodeTask(_graph(train_mask=full, val_mask=torch.zeros(4, dtype=torch.bool), test_mask=full), torch.device("cpu"))


def test_accuracy_is_the_exact_fraction() -> None:
    labels = torch.zeros(500, dtype=torch.long)
    log_probs = torch.zeros(500, 2)
    log_probs[348:, 1] = 1.0  # 348 of 500 right
    assert _accuracy(log_probs, labels) == 0.696 == 348 / 500
    with pytest.raises(ValueError, match="empty split"):
        _accuracy(log_probs[:0], labels[:0])


@pytest.mark.parametrize(
    "model,per_batch",
    [
        (dict(gate="dense"), False),
        (dict(gate="noisy_topk", pool="graph"), False),
        (dict(gate="noisy_topk", pool="node"), False),
        (dict(gate="noisy_topk", pool="batch"), True),  # one choice per mini-batch
        (dict(gate="noisy_topk", pool="graph", routing_noise="shared"), True),  # one noise draw per batch
    ],
)
def test_routes_per_batch(model: dict, per_batch: bool) -> None:
    cfg = {**model_defaults(), "placement": "aggregate", "num_experts": 4, "top_k": 2, **model}
    assert routes_per_batch(build_model(cfg, 3, 2, "graph")) is per_batch
