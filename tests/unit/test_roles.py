"""GraphRole role distributions: bulk features, fallbacks, validity, determinism, workers, I/O, attaching."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from graphrole import RecursiveFeatureExtractor
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.loader import DataLoader

import gsmoe.roles as roles_mod
from gsmoe.datasets import load_dataset, prepare_dataset
from gsmoe.role_features import BulkFeatureExtractor
from gsmoe.roles import RoleTable, attach_roles, dataset_roles, graph_roles, load_roles, save_roles

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason="local dataset mirror not available")


def _edges(graph: nx.Graph) -> np.ndarray:
    """PyG-style (2, E) edge array with both directions."""
    pairs = np.array(list(graph.edges), dtype=np.int64).reshape(-1, 2)
    return np.concatenate([pairs, pairs[:, ::-1]]).T


def _rich_graph(isolated: int = 0) -> nx.Graph:
    """A barbell (5-cliques 0-4 and 8-12 joined by the path 5-6-7) with a tail 0-13-14.

    Small, yet with 5 GraphRole features, so 4 roles are extracted without the fallback.
    """
    graph = nx.barbell_graph(5, 3)
    graph.add_edges_from([(0, 13), (13, 14)])
    graph.add_nodes_from(range(15, 15 + isolated))
    return graph


def _assert_distributions(rows: np.ndarray, n: int, r: int) -> None:
    assert rows.shape == (n, r)
    assert np.isfinite(rows).all() and (rows >= 0).all()
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-6)


TWO_TRIANGLES = nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 3)])


@pytest.mark.parametrize(
    ("graph", "num_nodes"),
    [
        (nx.path_graph(5), 5),
        (nx.star_graph(5), 6),
        (TWO_TRIANGLES, 6),
        (nx.empty_graph(5), 5),  # no edges
        (nx.empty_graph(1), 1),  # single node
        (nx.cycle_graph(3), 3),  # fewer nodes than roles
        (nx.empty_graph(0), 0),
    ],
)
def test_small_graphs_fall_back_to_uniform(graph: nx.Graph, num_nodes: int) -> None:
    # Small graphs yield fewer than 4 features (or nodes, or edges) -> uniform 1/4.
    rows, fallback = graph_roles(_edges(graph), num_nodes, n_roles=4, seed=0)
    assert fallback
    assert rows.shape == (num_nodes, 4)
    np.testing.assert_array_equal(rows, np.full((num_nodes, 4), 0.25))


def test_small_graphs_with_two_roles_follow_structure() -> None:
    path, fb = graph_roles(_edges(nx.path_graph(5)), 5, n_roles=2)
    assert not fb
    _assert_distributions(path, 5, 2)
    np.testing.assert_allclose(path[0], path[4])  # the two ends play the same role
    np.testing.assert_allclose(path[1], path[3])
    star, fb = graph_roles(_edges(nx.star_graph(5)), 6, n_roles=2)
    assert not fb
    _assert_distributions(star, 6, 2)
    assert np.allclose(star[1:], star[1]) and not np.allclose(star[0], star[1])
    # Two triangles joined by an edge give a single GraphRole feature: fallback even for 2 roles.
    tri, fb = graph_roles(_edges(TWO_TRIANGLES), 6, n_roles=2)
    assert fb
    np.testing.assert_array_equal(tri, np.full((6, 2), 0.5))


def test_rich_graph_with_isolated_nodes() -> None:
    rows, fallback = graph_roles(_edges(_rich_graph(isolated=2)), 17, n_roles=4, seed=0)
    assert not fallback
    _assert_distributions(rows, 17, 4)
    np.testing.assert_allclose(rows[15], rows[16])  # isolated nodes alike
    np.testing.assert_allclose(rows[1:4], np.broadcast_to(rows[1], (3, 4)))  # clique members alike
    np.testing.assert_allclose(rows[9:13], np.broadcast_to(rows[9], (4, 4)))
    assert not np.allclose(rows[1], rows[6])  # ... but not like the middle of the path


def test_node_order_follows_node_ids() -> None:
    # Relabel the graph randomly: rows must follow the node ids, so structurally
    # equivalent nodes (clique members 1-3) still share a row and differ from node 6.
    # (GraphRole is not exactly permutation-equivariant: k-means quantisation depends on
    # row order, so rows are not compared with the unpermuted run.)
    perm = np.random.default_rng(0).permutation(17)
    relabelled = nx.relabel_nodes(_rich_graph(isolated=2), dict(enumerate(perm.tolist())))
    rows, fallback = graph_roles(_edges(relabelled), 17)
    assert not fallback
    np.testing.assert_allclose(rows[perm[[1, 2, 3]]], np.broadcast_to(rows[perm[1]], (3, 4)))
    np.testing.assert_allclose(rows[perm[15]], rows[perm[16]])
    assert not np.allclose(rows[perm[1]], rows[perm[6]])


def test_deterministic_and_no_global_rng_leak() -> None:
    edges = _edges(_rich_graph(isolated=1))
    np.random.seed(123)
    expected_draw = np.random.random()
    np.random.seed(123)
    a, _ = graph_roles(edges, 16, seed=5)
    assert np.random.random() == expected_draw  # global state restored
    b, _ = graph_roles(edges, 16, seed=5)
    np.testing.assert_array_equal(a, b)


class _FakeExtractor:
    """Stands in for GraphRole's RoleExtractor to produce awkward outputs."""

    percentage: pd.DataFrame | None = None

    def __init__(self, n_roles: int) -> None:
        self.n_roles = n_roles

    def extract_role_factors(self, features: pd.DataFrame) -> None:
        if self.percentage is None:
            raise ValueError("degenerate input")

    @property
    def role_percentage(self) -> pd.DataFrame | None:
        return self.percentage


def test_padding_and_row_sanitising(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two role columns instead of four; rows in shuffled node order; a NaN row (0/0),
    # a row summing to 2, a negative row.
    frame = pd.DataFrame(
        [[0.5, 0.5], [np.nan, np.nan], [1.5, 0.5], [-1.0, 2.0]] + [[1.0, 0.0]] * 11,
        index=[3, 0, 1, 2] + list(range(4, 15)),
    )
    monkeypatch.setattr(_FakeExtractor, "percentage", frame)
    monkeypatch.setattr(roles_mod, "RoleExtractor", _FakeExtractor)
    rows, fallback = graph_roles(_edges(_rich_graph()), 15, n_roles=4)
    assert not fallback
    _assert_distributions(rows, 15, 4)
    np.testing.assert_allclose(rows[3], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(rows[0], [0.25] * 4)  # NaN -> uniform
    np.testing.assert_allclose(rows[1], [0.75, 0.25, 0, 0])  # renormalised
    np.testing.assert_allclose(rows[2], [0.25] * 4)  # negative -> uniform


def test_graphrole_value_error_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roles_mod, "RoleExtractor", _FakeExtractor)
    rows, fallback = graph_roles(_edges(_rich_graph()), 15, n_roles=4)
    assert fallback
    np.testing.assert_array_equal(rows, np.full((15, 4), 0.25))


# --- GraphRole's recursive features in bulk ------------------------------------------------


def _hub_graph() -> nx.Graph:
    """A random graph plus a hub with 300 neighbours (NumPy sums more than 128 values
    pairwise in blocks, so a sum in another order would differ), two self-loops and two
    isolated nodes."""
    graph = nx.gnm_random_graph(400, 1000, seed=0)
    neighbours = np.random.default_rng(0).choice(400, size=300, replace=False)
    graph.add_edges_from((400, int(v)) for v in neighbours)
    graph.add_edges_from([(7, 7), (401, 401)])  # node 401: its only neighbour is itself
    graph.add_nodes_from([402, 403])
    return graph


def _shuffled_graph() -> nx.Graph:
    """Nodes and edges inserted in random order: node and neighbour order are not sorted."""
    rng = np.random.default_rng(1)
    edges = list(nx.barabasi_albert_graph(200, 2, seed=1).edges)
    graph = nx.Graph()
    graph.add_nodes_from(rng.permutation(200).tolist())
    graph.add_edges_from(edges[i] for i in rng.permutation(len(edges)))
    return graph


def _star_with_tail() -> nx.Graph:
    graph = nx.star_graph(150)
    graph.add_edges_from([(150, 151), (151, 152), (3, 4)])
    return graph


def _assert_identical(new: pd.DataFrame, old: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    pd.testing.assert_index_equal(new.index, old.index, exact=True)
    pd.testing.assert_index_equal(new.columns, old.columns, exact=True)
    assert new.dtypes.tolist() == old.dtypes.tolist()


def _extract(extractor: RecursiveFeatureExtractor) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The final features and every generation's ``_get_next_features`` table (GraphRole
    sorts and fills those before use, which would hide a wrong node order or a NaN)."""
    generations: list[pd.DataFrame] = []
    compute = extractor._get_next_features

    def recorded() -> pd.DataFrame:
        generations.append(compute())
        return generations[-1]

    extractor._get_next_features = recorded  # type: ignore[method-assign]
    return extractor.extract_features(), generations


def _compare_with_graphrole(graph: nx.Graph, monkeypatch: pytest.MonkeyPatch) -> tuple[BulkFeatureExtractor, list[int]]:
    """Assert that both extractors give identical tables; return the bulk extractor and
    the generations it left to GraphRole's own code."""
    expected, expected_generations = _extract(RecursiveFeatureExtractor(graph, aggs=["sum", "mean"]))
    fallbacks: list[int] = []
    graphrole_next = RecursiveFeatureExtractor._get_next_features

    def counted(self: RecursiveFeatureExtractor) -> pd.DataFrame:
        fallbacks.append(self.generation_count)
        return graphrole_next(self)

    monkeypatch.setattr(RecursiveFeatureExtractor, "_get_next_features", counted)
    bulk = BulkFeatureExtractor(graph)
    features, generations = _extract(bulk)
    _assert_identical(features, expected)
    for new, old in zip(generations, expected_generations, strict=True):
        _assert_identical(new, old)
    return bulk, fallbacks


@pytest.mark.parametrize(
    "graph",
    [
        _rich_graph(isolated=2),
        _hub_graph(),
        _star_with_tail(),
        _shuffled_graph(),
        TWO_TRIANGLES,
        nx.gnm_random_graph(60, 150, seed=2),
        nx.powerlaw_cluster_graph(300, 3, 0.3, seed=3),
    ],
    ids=["isolated", "hub300", "star", "shuffled", "two-triangles", "gnm", "powerlaw"],
)
def test_bulk_features_equal_graphrole_bit_for_bit(graph: nx.Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    _, fallbacks = _compare_with_graphrole(graph, monkeypatch)
    assert fallbacks == []  # every generation took the bulk path


@pytest.mark.parametrize(
    ("weight", "left_to_graphrole"),
    [
        (None, "none"),
        # Float degrees: a frame of one dtype may be one block, whose reindex pandas sums
        # neighbour after neighbour instead of pairwise.
        (0.3, "all"),
        (2**48, "first"),  # integer sums over 2**53 would not be exact in float64
    ],
)
def test_bulk_features_leave_unmirrored_cases_to_graphrole(
    weight: float | None, left_to_graphrole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = nx.gnm_random_graph(60, 200, seed=4)
    if weight is not None:
        for i, (u, v) in enumerate(graph.edges):
            graph[u][v]["weight"] = weight * (1 + i % 7)
    bulk, fallbacks = _compare_with_graphrole(graph, monkeypatch)
    generations = list(range(1, bulk.generation_count + 1))
    assert fallbacks == {"none": [], "all": generations, "first": [1]}[left_to_graphrole]


@needs_mirror
def test_bulk_features_equal_graphrole_on_cora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # About 20 s: GraphRole's own extractor aggregates node by node.
    prepare_dataset("planetoid", "Cora", sorted((MIRROR / "planetoid").glob("ind.cora.*")), tmp_path / "C")
    data = load_dataset("planetoid", "Cora", tmp_path / "C")[0]
    graph = nx.Graph()  # as graph_roles builds it
    graph.add_nodes_from(range(data.num_nodes))
    graph.add_edges_from(data.edge_index.numpy().T.tolist())
    _, fallbacks = _compare_with_graphrole(graph, monkeypatch)
    assert fallbacks == []


# --- datasets of several graphs ----------------------------------------------------------


class _ListDataset(InMemoryDataset):
    """A few graphs in PyG's collated in-memory storage, like TUDataset."""

    def __init__(self, graphs: list[nx.Graph]) -> None:
        super().__init__(None)
        self.data, self.slices = self.collate(
            [
                Data(x=torch.ones(g.number_of_nodes(), 1), edge_index=torch.from_numpy(_edges(g)), y=torch.tensor([i % 2]))
                for i, g in enumerate(graphs)
            ]
        )


def _small_dataset() -> _ListDataset:
    return _ListDataset(
        [_rich_graph(), nx.path_graph(4), _rich_graph(isolated=2), nx.empty_graph(3), nx.lollipop_graph(5, 4)]
    )


def test_dataset_roles_workers_match_serial(capsys: pytest.CaptureFixture[str]) -> None:
    ds = _small_dataset()
    serial = dataset_roles(ds, seed=1, workers=1, progress=True)
    assert "roles: 5/5 graphs" in capsys.readouterr().err
    parallel = dataset_roles(ds, seed=1, workers=2, progress=False)
    np.testing.assert_array_equal(serial.roles, parallel.roles)
    np.testing.assert_array_equal(serial.ptr, [0, 15, 19, 36, 39, 48])
    np.testing.assert_array_equal(serial.ptr, parallel.ptr)
    assert serial.fallback.tolist() == parallel.fallback.tolist() == [False, True, False, True, True]
    assert serial.roles.dtype == np.float32 and serial.n_roles == 4 and serial.num_graphs == 5


def _uniform_table(counts: list[int], r: int = 4) -> RoleTable:
    n = sum(counts)
    roles = np.random.default_rng(0).random((n, r)).astype(np.float32) + 0.1
    return RoleTable(
        roles=(roles / roles.sum(axis=1, keepdims=True)).astype(np.float32),
        ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        fallback=np.zeros(len(counts), dtype=bool),
    )


def test_save_load_roundtrip_and_validation(tmp_path: Path) -> None:
    ds = _small_dataset()
    table = _uniform_table([15, 4, 17, 3, 9])
    path = tmp_path / "roles" / "toy"  # no .npz suffix: the name must stay as given
    save_roles(path, table)
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy"]
    loaded = load_roles(path, ds)
    np.testing.assert_array_equal(loaded.roles, table.roles)
    np.testing.assert_array_equal(loaded.ptr, table.ptr)
    with pytest.raises(ValueError, match="do not match dataset"):
        load_roles(path, _ListDataset([_rich_graph()]))
    np.savez(tmp_path / "bad.npz", roles=table.roles)
    with pytest.raises(ValueError, match="lacks"):
        load_roles(tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", roles=np.full((2, 4), np.nan, np.float32), ptr=np.array([0, 2]), fallback=np.array([False]))
    with pytest.raises(ValueError, match="sum to 1"):
        load_roles(tmp_path / "nan.npz")


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        (lambda data: data[: len(data) // 2], "BadZipFile"),
        (lambda data: b"", "EOFError"),
        (lambda data: b"garbage, not an npz file" * 10, "ValueError"),  # numpy's own: "pickled data"
        (lambda data: data[:200] + bytes(60) + data[260:], "BadZipFile"),  # bad CRC
    ],
    ids=["truncated", "empty", "garbage", "corrupt"],
)
def test_unreadable_roles_file_names_it_and_the_fix(tmp_path: Path, damage: Callable[[bytes], bytes], cause: str) -> None:
    path = tmp_path / "roles" / "Cora.npz"
    save_roles(path, _uniform_table([15, 4, 17]))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=rf"Cora\.npz is not a readable roles file \({cause}.*rerun the `roles` rule"):
        load_roles(path)


def test_attach_roles_batches(tmp_path: Path) -> None:
    ds = _small_dataset()
    _ = ds[1]  # cache a graph before attaching: it must not be served without roles
    table = _uniform_table([15, 4, 17, 3, 9])
    attach_roles(ds, table)
    assert torch.equal(ds[1].roles, torch.from_numpy(table.roles[15:19]))
    batch = next(iter(DataLoader(ds, batch_size=3, shuffle=False)))
    assert batch.roles.shape == (36, 4) and batch.x.shape[0] == 36
    assert torch.equal(batch.roles, torch.from_numpy(table.roles[:36]))
    with pytest.raises(ValueError, match="do not match"):
        attach_roles(_small_dataset(), _uniform_table([15, 4, 17, 3, 10]))


@needs_mirror
def test_attach_roles_real_datasets(tmp_path: Path) -> None:
    prepare_dataset("tu", "ENZYMES", [MIRROR / "tu" / "ENZYMES.zip"], tmp_path / "E")
    enzymes = load_dataset("tu", "ENZYMES", tmp_path / "E")
    counts = np.diff(enzymes.slices["x"].numpy()).tolist()
    table = _uniform_table(counts)
    attach_roles(enzymes, table)
    loader = DataLoader(enzymes[torch.tensor([5, 300, 7])], batch_size=3)
    batch = next(iter(loader))
    ptr = table.ptr
    expected = np.concatenate([table.roles[ptr[i] : ptr[i + 1]] for i in (5, 300, 7)])
    assert torch.equal(batch.roles, torch.from_numpy(expected))

    prepare_dataset("planetoid", "Cora", sorted((MIRROR / "planetoid").glob("ind.cora.*")), tmp_path / "C")
    cora = load_dataset("planetoid", "Cora", tmp_path / "C")
    with pytest.raises(ValueError, match="1 graphs, 2708 nodes"):
        attach_roles(cora, _uniform_table([2707]))
    attach_roles(cora, _uniform_table([2708]))
    assert cora[0].roles.shape == (2708, 4)
