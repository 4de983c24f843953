"""Mini-batches of small graphs, collated by indexing one concatenated copy of the dataset.

PyG's ``DataLoader`` collates every mini-batch with ``Batch.from_data_list``: a Python
pass over each graph and attribute, about 1.1 ms per batch of 32 ENZYMES graphs, which
is much of an epoch whose steps are tiny products (an ENZYMES run takes 4 500 steps).  A
:class:`GraphBatcher` collates the whole dataset once and builds each mini-batch with a
few index operations per attribute (about 0.4 ms).  The batches hold the same tensors, bit for bit, as
``Batch.from_data_list`` of the same graphs in the same order: the values are copied, not
computed, and the index increments (``edge_index``) are integers.

:class:`ShuffledBatches` draws the batches' graphs exactly as ``DataLoader(graphs,
batch_size, shuffle=True, generator=generator)`` does (the same sampler, consuming the
same generator), so switching from PyG's loader changes no training run.

Every batch also carries its row-normalised mean adjacency (``batch.mean_adjacency``, what
:func:`~gsmoe.nn.inputs.mean_adjacency` builds from ``batch.edge_index`` with two stable
sorts, 0.2 ms per ENZYMES batch): the adjacency of the whole dataset is block-diagonal,
one block per graph, so a batch's is cut out of it with the positions and node shifts that
collate ``edge_index``.  Equal to the one built from the batch, bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch_geometric.data import Batch, Data

from gsmoe.nn.inputs import SparseFeatures, mean_adjacency

__all__ = ["GraphBatcher", "ShuffledBatches"]


def _segments(starts: Tensor, lengths: Tensor) -> Tensor:
    """Concatenated ``arange(start, start + length)`` of every segment, in order."""
    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0) - lengths
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(starts - offsets, lengths, output_size=total)


class GraphBatcher:
    """Collate any subset of a list of graphs as ``Batch.from_data_list`` would.

    Args:
        graphs (Sequence[Data]): The graphs, all with the same attributes (tensors).
        device (torch.device, optional): Where the concatenated copy and the batches live.

    ``batcher(index)`` returns the :class:`~torch_geometric.data.Batch` of the graphs
    ``index`` (1-D, in that order) with every attribute of the graphs, ``batch``, ``ptr``
    and, for graphs with ``edge_index``, ``mean_adjacency`` (a
    :class:`~gsmoe.nn.inputs.SparseFeatures` in the dtype of ``x``, the model's default
    otherwise); :attr:`full` is the batch of all graphs.
    """

    def __init__(self, graphs: Sequence[Data], device: torch.device | str = "cpu"):
        if len(graphs) == 0:
            raise ValueError("GraphBatcher needs at least one graph")
        self.full = Batch.from_data_list(list(graphs)).to(device)
        self.num_graphs = len(graphs)
        self._keys = [key for key in self.full._slice_dict if key not in ("batch", "ptr")]  # noqa: SLF001
        # Attributes cut at the same places (x and roles: the node offsets) share a segment
        # layout: their positions are computed once per batch.
        self._layouts: list[tuple[Tensor, Tensor]] = []
        self._layout_of: dict[str, int] = {}

        def layout(starts: Tensor, lengths: Tensor) -> int:
            same = [i for i, (s, n) in enumerate(self._layouts) if torch.equal(s, starts) and torch.equal(n, lengths)]
            if same:
                return same[0]
            self._layouts.append((starts, lengths))
            return len(self._layouts) - 1

        self._cat_dims: dict[str, int] = {}
        self._old_offsets: dict[str, Tensor] = {}
        self._increments: dict[str, Tensor] = {}
        last = graphs[-1]
        for key in self._keys:
            value = self.full[key]
            if not isinstance(value, Tensor):
                raise TypeError(f"GraphBatcher collates tensor attributes only; {key!r} is a {type(value).__name__}")
            slices = self.full._slice_dict[key].to(device)  # noqa: SLF001
            self._layout_of[key] = layout(slices[:-1], slices.diff())
            self._cat_dims[key] = self.full.__cat_dim__(key, value) % value.dim()
            offsets = torch.as_tensor(self.full._inc_dict[key], device=device)  # noqa: SLF001
            if offsets.dim() > 0 and bool((offsets != 0).any()):
                # Per-graph increment (edge_index: the graph's number of nodes); the last
                # graph's is not in the cumulative offsets, it comes from the graph itself.
                tail = torch.as_tensor(last.__inc__(key, last[key]), device=device).view(1)
                self._old_offsets[key] = offsets
                self._increments[key] = torch.cat([offsets.diff(), tail.to(offsets.dtype)])
        self._node_counts = self.full.ptr.diff()
        self._adjacency = None
        if "edge_index" in self._layout_of:
            # Every edge joins two nodes of its graph, so graph g's entries are one run of the
            # full CSR (rows sorted by receiver, and by sender for the transpose), the run of
            # its edges in edge_index: a batch takes the same positions and node shifts.
            x = self.full.get("x")
            dtype = x.dtype if isinstance(x, Tensor) and x.is_floating_point() else torch.get_default_dtype()
            self._adjacency = mean_adjacency(self.full.edge_index, self.full.num_nodes, dtype)
            self.full.mean_adjacency = self._adjacency
            self._node_layout = layout(self.full.ptr[:-1], self._node_counts)
            matrices = (self._adjacency.csr, self._adjacency.csr_t)
            self._adjacency_columns = torch.stack([m.col_indices() for m in matrices])
            self._adjacency_values = torch.stack([m.values() for m in matrices])
            self._adjacency_rows = torch.stack([m.crow_indices().diff() for m in matrices])
            self._adjacency_crow_zero = self._adjacency_rows.new_zeros(2, 1)

    def __len__(self) -> int:
        return self.num_graphs

    def __call__(self, index: Tensor) -> Batch:
        index = index.to(self.full.ptr.device).view(-1)
        segments = []
        for starts, all_lengths in self._layouts:
            lengths = all_lengths[index]
            segments.append((lengths, _segments(starts[index], lengths)))
        attributes = {}
        shifts = {}
        for key in self._keys:
            lengths, positions = segments[self._layout_of[key]]
            value = self.full[key].index_select(self._cat_dims[key], positions)
            if key in self._increments:
                old = self._old_offsets[key][index]
                increments = self._increments[key][index]
                new = torch.cumsum(increments, 0) - increments
                shifts[key] = shift = torch.repeat_interleave(new - old, lengths, output_size=positions.numel())
                value = value + shift.to(value.dtype)
            attributes[key] = value
        counts = self._node_counts[index]
        batch = Batch(**attributes)
        if self._adjacency is not None:
            batch.mean_adjacency = self._cut_adjacency(
                segments[self._layout_of["edge_index"]][1], shifts.get("edge_index"), segments[self._node_layout][1]
            )
        batch.batch = torch.repeat_interleave(torch.arange(index.numel(), device=index.device), counts)
        batch.ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        batch._num_graphs = index.numel()  # noqa: SLF001 (what Batch.from_data_list sets)
        return batch

    def _cut_adjacency(self, edges: Tensor, shift: Tensor | None, nodes: Tensor) -> SparseFeatures:
        """The batch's mean adjacency and its transpose: entries ``edges`` of the full ones
        (the batch's edges), columns moved by the node ``shift`` of their graph, the rows of
        the batch's ``nodes``; both matrices at once (their entries stacked)."""
        # index_select of a 2-D int32 tensor takes a slow path (about 4x that of float32):
        # the column indices are gathered as the float32 of their bits, a copy.
        columns = self._adjacency_columns.view(torch.float32).index_select(1, edges).view(torch.int32)
        if shift is not None:
            columns += shift.to(columns.dtype)
        values = self._adjacency_values.index_select(1, edges)
        crow = self._adjacency_crow_zero.repeat(1, nodes.numel() + 1)
        torch.cumsum(self._adjacency_rows.index_select(1, nodes), 1, out=crow[:, 1:])
        shape = (nodes.numel(), nodes.numel())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            csr, csr_t = (
                torch.sparse_csr_tensor(crow[i], columns[i], values[i], shape, check_invariants=False) for i in (0, 1)
            )
        return SparseFeatures.from_csr(csr, csr_t)

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        """All graphs in dataset order, ``batch_size`` at a time (``DataLoader(shuffle=False)``)."""
        for start in range(0, self.num_graphs, batch_size):
            yield self(torch.arange(start, min(start + batch_size, self.num_graphs), device=self.full.ptr.device))


class ShuffledBatches:
    """Each epoch's mini-batches of the graphs ``members`` of a :class:`GraphBatcher`, in
    the order ``DataLoader(graphs[members], batch_size, shuffle=True, generator=generator)``
    gives them.

    The sampler is torch's own (a ``DataLoader`` over the members' positions, which
    consumes the generator the way PyG's loader over the graphs does); only the collation
    differs.
    """

    def __init__(self, batcher: GraphBatcher, members: Tensor, batch_size: int, generator: torch.Generator):
        self.batcher = batcher
        self.members = members.view(-1).cpu()
        self._sampler = DataLoader(range(self.members.numel()), batch_size=batch_size, shuffle=True, generator=generator)

    def __len__(self) -> int:
        return len(self._sampler)

    def __iter__(self) -> Iterator[Batch]:
        for positions in self._sampler:
            yield self.batcher(self.members[positions])
