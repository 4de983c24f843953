"""GraphRole (RolX) role distributions per node: the input of the paper's role-based gate.

For every graph, GraphRole extracts recursive structural features of each node and factors
them (NMF) into ``R`` roles; a node's role distribution is its row of the node-role factor,
normalised to sum to 1.  The recursive features come from
:class:`gsmoe.role_features.BulkFeatureExtractor`, which gives GraphRole's
``RecursiveFeatureExtractor(aggs=["sum", "mean"])`` table bit for bit in a fraction of
its time (docs/performance.md).  The gate only needs a valid distribution for every node, but
GraphRole cannot always deliver one, so this module applies these rules, in this order:

1. **Uniform fallback for a whole graph.**  GraphRole refuses a graph without edges, and
   NMF with ``R`` components needs at least ``R`` nodes and ``R`` features (small ENZYMES
   graphs often yield only 2-3 features).  Such a graph, or one where GraphRole raises
   ``ValueError`` for another reason, gets ``1/R`` for every node, and its entry in
   :attr:`RoleTable.fallback` is True.  Uniform carries no structural information, so the
   gate treats all of the graph's nodes alike instead of on made-up roles.
2. **Missing role columns.**  If GraphRole returns fewer than ``R`` columns, the missing
   roles are padded with zeros (no node has them) before step 3.
3. **Row sanitising.**  A row that is not finite, or has a negative entry, is set to zero;
   an all-zero row (typically an isolated node: all its features are zero, so its NMF row
   is zero and GraphRole divides 0 by 0) becomes uniform; every other row is divided by its
   sum.  GraphRole usually gives isolated nodes a uniform row itself (quantisation maps
   their equal zero rows to equal values); the rule only makes sure.

GraphRole's NMF initialisation draws from NumPy's global random state, so results depend
on it: each graph is computed right after ``np.random.seed(seed)`` (the previous global
state is restored afterwards) and with one BLAS/OpenMP thread, so the result is the same
for every graph order and every number of worker processes.

Role indices are not aligned across graphs: NMF orders its components arbitrarily, so
"role 0" of one ENZYMES graph is unrelated to "role 0" of another.
"""

from __future__ import annotations

import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import networkx as nx
import numpy as np
import torch
from graphrole import RoleExtractor
from threadpoolctl import threadpool_limits
from torch_geometric.data import InMemoryDataset

from gsmoe.io import atomic_path
from gsmoe.role_features import BulkFeatureExtractor

__all__ = ["RoleTable", "attach_roles", "dataset_roles", "graph_roles", "load_roles", "save_roles"]

_PROGRESS_EVERY = 50
_ROW_TOL = 1e-4


@dataclass(frozen=True)
class RoleTable:
    """Role distributions of all nodes of a dataset, graph after graph.

    Attributes:
        roles: ``(N_total, R)`` float32; row ``v`` is node ``v``'s role distribution, nodes
            in dataset order (graph 0's nodes first), each row summing to 1.
        ptr: ``(num_graphs + 1,)`` int64; graph ``g`` owns rows ``ptr[g]:ptr[g+1]``.
        fallback: ``(num_graphs,)`` bool; True where the graph got the uniform fallback.
    """

    roles: np.ndarray
    ptr: np.ndarray
    fallback: np.ndarray

    def __post_init__(self) -> None:
        problems = []
        if self.roles.ndim != 2 or self.roles.dtype != np.float32:
            problems.append(f"roles must be a 2-D float32 array, got {self.roles.dtype} {self.roles.shape}")
        elif self.roles.shape[0] and not (
            np.isfinite(self.roles).all()
            and (self.roles >= 0).all()
            and np.allclose(self.roles.sum(axis=1), 1.0, atol=_ROW_TOL)
        ):
            problems.append("roles rows must be finite, non-negative and sum to 1")
        if self.ptr.ndim != 1 or self.ptr.dtype != np.int64 or self.ptr.size < 1 or self.ptr[0] != 0:
            problems.append(f"ptr must be a 1-D int64 array starting at 0, got {self.ptr.dtype} {self.ptr.shape}")
        elif (np.diff(self.ptr) < 0).any() or self.ptr[-1] != self.roles.shape[0]:
            problems.append(f"ptr must be non-decreasing and end at {self.roles.shape[0]} (rows of roles)")
        if self.fallback.dtype != np.bool_ or self.fallback.shape != (self.ptr.size - 1,):
            problems.append(f"fallback must be a bool array of shape ({self.ptr.size - 1},), got {self.fallback.dtype} {self.fallback.shape}")
        if problems:
            raise ValueError("invalid RoleTable: " + "; ".join(problems))

    @property
    def num_graphs(self) -> int:
        return self.ptr.size - 1

    @property
    def n_roles(self) -> int:
        return self.roles.shape[1]


def _uniform(num_nodes: int, n_roles: int) -> np.ndarray:
    return np.full((num_nodes, n_roles), 1.0 / n_roles)


def _sanitize(rows: np.ndarray) -> np.ndarray:
    """Rule 3 of the module docstring: every row becomes a probability distribution."""
    rows = np.where(np.isfinite(rows).all(axis=1, keepdims=True) & (rows >= 0).all(axis=1, keepdims=True), rows, 0.0)
    sums = rows.sum(axis=1, keepdims=True)
    zero = sums[:, 0] <= 0
    out = np.divide(rows, sums, out=np.zeros_like(rows), where=~zero[:, None])
    out[zero] = 1.0 / rows.shape[1]
    return out


def graph_roles(edge_index: np.ndarray, num_nodes: int, n_roles: int = 4, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Role distributions ``(num_nodes, n_roles)`` float64 of one graph, and whether it fell back.

    ``edge_index`` is PyG's ``(2, E)`` array with node ids ``0..num_nodes-1``; the graph is
    taken as undirected and keeps all ``num_nodes`` nodes, isolated ones included.
    """
    if n_roles < 1:
        raise ValueError(f"n_roles must be positive, got {n_roles}")
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from(np.asarray(edge_index).T.tolist())
    if graph.number_of_edges() == 0 or num_nodes < n_roles:
        return _uniform(num_nodes, n_roles), True
    state = np.random.get_state()
    try:
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn convergence chatter on tiny graphs
            features = BulkFeatureExtractor(graph).extract_features()
            features = features.reindex(index=range(num_nodes), fill_value=0)
            if features.shape[1] < n_roles:
                return _uniform(num_nodes, n_roles), True
            extractor = RoleExtractor(n_roles=n_roles)
            np.random.seed(seed)
            extractor.extract_role_factors(features)
            percentage = extractor.role_percentage.reindex(index=range(num_nodes))
    except ValueError:
        return _uniform(num_nodes, n_roles), True
    finally:
        np.random.set_state(state)
    rows = percentage.to_numpy(dtype=np.float64, na_value=np.nan)
    if rows.shape[1] < n_roles:
        rows = np.pad(rows, ((0, 0), (0, n_roles - rows.shape[1])))
    return _sanitize(rows), False


def _graph_job(job: tuple[np.ndarray, int, int, int]) -> tuple[np.ndarray, bool]:
    """Picklable wrapper for the process pool."""
    return graph_roles(*job)


def _jobs(dataset: InMemoryDataset, n_roles: int, seed: int) -> Iterator[tuple[np.ndarray, int, int, int]]:
    for i in range(len(dataset)):
        data = dataset[i]
        yield data.edge_index.numpy(), int(data.num_nodes), n_roles, seed


def dataset_roles(
    dataset: InMemoryDataset, n_roles: int = 4, seed: int = 0, workers: int = 1, progress: bool = True
) -> RoleTable:
    """Role distributions of every graph of ``dataset`` (Planetoid: one graph; ENZYMES: 600).

    ``workers > 1`` spreads graphs over that many processes; results are identical to
    ``workers=1`` because every graph is seeded alike.  The workers are forked: spawned
    ones would re-run the caller's main module (a Snakemake ``script:`` has no
    ``__main__`` guard) and pay seconds of imports each.  Forking is safe here because
    GraphRole's OpenMP code (k-means) always runs with one thread, so the parent never
    holds an OpenMP thread pool that a forked child could deadlock on.

    With ``progress``, a line with the count and elapsed time goes to stderr every 50
    graphs, and a summary (how many graphs fell back) at the end.
    """
    start = time.monotonic()
    total = len(dataset)
    results: list[tuple[np.ndarray, bool]] = []

    def collect(outputs: Iterator[tuple[np.ndarray, bool]]) -> None:
        for out in outputs:
            results.append(out)
            done = len(results)
            if progress and (done % _PROGRESS_EVERY == 0 or done == total):
                print(f"roles: {done}/{total} graphs, {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)

    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            collect(pool.map(_graph_job, _jobs(dataset, n_roles, seed), chunksize=4))
    else:
        collect(map(_graph_job, _jobs(dataset, n_roles, seed)))

    sizes = [rows.shape[0] for rows, _ in results]
    table = RoleTable(
        roles=(np.concatenate([rows for rows, _ in results]) if results else np.zeros((0, n_roles))).astype(np.float32),
        ptr=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        fallback=np.array([fb for _, fb in results], dtype=bool),
    )
    if progress:
        print(
            f"roles: {int(table.fallback.sum())} of {total} graphs used the uniform fallback",
            file=sys.stderr,
            flush=True,
        )
    return table


def save_roles(path: str | Path, table: RoleTable) -> None:
    """Write ``table`` as ``.npz`` atomically (through a handle: ``np.savez`` would append
    ``.npz`` to a temporary file name that lacks it)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, roles=table.roles, ptr=table.ptr, fallback=table.fallback)


def load_roles(path: str | Path, dataset: InMemoryDataset | None = None) -> RoleTable:
    """Read a table written by :func:`save_roles`; with ``dataset``, check that it fits it.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file cannot be read as ``.npz`` (truncated, not an ``.npz``),
            keys, shapes or rows are invalid, or the sizes differ from ``dataset``
            (typically a roles file left over from another dataset or PyG version).
    """
    fix = f"delete it and rerun the `roles` rule (e.g. `snakemake {path}`)"
    keys = ("roles", "ptr", "fallback")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in keys if key in npz.files}
    except FileNotFoundError:
        raise
    # Truncation shows as BadZipFile or EOFError, other bytes as a ValueError about pickles;
    # none of them names the file.
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable roles file ({type(err).__name__}: {err}); {fix}") from err
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"{path} is not a roles file: it lacks {missing}; {fix}")
    try:
        table = RoleTable(**arrays)
    except ValueError as err:
        raise ValueError(f"{path}: {err}; {fix}") from err
    if dataset is not None:
        _check_fits(table, dataset, str(path))
    return table


def _node_counts(dataset: InMemoryDataset) -> np.ndarray:
    """Nodes per graph, from the collated storage (no per-graph copies)."""
    slices = dataset.slices
    if slices is not None and "x" in slices:
        return np.diff(slices["x"].numpy()).astype(np.int64)
    return np.array([dataset[i].num_nodes for i in range(len(dataset))], dtype=np.int64)


def _check_fits(table: RoleTable, dataset: InMemoryDataset, what: str) -> None:
    counts = _node_counts(dataset)
    if table.num_graphs != counts.size or not np.array_equal(np.diff(table.ptr), counts):
        raise ValueError(
            f"roles {what} ({table.num_graphs} graphs, {table.roles.shape[0]} nodes) do not match "
            f"dataset {dataset} ({counts.size} graphs, {int(counts.sum())} nodes); rerun the "
            "`roles` rule for this dataset"
        )


def attach_roles(dataset: InMemoryDataset, table: RoleTable) -> None:
    """Store the roles as node attribute ``roles`` so ``dataset[i].roles`` and ``batch.roles`` work.

    The roles are concatenated like ``x`` (same slices), so PyG's collation and its
    ``DataLoader`` batching treat them as any other node feature.  Graphs cached by an
    earlier ``dataset[i]`` are dropped, or they would lack the attribute.
    """
    _check_fits(table, dataset, "table")
    data = dataset._data  # noqa: SLF001 (PyG's collated storage; no public setter exists)
    data.roles = torch.from_numpy(table.roles)
    if dataset.slices is not None:
        dataset.slices["roles"] = torch.from_numpy(table.ptr)
    dataset._data_list = None  # noqa: SLF001
