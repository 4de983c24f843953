"""Gating networks: how expert coefficients ``r_ij`` are chosen (paper section 5.2.2, 6.3).

Every gate returns a :class:`GateOutput` with one row per routing unit (a node, or a graph
for graph-pooled top-k routing): ``weights`` ``(rows, k)``, ``indices`` ``(rows, k)`` into
the experts, and ``aux_loss``, a scalar that is zero unless a load-balancing loss applies
and the module is training.  Dense gates use ``k = E`` and ``indices = arange(E)``.

Gates that read node features accept a dense tensor, a
:class:`~gsmoe.nn.inputs.SparseFeatures` or a tuple of such parts (the row blocks of the
concatenation ``CONCAT(h_v, h_{N(v)})``, eq. 12), which is never built.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gsmoe.nn.choices import check_choice
from gsmoe.nn.inputs import Parts, linear, mean_pool, split_mm

#: Routing units of :class:`NoisyTopKGate` (``pool``) and its noise kinds (``noise``).
POOLS = ("graph", "node", "batch")
NOISES = ("independent", "shared")


class GateOutput(NamedTuple):
    weights: Tensor
    indices: Tensor
    aux_loss: Tensor


def _dense_output(weights: Tensor) -> GateOutput:
    rows, num_experts = weights.shape
    indices = torch.arange(num_experts, device=weights.device).expand(rows, num_experts)
    return GateOutput(weights, indices, weights.new_zeros(()))


class RoleGate(nn.Module):
    r"""Mixture by roles (section 5.2.2 a): :math:`r_{ij}` = the GraphRole probability of node
    :math:`i` having role :math:`j`.  Fixed coefficients, no parameters.

    Args:
        num_experts (int): Number of experts; must equal the number of roles ``R``.

    Shapes:
        - **input:** roles :math:`(N, R)`
        - **output:** :class:`GateOutput` with weights and indices :math:`(N, R)`
    """

    def __init__(self, num_experts: int):
        super().__init__()
        self.num_experts = num_experts

    def forward(self, roles: Tensor) -> GateOutput:
        if roles.dim() != 2 or roles.size(1) != self.num_experts:
            raise ValueError(
                f"roles must have shape (num_nodes, num_experts={self.num_experts}): one expert "
                f"per GraphRole role, got shape {tuple(roles.shape)}"
            )
        return _dense_output(roles)

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}"


class DenseGate(nn.Module):
    r"""Non-sparse gating (section 5.2.2 b(a)): :math:`G(x) = \mathrm{softmax}(x W_g + b_g)`,
    or the raw linear coefficients :math:`x W_g + b_g` without softmax (Table 2).

    Args:
        in_channels (int): Size of the gate input.
        num_experts (int): Number of experts ``E``.
        softmax (bool, optional): Normalise the coefficients with a softmax.
            (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(R, F_{in})`
        - **output:** :class:`GateOutput` with weights and indices :math:`(R, E)`
    """

    def __init__(self, in_channels: int, num_experts: int, softmax: bool = True):
        super().__init__()
        self.softmax = softmax
        self.lin = nn.Linear(in_channels, num_experts)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: Parts) -> GateOutput:
        logits = linear(x, self.lin)
        return _dense_output(torch.softmax(logits, dim=-1) if self.softmax else logits)

    def extra_repr(self) -> str:
        return f"softmax={self.softmax}"


class SharedGate(nn.Module):
    r"""Gate shared by message passing and update (section 6.3).

    Message stage: :math:`\mathrm{softmax}(h_v W_{msg})`; update stage:
    :math:`\mathrm{softmax}(h_v W_{msg} + h_{N(v)} W_0)`, with the same :math:`W_{msg}`.
    :math:`W_{msg}` carries the bias; a second bias on :math:`W_0` would be redundant.

    Args:
        in_channels (int): Size of the node features :math:`h_v`.
        agg_channels (int): Size of the aggregated message :math:`h_{N(v)}`.
        num_experts (int): Number of experts ``E``.
        softmax (bool, optional): Normalise the coefficients with a softmax.
            (default: :obj:`True`)

    Shapes:
        - **input:** h :math:`(N, F_{in})`, optional agg :math:`(N, F_{agg})`
        - **output:** :class:`GateOutput` with weights and indices :math:`(N, E)`
    """

    def __init__(self, in_channels: int, agg_channels: int, num_experts: int, softmax: bool = True):
        super().__init__()
        self.softmax = softmax
        self.lin_msg = nn.Linear(in_channels, num_experts)
        self.lin_agg = nn.Linear(agg_channels, num_experts, bias=False)

    def reset_parameters(self) -> None:
        self.lin_msg.reset_parameters()
        self.lin_agg.reset_parameters()

    def message_logits(self, h: Parts) -> Tensor:
        """:math:`h W_{msg} + b`, the logits the two stages share."""
        return linear(h, self.lin_msg)

    def forward(self, h: Parts, agg: Optional[Tensor] = None, message_logits: Optional[Tensor] = None) -> GateOutput:
        """Message gate when ``agg`` is None, update gate otherwise.

        ``message_logits`` (from :meth:`message_logits`) lets a layer compute
        :math:`h W_{msg}` once for both stages; ``h`` is not read then.
        """
        logits = self.message_logits(h) if message_logits is None else message_logits
        if agg is not None:
            logits = logits + self.lin_agg(agg)
        return _dense_output(torch.softmax(logits, dim=-1) if self.softmax else logits)

    def extra_repr(self) -> str:
        return f"softmax={self.softmax}"


class NoisyTopKGate(nn.Module):
    r"""Noisy top-k gating (eq. 15-18; Shazeer et al., 2017).

    .. math::
        F(x) = x W_g + \epsilon \cdot \mathrm{Softplus}(x W_{noise}),
        \quad \epsilon \sim \mathcal{N}(0, 1) \text{ in training only}

        G(x) = \mathrm{softmax}(\mathrm{KeepTopK}(F(x), k))

    With ``pool="graph"`` (eq. 18) both logit terms are averaged over the nodes of each
    graph, so the whole graph takes one expert choice; as the maps are linear without bias,
    the node features are pooled first.  With ``pool="node"`` every node is routed alone.
    ``pool="batch"`` is the authors' code: the mean over all rows, so every graph of a
    mini-batch takes the same experts.

    ``noise="independent"`` (eq. 15, Shazeer et al.) draws ``eps`` for every routing row and
    expert, in training only.  ``noise="shared"`` is the authors' code: one scalar ``eps``
    per forward pass for all rows and experts, in evaluation too.  While ``W_noise`` is
    zero, a shared ``eps`` shifts every logit alike and leaves the ranking to ``x W_g``;
    independent noise ranks the experts at random until ``x W_g`` outgrows it.

    :math:`W_g` and :math:`W_{noise}` start at zero, as in Shazeer et al.: routing starts
    uniform and is explored by the noise.  Ties (e.g. all logits zero in eval mode) go to
    the lowest expert index, through a stable sort.  With ``k = 1`` the softmax is constant,
    so :math:`W_g` learns only through the balance loss (as in Shazeer et al.).

    The optional balance loss is ``balance_loss_weight * (CV^2(importance) + CV^2(load))``,
    where importance is the summed gate weight per expert and load the smooth estimate of
    the number of rows routed to each expert, from the normal CDF of the noise.

    Args:
        in_channels (int): Size of the gate input.
        num_experts (int): Number of experts ``E``.
        k (int): Experts kept per routing row, ``1 <= k <= E``.
        pool (str, optional): ``"graph"``, ``"node"`` or ``"batch"``. (default: :obj:`"graph"`)
        balance_loss_weight (float, optional): Weight of the balance loss; 0 turns it off.
            Needs independent noise (its load estimate assumes it). (default: :obj:`0.0`)
        noise (str, optional): ``"independent"`` or ``"shared"``.
            (default: :obj:`"independent"`)

    Shapes:
        - **input:** x :math:`(N, F_{in})`, optional batch :math:`(N)`
        - **output:** :class:`GateOutput` with weights and indices :math:`(G, k)` for
          ``pool="graph"``, :math:`(N, k)` for ``pool="node"``, :math:`(1, k)` for
          ``pool="batch"``
    """

    def __init__(
        self,
        in_channels: int,
        num_experts: int,
        k: int,
        pool: str = "graph",
        balance_loss_weight: float = 0.0,
        noise: str = "independent",
    ):
        super().__init__()
        if not 1 <= k <= num_experts:
            raise ValueError(f"top_k must satisfy 1 <= top_k <= num_experts, got top_k={k}, num_experts={num_experts}")
        check_choice("pool", pool, POOLS)
        check_choice("noise", noise, NOISES)
        if balance_loss_weight < 0:
            raise ValueError(f"balance_loss_weight must be >= 0, got {balance_loss_weight}")
        if balance_loss_weight > 0 and noise == "shared":
            raise ValueError("the balance loss estimates the load from independent noise: use noise 'independent'")
        self.num_experts = num_experts
        self.k = k
        self.pool = pool
        self.noise = noise
        self.balance_loss_weight = balance_loss_weight
        self.w_gate = nn.Parameter(torch.empty(in_channels, num_experts))
        self.w_noise = nn.Parameter(torch.empty(in_channels, num_experts))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.w_gate)
        nn.init.zeros_(self.w_noise)

    def forward(self, x: Parts, batch: Optional[Tensor] = None, num_graphs: Optional[int] = None) -> GateOutput:
        if self.pool == "graph":
            x = mean_pool(x, batch, num_graphs)
        elif self.pool == "batch":
            x = mean_pool(x, None, None)
        clean = split_mm(x, self.w_gate)
        if self.training or self.noise == "shared":
            noise_std = F.softplus(split_mm(x, self.w_noise))
            if self.noise == "independent":
                eps = torch.randn_like(clean)
            else:
                eps = torch.randn((), dtype=clean.dtype, device=clean.device)
            logits = clean + eps * noise_std
        else:
            logits = clean
        # Stable sort rather than topk: ties resolve to the lowest index on every device.
        sorted_logits, sorted_index = torch.sort(logits, dim=-1, descending=True, stable=True)
        top_logits = sorted_logits[:, : self.k]
        weights = torch.softmax(top_logits, dim=-1)
        indices = sorted_index[:, : self.k]

        if self.training and self.balance_loss_weight > 0:
            full = torch.zeros_like(logits).scatter(1, indices, weights)
            if self.k < self.num_experts:
                load = _load(clean, noise_std, logits, sorted_logits, self.k).sum(0)
            else:
                load = full.new_full((self.num_experts,), float(full.size(0)))
            aux = self.balance_loss_weight * (_cv_squared(full.sum(0)) + _cv_squared(load))
        else:
            aux = logits.new_zeros(())
        return GateOutput(weights, indices, aux)

    def extra_repr(self) -> str:
        return (
            f"num_experts={self.num_experts}, k={self.k}, pool={self.pool}, noise={self.noise}, "
            f"balance_loss_weight={self.balance_loss_weight}"
        )


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
