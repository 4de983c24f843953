"""Plain reference for SAGEMoEConv: one expert at a time, one (dense) coefficient per expert.

The straightforward implementation: the tests check the vectorised layer against it, and
``python -m gsmoe.bench`` times the layer and a training step against it.

Written straight from the paper's equations and independent of the vectorised code paths:
gates give a full ``(N, E)`` coefficient matrix (:meth:`Gate.reference
<gsmoe.nn.gates.Gate.reference>`: zeros for experts top-k dropped, eq. 16-17 as a masked
softmax), experts run in a Python loop, messages are built per edge and mean-aggregated
with ``index_add_``.  It reads the parameters of a ``SAGEMoEConv`` and, for noisy gates in
training, draws ``torch.randn(rows, E)`` in the order message gate then update gate, as
the layer does, so that a shared seed gives both the same noise.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from gsmoe.nn.conv import SAGEMoEConv
from gsmoe.nn.gates import GateContext
from gsmoe.nn.inputs import SparseFeatures, to_dense


def _act(y: Tensor) -> Tensor:
    return torch.relu(y)


def _mixture(x: Tensor, coefficients: Tensor, weight: Tensor, bias: Tensor, activation: str) -> Tensor:
    total = 0
    for j in range(weight.size(0)):
        y = x @ weight[j] + bias[j]
        term = coefficients[:, j : j + 1] * (_act(y) if activation == "inside" else y)
        total = total + term
    return total if activation == "inside" else _act(total)


def reference_conv(
    conv: SAGEMoEConv,
    x: Union[Tensor, SparseFeatures],
    edge_index: Tensor,
    batch: Optional[Tensor] = None,
    roles: Optional[Tensor] = None,
) -> Tensor:
    x = to_dense(x)
    num_nodes = x.size(0)
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=x.device)
    context = GateContext(batch, int(batch.max()) + 1, roles)
    src, dst = edge_index

    if conv.message_gate is None:
        messages = _act(x[src] @ conv.lin_message.weight.T + conv.lin_message.bias)
    else:
        coefficients = conv.message_gate.reference(x, None, context)
        gating_node = dst if conv.message_gate_node == "target" else src
        experts = conv.message_experts
        messages = _mixture(x[src], coefficients[gating_node], experts.weight, experts.bias, conv.message_activation)
    summed = x.new_zeros(num_nodes, conv.out_channels).index_add(0, dst, messages)
    degree = x.new_zeros(num_nodes).index_add(0, dst, x.new_ones(dst.numel()))
    agg = summed / degree.clamp(min=1).unsqueeze(1)

    x_cat = torch.cat([x, agg], 1)
    if conv.update_gate is None:
        out = _act(x_cat @ conv.lin_update.weight.T + conv.lin_update.bias)
    else:
        coefficients = conv.update_gate.reference(x, agg, context)
        experts = conv.update_experts
        out = _mixture(x_cat, coefficients, experts.weight, experts.bias, conv.update_activation)
    return out / out.norm(dim=1, keepdim=True).clamp(min=1e-12)


class ReferenceConv(nn.Module):
    """Runs a :class:`SAGEMoEConv`'s parameters through :func:`reference_conv`, with the
    layer's call signature (the auxiliary loss is zero: no balance loss)."""

    def __init__(self, conv: SAGEMoEConv):
        super().__init__()
        self.conv = conv

    @property
    def needs_roles(self) -> bool:
        return self.conv.needs_roles

    def forward(
        self,
        x: Union[Tensor, SparseFeatures],
        edge_index: Tensor,
        batch: Optional[Tensor] = None,
        roles: Optional[Tensor] = None,
        num_graphs: Optional[int] = None,
        adjacency: Any = None,
    ) -> Tuple[Tensor, Tensor]:
        out = reference_conv(self.conv, x, edge_index, batch=batch, roles=roles)
        return out, out.new_zeros(())


def reference_model(model: Any) -> Any:
    """A copy of a :class:`~gsmoe.nn.GraphSAGEMoE` whose layers run :func:`reference_conv`
    on the dense features (same parameters, copied)."""
    reference = copy.deepcopy(model)
    reference.sparse_threshold = 0.0
    reference._input_cache = None
    reference._adjacency_cache = None
    reference.convs = nn.ModuleList(ReferenceConv(conv) for conv in reference.convs)
    return reference
