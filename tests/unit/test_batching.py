"""gsmoe.batching: mini-batches equal PyG's DataLoader's, tensor for tensor, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from gsmoe.batching import GraphBatcher, ShuffledBatches
from gsmoe.nn.inputs import SparseFeatures, mean_adjacency

KEYS = ("x", "edge_index", "edge_attr", "y", "roles", "batch", "ptr")


def small_graphs(count: int = 40, seed: int = 0) -> list[Data]:
    """Graphs of 1-12 nodes (one without edges) with node, edge and graph attributes."""
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(count):
        nodes = int(torch.randint(1, 13, (1,), generator=generator))
        edges = 0 if i == 3 else int(torch.randint(0, 3 * nodes, (1,), generator=generator))
        graphs.append(
            Data(
                x=torch.randn(nodes, 3, generator=generator),
                edge_index=torch.randint(0, nodes, (2, edges), generator=generator),
                edge_attr=torch.randn(edges, 2, generator=generator),
                y=torch.randint(0, 6, (1,), generator=generator),
                roles=torch.rand(nodes, 4, generator=generator, dtype=torch.float64),
            )
        )
    return graphs


def assert_same_batch(expected: Batch, actual: Batch) -> None:
    assert actual.num_graphs == expected.num_graphs
    for key in KEYS:
        want, got = expected[key], actual[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert torch.equal(got, want), key


def test_any_subset_collates_as_from_data_list() -> None:
    graphs = small_graphs()
    batcher = GraphBatcher(graphs)
    for index in ([0], [3], [5, 2, 3, 39], list(range(40)), [7, 7, 1]):
        expected = Batch.from_data_list([graphs[i] for i in index])
        assert_same_batch(expected, batcher(torch.tensor(index)))


def assert_same_adjacency(expected: SparseFeatures, actual: SparseFeatures) -> None:
    for want, got in ((expected.csr, actual.csr), (expected.csr_t, actual.csr_t)):
        assert got.shape == want.shape
        for part in ("crow_indices", "col_indices", "values"):
            a, b = getattr(got, part)(), getattr(want, part)()
            assert a.dtype == b.dtype and torch.equal(a, b), part


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_adjacency_cut_equals_the_one_built_from_the_batch(dtype: torch.dtype) -> None:
    graphs = small_graphs()
    for graph in graphs:
        graph.x = graph.x.to(dtype)
    batcher = GraphBatcher(graphs)
    full = batcher.full
    assert_same_adjacency(mean_adjacency(full.edge_index, full.num_nodes, dtype), full.mean_adjacency)
    for index in ([0], [3], [5, 2, 3, 39], list(range(40)), [7, 7, 1], list(range(39, -1, -1))):
        batch = batcher(torch.tensor(index))
        expected = mean_adjacency(batch.edge_index, batch.num_nodes, dtype)
        assert_same_adjacency(expected, batch.mean_adjacency)


def test_shuffled_batches_follow_pyg_loader_over_epochs() -> None:
    graphs = small_graphs()
    members = torch.tensor([i for i in range(40) if i % 4 != 1])  # a training part, like a split
    reference = DataLoader([graphs[int(i)] for i in members], batch_size=8, shuffle=True,
                           generator=torch.Generator().manual_seed(5))  # fmt: skip
    batches = ShuffledBatches(GraphBatcher(graphs), members, 8, torch.Generator().manual_seed(5))
    assert len(batches) == len(reference) == 4
    for _ in range(3):  # the generator is consumed alike epoch after epoch
        for expected, actual in zip(reference, batches, strict=True):
            assert_same_batch(expected, actual)


def test_in_order_matches_unshuffled_loader_and_full() -> None:
    graphs = small_graphs(count=19)
    batcher = GraphBatcher(graphs)
    for expected, actual in zip(DataLoader(graphs, batch_size=5), batcher.in_order(5), strict=True):
        assert_same_batch(expected, actual)
    assert_same_batch(Batch.from_data_list(graphs), batcher.full)


def test_rejects_empty_and_non_tensor_attributes() -> None:
    with pytest.raises(ValueError, match="at least one graph"):
        GraphBatcher([])
    graphs = [Data(x=torch.ones(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), name="g") for _ in range(2)]
    with pytest.raises(TypeError, match="'name'"):
        GraphBatcher(graphs)
