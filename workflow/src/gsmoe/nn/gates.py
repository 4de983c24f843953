"""Gating networks: how expert coefficients ``r_ij`` are chosen (paper section 5.2.2, 6.3).

Every gate is a :class:`Gate`, built as ``Gate(in_channels, num_experts, agg_channels,
**options)`` and called as ``gate(h, agg, context)``: ``h`` are the features of the gating
nodes, ``agg`` the aggregated messages :math:`h_{N(v)}` (``None`` in the message stage; the
update stage's gate reads ``CONCAT(h_v, h_{N(v)})``, eq. 12, never built) and ``context``
the layer's :class:`GateContext`.  It returns a :class:`GateOutput` with one row per routing
unit (a node, or a graph for graph-pooled top-k routing): ``weights`` ``(rows, k)``,
``indices`` ``(rows, k)`` into the experts (dense gates: ``k = E``, ``arange(E)``), and
``aux_loss``, a scalar, zero unless a load-balancing loss applies and the gate is training.
Features may be dense tensors, :class:`~gsmoe.nn.inputs.SparseFeatures` or tuples of both.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gsmoe.modelspec import GATES, GateSpec, check_model
from gsmoe.nn.inputs import Parts, as_parts, linear, mean_pool, split_mm


class GateOutput(NamedTuple):
    weights: Tensor
    indices: Tensor
    aux_loss: Tensor


@dataclass
class GateContext:
    """What a gate may read besides the node features, in one forward pass of a layer:
    the graph of every node (``batch``, ``None`` for one graph), the number of graphs,
    the GraphRole role distributions, and ``cache``, for a computation that the two
    stages of the pass share (see :class:`SharedGate`)."""

    batch: Optional[Tensor] = None
    num_graphs: Optional[int] = None
    roles: Optional[Tensor] = None
    cache: Dict[str, Tensor] = field(default_factory=dict)


#: The class of every gate, by the name it declares (filled by :meth:`Gate.__init_subclass__`).
GATE_CLASSES: Dict[str, type] = {}


def gate_class(name: str) -> type:
    """The :class:`Gate` subclass registered as ``name``."""
    if name not in GATE_CLASSES:
        raise ValueError(
            f"gate {name!r} has no class: declare one in gsmoe.nn.gates as "
            f"class ...(Gate, name={name!r}) (known: {', '.join(GATE_CLASSES)})"
        )
    return GATE_CLASSES[name]


class Gate(nn.Module, metaclass=ABCMeta):
    """The interface every gate implements (see the module docstring).

    A subclass declares its registry name, ``class MyGate(Gate, name="my_gate")``, and gets
    the facts of ``gsmoe.modelspec.GATES["my_gate"]`` as class attributes and its options
    (``GateSpec.options``, model keys) as attributes of the same names.  An instance routes
    one row per node over every expert (``top_k = num_experts``) unless its options say
    otherwise (:attr:`top_k`, :attr:`per_graph`, :attr:`whole_batch`, :attr:`batch_dependent`).
    """

    name: ClassVar[str]
    spec: ClassVar[GateSpec]
    #: The registry's facts (see :class:`~gsmoe.modelspec.GateSpec`).
    sparse: ClassVar[bool]
    needs_roles: ClassVar[bool]
    both_stages: ClassVar[bool]
    #: One routing row per graph, shared by its nodes.
    per_graph = False
    #: One routing row for the whole input, shared by all its graphs.
    whole_batch = False
    #: A graph's routing depends on the other graphs of its mini-batch, also in evaluation.
    batch_dependent = False

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name not in GATES:
            raise TypeError(f"{cls.__name__} declares gate {name!r}: add its GateSpec to gsmoe.modelspec.GATES")
        cls.name, cls.spec = name, GATES[name]
        cls.sparse, cls.needs_roles, cls.both_stages = cls.spec.sparse, cls.spec.needs_roles, cls.spec.both_stages
        GATE_CLASSES[name] = cls

    def __init__(self, num_experts: int, options: Dict[str, Any]):
        super().__init__()
        check_model({"gate": self.name, "num_experts": num_experts, **options})
        self.num_experts = num_experts
        #: Experts each routing row uses: all of them, unless an option (``top_k``) says otherwise.
        self.top_k = num_experts
        for key, value in options.items():
            setattr(self, key, value)

    def options(self) -> Dict[str, Any]:
        """The values of the model keys the gate reads (:attr:`GateSpec.options`)."""
        return {key: getattr(self, key) for key in self.spec.options}

    @abstractmethod
    def forward(self, h: Parts, agg: Optional[Tensor] = None, context: Optional[GateContext] = None) -> GateOutput:
        """The routing of ``h`` (and ``agg``, in the update stage): one row per routing unit."""

    @abstractmethod
    def reference(self, h: Tensor, agg: Optional[Tensor], context: GateContext) -> Tensor:
        """The per-node coefficients ``(N, E)`` straight from the paper's equations, dense
        (zeros for the experts a row does not use), for :mod:`gsmoe.nn.reference`."""

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in {"num_experts": self.num_experts, **self.options()}.items())


def _dense_output(weights: Tensor) -> GateOutput:
    rows, num_experts = weights.shape
    indices = torch.arange(num_experts, device=weights.device).expand(rows, num_experts)
    return GateOutput(weights, indices, weights.new_zeros(()))


def _gate_input(h: Parts, agg: Optional[Tensor]) -> Parts:
    """What a gate of features reads: ``h`` in the message stage, ``CONCAT(h, agg)`` in the update."""
    return h if agg is None else (*as_parts(h), agg)


def _normalised(logits: Tensor, softmax: bool) -> Tensor:
    return torch.softmax(logits, dim=-1) if softmax else logits


class RoleGate(Gate, name="roles"):
    r"""Mixture by roles (section 5.2.2 a): :math:`r_{ij}` = the GraphRole probability of node
    :math:`i` having role :math:`j` (``context.roles``).  Fixed coefficients, no parameters.

    Args:
        in_channels (int): Size of ``h`` (not read).
        num_experts (int): Number of experts; must equal the number of roles ``R``.
        agg_channels (int, optional): Size of ``agg`` (not read). (default: :obj:`0`)

    Shapes:
        - **input:** roles :math:`(N, R)` in the context
        - **output:** :class:`GateOutput` with weights and indices :math:`(N, R)`
    """

    def __init__(self, in_channels: int, num_experts: int, agg_channels: int = 0):
        super().__init__(num_experts, {})

    def _roles(self, context: Optional[GateContext]) -> Tensor:
        roles = None if context is None else context.roles
        if roles is None:
            raise ValueError("gate 'roles' needs the node role distributions: pass roles (data.roles, shape (N, R))")
        if roles.dim() != 2 or roles.size(1) != self.num_experts:
            raise ValueError(
                f"roles must have shape (num_nodes, num_experts={self.num_experts}): one expert "
                f"per GraphRole role, got shape {tuple(roles.shape)}"
            )
        return roles

    def forward(self, h: Parts, agg: Optional[Tensor] = None, context: Optional[GateContext] = None) -> GateOutput:
        return _dense_output(self._roles(context))

    def reference(self, h: Tensor, agg: Optional[Tensor], context: GateContext) -> Tensor:
        return self._roles(context)


class DenseGate(Gate, name="dense"):
    r"""Non-sparse gating (section 5.2.2 b(a)): :math:`G(x) = \mathrm{softmax}(x W_g + b_g)`,
    or the raw linear coefficients :math:`x W_g + b_g` without softmax (Table 2), where
    :math:`x` is ``h`` or ``CONCAT(h, agg)``.

    Args:
        in_channels (int): Size of ``h``.
        num_experts (int): Number of experts ``E``.
        agg_channels (int, optional): Size of ``agg``; 0 for a message-stage gate.
            (default: :obj:`0`)
        softmax (bool, optional): Normalise the coefficients with a softmax.
            (default: :obj:`True`)

    Shapes:
        - **input:** h :math:`(R, F_{in})`, optional agg :math:`(R, F_{agg})`
        - **output:** :class:`GateOutput` with weights and indices :math:`(R, E)`
    """

    def __init__(self, in_channels: int, num_experts: int, agg_channels: int = 0, softmax: bool = True):
        super().__init__(num_experts, {"softmax": softmax})
        self.lin = nn.Linear(in_channels + agg_channels, num_experts)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, h: Parts, agg: Optional[Tensor] = None, context: Optional[GateContext] = None) -> GateOutput:
        return _dense_output(_normalised(linear(_gate_input(h, agg), self.lin), self.softmax))

    def reference(self, h: Tensor, agg: Optional[Tensor], context: GateContext) -> Tensor:
        x = h if agg is None else torch.cat([h, agg], 1)
        return _normalised(x @ self.lin.weight.T + self.lin.bias, self.softmax)


class SharedGate(Gate, name="shared"):
    r"""Gate shared by message passing and update (section 6.3).

    Message stage: :math:`\mathrm{softmax}(h_v W_{msg})`; update stage:
    :math:`\mathrm{softmax}(h_v W_{msg} + h_{N(v)} W_0)`, with the same :math:`W_{msg}`.
    :math:`W_{msg}` carries the bias; a second bias on :math:`W_0` would be redundant.
    :math:`h_v W_{msg}` is computed once per forward pass: the message stage keeps it in
    the context's cache for the update stage.

    Args:
        in_channels (int): Size of the node features :math:`h_v`.
        num_experts (int): Number of experts ``E``.
        agg_channels (int): Size of the aggregated message :math:`h_{N(v)}`.
        softmax (bool, optional): Normalise the coefficients with a softmax.
            (default: :obj:`True`)

    Shapes:
        - **input:** h :math:`(N, F_{in})`, optional agg :math:`(N, F_{agg})`
        - **output:** :class:`GateOutput` with weights and indices :math:`(N, E)`
    """

    def __init__(self, in_channels: int, num_experts: int, agg_channels: int = 0, softmax: bool = True):
        super().__init__(num_experts, {"softmax": softmax})
        if agg_channels < 1:
            raise ValueError(f"the shared gate reads the aggregated messages too: agg_channels must be >= 1, got {agg_channels}")
        self.lin_msg = nn.Linear(in_channels, num_experts)
        self.lin_agg = nn.Linear(agg_channels, num_experts, bias=False)

    def reset_parameters(self) -> None:
        self.lin_msg.reset_parameters()
        self.lin_agg.reset_parameters()

    def forward(self, h: Parts, agg: Optional[Tensor] = None, context: Optional[GateContext] = None) -> GateOutput:
        """Message gate when ``agg`` is None, update gate otherwise."""
        cache = {} if context is None else context.cache
        key = f"message_logits.{id(self)}"
        if key not in cache:
            cache[key] = linear(h, self.lin_msg)
        logits = cache[key]
        if agg is not None:
            logits = logits + self.lin_agg(agg)
        return _dense_output(_normalised(logits, self.softmax))

    def reference(self, h: Tensor, agg: Optional[Tensor], context: GateContext) -> Tensor:
        logits = h @ self.lin_msg.weight.T + self.lin_msg.bias
        if agg is not None:
            logits = logits + agg @ self.lin_agg.weight.T
        return _normalised(logits, self.softmax)


class NoisyTopKGate(Gate, name="noisy_topk"):
    r"""Noisy top-k gating (eq. 15-18; Shazeer et al., 2017).

    .. math::
        F(x) = x W_g + \epsilon \cdot \mathrm{Softplus}(x W_{noise}),
        \quad \epsilon \sim \mathcal{N}(0, 1) \text{ in training only}

        G(x) = \mathrm{softmax}(\mathrm{KeepTopK}(F(x), k))

    where :math:`x` is ``h`` or ``CONCAT(h, agg)``.  With ``pool="graph"`` (eq. 18) both
    logit terms are averaged over the nodes of each graph, so the whole graph takes one
    expert choice; as the maps are affine, the node features are pooled
    first.  With ``pool="node"`` every node is routed alone.  ``pool="batch"`` is the
    authors' code: the mean over all rows, so every graph of a mini-batch takes the same
    experts.

    ``routing_noise="independent"`` (eq. 15, Shazeer et al.) draws ``eps`` for every routing
    row and expert, in training only.  ``routing_noise="shared"`` is the authors' code: one
    scalar ``eps`` per forward pass for all rows and experts, in evaluation too.  While
    ``W_noise`` is zero, a shared ``eps`` shifts every logit alike and leaves the ranking to
    ``x W_g``; independent noise ranks the experts at random until ``x W_g`` outgrows it.
    ``routing_noise="none"`` routes by the clean logits alone (an ablation, not the paper's).

    With ``router_init="zero"`` :math:`W_g` and :math:`W_{noise}` start at zero, as in
    Shazeer et al.: routing starts uniform and is explored by the noise.
    ``router_init="linear"`` is the authors' code: both maps are ``nn.Linear`` layers, with
    a bias and PyTorch's default initialisation (weights and bias uniform in
    :math:`\pm 1/\sqrt{\text{fan\_in}}`), so routing starts at random.  Ties (e.g. all logits zero in eval mode) go to
    the lowest expert index, through a stable sort.  With ``k = 1`` the softmax is constant,
    so :math:`W_g` learns only through the balance loss (as in Shazeer et al.).

    The optional balance loss is ``balance_loss_weight * (CV^2(importance) + CV^2(load))``,
    where importance is the summed gate weight per expert and load the smooth estimate of
    the number of rows routed to each expert, from the normal CDF of the noise.

    Args:
        in_channels (int): Size of ``h``.
        num_experts (int): Number of experts ``E``.
        agg_channels (int, optional): Size of ``agg``; 0 for a message-stage gate.
            (default: :obj:`0`)
        top_k (int, optional): Experts kept per routing row, ``1 <= top_k <= E``.
            (default: :obj:`2`)
        pool (str, optional): ``"graph"``, ``"node"`` or ``"batch"``. (default: :obj:`"graph"`)
        balance_loss_weight (float, optional): Weight of the balance loss; 0 turns it off.
            Needs independent noise (its load estimate assumes it). (default: :obj:`0.0`)
        routing_noise (str, optional): ``"independent"``, ``"shared"`` or ``"none"``.
            (default: :obj:`"independent"`)
        router_init (str, optional): ``"zero"`` (no bias) or ``"linear"`` (with bias).
            (default: :obj:`"zero"`)

    Shapes:
        - **input:** h :math:`(N, F_{in})`, optional agg :math:`(N, F_{agg})`, the batch
          vector :math:`(N)` in the context
        - **output:** :class:`GateOutput` with weights and indices :math:`(G, k)` for
          ``pool="graph"``, :math:`(N, k)` for ``pool="node"``, :math:`(1, k)` for
          ``pool="batch"``
    """

    def __init__(
        self,
        in_channels: int,
        num_experts: int,
        agg_channels: int = 0,
        top_k: int = 2,
        pool: str = "graph",
        balance_loss_weight: float = 0.0,
        routing_noise: str = "independent",
        router_init: str = "zero",
    ):
        options = {
            "top_k": top_k, "pool": pool, "balance_loss_weight": balance_loss_weight,
            "routing_noise": routing_noise, "router_init": router_init,
        }  # fmt: skip
        super().__init__(num_experts, options)
        self.w_gate = nn.Parameter(torch.empty(in_channels + agg_channels, num_experts))
        self.w_noise = nn.Parameter(torch.empty(in_channels + agg_channels, num_experts))
        # Only the authors' initialisation has a bias: the zero start keeps eq. 15's maps.
        has_bias = router_init == "linear"
        self.b_gate = nn.Parameter(torch.empty(num_experts)) if has_bias else None
        self.b_noise = nn.Parameter(torch.empty(num_experts)) if has_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.router_init == "zero":
            nn.init.zeros_(self.w_gate)
            nn.init.zeros_(self.w_noise)
            return
        # nn.Linear.reset_parameters on the (out, in) view: U(+-1/sqrt(fan_in)) for both.
        for weight, bias in ((self.w_gate, self.b_gate), (self.w_noise, self.b_noise)):
            nn.init.kaiming_uniform_(weight.T, a=math.sqrt(5))
            bound = 1 / math.sqrt(weight.size(0))
            nn.init.uniform_(bias, -bound, bound)

    @property
    def per_graph(self) -> bool:
        return self.pool in ("graph", "batch")

    @property
    def whole_batch(self) -> bool:
        return self.pool == "batch"

    @property
    def batch_dependent(self) -> bool:
        return self.pool == "batch" or self.routing_noise == "shared"

    def _pooled(self, x: Parts, context: Optional[GateContext]) -> Parts:
        if self.pool == "graph":
            context = context or GateContext()
            return mean_pool(x, context.batch, context.num_graphs)
        if self.pool == "batch":
            return mean_pool(x, None, None)
        return x

    def forward(self, h: Parts, agg: Optional[Tensor] = None, context: Optional[GateContext] = None) -> GateOutput:
        x = self._pooled(_gate_input(h, agg), context)
        clean = split_mm(x, self.w_gate, self.b_gate)
        if self.routing_noise == "shared" or (self.training and self.routing_noise == "independent"):
            noise_std = F.softplus(split_mm(x, self.w_noise, self.b_noise))
            if self.routing_noise == "independent":
                eps = torch.randn_like(clean)
            else:
                eps = torch.randn((), dtype=clean.dtype, device=clean.device)
            logits = clean + eps * noise_std
        else:
            logits = clean
        # Stable sort rather than topk: ties resolve to the lowest index on every device.
        sorted_logits, sorted_index = torch.sort(logits, dim=-1, descending=True, stable=True)
        top_logits = sorted_logits[:, : self.top_k]
        weights = torch.softmax(top_logits, dim=-1)
        indices = sorted_index[:, : self.top_k]

        if self.training and self.balance_loss_weight > 0:
            full = torch.zeros_like(logits).scatter(1, indices, weights)
            if self.top_k < self.num_experts:
                load = _load(clean, noise_std, logits, sorted_logits, self.top_k).sum(0)
            else:
                load = full.new_full((self.num_experts,), float(full.size(0)))
            aux = self.balance_loss_weight * (_cv_squared(full.sum(0)) + _cv_squared(load))
        else:
            aux = logits.new_zeros(())
        return GateOutput(weights, indices, aux)

    def reference(self, h: Tensor, agg: Optional[Tensor], context: GateContext) -> Tensor:
        """Eq. 16-17 as a masked softmax; in training (or with shared noise) it draws
        ``torch.randn`` as :meth:`forward` does, so a shared seed gives both the same noise."""
        x = h if agg is None else torch.cat([h, agg], 1)
        batch, num_graphs = context.batch, context.num_graphs
        if self.pool == "graph":
            rows = torch.stack([x[batch == g].mean(0) for g in range(num_graphs)])
        elif self.pool == "batch":
            rows = x.mean(0, keepdim=True)
        else:
            rows = x
        b_gate, b_noise = (0.0, 0.0) if self.b_gate is None else (self.b_gate, self.b_noise)
        logits = rows @ self.w_gate + b_gate
        if self.routing_noise == "shared":
            logits = logits + torch.randn((), dtype=rows.dtype, device=rows.device) * F.softplus(rows @ self.w_noise + b_noise)
        elif self.training and self.routing_noise == "independent":
            noise = torch.randn(logits.shape, dtype=logits.dtype, device=logits.device)
            logits = logits + noise * F.softplus(rows @ self.w_noise + b_noise)
        keep = torch.topk(logits, self.top_k, dim=-1).indices
        masked = torch.full_like(logits, float("-inf")).scatter(1, keep, logits.gather(1, keep))
        coefficients = torch.softmax(masked, -1)
        if self.pool == "graph":
            return coefficients[batch]
        if self.pool == "batch":
            return coefficients.expand(x.size(0), -1)
        return coefficients


def _cv_squared(x: Tensor) -> Tensor:
    """Squared coefficient of variation; Shazeer's importance and load penalty."""
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.var(unbiased=False) / (x.mean() ** 2 + 1e-10)


def _load(clean: Tensor, noise_std: Tensor, noisy: Tensor, sorted_noisy: Tensor, k: int) -> Tensor:
    """P(expert j stays in the top k when only its own noise is redrawn) (Shazeer, appendix A).

    The threshold expert j must beat is the k-th largest other logit: the (k+1)-th largest
    overall when j is in the top k, the k-th largest when it is not.
    """
    threshold_if_in = sorted_noisy[:, k : k + 1]
    threshold_if_out = sorted_noisy[:, k - 1 : k]
    is_in = noisy > threshold_if_in
    # softplus underflows to 0 only for logits below about -100; keep the ratio finite there.
    std = noise_std.clamp(min=1e-6)
    prob_if_in = torch.special.ndtr((clean - threshold_if_in) / std)
    prob_if_out = torch.special.ndtr((clean - threshold_if_out) / std)
    return torch.where(is_in, prob_if_in, prob_if_out)
