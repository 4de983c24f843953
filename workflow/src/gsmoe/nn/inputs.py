"""Layer inputs: sparse raw node features and row-split linear maps.

Two tricks keep the first GraphSAGE-MoE layer cheap without changing its math:

* **Row-split weights.**  Eq. 12 concatenates ``x_v = CONCAT(h_v, h_{N(v)})`` before a
  linear map.  ``CONCAT(h, agg) @ W == h @ W[:F_h] + agg @ W[F_h:]``, so the concatenation
  is never built: a layer input is a tuple of *parts* and every map is applied part by
  part to the matching rows of its weight (:func:`split_mm`).  Without the ``cat`` the
  gradient of the raw features is not computed either.
* **Sparse raw features.**  Bag-of-words features (Cora 1.3 % non-zero, PubMed 10 %) are
  wrapped once in :class:`SparseFeatures`; ``x @ W`` then runs as a CSR product whose
  cost is proportional to the non-zeros, with gradients to ``W``.  The raw features are
  constants: :class:`SparseFeatures` carries no gradient of its own.

A *part* is a dense :class:`~torch.Tensor` or a :class:`SparseFeatures`; every function
here accepts one part or a tuple of parts (the row blocks of the concatenated input).
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.utils import scatter

#: Columns of the incoming gradient per sparse product in the backward pass: ``x^T @ G``
#: streams ``G`` once per non-zero row of ``x^T``, so a wide ``G`` is cut into slices that
#: stay in cache (measured on PubMed: 4x faster than one product for 512 columns).
BACKWARD_COLUMNS = 32

#: Default density (fraction of non-zeros) below which :class:`~gsmoe.nn.GraphSAGEMoE`
#: feeds its first layer a :class:`SparseFeatures`.
SPARSE_THRESHOLD = 0.3


class SparseFeatures:
    r"""A constant node-feature matrix stored for fast ``x @ W`` (CSR) and row gathers.

    Keeps the dense matrix (for gathering rows of the top-k dispatch), a CSR copy (for
    ``x @ W``) and a CSR copy of :math:`x^\top` (for the weight gradient
    :math:`x^\top G`).  Build it once per feature matrix; :class:`~gsmoe.nn.GraphSAGEMoE`
    caches it across forward passes.

    Args:
        dense (Tensor): The features ``(N, F)``; must not require grad.

    Shapes:
        - :meth:`matmul`: :math:`(F, C) \to (N, C)`
        - :meth:`mean_pool`: :math:`(N) \to (G, F)`
    """

    def __init__(self, dense: Tensor):
        if dense.dim() != 2:
            raise ValueError(f"SparseFeatures needs a 2-D feature matrix, got shape {tuple(dense.shape)}")
        if dense.requires_grad:
            raise ValueError("SparseFeatures holds constant input features: the tensor must not require grad")
        if dense.layout != torch.strided:
            dense = dense.to_dense()
        self._dense: Optional[Tensor] = dense
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.csr = _int32_csr(dense.to_sparse_csr())
            self.csr_t = _int32_csr(dense.t().contiguous().to_sparse_csr())
        self._nnz_rows: Optional[Tensor] = None

    @classmethod
    def from_csr(cls, csr: Tensor, csr_t: Tensor) -> "SparseFeatures":
        """From a CSR matrix and the CSR of its transpose, without building the dense matrix."""
        self = cls.__new__(cls)
        self.csr, self.csr_t = _int32_csr(csr), _int32_csr(csr_t)
        self._dense = None
        self._nnz_rows = None
        return self

    @property
    def dense(self) -> Tensor:
        """The dense matrix (built on first use when made from COO entries)."""
        if self._dense is None:
            self._dense = self.csr.to_dense()
        return self._dense

    # Tensor-like attributes the layer reads from its input.
    @property
    def shape(self) -> torch.Size:
        return self.csr.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.csr.dtype

    @property
    def device(self) -> torch.device:
        return self.csr.device

    def size(self, dim: Optional[int] = None) -> Union[int, torch.Size]:
        return self.csr.shape if dim is None else self.csr.shape[dim]

    def new_zeros(self, *size: int) -> Tensor:
        return torch.zeros(*size, dtype=self.dtype, device=self.device)

    @property
    def nnz(self) -> int:
        return int(self.csr.values().numel())

    @property
    def density(self) -> float:
        rows, cols = self.shape
        return self.nnz / max(rows * cols, 1)

    def matmul(self, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
        """``x @ weight (+ bias)`` as one CSR product; gradients flow to ``weight`` and ``bias``."""
        return _SparseInputMatmul.apply(weight, bias, self)

    def t_matmul(self, grad: Tensor) -> Tensor:
        """``x^T @ grad`` (the weight gradient), in column slices of :data:`BACKWARD_COLUMNS`."""
        grad = grad.contiguous()
        columns = grad.size(1)
        if columns <= BACKWARD_COLUMNS:
            return torch.sparse.mm(self.csr_t, grad)
        return torch.cat(
            [
                torch.sparse.mm(self.csr_t, grad[:, start : start + BACKWARD_COLUMNS].contiguous())
                for start in range(0, columns, BACKWARD_COLUMNS)
            ],
            dim=1,
        )

    def mean_pool(self, batch: Optional[Tensor], num_graphs: Optional[int]) -> Tensor:
        """Mean of the rows of every graph, ``(G, F)``, from the non-zeros only."""
        num_nodes, features = self.shape
        values, columns = self.csr.values(), self.csr.col_indices().long()
        if batch is None:
            total = values.new_zeros(features).index_add_(0, columns, values)
            return (total / max(num_nodes, 1)).unsqueeze(0)
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
        if self._nnz_rows is None:
            counts = self.csr.crow_indices().diff()
            self._nnz_rows = torch.repeat_interleave(torch.arange(num_nodes, device=self.device), counts.long())
        flat = batch[self._nnz_rows] * features + columns
        total = values.new_zeros(num_graphs * features).index_add_(0, flat, values).view(num_graphs, features)
        nodes = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(values.dtype)
        return total / nodes.unsqueeze(1)

    def __repr__(self) -> str:
        rows, cols = self.shape
        return f"SparseFeatures({rows}, {cols}, density={self.density:.4f})"


def _int32_csr(csr: Tensor) -> Tensor:
    """The CSR tensor with 32-bit indices where they fit: MKL's product takes them as they
    are, while 64-bit indices are converted (copied) on every call."""
    if csr.crow_indices().dtype == torch.int32 and csr.col_indices().dtype == torch.int32:
        return csr
    if csr.values().numel() < 2**31 - 1 and max(csr.shape) < 2**31 - 1:
        csr = torch.sparse_csr_tensor(
            csr.crow_indices().int(),
            csr.col_indices().int(),
            csr.values(),
            csr.shape,
            dtype=csr.dtype,
            check_invariants=False,  # built by to_sparse_csr: valid by construction
        )
    return csr


def mean_adjacency(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> SparseFeatures:
    r"""Row-normalised adjacency :math:`A` with :math:`(A M)_v = \mathrm{MEAN}_{(u, v) \in E} M_u`.

    ``edge_index[0]`` sends, ``edge_index[1]`` receives (PyG's ``source_to_target``); a
    repeated edge counts as often as it appears and a node without incoming edges gets
    zeros, exactly as ``MessagePassing(aggr="mean")``.  ``A.matmul(messages)`` is then the
    mean aggregation of per-node messages in one sparse product, its gradient
    :math:`A^\top G` in another.  Built straight as CSR: a stable sort by receiver, and one
    by sender for the transpose.
    """
    src, dst = edge_index[0], edge_index[1]
    if src.numel() > 0 and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index refers to nodes outside 0..{num_nodes - 1}")
    in_degree = torch.bincount(dst, minlength=num_nodes)
    values = 1.0 / in_degree.clamp(min=1).to(dtype)[dst]
    shape = (num_nodes, num_nodes)

    def rows_sorted_by(row: Tensor, col: Tensor, counts: Tensor) -> Tensor:
        # Repeated edges stay repeated entries of a row: the product adds them up.
        order = torch.argsort(row, stable=True)
        crow = torch.zeros(num_nodes + 1, dtype=torch.int32, device=row.device)
        crow[1:] = torch.cumsum(counts, 0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                crow, col[order].int(), values[order], shape, dtype=dtype, check_invariants=False
            )

    out_degree = torch.bincount(src, minlength=num_nodes)
    return SparseFeatures.from_csr(rows_sorted_by(dst, src, in_degree), rows_sorted_by(src, dst, out_degree))


class _SparseInputMatmul(torch.autograd.Function):
    """``features.csr @ weight + bias`` with ``d weight = features^T @ grad`` from the cached
    CSR of ``x^T``.  The product writes into its output buffer (``addmm(out=...)``):
    ``torch.sparse.mm`` zero-fills a buffer and copies the result, 1.4x slower for wide
    outputs."""

    @staticmethod
    def forward(ctx, weight: Tensor, bias: Optional[Tensor], features: SparseFeatures) -> Tensor:  # type: ignore[override]
        ctx.features = features
        rows, columns = features.shape[0], weight.size(1)
        if bias is None:
            out = weight.new_empty(rows, columns)
            return torch.addmm(out, features.csr, weight.contiguous(), beta=0, out=out)
        out = bias.expand(rows, columns).contiguous()
        return torch.addmm(out, features.csr, weight.contiguous(), out=out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor], None]:  # type: ignore[override]
        grad_weight = ctx.features.t_matmul(grad) if ctx.needs_input_grad[0] else None
        grad_bias = grad.sum(0) if ctx.needs_input_grad[1] else None
        return grad_weight, grad_bias, None


Part = Union[Tensor, SparseFeatures]
Parts = Union[Part, Sequence[Part]]


def as_parts(x: Parts) -> Tuple[Part, ...]:
    """One part or a sequence of parts -> a tuple of parts."""
    if isinstance(x, (Tensor, SparseFeatures)):
        return (x,)
    return tuple(x)


def width(parts: Parts) -> int:
    """Columns of the concatenated input."""
    return sum(part.size(1) for part in as_parts(parts))


def to_dense(part: Part) -> Tensor:
    """The dense matrix of a part (a dense tensor is returned as it is)."""
    return part.dense if isinstance(part, SparseFeatures) else part


def maybe_sparse(x: Tensor, threshold: float = SPARSE_THRESHOLD) -> Union[Tensor, SparseFeatures]:
    """``SparseFeatures(x)`` when ``x`` is constant, 2-D and has fewer than ``threshold``
    non-zeros per entry; ``x`` itself otherwise."""
    if x.layout != torch.strided:
        return SparseFeatures(x)
    if x.dim() != 2 or x.requires_grad or x.numel() == 0 or not x.is_floating_point():
        return x
    density = float(torch.count_nonzero(x)) / x.numel()
    return SparseFeatures(x) if density < threshold else x


def split_mm(parts: Parts, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    r"""``CONCAT(parts) @ weight + bias`` without building the concatenation.

    ``weight`` is ``(sum of part widths, C)``; part ``p`` meets the rows of ``weight`` at
    its offset.  Dense parts accumulate through ``addmm``; sparse parts through
    :meth:`SparseFeatures.matmul`.
    """
    parts = as_parts(parts)
    total = width(parts)
    if weight.size(0) != total:
        raise ValueError(f"weight has {weight.size(0)} rows but the input parts have {total} columns")
    out: Optional[Tensor] = None
    offset = 0
    for part in parts:
        rows = part.size(1)
        block = weight[offset : offset + rows]
        offset += rows
        if out is None:
            # The first product creates the output (with the bias folded in) ...
            if isinstance(part, SparseFeatures):
                out = part.matmul(block, bias)
            else:
                out = part @ block if bias is None else torch.addmm(bias, part, block)
            bias = None
        elif isinstance(part, SparseFeatures):
            out = out + part.matmul(block)
        else:
            # ... the others accumulate into it in place: no (R, C) temporary per part.
            out = out.addmm_(part, block)
    if out is None:
        raise ValueError("split_mm needs at least one input part")
    return out


def linear(parts: Parts, lin: torch.nn.Linear) -> Tensor:
    """``lin(CONCAT(parts))`` for a :class:`torch.nn.Linear`, row-split (see :func:`split_mm`)."""
    return split_mm(parts, lin.weight.t(), lin.bias)


def mean_pool(parts: Parts, batch: Optional[Tensor], num_graphs: Optional[int]) -> Tensor:
    """Per-graph mean of ``CONCAT(parts)``, ``(G, sum of widths)`` (one row without ``batch``)."""
    pooled = []
    for part in as_parts(parts):
        if isinstance(part, SparseFeatures):
            pooled.append(part.mean_pool(batch, num_graphs))
        elif batch is None:
            pooled.append(part.mean(dim=0, keepdim=True))
        else:
            pooled.append(scatter(part, batch, dim=0, dim_size=num_graphs, reduce="mean"))
    return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)


def gather_rows(parts: Parts, index: Tensor) -> Tuple[Tensor, ...]:
    """Rows ``index`` of every part, dense (sparse parts are read from their dense copy)."""
    return tuple(to_dense(part)[index] for part in as_parts(parts))
