"""One GraphSAGE-MoE layer (paper section 5.2)."""

# No ``from __future__ import annotations``: PyG reads the message() signature's real types.
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear
from torch_geometric.nn import MessagePassing

from gsmoe.modelspec import GATES, NO_GATE, PLACEMENT_STAGES, check_model
from gsmoe.nn.experts import ExpertLinear, mix
from gsmoe.nn.gates import Gate, GateContext, GateOutput, gate_class
from gsmoe.nn.inputs import Parts, SparseFeatures, linear, mean_adjacency, to_dense

#: The keyword arguments a layer passes on to its gate: every gate's options.
GATE_OPTIONS = frozenset(key for spec in GATES.values() for key in spec.options)

#: Multiply-adds up to which a padded per-graph product beats the general top-k dispatch
#: whatever the padding (its fixed cost is about a dozen operations fewer per size class).
GROUPED_MAX_WORK = 2**25


class SAGEMoEConv(MessagePassing):
    r"""GraphSAGE layer with optional Mixture-of-Experts in the message and/or the update,
    from "GraphSAGE-MoE" (Zhou and Luo), section 5.2.

    .. math::
        m_{u \to v} = \mathrm{ReLU}\Big(\sum_j r_{vj} (W^{msg}_j h_u + b^{msg}_j)\Big)
        \qquad \text{(eq. 13; one expert without MoE)}

        h_{N(v)} = \mathrm{MEAN}_{u \in N(v)}\; m_{u \to v} \qquad \text{(eq. 11)}

        x_v = \mathrm{CONCAT}(h_v, h_{N(v)}) \qquad \text{(eq. 12)}

        h'_v = \sum_j G(x_v)_j\, \mathrm{ReLU}(W_j x_v + b_j) \qquad \text{(eq. 19)}

        h'_v \leftarrow h'_v / \lVert h'_v \rVert_2

    ``message_activation="inside"`` moves the ReLU of eq. 13 inside the sum;
    ``update_activation="outside"`` gives :math:`\mathrm{ReLU}(\sum_j G(x_v)_j W_j x_v)`
    (eq. 14).  Without MoE in a stage, that stage is a single ``ReLU(Linear)``, which is the
    GraphSAGE baseline of the authors' code.

    Gate inputs: the message gate sees :math:`h` of the gating node (the receiving node
    :math:`v` as in the paper's text, or the sending node :math:`u` as in the authors'
    code); the update gate sees :math:`x_v`.  ``gate="shared"`` (section 6.3) uses
    :math:`\mathrm{softmax}(W_{msg} h_v)` for messages and
    :math:`\mathrm{softmax}(W_{msg} h_v + W_0 h_{N(v)})` for the update.  With
    ``placement="both"`` the other gate types use two independent gates.

    The stages are called ``"message"`` and ``"update"`` (``placement="aggregate"``, the
    paper's "Message Aggregated", puts the experts in the update; see
    :data:`gsmoe.modelspec.PLACEMENT_STAGES`).  The routing of the last forward pass is
    kept in :attr:`routing` (stage -> detached :class:`GateOutput`, one row per routing
    unit) and summarised by :meth:`expert_load`.

    Args:
        in_channels (int): Size of each input node feature.
        out_channels (int): Size of each output node feature.
        placement (str, optional): Where MoE is used: ``"none"``, ``"message"``,
            ``"aggregate"`` or ``"both"``. (default: :obj:`"aggregate"`)
        gate (str, optional): ``"none"`` (only with placement ``"none"``), ``"roles"``,
            ``"dense"``, ``"noisy_topk"`` or ``"shared"`` (only with placement ``"both"``).
            (default: :obj:`"dense"`)
        num_experts (int, optional): Experts per MoE stage; 1 for placement ``"none"``.
            (default: :obj:`4`)
        message_gate_node (str, optional): Node whose gate mixes a message, ``"target"``
            or ``"source"``. (default: :obj:`"target"`)
        message_activation (str, optional): ``"outside"`` (eq. 13) or ``"inside"``.
            (default: :obj:`"outside"`)
        update_activation (str, optional): ``"inside"`` (eq. 19) or ``"outside"`` (eq. 14).
            (default: :obj:`"inside"`)
        **gate_options: The options of the gate (:class:`~gsmoe.nn.gates.DenseGate`:
            ``softmax``; :class:`~gsmoe.nn.gates.NoisyTopKGate`: ``top_k``, ``pool``,
            ``balance_loss_weight``, ``routing_noise``; defaults: the gate's).  Options of
            another gate are accepted and not used (a run config sets them all).

    The input ``x`` may be a :class:`~gsmoe.nn.inputs.SparseFeatures` (or a torch sparse
    tensor, wrapped on the fly): every linear map of ``x`` then runs as one sparse product,
    with gradients to the weights; ``x`` itself gets none.

    ``adjacency`` (optional) is :func:`~gsmoe.nn.inputs.mean_adjacency` of ``edge_index``,
    which a caller that runs several layers on one graph builds once.

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, edge indices :math:`(2, |\mathcal{E}|)`,
          optional batch vector :math:`(N)`, optional roles :math:`(N, E)`
        - **output:** node features :math:`(N, F_{out})` and the scalar auxiliary loss
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        placement: str = "aggregate",
        gate: str = "dense",
        num_experts: int = 4,
        message_gate_node: str = "target",
        message_activation: str = "outside",
        update_activation: str = "inside",
        **gate_options: Any,
    ):
        super().__init__(aggr="mean", node_dim=0)
        unknown = sorted(set(gate_options) - GATE_OPTIONS)
        if unknown:
            raise TypeError(f"SAGEMoEConv got unexpected keyword argument(s): {', '.join(unknown)}")
        check_model(dict(
            placement=placement, gate=gate, num_experts=num_experts, message_gate_node=message_gate_node,
            message_activation=message_activation, update_activation=update_activation, **gate_options,
        ))  # fmt: skip

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.placement = placement
        self.gate = gate
        self.num_experts = num_experts
        self.message_gate_node = message_gate_node
        self.message_activation = message_activation
        self.update_activation = update_activation
        stages = PLACEMENT_STAGES[placement]
        update_in = in_channels + out_channels

        self.lin_message = None if "message" in stages else Linear(in_channels, out_channels)
        self.message_experts = ExpertLinear(in_channels, out_channels, num_experts) if "message" in stages else None
        self.lin_update = None if "update" in stages else Linear(update_in, out_channels)
        self.update_experts = ExpertLinear(update_in, out_channels, num_experts) if "update" in stages else None

        self.message_gate: Optional[Gate] = None
        self.update_gate: Optional[Gate] = None
        if gate != NO_GATE:
            make_gate = gate_class(gate)
            options = {key: value for key, value in gate_options.items() if key in GATES[gate].options}
            if GATES[gate].both_stages:
                self.message_gate = self.update_gate = make_gate(in_channels, num_experts, out_channels, **options)
            else:
                if "message" in stages:
                    self.message_gate = make_gate(in_channels, num_experts, 0, **options)
                if "update" in stages:
                    self.update_gate = make_gate(in_channels, num_experts, out_channels, **options)

        self.routing: Dict[str, GateOutput] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def gates(self) -> List[Gate]:
        """The layer's gates, each once (one gate may serve both stages)."""
        gates: List[Gate] = []
        for gate in (self.message_gate, self.update_gate):
            if gate is not None and all(gate is not other for other in gates):
                gates.append(gate)
        return gates

    @property
    def needs_roles(self) -> bool:
        return any(gate.needs_roles for gate in self.gates())

    def forward(
        self,
        x: Union[Tensor, SparseFeatures],
        edge_index: Tensor,
        batch: Optional[Tensor] = None,
        roles: Optional[Tensor] = None,
        num_graphs: Optional[int] = None,
        adjacency: Optional[SparseFeatures] = None,
    ) -> Tuple[Tensor, Tensor]:
        if isinstance(x, Tensor) and x.layout != torch.strided:
            x = SparseFeatures(x)  # a torch sparse tensor: constant features, CSR products
        if any(gate.whole_batch for gate in self.gates()):
            # Routed as one graph: the mini-batch shares one choice (batch serves nothing else here).
            batch, num_graphs = None, None
        if batch is not None and num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
        self.routing = {}
        context = GateContext(batch, num_graphs, roles)
        agg, aux_message = self._message_stage(x, edge_index, context, adjacency)
        out, aux_update = self._update_stage(x, agg, context)
        return F.normalize(out, p=2.0, dim=-1), aux_message + aux_update

    def _message_stage(
        self,
        x: Union[Tensor, SparseFeatures],
        edge_index: Tensor,
        context: GateContext,
        adjacency: Optional[SparseFeatures] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Eq. 11 with the messages of eq. 13.

        Where the message depends on the sender only, it is computed once per node and the
        mean over the neighbours is one sparse product with the row-normalised adjacency
        (``adjacency``, built here when not given); per-edge messages go through
        :meth:`propagate`.
        """

        def mean_of_senders(messages: Tensor) -> Tensor:
            adj = adjacency if adjacency is not None else mean_adjacency(edge_index, x.size(0), messages.dtype)
            return adj.matmul(messages)

        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.message_gate is None:
            # ReLU(W h_u) depends on the sender only: computed once per node, not per edge.
            return mean_of_senders(torch.relu(linear(x, self.lin_message))), zero

        gate = self.message_gate
        route = self._route("message", gate, x, None, context)
        weight, index = self._per_node(gate, route, context.batch, x.size(0))
        if gate.per_graph or self.message_gate_node == "source":
            # Sender and gating node share their routing (same graph, or the same node):
            # the mixed message is a per-node quantity, gathered per edge by propagate.
            if gate.sparse:
                experts_out = self._top_k_experts(self.message_experts, gate, x, route, index, context.batch)
                mixed = mix(experts_out, weight, self.message_activation)
            else:
                mixed = self.message_experts.dense_mix(x, weight, self.message_activation)
            return mean_of_senders(mixed), route.aux_loss
        if gate.sparse:
            # Node routing by the receiver: each edge row x_u goes through v's k experts
            # (sparse features are gathered from their dense copy, one row per edge).
            agg = self.propagate(
                edge_index, x=None, weight=weight, index=index, features=to_dense(x), size=(x.size(0), x.size(0))
            )
            return agg, route.aux_loss
        # Dense gates use every expert: compute them once per sender, mix per edge.
        experts_out = self.message_experts.dense(x)
        return self.propagate(edge_index, x=experts_out, weight=weight, index=None, features=None), route.aux_loss

    def message(
        self,
        x_j: Optional[Tensor],
        weight_i: Optional[Tensor],
        index_i: Optional[Tensor],
        features: Optional[Tensor],
        edge_index_j: Tensor,
    ) -> Tensor:
        """Per-edge message of eq. 13.  ``x_j`` holds finished per-node messages (no
        ``weight_i``) or every expert's output of the sender (dense gates); with ``index_i``
        the sender's ``features`` go through the receiver's top-k experts."""
        if weight_i is None:
            return x_j
        if index_i is None:
            return mix(x_j, weight_i, self.message_activation)
        experts_out = self.message_experts.sparse(features, index_i, rows=edge_index_j)
        return mix(experts_out, weight_i, self.message_activation)

    def _update_stage(
        self, x: Union[Tensor, SparseFeatures], agg: Tensor, context: GateContext
    ) -> Tuple[Tensor, Tensor]:
        """Eq. 12, then a single ReLU(Linear) or the MoE of eq. 19 / eq. 14.

        ``x_v = CONCAT(h_v, h_{N(v)})`` is passed as the parts ``(x, agg)``: every map on it
        is applied row-split (:func:`~gsmoe.nn.inputs.split_mm`), so it is never built.
        """
        x_cat = (x, agg)
        if self.update_gate is None:
            return torch.relu(linear(x_cat, self.lin_update)), agg.new_zeros(())
        gate = self.update_gate
        route = self._route("update", gate, x, agg, context)
        weight, index = self._per_node(gate, route, context.batch, x.size(0))
        if gate.sparse:
            experts_out = self._top_k_experts(self.update_experts, gate, x_cat, route, index, context.batch)
            return mix(experts_out, weight, self.update_activation), route.aux_loss
        return self.update_experts.dense_mix(x_cat, weight, self.update_activation), route.aux_loss

    def _route(
        self, stage: str, gate: Gate, h: Union[Tensor, SparseFeatures], agg: Optional[Tensor], context: GateContext
    ) -> GateOutput:
        out = gate(h, agg, context)
        self.routing[stage] = GateOutput(out.weights.detach(), out.indices.detach(), out.aux_loss.detach())
        return out

    def _top_k_experts(
        self,
        experts: ExpertLinear,
        gate: Gate,
        x: Parts,
        route: GateOutput,
        index: Tensor,
        batch: Optional[Tensor] = None,
    ) -> Tensor:
        """Only the selected experts.  A single graph routed as a whole needs no dispatch; a
        batch of graphs routed as wholes takes one padded batched product
        (:meth:`ExpertLinear.grouped`) when its padding is cheap: at most 2x the rows (the
        worst case of the general dispatch), or under :data:`GROUPED_MAX_WORK` multiply-adds
        in all (measured: an ENZYMES batch of 32 graphs 1.4x faster, one batch of all 600
        graphs 1.6x slower than :meth:`ExpertLinear.sparse`)."""
        if gate.per_graph:
            num_graphs = route.indices.size(0)
            if num_graphs == 1:
                return experts.select(x, route.indices[0])
            if batch is not None and batch.numel() > 0:
                padded = num_graphs * int(torch.bincount(batch, minlength=num_graphs).max())
                work = padded * experts.in_channels * gate.top_k * experts.out_channels
                if padded <= 2 * batch.numel() or work <= GROUPED_MAX_WORK:
                    return experts.grouped(x, route.indices, batch)
        return experts.sparse(x, index)

    def _per_node(self, gate: Gate, route: GateOutput, batch: Optional[Tensor], num_nodes: int) -> Tuple[Tensor, Tensor]:
        """Broadcast a per-graph routing to the graph's nodes; per-node routing passes through."""
        if not gate.per_graph:
            return route.weights, route.indices
        if batch is None:
            return route.weights.expand(num_nodes, -1), route.indices.expand(num_nodes, -1)
        return route.weights[batch], route.indices[batch]

    def _stage_modules(self, stage: str) -> Tuple[Optional[ExpertLinear], Optional[Gate]]:
        """The experts and the gate of ``stage`` (``"message"`` or ``"update"``)."""
        if stage == "message":
            return self.message_experts, self.message_gate
        return self.update_experts, self.update_gate

    def expert_load(self) -> Dict[str, List[float]]:
        """Per stage of the last forward: for sparse gates the fraction of routing units
        (graphs or nodes) that selected each expert; for the others the mean coefficient."""
        load = {}
        for stage, route in self.routing.items():
            rows = route.weights.size(0)
            _, gate = self._stage_modules(stage)
            if rows == 0:
                load[stage] = [0.0] * self.num_experts
            elif gate is not None and gate.sparse:
                counts = torch.bincount(route.indices.reshape(-1), minlength=self.num_experts)
                load[stage] = (counts.double() / rows).tolist()
            else:
                load[stage] = route.weights.double().mean(0).tolist()
        return load

    def unused_experts(self) -> List[Tuple[ExpertLinear, Tensor]]:
        """Per sparse-gated stage of the last forward: its experts and a mask of those no
        row was routed to (none for the other gates, which use every expert)."""
        unused = []
        for stage, route in self.routing.items():
            experts, gate = self._stage_modules(stage)
            if experts is None or gate is None or not gate.sparse:
                continue
            mask = torch.ones(experts.num_experts, dtype=torch.bool, device=route.indices.device)
            mask[route.indices.reshape(-1)] = False
            unused.append((experts, mask))
        return unused

    def active_parameters(self) -> int:
        """Parameters one forward pass uses: a gate's ``top_k`` of the experts per MoE stage."""
        total = sum(p.numel() for p in self.parameters())
        for stage in PLACEMENT_STAGES[self.placement]:
            experts, gate = self._stage_modules(stage)
            if experts is not None and gate is not None:
                total -= (self.num_experts - gate.top_k) * experts.expert_numel()
        return total

    def __repr__(self) -> str:
        options = "".join(f", {key}={value}" for gate in self.gates()[:1] for key, value in gate.options().items())
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"placement={self.placement}, gate={self.gate}, experts={self.num_experts}{options})"
        )
