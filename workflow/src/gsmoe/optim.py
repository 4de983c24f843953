"""The trainer's optimiser: the authors' Adam with coupled L2, and lazy expert updates for
sparse (top-k) gating (only the experts a step routed to are stepped)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.optim.adam import adam

from gsmoe.nn.conv import SAGEMoEConv
from gsmoe.nn.gates import Gate


class LazyExpertUpdates:
    """Leave the experts a step did not route to untouched by that optimiser step.

    With top-k gating most experts get no gradient in a step, yet Adam's coupled weight
    decay (the authors' optimiser) still moves them: ``wd * w`` is their whole gradient, so
    Adam's normalised step shrinks them towards zero by about ``lr`` per step.  An expert
    then loses what it learned within a few steps of not being chosen; with 128 experts and
    one routing choice per graph (and the router's own decay, see :func:`_parameter_groups`)
    a network of 128 top-4 did not train at all.  Like lazy Adam for sparse embeddings, each
    step updates the routed experts' rows (weight, bias and Adam moments) only.

    The routed rows get exactly the step ``torch.optim.Adam`` would give them (its own
    functional update on the gathered rows, the parameter's shared step count), and the
    unrouted rows cost nothing: with 128 experts and top-4 the full step was most of the
    time of a Cora epoch.

    With ``expert_step_counts`` each expert keeps a step count of its own, counting the
    steps that routed to it, as ``torch.optim.Adam`` counts per parameter: this is the
    authors' code (one ``nn.Linear`` per expert) under torch >= 2.0, where ``zero_grad()``
    leaves an unrouted expert's gradient None and Adam skips it.  Adam's bias correction
    then starts afresh for an expert's first routed step.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Adam, expert_step_counts: bool = False) -> None:
        if type(optimizer) is not torch.optim.Adam:
            raise TypeError(f"LazyExpertUpdates needs torch.optim.Adam, got {type(optimizer).__name__}")
        for group in optimizer.param_groups:
            unsupported = [key for key in ("amsgrad", "maximize", "capturable", "differentiable", "fused") if group.get(key)]
            if unsupported:
                raise ValueError(f"LazyExpertUpdates does not support Adam's {', '.join(unsupported)}")
        self.model = model
        self.optimizer = optimizer
        self.expert_step_counts = expert_step_counts
        self._groups = {id(param): group for group in optimizer.param_groups for param in group["params"]}

    def _unused(self) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
        return [
            (param, mask)
            for conv in self.model.modules()
            if isinstance(conv, SAGEMoEConv)
            for experts, mask in conv.unused_experts()
            for param in (experts.weight, experts.bias)
            if param is not None
        ]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        """``optimizer.step()`` for the experts the last forward pass used only."""
        partial = []
        for param, unused in self._unused():
            # With a count per expert, every expert parameter takes the row step.
            if param.grad is None or not (self.expert_step_counts or bool(unused.any())):
                continue
            partial.append((param, param.grad, (~unused).nonzero().view(-1)))
            param.grad = None  # the full step below skips it
        self.optimizer.step()
        for param, grad, used in partial:
            param.grad = grad
            if self.expert_step_counts:
                self._step_rows_counted(param, grad, used)
            else:
                self._step_rows(param, grad, used)

    @torch.no_grad()
    def _step_rows(self, param: torch.nn.Parameter, grad: torch.Tensor, rows: torch.Tensor) -> None:
        group = self._groups[id(param)]
        state = self.optimizer.state[param]
        if not state:  # as torch.optim.Adam initialises it
            scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
            state["step"] = torch.tensor(0.0, dtype=scalar, device="cpu")
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        values, exp_avg, exp_avg_sq = param[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
        beta1, beta2 = group["betas"]
        adam(
            [values], [grad[rows]], [exp_avg], [exp_avg_sq], [], [state["step"]],
            foreach=group["foreach"], decoupled_weight_decay=group.get("decoupled_weight_decay", False),
            amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
            eps=group["eps"], maximize=False,
        )  # fmt: skip
        param[rows] = values
        state["exp_avg"][rows] = exp_avg
        state["exp_avg_sq"][rows] = exp_avg_sq

    @torch.no_grad()
    def _step_rows_counted(self, param: torch.nn.Parameter, grad: torch.Tensor, rows: torch.Tensor) -> None:
        """Adam's single-tensor step (coupled L2) on ``rows``, each with its own step count."""
        group = self._groups[id(param)]
        state = self.optimizer.state[param]
        if not state:
            state["expert_step"] = torch.zeros(param.size(0), dtype=torch.float64)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["expert_step"][rows] += 1
        step = state["expert_step"][rows].view(-1, *[1] * (param.dim() - 1))
        beta1, beta2 = group["betas"]
        values, exp_avg, exp_avg_sq = param[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
        row_grad = grad[rows]
        if group["weight_decay"] != 0:
            row_grad = row_grad.add(values, alpha=group["weight_decay"])
        exp_avg.lerp_(row_grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(row_grad, row_grad, value=1 - beta2)
        step_size = (group["lr"] / (1 - beta1**step)).to(param.dtype)
        bias_correction2_sqrt = ((1 - beta2**step) ** 0.5).to(param.dtype)
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
        param[rows] = values - step_size * exp_avg / denom
        state["exp_avg"][rows] = exp_avg
        state["exp_avg_sq"][rows] = exp_avg_sq


#: What the trainer steps: a torch optimiser, or Adam wrapped in :class:`LazyExpertUpdates`.
Optimizer = torch.optim.Optimizer | LazyExpertUpdates


def _parameter_groups(model: torch.nn.Module, weight_decay: float, undecayed_routers: bool) -> list[dict[str, Any]]:
    """Adam's parameter groups: coupled L2 on everything, except (``undecayed_routers``) the
    routers of sparse gates (noisy top-k).

    A router's gradient reaches only the k chosen columns through a softmax and is tiny
    next to ``weight_decay * w``: with L2 its clean logits stay near zero, the noise alone
    picks the experts in every step, and no expert is trained long enough to be of use.
    """
    sparse_gates = [m for m in model.modules() if isinstance(m, Gate) and m.sparse] if undecayed_routers else []
    routers = {id(p) for gate in sparse_gates for p in gate.parameters()}
    params = list(model.parameters())
    groups = [{"params": [p for p in params if id(p) not in routers], "weight_decay": weight_decay}]
    if routers:
        groups.append({"params": [p for p in params if id(p) in routers], "weight_decay": 0.0})
    return groups


class ExpertUpdates(NamedTuple):
    """What one value of ``training.expert_updates`` does."""

    skip_unrouted: bool
    decay_routers: bool
    step_count_per_expert: bool


#: Every ``training.expert_updates`` (the schema's enum lists the same names).
EXPERT_UPDATES = {
    "lazy": ExpertUpdates(skip_unrouted=True, decay_routers=False, step_count_per_expert=False),
    "dense": ExpertUpdates(skip_unrouted=False, decay_routers=True, step_count_per_expert=False),
    "lazy_decayed_router": ExpertUpdates(skip_unrouted=True, decay_routers=True, step_count_per_expert=True),
}


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, expert_updates: str = "lazy") -> Optimizer:
    """The trainer's optimiser, Adam with coupled L2 (the authors'), by ``expert_updates``:
    ``"lazy"``: unrouted experts left alone (:class:`LazyExpertUpdates`) and the sparse
    gates' routers undecayed; ``"dense"``: the authors' plain Adam (their code under torch
    1.x); ``"lazy_decayed_router"``: their code under torch >= 2.0, unrouted experts skipped
    with a step count per expert, every parameter decayed."""
    if expert_updates not in EXPERT_UPDATES:
        raise ValueError(f"expert_updates must be one of {', '.join(map(repr, EXPERT_UPDATES))}, got {expert_updates!r}")
    updates = EXPERT_UPDATES[expert_updates]
    # The multi-tensor step: the same numbers as the single-tensor one (torch's default on
    # CPU), bit for bit, in a few operations for all parameters (0.2 -> 0.14 ms a step of
    # ENZYMES' small models, where per-operation overhead dominates).
    groups = _parameter_groups(model, weight_decay, undecayed_routers=not updates.decay_routers)
    optimizer = torch.optim.Adam(groups, lr=lr, foreach=True)
    if not updates.skip_unrouted:
        return optimizer
    return LazyExpertUpdates(model, optimizer, expert_step_counts=updates.step_count_per_expert)
