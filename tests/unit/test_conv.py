"""SAGEMoEConv: vectorised layer == per-expert loop reference, routing properties, errors."""

from __future__ import annotations

import pytest
import torch

from gsmoe.nn import SAGEMoEConv
from gsmoe.nn.reference import reference_conv
from nn_helpers import E, GATE_VARIANTS, K, conv_variants, make_conv, three_graphs

def _grads(out: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    probe = torch.linspace(-1, 1, out.numel()).view_as(out)
    grads = torch.autograd.grad((out * probe).sum(), inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


@pytest.mark.parametrize("kwargs,train", conv_variants())
def test_matches_per_expert_reference(kwargs: dict, train: bool) -> None:
    conv = make_conv(kwargs).train(train)
    x, edge_index, batch, roles = three_graphs()
    x.requires_grad_(True)
    inputs = [x, *conv.parameters()]

    torch.manual_seed(123)
    out, _ = conv(x, edge_index, batch=batch, roles=roles)
    torch.manual_seed(123)
    expected = reference_conv(conv, x, edge_index, batch=batch, roles=roles)

    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(_grads(out, inputs), _grads(expected, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gate", list(GATE_VARIANTS))
def test_matches_reference_in_double_precision(gate: str) -> None:
    """In float64 the layer and the loop agree to 1e-10: the float32 tolerances above hide
    no real difference, and the reference follows the input's dtype (noise included)."""
    kwargs = {"placement": "both", "num_experts": E, **GATE_VARIANTS[gate]}
    conv = make_conv(kwargs).double().train(gate.startswith("topk"))
    x, edge_index, batch, roles = three_graphs()
    x, roles = x.double(), roles.double()

    torch.manual_seed(123)
    out, _ = conv(x, edge_index, batch=batch, roles=roles)
    torch.manual_seed(123)
    expected = reference_conv(conv, x, edge_index, batch=batch, roles=roles)

    assert expected.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("placement", ["message", "aggregate", "both"])
def test_single_graph_routed_as_a_whole_matches_reference(placement: str, train: bool) -> None:
    # One graph takes the gathered-weights shortcut instead of the dispatch.
    conv = make_conv(dict(placement=placement, **GATE_VARIANTS["topk_graph"])).train(train)
    x, edge_index, _, _ = three_graphs()
    x.requires_grad_(True)
    inputs = [x, *conv.parameters()]
    torch.manual_seed(9)
    out, _ = conv(x, edge_index)
    torch.manual_seed(9)
    expected = reference_conv(conv, x, edge_index)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(_grads(out, inputs), _grads(expected, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("placement", ["none", "message", "aggregate", "both"])
def test_baseline_and_moe_without_batch_vector(placement: str) -> None:
    kwargs = dict(placement="none", gate="none", num_experts=1) if placement == "none" else dict(placement=placement)
    conv = make_conv(kwargs)
    x, edge_index, _, roles = three_graphs()
    out, aux = conv(x, edge_index)
    torch.testing.assert_close(out, reference_conv(conv, x, edge_index), rtol=1e-5, atol=1e-6)
    assert out.shape == (12, 6)
    assert aux.item() == 0.0


@pytest.mark.parametrize(
    "gate,placement",
    [(g, p) for g in ("dense", "topk_graph", "topk_node", "roles") for p in ("message", "both")] + [("shared", "both")],
)
def test_edge_order_does_not_matter(gate: str, placement: str) -> None:
    conv = make_conv(dict(placement=placement, **GATE_VARIANTS[gate])).eval()
    x, edge_index, batch, roles = three_graphs()
    perm = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(3))
    out1, _ = conv(x, edge_index, batch=batch, roles=roles)
    out2, _ = conv(x, edge_index[:, perm], batch=batch, roles=roles)
    torch.testing.assert_close(out1, out2, rtol=1e-5, atol=1e-6)


def test_graph_without_edges_gives_finite_output() -> None:
    conv = make_conv(dict(placement="both", **GATE_VARIANTS["topk_node"]))
    x = torch.randn(3, 5)
    out, _ = conv(x, torch.empty(2, 0, dtype=torch.long))
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters() if p.grad is not None)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("gate", ["topk_graph", "topk_node", "dense"])
def test_graphs_in_a_batch_are_routed_independently(gate: str, train: bool) -> None:
    conv = make_conv(dict(placement="both", **GATE_VARIANTS[gate])).train(train)
    x, edge_index, batch, roles = three_graphs()
    changed = x.clone()
    changed[batch == 1] = torch.randn(4, 5)
    torch.manual_seed(7)
    out1, _ = conv(x, edge_index, batch=batch)
    routing1 = conv.routing
    torch.manual_seed(7)
    out2, _ = conv(changed, edge_index, batch=batch)
    routing2 = conv.routing
    others = batch != 1
    torch.testing.assert_close(out1[others], out2[others])
    assert not torch.allclose(out1[~others], out2[~others])
    if gate == "topk_graph":
        for stage in ("message", "update"):
            assert routing1[stage].indices.shape == (3, K)
            for g in (0, 2):
                assert torch.equal(routing1[stage].indices[g], routing2[stage].indices[g])


@pytest.mark.parametrize("pool", ["graph", "node"])
def test_topk_gives_no_gradient_to_unselected_experts(pool: str) -> None:
    conv = make_conv(dict(placement="both", gate="noisy_topk", num_experts=8, top_k=2, pool=pool)).train()
    x, edge_index, batch, _ = three_graphs()
    keep = batch == 0  # one graph, so most experts stay unselected
    x, edge_index, batch = x[keep], edge_index[:, edge_index.max(0).values < 5], batch[keep]
    out, _ = conv(x, edge_index, batch=batch)
    out.pow(2).sum().backward()
    for stage in ("message", "update"):
        selected = torch.zeros(8, dtype=torch.bool)
        selected[conv.routing[stage].indices.unique()] = True
        assert 0 < selected.sum() < 8
        experts = getattr(conv, f"{stage}_experts")
        gate = getattr(conv, f"{stage}_gate")
        assert (experts.weight.grad[~selected] == 0).all() and (experts.bias.grad[~selected] == 0).all()
        assert (experts.weight.grad[selected].abs().sum((1, 2)) > 0).all()
        assert (gate.w_gate.grad[:, ~selected] == 0).all() and (gate.w_noise.grad[:, ~selected] == 0).all()
        assert gate.w_gate.grad[:, selected].abs().sum() > 0


def test_routing_and_expert_load() -> None:
    conv = make_conv(dict(placement="both", gate="noisy_topk", num_experts=E, top_k=K, pool="graph")).eval()
    x, edge_index, batch, _ = three_graphs()
    conv(x, edge_index, batch=batch)
    load = conv.expert_load()
    assert set(load) == {"message", "update"}
    for stage, fractions in load.items():
        assert len(fractions) == E
        assert sum(fractions) == pytest.approx(K)  # each of the 3 graphs picks K experts
        counts = torch.bincount(conv.routing[stage].indices.flatten(), minlength=E)
        assert fractions == pytest.approx((counts / 3).tolist())

    dense = make_conv(dict(placement="aggregate", gate="dense"))
    dense(x, edge_index, batch=batch)
    assert sum(dense.expert_load()["update"]) == pytest.approx(1.0)


def test_determinism() -> None:
    x, edge_index, batch, _ = three_graphs()
    outs = []
    for _ in range(2):
        conv = make_conv(dict(placement="both", **GATE_VARIANTS["topk_node"])).train()
        torch.manual_seed(5)
        outs.append(conv(x, edge_index, batch=batch)[0])
    assert torch.equal(outs[0], outs[1])


def test_output_rows_have_unit_norm() -> None:
    conv = make_conv(dict(placement="aggregate", gate="dense"))
    x, edge_index, batch, _ = three_graphs()
    out, _ = conv(x, edge_index, batch=batch)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(12))


@pytest.mark.parametrize(
    "kwargs,text",
    [
        (
            dict(in_channels=1433, out_channels=32),
            "SAGEMoEConv(1433, 32, placement=aggregate, gate=dense, experts=4, softmax=True)",
        ),
        (
            dict(in_channels=3, out_channels=32, placement="none", gate="none", num_experts=1),
            "SAGEMoEConv(3, 32, placement=none, gate=none, experts=1)",
        ),
        (
            dict(in_channels=3, out_channels=32, placement="both", gate="noisy_topk", num_experts=128, top_k=4),
            "SAGEMoEConv(3, 32, placement=both, gate=noisy_topk, experts=128, top_k=4, pool=graph, "
            "balance_loss_weight=0.0, routing_noise=independent, router_init=zero)",
        ),
    ],
)
def test_repr(kwargs: dict, text: str) -> None:
    assert str(SAGEMoEConv(**kwargs)) == text


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(placement="edges"), "placement must be one of 'none', 'message', 'aggregate', 'both'; got 'edges'"),
        (dict(gate="mlp"), "gate must be one of"),
        (dict(placement="none", gate="roles"), "placement is 'none' .* but gate is 'roles'"),
        (dict(placement="aggregate", gate="none"), "gate is 'none' but placement is 'aggregate'"),
        (dict(placement="none", gate="none", num_experts=4), "num_experts is 4; use gate: none and num_experts: 1"),
        (dict(placement="aggregate", gate="shared"), "use placement: both"),
        (dict(gate="noisy_topk", num_experts=4, top_k=5), r"^top_k \(5\) must be <= num_experts \(4\)\.$"),
        (dict(gate="noisy_topk", pool="edge"), "pool must be one of"),
        (dict(gate="noisy_topk", routing_noise="gaussian"), "routing_noise must be one of"),
        (dict(message_gate_node="both"), "message_gate_node must be one of"),
        (dict(message_activation="middle"), "message_activation must be one of"),
        (dict(update_activation="middle"), "update_activation must be one of"),
        (dict(num_experts=0), "num_experts must be >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SAGEMoEConv(5, 6, **kwargs)


def test_unknown_keyword_and_options_of_other_gates() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument.*: topk"):
        SAGEMoEConv(5, 6, topk=2)
    # A run config sets every gate's options; a dense layer takes them and uses none.
    conv = SAGEMoEConv(5, 6, gate="dense", num_experts=4, top_k=8, routing_noise="shared")
    assert conv.update_gate.options() == {"softmax": True}


def test_roles_missing_or_wrong_width() -> None:
    conv = SAGEMoEConv(5, 6, placement="aggregate", gate="roles", num_experts=E)
    x, edge_index, _, roles = three_graphs()
    with pytest.raises(ValueError, match="needs the node role distributions"):
        conv(x, edge_index)
    with pytest.raises(ValueError, match=r"num_experts=4.*got shape \(12, 3\)"):
        conv(x, edge_index, roles=roles[:, :3])
