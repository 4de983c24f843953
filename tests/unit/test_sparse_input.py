"""Sparse raw features and row-split weights give the dense path's outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from gsmoe.nn import ExpertLinear, GraphSAGEMoE, SAGEMoEConv, SparseFeatures
from gsmoe.nn.inputs import BACKWARD_COLUMNS, linear, maybe_sparse, mean_pool, split_mm
from nn_helpers import (
    E,
    K,
    MODEL_VARIANTS,
    conv_variants,
    graph_batch,
    make_conv,
    node_data,
    randomise_routers,
    sparse_features,
    three_graphs,
)

F_IN, F_OUT = 40, 6


def _sparse_features(num_nodes: int, seed: int = 0) -> torch.Tensor:
    return sparse_features(num_nodes, F_IN, seed)


def _make_conv(kwargs: dict, seed: int = 0) -> SAGEMoEConv:
    return make_conv(kwargs, seed, F_IN, F_OUT, std=0.5)


def _run(conv: torch.nn.Module, x, edge_index, noise_seed: int, **kwargs):
    torch.manual_seed(noise_seed)
    out, aux = conv(x, edge_index, **kwargs)
    probe = torch.linspace(-1, 1, out.numel()).view_as(out)
    params = list(conv.parameters())
    grads = torch.autograd.grad((out * probe).sum() + aux, params, allow_unused=True)
    return out.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _assert_same(dense_run, sparse_run) -> None:
    (out_d, grads_d), (out_s, grads_s) = dense_run, sparse_run
    torch.testing.assert_close(out_s, out_d, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads_s, grads_d):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "one-graph"])
@pytest.mark.parametrize("kwargs,train", conv_variants(activations=False))
def test_conv_sparse_input_matches_dense(kwargs: dict, train: bool, batched: bool) -> None:
    conv = _make_conv(kwargs).train(train)
    x, edge_index, batch, roles = three_graphs(x=_sparse_features(12))
    extra = dict(batch=batch if batched else None, roles=roles)
    dense = _run(conv, x, edge_index, 7, **extra)
    sparse = _run(conv, SparseFeatures(x), edge_index, 7, **extra)
    _assert_same(dense, sparse)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_conv_accepts_torch_sparse_tensors(layout: str) -> None:
    conv = _make_conv(dict(placement="aggregate", gate="dense", num_experts=E))
    x, edge_index, batch, _ = three_graphs(x=_sparse_features(12))
    x_sparse = x.to_sparse() if layout == "coo" else x.to_sparse_csr()
    _assert_same(_run(conv, x, edge_index, 0, batch=batch), _run(conv, x_sparse, edge_index, 0, batch=batch))


def _node_data() -> Data:
    return node_data(seed=3, features=F_IN, density=0.1)


def _graph_batch() -> Batch:
    return graph_batch(seed=4, num_graphs=6, features=F_IN, density=0.1)


@pytest.mark.parametrize("task", ["node", "graph"])
@pytest.mark.parametrize("variant", list(MODEL_VARIANTS))
def test_model_sparse_first_layer_matches_dense(variant: str, task: str) -> None:
    data = _node_data() if task == "node" else _graph_batch()
    runs = []
    for threshold in (0.0, 0.5):
        torch.manual_seed(0)
        model = GraphSAGEMoE(F_IN, 3, task, dropout=0.3, sparse_threshold=threshold, **MODEL_VARIANTS[variant])
        randomise_routers(model, std=0.5)
        assert isinstance(model.first_layer_input(data.x), SparseFeatures) == (threshold > 0)
        torch.manual_seed(1)  # same noise and dropout masks in both runs
        out = model(data)
        loss = -out.log_probs.sum() + out.aux_loss
        grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
        runs.append((out.log_probs.detach(), [torch.zeros(0) if g is None else g for g in grads]))
    _assert_same(runs[0], runs[1])


def test_model_caches_the_sparse_copy_until_x_changes() -> None:
    data = _node_data()
    model = GraphSAGEMoE(F_IN, 3, "node")
    first = model.first_layer_input(data.x)
    assert isinstance(first, SparseFeatures)
    assert model.first_layer_input(data.x) is first
    model(data)
    assert model.first_layer_input(data.x) is first
    data.x[0, 0] += 1.0  # in place: the cached copy is stale
    assert model.first_layer_input(data.x) is not first
    assert model.first_layer_input(data.x.clone()) is not first
    dense = torch.randn(30, F_IN)  # no zeros: stays dense
    assert model.first_layer_input(dense) is dense
    assert GraphSAGEMoE(F_IN, 3, "node", sparse_threshold=0).first_layer_input(data.x) is data.x
    assert "_input_cache" not in dict(model.state_dict())


def test_raw_input_is_not_dropped_out() -> None:
    # Dropout comes after each conv only: in training the first layer reads data.x as it is.
    data = _node_data()
    model = GraphSAGEMoE(F_IN, 3, "node", dropout=0.9, **MODEL_VARIANTS["baseline"]).train()
    seen = []
    model.convs[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model(data)
    assert isinstance(seen[0], SparseFeatures) and torch.equal(seen[0].dense, data.x)


def test_maybe_sparse_threshold() -> None:
    x = _sparse_features(30)
    assert isinstance(maybe_sparse(x, 0.3), SparseFeatures)
    assert maybe_sparse(x, 0.05) is x
    assert maybe_sparse(x.requires_grad_(True), 0.3) is x
    assert maybe_sparse(torch.zeros(0, 4)).numel() == 0


@pytest.mark.parametrize("columns", [5, BACKWARD_COLUMNS, 3 * BACKWARD_COLUMNS + 7])
def test_sparse_matmul_and_weight_gradient(columns: int) -> None:
    x = _sparse_features(50)
    w = torch.randn(F_IN, columns, requires_grad=True)
    probe = torch.randn(50, columns)
    got = SparseFeatures(x).matmul(w)
    (g_got,) = torch.autograd.grad((got * probe).sum(), w)
    want = x @ w
    (g_want,) = torch.autograd.grad((want * probe).sum(), w)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got, g_want)


@pytest.mark.parametrize("batched", [True, False])
def test_mean_pool_of_parts(batched: bool) -> None:
    x, _, batch, _ = three_graphs(x=_sparse_features(12))
    agg = torch.randn(12, 3)
    batch_arg = batch if batched else None
    got = mean_pool((SparseFeatures(x), agg), batch_arg, 3 if batched else None)
    x_cat = torch.cat([x, agg], 1)
    want = scatter(x_cat, batch, 0, dim_size=3, reduce="mean") if batched else x_cat.mean(0, keepdim=True)
    torch.testing.assert_close(got, want)


def test_split_mm_and_linear_equal_concatenation() -> None:
    x = _sparse_features(20)
    agg = torch.randn(20, 3, requires_grad=True)
    lin = torch.nn.Linear(F_IN + 3, 5)
    for first in (x, SparseFeatures(x)):
        torch.testing.assert_close(linear((first, agg), lin), lin(torch.cat([x, agg], 1)))
    with pytest.raises(ValueError, match="weight has 43 rows but the input parts have 40 columns"):
        split_mm(x, lin.weight.t())


@pytest.mark.parametrize("method", ["dense", "select", "sparse"])
def test_expert_linear_on_parts(method: str) -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(F_IN + 3, 4, num_experts=6)
    x = _sparse_features(20)
    agg = torch.randn(20, 3)
    index = torch.randint(0, 6, (20, 2), generator=torch.Generator().manual_seed(1))

    def apply(inp):
        if method == "dense":
            return experts.dense(inp)
        if method == "select":
            return experts.select(inp, torch.tensor([5, 1]))
        return experts.sparse(inp, index)

    want = apply(torch.cat([x, agg], 1))
    (g_want,) = torch.autograd.grad(want.pow(2).sum(), experts.weight)
    for parts in ((x, agg), (SparseFeatures(x), agg)):
        got = apply(parts)
        (g_got,) = torch.autograd.grad(got.pow(2).sum(), experts.weight)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(g_got, g_want)


@pytest.mark.parametrize("sparse_part", [False, True])
def test_grouped_matches_sparse_dispatch(sparse_part: bool) -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(F_IN + 3, 4, num_experts=8)
    x = _sparse_features(20)
    agg = torch.randn(20, 3)
    group = torch.tensor([2, 0, 0, 1, 2, 2, 0, 1, 1, 1, 2, 0, 0, 0, 2, 1, 1, 2, 0, 1])  # not contiguous
    chosen = torch.tensor([[5, 1], [0, 7], [3, 5]])
    parts = (SparseFeatures(x) if sparse_part else x, agg)
    got = experts.grouped(parts, chosen, group)
    want = experts.sparse(torch.cat([x, agg], 1), chosen[group])
    torch.testing.assert_close(got, want)
    probe = torch.randn(got.shape)
    g_got = torch.autograd.grad((got * probe).sum(), [experts.weight, experts.bias])
    g_want = torch.autograd.grad((want * probe).sum(), [experts.weight, experts.bias])
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b)
    assert experts.grouped(x[:0], chosen[:0], group[:0]).shape == (0, 2, 4)


@pytest.mark.parametrize("path", ["grouped", "sparse"])
def test_graph_routing_paths_match_reference(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gsmoe.nn import conv as conv_module
    from gsmoe.nn.reference import reference_conv

    # One 40-node graph and 8 single nodes: padding 48 * 40 rows, 40x the 48 rows.
    monkeypatch.setattr(conv_module, "GROUPED_MAX_WORK", 0 if path == "sparse" else 2**40)
    used = []
    for name in ("grouped", "sparse"):
        original = getattr(ExpertLinear, name)
        monkeypatch.setattr(ExpertLinear, name, lambda self, *a, _o=original, _n=name, **k: used.append(_n) or _o(self, *a, **k))
    conv = _make_conv(dict(placement="both", gate="noisy_topk", num_experts=E, top_k=K, pool="graph")).train()
    x = _sparse_features(48)
    src = torch.arange(39)
    edge_index = torch.stack([torch.cat([src, src + 1]), torch.cat([src + 1, src])])
    batch = torch.cat([torch.zeros(40, dtype=torch.long), torch.arange(1, 9)])
    torch.manual_seed(5)
    out, _ = conv(SparseFeatures(x), edge_index, batch=batch)
    torch.manual_seed(5)
    expected = reference_conv(conv, x, edge_index, batch=batch)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert set(used) == {path}


def test_mean_adjacency_is_pyg_mean_aggregation() -> None:
    from gsmoe.nn.inputs import mean_adjacency

    # Node 4 receives nothing; edge 0 -> 1 appears twice; node 2 has a self loop.
    edge_index = torch.tensor([[0, 0, 2, 3, 1, 2], [1, 1, 2, 1, 3, 0]])
    messages = torch.randn(5, 3, requires_grad=True)
    adjacency = mean_adjacency(edge_index, 5)
    got = adjacency.matmul(messages)
    want = scatter(messages[edge_index[0]], edge_index[1], 0, dim_size=5, reduce="mean")
    torch.testing.assert_close(got, want)
    probe = torch.randn(5, 3)
    (g_got,) = torch.autograd.grad((got * probe).sum(), messages)
    (g_want,) = torch.autograd.grad((want * probe).sum(), messages)
    torch.testing.assert_close(g_got, g_want)
    with pytest.raises(ValueError, match="edge_index refers to nodes outside 0..2"):
        mean_adjacency(edge_index, 3)


def test_model_caches_the_adjacency_per_edge_index() -> None:
    data = _node_data()
    model = GraphSAGEMoE(F_IN, 3, "node")
    first = model.adjacency(data.edge_index, 30, torch.float32)
    assert model.adjacency(data.edge_index, 30, torch.float32) is first
    model(data)
    assert model.adjacency(data.edge_index, 30, torch.float32) is first
    assert model.adjacency(data.edge_index.clone(), 30, torch.float32) is not first
