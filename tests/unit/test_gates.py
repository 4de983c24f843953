"""Gates: the one interface and the registry, output shapes, normalisation, top-k sparsity,
pooling, noise, balance loss."""

from __future__ import annotations

import pytest
import torch
import yaml

from gsmoe import SCHEMA_PATH
from gsmoe.modelspec import GATES, NO_GATE
from gsmoe.nn import DenseGate, Gate, GateContext, GateOutput, NoisyTopKGate, RoleGate, SharedGate
from gsmoe.nn.gates import GATE_CLASSES, gate_class


def _noisy(num_experts: int = 8, top_k: int = 2, pool: str = "node", seed: int = 0, **kwargs) -> NoisyTopKGate:
    torch.manual_seed(seed)
    gate = NoisyTopKGate(6, num_experts, top_k=top_k, pool=pool, **kwargs)
    torch.nn.init.normal_(gate.w_gate)
    torch.nn.init.normal_(gate.w_noise)
    return gate


def _dense_coefficients(out: GateOutput, num_experts: int) -> torch.Tensor:
    return torch.zeros(out.weights.size(0), num_experts).scatter(1, out.indices, out.weights)


def test_role_gate_passes_roles_through() -> None:
    roles = torch.softmax(torch.randn(5, 4), -1)
    out = RoleGate(6, 4)(torch.randn(5, 6), None, GateContext(roles=roles))
    assert torch.equal(out.weights, roles)
    assert torch.equal(out.indices, torch.arange(4).expand(5, 4))
    assert out.aux_loss.item() == 0.0
    with pytest.raises(ValueError, match=r"num_experts=4.*one expert per GraphRole role"):
        RoleGate(6, 4)(torch.randn(5, 6), None, GateContext(roles=roles[:, :3]))
    with pytest.raises(ValueError, match="gate 'roles' needs the node role distributions"):
        RoleGate(6, 4)(torch.randn(5, 6))


@pytest.mark.parametrize("softmax", [True, False])
def test_dense_gate(softmax: bool) -> None:
    torch.manual_seed(0)
    gate = DenseGate(6, 5, softmax=softmax)
    x = torch.randn(7, 6)
    out = gate(x)
    assert out.weights.shape == out.indices.shape == (7, 5)
    logits = gate.lin(x)
    if softmax:
        torch.testing.assert_close(out.weights.sum(1), torch.ones(7))
        torch.testing.assert_close(out.weights, torch.softmax(logits, -1))
    else:
        torch.testing.assert_close(out.weights, logits)  # Table 2 "no softmax": raw coefficients
        assert (out.weights < 0).any()


def test_shared_gate_shares_w_msg() -> None:
    torch.manual_seed(0)
    gate = SharedGate(6, 4, agg_channels=3)
    h, agg = torch.randn(5, 6), torch.randn(5, 3)
    context = GateContext()
    message, update = gate(h, None, context), gate(h, agg, context)
    torch.testing.assert_close(message.weights, torch.softmax(gate.lin_msg(h), -1))
    torch.testing.assert_close(update.weights, torch.softmax(gate.lin_msg(h) + gate.lin_agg(agg), -1))
    torch.testing.assert_close(update.weights.sum(1), torch.ones(5))
    assert gate.lin_agg.bias is None


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("pool", ["node", "graph"])
def test_topk_keeps_exactly_k_and_rows_sum_to_one(pool: str, train: bool) -> None:
    gate = _noisy(pool=pool, top_k=3).train(train)
    x, batch = torch.randn(10, 6), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    out = gate(x, None, GateContext(batch, 4))
    rows = 4 if pool == "graph" else 10
    assert out.weights.shape == out.indices.shape == (rows, 3)
    assert out.indices.dtype == torch.long
    coefficients = _dense_coefficients(out, 8)
    assert ((coefficients > 0).sum(1) == 3).all()
    torch.testing.assert_close(coefficients.sum(1), torch.ones(rows))


def test_topk_is_keep_top_k_then_softmax() -> None:
    gate = _noisy(top_k=2).eval()
    x = torch.randn(4, 6)
    logits = x @ gate.w_gate
    top = logits.topk(2, -1)
    out = gate(x)
    assert torch.equal(out.indices, top.indices)
    # Softmax over the kept logits only (eq. 16-17), not a renormalised full softmax slice.
    torch.testing.assert_close(out.weights, torch.softmax(top.values, -1))


def test_graph_pool_averages_logits_per_graph() -> None:
    gate = _noisy(pool="graph", top_k=2).eval()
    x, batch = torch.randn(6, 6), torch.tensor([0, 0, 1, 1, 1, 1])
    out = gate(x, None, GateContext(batch, 2))
    for g in range(2):
        logits = (x[batch == g] @ gate.w_gate).mean(0)  # eq. 18: AVERAGE POOL(X W_g)
        assert torch.equal(out.indices[g], logits.topk(2).indices)
    # Without a batch vector the whole input is one graph (single-graph node task).
    assert gate(x).indices.shape == (1, 2)


def test_noise_only_in_training_and_drawn_per_row() -> None:
    gate = _noisy(pool="graph", top_k=2)
    x = torch.randn(3, 6).repeat(5, 1)  # five identical graphs
    batch = torch.arange(5).repeat_interleave(3)
    gate.eval()
    first, second = gate(x, None, GateContext(batch, 5)), gate(x, None, GateContext(batch, 5))
    assert torch.equal(first.weights, second.weights)
    assert torch.equal(first.weights, first.weights[:1].expand(5, 2))
    gate.train()
    torch.manual_seed(0)
    noisy = gate(x, None, GateContext(batch, 5))
    # One scalar of noise for the batch would keep identical graphs identical.
    assert not torch.allclose(noisy.weights, noisy.weights[:1].expand(5, 2))


def test_batch_pool_routes_the_whole_batch_alike() -> None:
    """The authors' code: the mean over all rows of the mini-batch takes one choice."""
    gate = _noisy(pool="batch", top_k=2).eval()
    x, batch = torch.randn(6, 6), torch.tensor([0, 0, 1, 1, 1, 1])
    out = gate(x, None, GateContext(batch, 2))
    assert out.indices.shape == (1, 2)
    assert torch.equal(out.indices[0], (x @ gate.w_gate).mean(0).topk(2).indices)


def test_shared_noise_is_one_scalar_and_also_in_evaluation() -> None:
    gate = _noisy(pool="graph", top_k=2, routing_noise="shared")
    x = torch.randn(3, 6).repeat(5, 1)  # five identical graphs
    batch = torch.arange(5).repeat_interleave(3)
    for mode in (gate.train, gate.eval):
        mode()
        torch.manual_seed(0)
        out = gate(x, None, GateContext(batch, 5))
        # one scalar for the batch keeps identical graphs identical ...
        assert torch.equal(out.weights, out.weights[:1].expand(5, 2))
        # ... and it is a standard normal draw times softplus(x W_noise), in eval mode too
        torch.manual_seed(0)
        eps = torch.randn(())
        pooled = x[:3].mean(0, keepdim=True)
        logits = pooled @ gate.w_gate + eps * torch.nn.functional.softplus(pooled @ gate.w_noise)
        torch.testing.assert_close(out.weights[:1], torch.softmax(logits.topk(2).values, dim=-1))


def test_shared_noise_keeps_the_clean_ranking_while_w_noise_is_zero() -> None:
    gate = NoisyTopKGate(6, 8, top_k=2, pool="node", routing_noise="shared").train()
    torch.nn.init.normal_(gate.w_gate)
    x = torch.randn(10, 6)
    assert torch.equal(gate(x).indices, (x @ gate.w_gate).topk(2).indices)


def test_zero_init_ties_break_to_lowest_index() -> None:
    gate = NoisyTopKGate(6, 8, top_k=3, pool="node").eval()
    assert (gate.w_gate == 0).all() and (gate.w_noise == 0).all()
    out = gate(torch.randn(4, 6))
    assert torch.equal(out.indices, torch.arange(3).expand(4, 3))
    torch.testing.assert_close(out.weights, torch.full((4, 3), 1 / 3))


def test_balance_loss() -> None:
    x = torch.randn(20, 6)
    assert _noisy(balance_loss_weight=0.0).train()(x).aux_loss.item() == 0.0
    assert _noisy(balance_loss_weight=0.5).eval()(x).aux_loss.item() == 0.0

    gate = _noisy(balance_loss_weight=0.5).train()
    aux = gate(x).aux_loss
    assert aux.dim() == 0 and aux.item() > 0
    aux.backward()
    # The load term reaches W_noise through the normal-CDF estimator.
    assert gate.w_noise.grad.abs().sum() > 0 and gate.w_gate.grad.abs().sum() > 0

    # k == E: every expert always selected, only the importance term remains (finite).
    full = _noisy(num_experts=4, top_k=4, balance_loss_weight=1.0).train()
    assert torch.isfinite(full(x).aux_loss)


def test_balance_loss_is_cv_squared_of_importance_when_load_is_uniform() -> None:
    # k == E makes the load term exactly zero, leaving CV^2 of the importance.
    gate = _noisy(num_experts=3, top_k=3, balance_loss_weight=2.0).train()
    x = torch.randn(10, 6)
    torch.manual_seed(1)
    out = gate(x)
    importance = _dense_coefficients(out, 3).sum(0)
    expected = 2.0 * importance.var(unbiased=False) / importance.mean() ** 2
    torch.testing.assert_close(out.aux_loss, expected)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_experts=4, top_k=5), r"^top_k \(5\) must be <= num_experts \(4\)\.$"),
        (dict(num_experts=4, top_k=0), "top_k must be >= 1, got 0"),
        (dict(num_experts=4, pool="edge"), "pool must be one of 'graph', 'node', 'batch'; got 'edge'"),
        (dict(num_experts=4, routing_noise="gaussian"), "routing_noise must be one of 'independent', 'shared', 'none'; got 'gaussian'"),
        (dict(num_experts=4, routing_noise="shared", balance_loss_weight=0.1), "needs routing_noise: independent"),
        (dict(num_experts=4, routing_noise="none", balance_loss_weight=0.1), "needs routing_noise: independent"),
        (dict(num_experts=4, balance_loss_weight=-1.0), "balance_loss_weight must be >= 0"),
    ],
)
def test_noisy_gate_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NoisyTopKGate(6, **kwargs)


def test_every_registered_gate_has_its_class_and_the_schema_its_name() -> None:
    assert set(GATE_CLASSES) == set(GATES)
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$defs"]["model"]["properties"]["gate"]["enum"] == [NO_GATE, *GATES]
    for name, cls in GATE_CLASSES.items():
        assert gate_class(name) is cls and cls.spec is GATES[name]
    with pytest.raises(ValueError, match="gate 'none' has no class"):
        gate_class(NO_GATE)


def test_a_gate_class_needs_a_registry_entry() -> None:
    with pytest.raises(TypeError, match="declares gate 'mlp': add its GateSpec to gsmoe.modelspec.GATES"):

        class MLPGate(Gate, name="mlp"):
            pass

    assert "mlp" not in GATE_CLASSES


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name", list(GATES))
def test_one_interface(name: str, train: bool) -> None:
    """Every gate is built and called alike; its facts come from the registry, its output
    has one row per routing unit and ``top_k`` entries per row."""
    h, agg, batch = torch.randn(5, 6), torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1])
    context = GateContext(batch, 2, torch.softmax(torch.randn(5, 4), -1))
    spec = GATES[name]
    for stage_agg in (None, agg):  # the message stage's gate, the update stage's
        torch.manual_seed(0)
        agg_channels = 3 if stage_agg is not None or spec.both_stages else 0
        gate = gate_class(name)(6, 4, agg_channels=agg_channels).train(train)
        out = gate(h, stage_agg, context)
        assert isinstance(out, GateOutput)
        rows = 2 if gate.per_graph else 5
        assert out.weights.shape == out.indices.shape == (rows, gate.top_k)
        assert out.aux_loss.dim() == 0
        assert gate.reference(h, stage_agg, context).shape == (5, 4)
        assert (gate.sparse, gate.needs_roles, gate.both_stages) == (spec.sparse, spec.needs_roles, spec.both_stages)
        assert set(gate.options()) == set(spec.options)


def test_routing_facts_of_the_noisy_gate() -> None:
    facts = lambda gate: (gate.per_graph, gate.whole_batch, gate.batch_dependent)  # noqa: E731
    assert facts(NoisyTopKGate(6, 8, pool="node")) == (False, False, False)
    assert facts(NoisyTopKGate(6, 8, pool="graph")) == (True, False, False)
    assert facts(NoisyTopKGate(6, 8, pool="batch")) == (True, True, True)
    assert facts(NoisyTopKGate(6, 8, pool="node", routing_noise="shared")) == (False, False, True)
    assert NoisyTopKGate(6, 8, top_k=3).top_k == 3 and DenseGate(6, 8).top_k == 8


def test_shared_gate_computes_h_w_msg_once_per_context(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = SharedGate(6, 4, agg_channels=3)
    calls = []
    monkeypatch.setattr("gsmoe.nn.gates.linear", lambda parts, lin: calls.append(lin) or lin(parts))
    context = GateContext()
    h, agg = torch.randn(5, 6), torch.randn(5, 3)
    gate(h, None, context)
    gate(h, agg, context)
    assert calls == [gate.lin_msg]
    gate(h, agg, GateContext())
    assert len(calls) == 2


def test_router_init_linear_is_the_authors_nn_linear() -> None:
    """``zero``: W_g and W_noise zero, no bias (Shazeer); ``linear``: nn.Linear's default
    initialisation, with a bias (the authors' code)."""
    zero = NoisyTopKGate(6, 8, agg_channels=4, top_k=2)
    assert [name for name, _ in zero.named_parameters()] == ["w_gate", "w_noise"]
    assert not zero.w_gate.any() and not zero.w_noise.any()

    torch.manual_seed(0)
    linear = NoisyTopKGate(6, 8, agg_channels=4, top_k=2, router_init="linear")
    assert [name for name, _ in linear.named_parameters()] == ["w_gate", "w_noise", "b_gate", "b_noise"]
    bound = 1 / 10**0.5  # fan_in = 6 + 4
    for param in linear.parameters():
        assert param.abs().max() <= bound and param.abs().max() > bound / 2
    torch.manual_seed(0)
    reference = torch.nn.Linear(10, 8)
    assert torch.equal(linear.b_gate, reference.bias)  # the same draws, as nn.Linear makes them
    h, agg = torch.randn(5, 6), torch.randn(5, 4)
    expected = torch.cat([h, agg], 1) @ linear.w_gate + linear.b_gate
    out = linear.eval()(h, agg, GateContext(batch=torch.tensor([0, 0, 1, 1, 1]), num_graphs=2))
    torch.testing.assert_close(out.weights, torch.softmax(torch.stack([expected[:2].mean(0), expected[2:].mean(0)]).sort(-1, descending=True).values[:, :2], -1))


def test_routing_noise_none_routes_by_the_clean_logits_in_training() -> None:
    torch.manual_seed(0)
    gate = NoisyTopKGate(6, 8, top_k=2, pool="node", routing_noise="none")
    torch.nn.init.normal_(gate.w_gate)
    torch.nn.init.normal_(gate.w_noise)
    h = torch.randn(7, 6)
    trained, evaluated = gate.train()(h), gate.eval()(h)
    assert torch.equal(trained.indices, evaluated.indices) and torch.equal(trained.weights, evaluated.weights)
    assert torch.equal(trained.indices, torch.sort(h @ gate.w_gate, dim=-1, descending=True, stable=True).indices[:, :2])
