"""What the model-library tests share: small graphs, the layer and model variants, layers
with live routers (``from nn_helpers import ...``, like ``tests/helpers.py``)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from gsmoe.nn import NoisyTopKGate, SAGEMoEConv

#: Experts of a MoE stage and experts kept by the noisy top-k gate in the small variants.
E, K = 4, 2

#: Gate settings of the layer variants, by name; each runs at every placement it allows.
GATE_VARIANTS = {
    "baseline": dict(placement="none", gate="none", num_experts=1),
    "roles": dict(gate="roles"),
    "dense": dict(gate="dense"),
    "dense_nosoftmax": dict(gate="dense", softmax=False),
    "topk_graph": dict(gate="noisy_topk", top_k=K, pool="graph"),
    "topk_node": dict(gate="noisy_topk", top_k=K, pool="node"),
    "topk_batch_shared": dict(gate="noisy_topk", top_k=K, pool="batch", routing_noise="shared"),
    "topk_graph_shared": dict(gate="noisy_topk", top_k=K, pool="graph", routing_noise="shared"),
    "topk_node_linear_init": dict(gate="noisy_topk", top_k=K, pool="node", router_init="linear"),
    "topk_graph_noiseless": dict(gate="noisy_topk", top_k=K, pool="graph", routing_noise="none"),
    "shared": dict(gate="shared"),
}


#: Model variants (keys of :class:`~gsmoe.nn.GraphSAGEMoE` beyond hidden, layers, dropout).
MODEL_VARIANTS = {
    "baseline": GATE_VARIANTS["baseline"],
    "roles-message": dict(placement="message", gate="roles", num_experts=E),
    "roles-aggregate": dict(placement="aggregate", gate="roles", num_experts=E),
    "dense-aggregate": dict(placement="aggregate", gate="dense", num_experts=E),
    "dense-nosoftmax": dict(placement="aggregate", gate="dense", num_experts=E, softmax=False),
    "dense-message-source": dict(placement="message", gate="dense", num_experts=E, message_gate_node="source"),
    "topk-graph-both": dict(placement="both", gate="noisy_topk", num_experts=8, top_k=2, pool="graph"),
    "topk-node-aggregate": dict(placement="aggregate", gate="noisy_topk", num_experts=8, top_k=2, pool="node"),
    "shared-both": dict(placement="both", gate="shared", num_experts=E),
}


def _placements(variant: str) -> tuple[str, ...]:
    if variant == "baseline":
        return ("none",)
    if variant == "shared":
        return ("both",)
    return ("message", "aggregate", "both")


def conv_variants(activations: bool = True) -> list:
    """``pytest.param(kwargs, train)`` for every gate variant, placement and message gate
    node (and, with ``activations``, both activations of each MoE stage); noisy gates in
    evaluation and in training (their noise), the others in evaluation."""
    cases = []
    for variant, gate_kwargs in GATE_VARIANTS.items():
        for placement in _placements(variant):
            message = placement in ("message", "both")
            update = placement in ("aggregate", "both")
            for node in ("target", "source") if message else ("target",):
                for m_act in ("outside", "inside") if message and activations else ("outside",):
                    for u_act in ("inside", "outside") if update and activations else ("inside",):
                        for train in (False, True) if variant.startswith("topk") else (False,):
                            kwargs = {
                                "num_experts": E,
                                "placement": placement,
                                "message_gate_node": node,
                                "message_activation": m_act,
                                "update_activation": u_act,
                                **gate_kwargs,
                            }
                            acts = f"-m{m_act}-u{u_act}" if activations else ""
                            case_id = f"{variant}-{placement}-{node}{acts}-{'train' if train else 'eval'}"
                            cases.append(pytest.param(kwargs, train, id=case_id))
    return cases


def randomise_routers(module: torch.nn.Module, std: float = 1.0) -> None:
    """Noisy gates start at zero (all ties); random router weights exercise real routing."""
    for gate in module.modules():
        if isinstance(gate, NoisyTopKGate):
            for param in gate.parameters():  # W_g, W_noise and (router_init: linear) their biases
                torch.nn.init.normal_(param, std=std)


def make_conv(kwargs: dict, seed: int = 0, in_channels: int = 5, out_channels: int = 6, std: float = 1.0) -> SAGEMoEConv:
    """A seeded layer with random routers."""
    torch.manual_seed(seed)
    conv = SAGEMoEConv(in_channels, out_channels, **kwargs)
    randomise_routers(conv, std)
    return conv


def _sparse(num_nodes: int, columns: int, gen: torch.Generator, density: float) -> torch.Tensor:
    x = torch.rand(num_nodes, columns, generator=gen) * (torch.rand(num_nodes, columns, generator=gen) < density)
    x[num_nodes // 2] = 0.0  # a node without any feature
    return x


def sparse_features(num_nodes: int, columns: int, seed: int = 0, density: float = 0.1) -> torch.Tensor:
    """Non-negative features, about ``density`` of them non-zero, one row all zero."""
    return _sparse(num_nodes, columns, torch.Generator().manual_seed(seed), density)


def three_graphs(seed: int = 0, in_channels: int = 5, x: torch.Tensor | None = None):
    """Three graphs: a 5-cycle with a chord, a 4-path, 3 nodes without edges.  Returns
    ``x`` (random, unless given: 12 rows), ``edge_index``, ``batch`` and ``roles`` (E roles)."""
    gen = torch.Generator().manual_seed(seed)
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (5, 6), (6, 7), (7, 8)]
    edge_index = torch.tensor(edges).T
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    batch = torch.tensor([0] * 5 + [1] * 4 + [2] * 3)
    if x is None:
        x = torch.randn(12, in_channels, generator=gen)
    roles = torch.softmax(torch.randn(12, E, generator=gen), -1)
    return x, edge_index, batch, roles


def random_graph(
    num_nodes: int, num_edges: int, gen: torch.Generator, features: int = 8, density: float | None = None
) -> Data:
    """Random undirected edges, features (normal, or sparse with ``density``) and roles."""
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    x = torch.randn(num_nodes, features, generator=gen) if density is None else _sparse(num_nodes, features, gen, density)
    roles = torch.softmax(2 * torch.randn(num_nodes, E, generator=gen), -1)
    return Data(x=x, edge_index=edge_index, roles=roles)


def node_data(seed: int = 0, features: int = 8, density: float | None = None) -> Data:
    """One graph of 30 nodes in 3 classes."""
    gen = torch.Generator().manual_seed(seed)
    data = random_graph(30, 45, gen, features, density)
    data.y = torch.randint(0, 3, (30,), generator=gen)
    return data


def graph_batch(seed: int = 0, num_graphs: int = 16, features: int = 8, density: float | None = None) -> Batch:
    """A batch of small graphs (3 to 7 nodes) in 2 classes."""
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(num_graphs):
        n = int(torch.randint(3, 8, (1,), generator=gen))
        graph = random_graph(n, n, gen, features, density)
        graph.y = torch.tensor([i % 2])
        graphs.append(graph)
    return Batch.from_data_list(graphs)
