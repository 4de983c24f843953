"""Stacked expert weight matrices ``[W_1, ..., W_m]`` of the paper's section 5.1.

All experts of one MoE layer live in one ``(E, in, out)`` tensor, so that mixing them
(eq. 10, 13, 14 and 19) is one batched product rather than a Python loop over experts:

* :meth:`ExpertLinear.dense` applies every expert to every row (non-sparse gates, roles),
  as one ``(in, E * out)`` product;
* :meth:`ExpertLinear.sparse` applies to each row only the experts its gate selected
  (noisy top-k, eq. 16-17), so unselected experts cost nothing and get no gradient;
  :meth:`ExpertLinear.select` is its shortcut when all rows share one selection, and
  :meth:`ExpertLinear.grouped` when the rows of each graph share one (eq. 18).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from gsmoe.nn.inputs import Part, Parts, SparseFeatures, as_parts, gather_rows, split_mm, width


class ExpertLinear(nn.Module):
    r"""``E`` independent affine maps :math:`x \mapsto x W_j + b_j` stored as one tensor.

    Each expert is initialised like :class:`torch.nn.Linear`: ``kaiming_uniform_(a=sqrt(5))``
    on the weight and ``U(-1/sqrt(in), 1/sqrt(in))`` on the bias, which for both comes down
    to ``U(-1/sqrt(in), 1/sqrt(in))``.

    Args:
        in_channels (int): Size of each input row.
        out_channels (int): Size of each output row.
        num_experts (int): Number of experts ``E``.
        bias (bool, optional): Learn a bias per expert. (default: :obj:`True`)

    Shapes:
        - **weight:** :math:`(E, F_{in}, F_{out})`, **bias:** :math:`(E, F_{out})`
        - :meth:`dense`: :math:`(R, F_{in}) \to (R, E, F_{out})`
        - :meth:`select`: :math:`(R, F_{in}), (k) \to (R, k, F_{out})`
        - :meth:`sparse`: :math:`(R, F_{in}), (R, k) \to (R, k, F_{out})`
        - :meth:`grouped`: :math:`(R, F_{in}), (G, k), (R) \to (R, k, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, num_experts: int, bias: bool = True):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_experts = num_experts
        self.weight = nn.Parameter(torch.empty(num_experts, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(num_experts, out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # kaiming_uniform_(a=sqrt(5)) has bound gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
        bound = 1.0 / math.sqrt(self.in_channels) if self.in_channels > 0 else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def expert_numel(self) -> int:
        """Parameters of one expert (its weight matrix and bias)."""
        return self.in_channels * self.out_channels + (self.out_channels if self.bias is not None else 0)

    def dense(self, x: Parts) -> Tensor:
        """All experts on all rows in one product: ``(R, in) -> (R, E, out)``.

        ``x`` may be a dense tensor, :class:`~gsmoe.nn.inputs.SparseFeatures` or a tuple of
        such parts (the row blocks of a concatenated input, see :func:`~gsmoe.nn.inputs.split_mm`).
        The weight is viewed as one ``(in, E * out)`` matrix, so a sparse input needs a single
        sparse product for all experts.
        """
        weight = self.weight.permute(1, 0, 2).reshape(self.in_channels, -1)
        bias = self.bias.reshape(-1) if self.bias is not None else None
        out = split_mm(x, weight, bias)
        return out.view(out.size(0), self.num_experts, self.out_channels)

    def dense_mix(self, x: Parts, weights: Tensor, activation: str) -> Tensor:
        """``mix(self.dense(x), weights, activation)``, ``(R, in), (R, E) -> (R, out)``, as one
        autograd node with a hand-written backward.

        The same products in the same order as :meth:`dense` and :func:`mix` (so the same
        numbers), without what autograd adds between them: the backward of slicing the
        weight once per input part (a zero-filled ``(in, E * out)`` gradient per part, then
        their sum), the ReLU applied out of place, and the gate gradient's batched product
        that MKL runs slowly for 16 and more experts (see :func:`_gate_gradient`).
        """
        check_activation(activation)
        parts = as_parts(x)
        if width(parts) != self.in_channels:
            raise ValueError(f"input has {width(parts)} columns, experts expect {self.in_channels}")
        return _DenseMix.apply(self.weight, self.bias, weights, activation == "inside", *parts)

    def select(self, x: Parts, experts: Tensor) -> Tensor:
        """Every row through the same experts ``experts`` ``(k,)``: ``(R, in) -> (R, k, out)``.

        The case of one graph routed as a whole (eq. 18 on a single-graph node task): the k
        weight matrices are gathered once and no row is copied or padded; as in
        :meth:`dense`, they are applied in one (sparse or dense) product.
        """
        k = experts.numel()
        weight = self.weight[experts].permute(1, 0, 2).reshape(self.in_channels, -1)
        bias = self.bias[experts].reshape(-1) if self.bias is not None else None
        out = split_mm(x, weight, bias)
        return out.view(out.size(0), k, self.out_channels)

    def grouped(self, x: Parts, experts: Tensor, group: Tensor) -> Tensor:
        """Row ``r`` through the experts of its group, ``experts[group[r]]``:
        ``(R, in), (G, k), (R,) -> (R, k, out)``.

        Graph-pooled routing (eq. 18) on a batch of graphs: every node of graph ``g`` uses
        the ``k`` experts chosen for ``g``.  The rows are laid out as a ``(G, n_max, in)``
        batch (padding reads row 0 and is dropped) and each graph's ``k`` weight matrices
        as one ``(in, k * out)`` matrix, so the whole layer is one ``baddbmm`` per input
        part, whatever the number of graphs and experts.  Padding costs ``G * n_max / R``
        times the products of :meth:`sparse`'s at most 2x; for small graphs of similar
        size (ENZYMES) far fewer operations win.
        """
        parts = as_parts(x)
        num_groups, k = experts.shape
        num_rows = group.numel()
        device = group.device
        if num_rows == 0 or num_groups == 0:
            return parts[0].new_zeros(num_rows, k, self.out_channels)
        if width(parts) != self.in_channels:
            raise ValueError(f"input has {width(parts)} columns, experts expect {self.in_channels}")
        counts = torch.bincount(group, minlength=num_groups)
        capacity = int(counts.max())
        # Position of every row inside its group (rows of a group need not be contiguous).
        order = torch.argsort(group, stable=True)
        start = torch.cumsum(counts, 0) - counts
        position = torch.empty_like(group)
        position[order] = torch.arange(num_rows, device=device) - start[group[order]]
        slot = group * capacity + position
        gather = torch.zeros(num_groups * capacity, dtype=torch.long, device=device)
        gather[slot] = torch.arange(num_rows, device=device)

        weight = self.weight[experts].permute(0, 2, 1, 3).reshape(num_groups, self.in_channels, k * self.out_channels)
        y: Optional[Tensor] = None
        offset = 0
        for buffer in gather_rows(parts, gather):
            columns = buffer.size(1)
            buffer = buffer.view(num_groups, capacity, columns)
            block = weight[:, offset : offset + columns] if len(parts) > 1 else weight
            offset += columns
            if y is not None:
                y = torch.baddbmm(y, buffer, block)
            elif self.bias is not None:
                y = torch.baddbmm(self.bias[experts].reshape(num_groups, 1, -1), buffer, block)
            else:
                y = torch.bmm(buffer, block)
        assert y is not None
        return y.view(num_groups * capacity, k * self.out_channels)[slot].view(num_rows, k, self.out_channels)

    def sparse(self, x: Parts, index: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """Row ``r`` through experts ``index[r, 0..k-1]`` only: ``(R, in), (R, k) -> (R, k, out)``.

        With ``rows`` (shape ``(R,)``), row ``r`` is ``x[rows[r]]``: per-edge routing reads the
        sender's features without first copying them once per edge.

        The ``R * k`` (row, slot) pairs are sorted by expert; each expert's rows are padded to
        a capacity that is its row count rounded up to a power of two, and the experts that
        share a capacity run in one ``baddbmm``.  That is at most ``log2(R * k) + 1`` batched
        products, none per expert, and at most 2x padding however skewed the load is.

        With ``x`` given as parts (a concatenated input), each part's gathered rows meet its
        own rows of the weight (one ``baddbmm`` per part), so the concatenation is never
        built.  Rows of a :class:`~gsmoe.nn.inputs.SparseFeatures` part are gathered from its
        dense copy: per-row dispatch works on dense rows (the cost of the dense path).
        """
        parts = as_parts(x)
        first = parts[0]
        num_rows, k = index.shape
        flat_expert = index.reshape(-1)
        device = index.device
        if flat_expert.numel() == 0:
            return first.new_zeros(num_rows, k, self.out_channels)
        if width(parts) != self.in_channels:
            raise ValueError(f"input has {width(parts)} columns, experts expect {self.in_channels}")
        if rows is None:
            rows = torch.arange(num_rows, device=device)
        flat_row = rows.repeat_interleave(k)
        order = torch.argsort(flat_expert, stable=True)
        expert_sorted = flat_expert[order]
        row_sorted = flat_row[order]

        counts = torch.bincount(flat_expert, minlength=self.num_experts)
        group_start = torch.cumsum(counts, 0) - counts
        position = torch.arange(order.numel(), device=device) - group_start[expert_sorted]
        capacity = size_classes(counts)
        capacity_sorted = capacity[expert_sorted]

        pieces: list[Tensor] = []
        targets: list[Tensor] = []
        slot_of_expert = torch.empty_like(counts)
        for cap in torch.unique(capacity[counts > 0]).tolist():
            experts = torch.nonzero(capacity == cap).squeeze(1)
            slot_of_expert[experts] = torch.arange(experts.numel(), device=device)
            members = torch.nonzero(capacity_sorted == cap).squeeze(1)
            flat_slot = slot_of_expert[expert_sorted[members]] * cap + position[members]
            # Padding slots read row 0: one gather builds the padded batch, no zero fill, and
            # the padding outputs are dropped below, so they pass back no gradient.
            gather = torch.zeros(experts.numel() * cap, dtype=torch.long, device=device)
            gather[flat_slot] = row_sorted[members]
            weight = self.weight[experts]
            y: Optional[Tensor] = None
            offset = 0
            for buffer in gather_rows(parts, gather):
                columns = buffer.size(1)
                buffer = buffer.view(experts.numel(), cap, columns)
                block = weight[:, offset : offset + columns] if len(parts) > 1 else weight
                offset += columns
                if y is not None:
                    y = torch.baddbmm(y, buffer, block)
                elif self.bias is not None:
                    y = torch.baddbmm(self.bias[experts].unsqueeze(1), buffer, block)
                else:
                    y = torch.bmm(buffer, block)
            assert y is not None
            pieces.append(y.reshape(-1, self.out_channels)[flat_slot])
            targets.append(order[members])

        # Undo the sort: pair p of the flat (row, slot) order sits at inverse[p] in the pieces.
        target = torch.cat(targets)
        inverse = torch.empty_like(target)
        inverse[target] = torch.arange(target.numel(), device=device)
        return torch.cat(pieces)[inverse].view(num_rows, k, self.out_channels)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, num_experts={self.num_experts}"


def size_classes(counts: Tensor) -> Tensor:
    """Per-expert padded capacity: the row count rounded up to a power of two (0 stays 0)."""
    capacity = torch.ones_like(counts) << torch.ceil(torch.log2(counts.clamp(min=1).double())).long()
    return torch.where(counts > 0, capacity, torch.zeros_like(counts))


def mix(expert_out: Tensor, weights: Tensor, activation: str) -> Tensor:
    r"""Weighted sum over the expert axis with the nonlinearity inside or outside.

    ``"inside"``: :math:`\sum_j g_j\,\mathrm{ReLU}(y_j)` (eq. 19);
    ``"outside"``: :math:`\mathrm{ReLU}(\sum_j g_j\,y_j)` (eq. 9, 13, 14).
    ``expert_out`` is ``(R, k, out)`` and ``weights`` ``(R, k)``.

    One autograd node for ReLU and sum: its backward forms ``g_j * grad`` with one
    broadcast product and masks it in place, where autograd's einsum backward runs ``R``
    tiny outer-product matmuls and a separate ReLU backward (2x fewer passes over the
    ``(R, k, out)`` tensor, the largest of a dense MoE layer).
    """
    check_activation(activation)
    return _Mix.apply(expert_out, weights, activation == "inside")


def check_activation(activation: str) -> None:
    """Raise a ValueError unless ``activation`` is ``"inside"`` or ``"outside"``."""
    if activation not in ("inside", "outside"):
        raise ValueError(f"activation must be 'inside' or 'outside', got {activation!r}")


#: Experts per batched product of :func:`_gate_gradient`.
GATE_GRADIENT_EXPERTS = 4


def _gate_gradient(terms: Tensor, grad: Tensor) -> Tensor:
    r"""``d out / d weights``: :math:`\langle y_j, g \rangle` per row and expert,
    ``(R, E, out), (R, out) -> (R, E)``.

    One ``bmm`` of ``(E, out) x (out, 1)`` per row is MKL's slow path from 16 experts on
    (measured: 16 experts 2.1x, 128 experts 1.9x slower than 4 products of 4 experts
    each); the rows are cut into products of :data:`GATE_GRADIENT_EXPERTS` experts there.
    Each entry is the same dot product either way (tested bit for bit).
    """
    rows, num_experts, columns = terms.shape
    if num_experts <= 2 * GATE_GRADIENT_EXPERTS or num_experts % GATE_GRADIENT_EXPERTS:
        return torch.bmm(terms, grad.unsqueeze(2)).squeeze(2)
    groups = num_experts // GATE_GRADIENT_EXPERTS
    blocks = terms.reshape(rows * groups, GATE_GRADIENT_EXPERTS, columns)
    repeated = grad.unsqueeze(1).expand(rows, groups, columns).reshape(rows * groups, columns, 1)
    return torch.bmm(blocks, repeated).view(rows, num_experts)


class _Mix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, expert_out: Tensor, weights: Tensor, inside: bool) -> Tensor:  # type: ignore[override]
        terms = torch.relu(expert_out) if inside else expert_out
        out = torch.bmm(weights.unsqueeze(1), terms).squeeze(1)
        if not inside:
            out = torch.relu_(out)
        ctx.inside = inside
        ctx.save_for_backward(terms, weights, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Optional[Tensor], Optional[Tensor], None]:  # type: ignore[override]
        terms, weights, out = ctx.saved_tensors
        if not ctx.inside:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_out = grad_weights = None
        if ctx.needs_input_grad[1]:
            grad_weights = _gate_gradient(terms, grad)
        if ctx.needs_input_grad[0]:
            grad_out = weights.unsqueeze(2) * grad.unsqueeze(1)
            if ctx.inside:
                # ReLU backward in place: zero where relu(y) == 0, i.e. y <= 0.
                grad_out = torch.ops.aten.threshold_backward.grad_input(grad_out, terms, 0, grad_input=grad_out)
        return grad_out, grad_weights, None


class _DenseMix(torch.autograd.Function):
    """:meth:`ExpertLinear.dense_mix`: the forward of :meth:`ExpertLinear.dense` and
    :class:`_Mix`, and the backward autograd would run for them, operation for operation
    (``torch.mm`` of the same operands: ``part^T @ G`` for a weight block, ``G @ block^T``
    for a dense part, as autograd's ``mm_mat2_backward``/``mm_mat1_backward`` for row-major
    operands), written into one weight gradient."""

    @staticmethod
    def forward(ctx, weight: Tensor, bias: Optional[Tensor], gate: Tensor, inside: bool, *parts: Part) -> Tensor:  # type: ignore[override]
        num_experts, in_channels, out_channels = weight.shape
        flat = weight.permute(1, 0, 2).reshape(in_channels, num_experts * out_channels)
        y = split_mm(parts, flat, bias.reshape(-1) if bias is not None else None)
        terms = y.view(y.size(0), num_experts, out_channels)
        if inside:
            terms = torch.relu_(terms)
        out = torch.bmm(gate.unsqueeze(1), terms).squeeze(1)
        if not inside:
            out = torch.relu_(out)
        ctx.inside = inside
        ctx.flat = flat
        ctx.has_bias = bias is not None
        ctx.sparse_parts = {i: part for i, part in enumerate(parts) if isinstance(part, SparseFeatures)}
        ctx.widths = [part.size(1) for part in parts]
        ctx.save_for_backward(terms, gate, out, *(part for part in parts if isinstance(part, Tensor)))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Optional[Tensor], ...]:  # type: ignore[override]
        terms, gate, out, *dense_parts = ctx.saved_tensors
        dense_iter = iter(dense_parts)
        parts = [ctx.sparse_parts[i] if i in ctx.sparse_parts else next(dense_iter) for i in range(len(ctx.widths))]
        num_rows, num_experts, out_channels = terms.shape
        if not ctx.inside:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_gate = _gate_gradient(terms, grad) if ctx.needs_input_grad[2] else None
        grad_terms = gate.unsqueeze(2) * grad.unsqueeze(1)
        if ctx.inside:
            grad_terms = torch.ops.aten.threshold_backward.grad_input(grad_terms, terms, 0, grad_input=grad_terms)
        grad_y = grad_terms.view(num_rows, num_experts * out_channels)
        flat: Tensor = ctx.flat
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_flat = torch.empty_like(flat)
        grad_parts: list[Optional[Tensor]] = []
        offset = 0
        for i, (part, columns) in enumerate(zip(parts, ctx.widths)):
            rows = slice(offset, offset + columns)
            offset += columns
            if ctx.needs_input_grad[0]:
                if isinstance(part, SparseFeatures):
                    grad_flat[rows] = part.t_matmul(grad_y)
                else:
                    torch.mm(part.t(), grad_y, out=grad_flat[rows])
            dense_grad = isinstance(part, Tensor) and ctx.needs_input_grad[4 + i]
            grad_parts.append(grad_y.mm(flat[rows].t()) if dense_grad else None)
        if ctx.needs_input_grad[0]:
            grad_weight = grad_flat.view(-1, num_experts, out_channels).permute(1, 0, 2).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[1]:
            grad_bias = grad_y.sum(0).view(num_experts, out_channels)
        return (grad_weight, grad_bias, grad_gate, None, *grad_parts)
