"""One GraphSAGE-MoE layer (paper section 5.2)."""

# No ``from __future__ import annotations``: PyG reads the message() signature's real types.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, Module
from torch_geometric.nn import MessagePassing

from gsmoe.nn.choices import check_choice
from gsmoe.nn.experts import ExpertLinear, mix
from gsmoe.nn.gates import NOISES, POOLS, DenseGate, GateOutput, NoisyTopKGate, RoleGate, SharedGate
from gsmoe.nn.inputs import Parts, SparseFeatures, linear, mean_adjacency, to_dense

PLACEMENTS = ("none", "message", "aggregate", "both")
GATES = ("none", "roles", "dense", "noisy_topk", "shared")
GATE_NODES = ("target", "source")
ACTIVATIONS = ("inside", "outside")

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

    The routing of the last forward pass is kept in :attr:`routing` (stage name ->
    detached :class:`GateOutput`, one row per routing unit) and summarised by
    :meth:`expert_load`.

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
        softmax (bool, optional): Softmax over the dense or shared gate's logits.
            (default: :obj:`True`)
        top_k (int, optional): Experts kept by the noisy top-k gate. (default: :obj:`2`)
        pool (str, optional): Noisy top-k routing unit, ``"graph"`` (eq. 18), ``"node"``, or
            ``"batch"`` (the authors' code: one choice for the whole mini-batch).
            (default: :obj:`"graph"`)
        balance_loss_weight (float, optional): Weight of the noisy top-k balance loss.
            (default: :obj:`0.0`)
        routing_noise (str, optional): Noise of the noisy top-k gate, ``"independent"``
            (eq. 15) or ``"shared"`` (the authors' code, see :class:`NoisyTopKGate`).
            (default: :obj:`"independent"`)
        message_gate_node (str, optional): Node whose gate mixes a message, ``"target"``
            or ``"source"``. (default: :obj:`"target"`)
        message_activation (str, optional): ``"outside"`` (eq. 13) or ``"inside"``.
            (default: :obj:`"outside"`)
        update_activation (str, optional): ``"inside"`` (eq. 19) or ``"outside"`` (eq. 14).
            (default: :obj:`"inside"`)

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
        softmax: bool = True,
        top_k: int = 2,
        pool: str = "graph",
        balance_loss_weight: float = 0.0,
        message_gate_node: str = "target",
        message_activation: str = "outside",
        update_activation: str = "inside",
        routing_noise: str = "independent",
    ):
        super().__init__(aggr="mean", node_dim=0)
        check_choice("placement", placement, PLACEMENTS)
        check_choice("gate", gate, GATES)
        check_choice("pool", pool, POOLS)
        check_choice("routing_noise", routing_noise, NOISES)
        check_choice("message_gate_node", message_gate_node, GATE_NODES)
        check_choice("message_activation", message_activation, ACTIVATIONS)
        check_choice("update_activation", update_activation, ACTIVATIONS)
        if (placement == "none") != (gate == "none"):
            raise ValueError(
                f"gate {gate!r} does not fit placement {placement!r}: gate 'none' goes with placement 'none' only"
            )
        if placement == "none" and num_experts != 1:
            raise ValueError(f"num_experts must be 1 for placement 'none' (the baseline), got {num_experts}")
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        if gate == "shared" and placement != "both":
            raise ValueError(
                f"gate 'shared' shares one gate between message and update: needs placement 'both', got {placement!r}"
            )
        if gate == "noisy_topk" and not 1 <= top_k <= num_experts:
            raise ValueError(
                f"top_k must satisfy 1 <= top_k <= num_experts, got top_k={top_k}, num_experts={num_experts}"
            )

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.placement = placement
        self.gate = gate
        self.num_experts = num_experts
        self.top_k = top_k if gate == "noisy_topk" else num_experts
        self.pool = pool
        self.message_gate_node = message_gate_node
        self.message_activation = message_activation
        self.update_activation = update_activation
        moe_message = placement in ("message", "both")
        moe_update = placement in ("aggregate", "both")
        update_in = in_channels + out_channels

        self.lin_message = None if moe_message else Linear(in_channels, out_channels)
        self.message_experts = ExpertLinear(in_channels, out_channels, num_experts) if moe_message else None
        self.lin_update = None if moe_update else Linear(update_in, out_channels)
        self.update_experts = ExpertLinear(update_in, out_channels, num_experts) if moe_update else None

        def make_gate(gate_in: int) -> Module:
            if gate == "roles":
                return RoleGate(num_experts)
            if gate == "dense":
                return DenseGate(gate_in, num_experts, softmax)
            return NoisyTopKGate(gate_in, num_experts, top_k, pool, balance_loss_weight, routing_noise)

        self.shared_gate = SharedGate(in_channels, out_channels, num_experts, softmax) if gate == "shared" else None
        separate = gate not in ("none", "shared")
        self.message_gate = make_gate(in_channels) if separate and moe_message else None
        self.update_gate = make_gate(update_in) if separate and moe_update else None

        self.routing: Dict[str, GateOutput] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    @property
    def routes_per_graph(self) -> bool:
        """Noisy top-k with graph (eq. 18) or batch pooling: one expert choice per graph."""
        return self.gate == "noisy_topk" and self.pool in ("graph", "batch")

    def forward(
        self,
        x: Union[Tensor, SparseFeatures],
        edge_index: Tensor,
        batch: Optional[Tensor] = None,
        roles: Optional[Tensor] = None,
        num_graphs: Optional[int] = None,
        adjacency: Optional[SparseFeatures] = None,
    ) -> Tuple[Tensor, Tensor]:
        if self.gate == "roles" and roles is None:
            raise ValueError("gate 'roles' needs the node role distributions: pass roles (data.roles, shape (N, R))")
        if isinstance(x, Tensor) and x.layout != torch.strided:
            x = SparseFeatures(x)  # a torch sparse tensor: constant features, CSR products
        if self.gate == "noisy_topk" and self.pool == "batch":
            # Routed as one graph: the mini-batch shares one choice (batch serves nothing else here).
            batch, num_graphs = None, None
        if batch is not None and num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
        self.routing = {}
        # Section 6.3: both stages read h W_msg; compute it once.
        shared_logits = self.shared_gate.message_logits(x) if self.shared_gate is not None else None
        agg, aux_message = self._aggregate_messages(x, edge_index, batch, roles, num_graphs, shared_logits, adjacency)
        out, aux_update = self._update(x, agg, batch, roles, num_graphs, shared_logits)
        return F.normalize(out, p=2.0, dim=-1), aux_message + aux_update

    def _aggregate_messages(
        self,
        x: Union[Tensor, SparseFeatures],
        edge_index: Tensor,
        batch: Optional[Tensor],
        roles: Optional[Tensor],
        num_graphs: Optional[int],
        shared_logits: Optional[Tensor] = None,
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
        if self.message_experts is None:
            # ReLU(W h_u) depends on the sender only: computed once per node, not per edge.
            return mean_of_senders(torch.relu(linear(x, self.lin_message))), zero

        gate = self._route("message", x, None, batch, roles, num_graphs, shared_logits=shared_logits)
        weight, index = self._per_node(gate, batch, x.size(0))
        sparse = self.gate == "noisy_topk"
        if self.routes_per_graph or self.message_gate_node == "source":
            # Sender and gating node share their routing (same graph, or the same node):
            # the mixed message is a per-node quantity, gathered per edge by propagate.
            if sparse:
                experts_out = self._top_k_experts(self.message_experts, x, gate, index, batch)
                mixed = mix(experts_out, weight, self.message_activation)
            else:
                mixed = self.message_experts.dense_mix(x, weight, self.message_activation)
            return mean_of_senders(mixed), gate.aux_loss
        if sparse:
            # Node routing by the receiver: each edge row x_u goes through v's k experts
            # (sparse features are gathered from their dense copy, one row per edge).
            agg = self.propagate(
                edge_index, x=None, weight=weight, index=index, features=to_dense(x), size=(x.size(0), x.size(0))
            )
            return agg, gate.aux_loss
        # Dense gates use every expert: compute them once per sender, mix per edge.
        experts_out = self.message_experts.dense(x)
        return self.propagate(edge_index, x=experts_out, weight=weight, index=None, features=None), gate.aux_loss

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

    def _update(
        self,
        x: Union[Tensor, SparseFeatures],
        agg: Tensor,
        batch: Optional[Tensor],
        roles: Optional[Tensor],
        num_graphs: Optional[int],
        shared_logits: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Eq. 12, then a single ReLU(Linear) or the MoE of eq. 19 / eq. 14.

        ``x_v = CONCAT(h_v, h_{N(v)})`` is passed as the parts ``(x, agg)``: every map on it
        is applied row-split (:func:`~gsmoe.nn.inputs.split_mm`), so it is never built.
        """
        x_cat = (x, agg)
        if self.update_experts is None:
            return torch.relu(linear(x_cat, self.lin_update)), agg.new_zeros(())
        gate = self._route("update", x_cat, agg, batch, roles, num_graphs, h=x, shared_logits=shared_logits)
        weight, index = self._per_node(gate, batch, x.size(0))
        if self.gate == "noisy_topk":
            experts_out = self._top_k_experts(self.update_experts, x_cat, gate, index, batch)
            return mix(experts_out, weight, self.update_activation), gate.aux_loss
        return self.update_experts.dense_mix(x_cat, weight, self.update_activation), gate.aux_loss

    def _route(
        self,
        stage: str,
        gate_in: Parts,
        agg: Optional[Tensor],
        batch: Optional[Tensor],
        roles: Optional[Tensor],
        num_graphs: Optional[int],
        h: Optional[Union[Tensor, SparseFeatures]] = None,
        shared_logits: Optional[Tensor] = None,
    ) -> GateOutput:
        if self.gate == "shared":
            out = self.shared_gate(gate_in if h is None else h, agg, message_logits=shared_logits)
        elif self.gate == "roles":
            out = getattr(self, f"{stage}_gate")(roles)
        elif self.gate == "noisy_topk":
            out = getattr(self, f"{stage}_gate")(gate_in, batch, num_graphs)
        else:
            out = getattr(self, f"{stage}_gate")(gate_in)
        self.routing[stage] = GateOutput(out.weights.detach(), out.indices.detach(), out.aux_loss.detach())
        return out

    def _top_k_experts(
        self, experts: ExpertLinear, x: Parts, gate: GateOutput, index: Tensor, batch: Optional[Tensor] = None
    ) -> Tensor:
        """Only the selected experts.  A single graph routed as a whole needs no dispatch; a
        batch of graphs routed as wholes takes one padded batched product
        (:meth:`ExpertLinear.grouped`) when its padding is cheap: at most 2x the rows (the
        worst case of the general dispatch), or under :data:`GROUPED_MAX_WORK` multiply-adds
        in all (measured: an ENZYMES batch of 32 graphs 1.4x faster, one batch of all 600
        graphs 1.6x slower than :meth:`ExpertLinear.sparse`)."""
        if self.routes_per_graph:
            num_graphs = gate.indices.size(0)
            if num_graphs == 1:
                return experts.select(x, gate.indices[0])
            if batch is not None and batch.numel() > 0:
                padded = num_graphs * int(torch.bincount(batch, minlength=num_graphs).max())
                work = padded * experts.in_channels * self.top_k * experts.out_channels
                if padded <= 2 * batch.numel() or work <= GROUPED_MAX_WORK:
                    return experts.grouped(x, gate.indices, batch)
        return experts.sparse(x, index)

    def _per_node(self, gate: GateOutput, batch: Optional[Tensor], num_nodes: int) -> Tuple[Tensor, Tensor]:
        """Broadcast a per-graph routing to the graph's nodes; per-node routing passes through."""
        if not self.routes_per_graph:
            return gate.weights, gate.indices
        if batch is None:
            return gate.weights.expand(num_nodes, -1), gate.indices.expand(num_nodes, -1)
        return gate.weights[batch], gate.indices[batch]

    def expert_load(self) -> Dict[str, List[float]]:
        """Per stage of the last forward: for top-k the fraction of routing units (graphs or
        nodes) that selected each expert; for dense and role gates the mean coefficient."""
        load = {}
        for stage, gate in self.routing.items():
            rows = gate.weights.size(0)
            if rows == 0:
                load[stage] = [0.0] * self.num_experts
            elif self.gate == "noisy_topk":
                counts = torch.bincount(gate.indices.reshape(-1), minlength=self.num_experts)
                load[stage] = (counts.double() / rows).tolist()
            else:
                load[stage] = gate.weights.double().mean(0).tolist()
        return load

    def unused_experts(self) -> List[Tuple[ExpertLinear, Tensor]]:
        """Per top-k stage of the last forward: its experts and a mask of those no row was
        routed to (empty for dense and role gates, which use every expert)."""
        if self.gate != "noisy_topk":
            return []
        unused = []
        for stage, gate in self.routing.items():
            experts = self.message_experts if stage == "message" else self.update_experts
            mask = torch.ones(experts.num_experts, dtype=torch.bool, device=gate.indices.device)
            mask[gate.indices.reshape(-1)] = False
            unused.append((experts, mask))
        return unused

    def active_parameters(self) -> int:
        """Parameters one forward pass uses: top-k touches only k experts per MoE stage."""
        total = sum(p.numel() for p in self.parameters())
        if self.gate == "noisy_topk":
            for experts in (self.message_experts, self.update_experts):
                if experts is not None:
                    total -= (self.num_experts - self.top_k) * experts.expert_numel()
        return total

    def __repr__(self) -> str:
        extra = f", top_k={self.top_k}, pool={self.pool}" if self.gate == "noisy_topk" else ""
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"placement={self.placement}, gate={self.gate}, experts={self.num_experts}{extra})"
        )
