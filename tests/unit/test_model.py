"""GraphSAGEMoE and build_model: the stack, the run-config contract, parameters, overfitting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch_geometric.data import Batch, Data

from gsmoe.modelspec import MODEL_KEYS, model_defaults
from gsmoe.nn import GraphSAGEMoE, ModelOutput, build_model
from nn_helpers import MODEL_VARIANTS, graph_batch, node_data

ROOT = Path(__file__).resolve().parents[2]


def _design_model_block() -> dict:
    """The ``model:`` block of docs/design.md's run config."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    run_config = text.split("## Run config", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load(run_config)["model"]


DESIGN_CFG = _design_model_block()
BASELINE = MODEL_VARIANTS["baseline"]


def _cfg(**overrides) -> dict:
    return {**DESIGN_CFG, "dropout": 0.0, **overrides}


def test_design_config_builds_the_authors_stack() -> None:
    model = build_model(DESIGN_CFG, in_channels=8, num_classes=3, task="node")
    assert len(model.convs) == 2
    assert [str(c) for c in model.convs] == [
        "SAGEMoEConv(8, 32, placement=aggregate, gate=dense, experts=4, softmax=True)",
        "SAGEMoEConv(32, 32, placement=aggregate, gate=dense, experts=4, softmax=True)",
    ]
    head = [type(m).__name__ for m in model.head]
    assert head == ["Linear", "Dropout", "Linear"]
    out = model.eval()(node_data())
    assert isinstance(out, ModelOutput)
    assert out.log_probs.shape == (30, 3)
    torch.testing.assert_close(out.log_probs.exp().sum(1), torch.ones(30))
    assert out.aux_loss.item() == 0.0


def test_design_run_config_names_every_model_key() -> None:
    assert set(DESIGN_CFG) == set(MODEL_KEYS)


def test_schema_defaults_build_the_baseline() -> None:
    model = build_model(model_defaults(), in_channels=8, num_classes=3, task="node")
    assert [str(c) for c in model.convs] == [
        "SAGEMoEConv(8, 32, placement=none, gate=none, experts=1)",
        "SAGEMoEConv(32, 32, placement=none, gate=none, experts=1)",
    ]


def test_missing_keys_are_named() -> None:
    partial = {k: v for k, v in DESIGN_CFG.items() if k not in ("top_k", "pool")}
    with pytest.raises(ValueError, match=r"lacks key\(s\): top_k, pool; start from gsmoe.modelspec.model_defaults"):
        build_model(partial, 8, 3, "node")


@pytest.mark.parametrize("task", ["node", "graph"])
@pytest.mark.parametrize("variant", list(MODEL_VARIANTS))
def test_forward_shapes_and_expert_load(variant: str, task: str) -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(**MODEL_VARIANTS[variant]), 8, 3, task)
    data = node_data() if task == "node" else graph_batch()
    out = model(data)
    rows = 30 if task == "node" else 16
    assert out.log_probs.shape == (rows, 3) and torch.isfinite(out.log_probs).all()
    load = model.expert_load()
    placement = MODEL_VARIANTS[variant]["placement"]
    stages = {"none": [], "message": ["message"], "aggregate": ["update"], "both": ["message", "update"]}[placement]
    assert sorted(load) == sorted(f"conv{i}.{s}" for i in range(2) for s in stages)
    for fractions in load.values():
        assert len(fractions) == MODEL_VARIANTS[variant]["num_experts"]


def _expected_baseline_parameters(in_channels: int, hidden: int, classes: int) -> int:
    def conv(i: int) -> int:
        return (i * hidden + hidden) + ((i + hidden) * hidden + hidden)

    return conv(in_channels) + conv(hidden) + (hidden * hidden + hidden) + (hidden * classes + classes)


def test_parameter_counts() -> None:
    baseline = build_model(_cfg(**BASELINE), 8, 3, "node")
    assert baseline.num_parameters() == baseline.active_parameters() == _expected_baseline_parameters(8, 32, 3)

    dense = build_model(_cfg(placement="both", gate="dense", num_experts=4), 8, 3, "node")
    assert dense.active_parameters() == dense.num_parameters()

    topk = build_model(_cfg(placement="both", gate="noisy_topk", num_experts=8, top_k=2), 8, 3, "node")
    unused_experts = 0
    for conv in topk.convs:
        for experts in (conv.message_experts, conv.update_experts):
            unused_experts += (8 - 2) * (experts.weight[0].numel() + experts.bias[0].numel())
    assert topk.active_parameters() == topk.num_parameters() - unused_experts
    gate_params = sum(p.numel() for c in topk.convs for g in (c.message_gate, c.update_gate) for p in g.parameters())
    assert gate_params > 0  # counted in both totals


def test_expert_load_fractions_for_topk_graph_pool() -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(placement="aggregate", gate="noisy_topk", num_experts=8, top_k=2), 8, 2, "graph")
    model.eval()(graph_batch())
    for fractions in model.expert_load().values():
        # Each of the 16 graphs picks 2 experts: fractions are multiples of 1/16 summing to 2.
        assert sum(fractions) == pytest.approx(2.0)
        assert all(abs(f * 16 - round(f * 16)) < 1e-9 for f in fractions)


def test_aux_loss_collected_in_training_only() -> None:
    torch.manual_seed(0)
    cfg = _cfg(placement="both", gate="noisy_topk", num_experts=8, top_k=2, pool="node", balance_loss_weight=0.1)
    model = build_model(cfg, 8, 3, "node")
    data = node_data()
    assert model.train()(data).aux_loss.item() > 0
    assert model.eval()(data).aux_loss.item() == 0.0


def test_dropout_after_every_conv_and_determinism() -> None:
    """Dropout (p=0.5) acts on the output of every conv (the inputs of the second conv and
    of the head): in training each entry is either dropped or the eval-mode value doubled,
    and some are dropped.  The same seed gives the same training pass, another seed another."""
    data = node_data()
    torch.manual_seed(0)
    model = build_model(DESIGN_CFG, 8, 3, "node")  # dense gate: no routing noise
    seen: dict[str, torch.Tensor] = {}
    for name in ("convs.1", "head"):
        model.get_submodule(name).register_forward_pre_hook(lambda _, args, name=name: seen.__setitem__(name, args[0]))
    model.convs[1].register_forward_hook(lambda _, args, out: seen.__setitem__("convs.1 out", torch.relu(out[0])))

    model.eval()
    model(data)
    eval_inputs = dict(seen)
    model.train()
    torch.manual_seed(1)
    first = model(data).log_probs
    # The first conv's output, as the second conv reads it: dropped, or the eval value / (1 - p).
    kept = seen["convs.1"] != 0
    torch.testing.assert_close(seen["convs.1"][kept], 2 * eval_inputs["convs.1"][kept])
    assert bool((~kept & (eval_inputs["convs.1"] != 0)).any())
    # The last conv's output (this pass's), as the head reads it.
    kept = seen["head"] != 0
    torch.testing.assert_close(seen["head"][kept], 2 * seen["convs.1 out"][kept])
    assert bool((~kept & (seen["convs.1 out"] != 0)).any())

    torch.manual_seed(1)
    assert torch.equal(model(data).log_probs, first)
    torch.manual_seed(2)
    assert not torch.equal(model(data).log_probs, first)
    model.eval()
    assert torch.equal(model(data).log_probs, model(data).log_probs)


@pytest.mark.parametrize("variant", ["baseline", "topk-graph-both", "dense-aggregate"])
def test_graphs_in_a_batch_are_independent(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(**MODEL_VARIANTS[variant]), 8, 3, "graph").eval()
    batch = graph_batch(num_graphs=4)
    changed = batch.clone()
    changed.x = batch.x.clone()
    changed.x[batch.batch == 2] += 1.0
    out1, out2 = model(batch).log_probs, model(changed).log_probs
    torch.testing.assert_close(out1[[0, 1, 3]], out2[[0, 1, 3]])
    assert not torch.allclose(out1[2], out2[2])


@pytest.mark.parametrize("task", ["node", "graph"])
def test_single_graph_without_edges(task: str) -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(placement="both", gate="noisy_topk", num_experts=4, top_k=2), 8, 3, task)
    data = Data(x=torch.randn(5, 8), edge_index=torch.empty(2, 0, dtype=torch.long))
    out = model(data)
    assert out.log_probs.shape == ((5, 3) if task == "node" else (1, 3))
    assert torch.isfinite(out.log_probs).all()
    one = Batch.from_data_list([data])
    torch.testing.assert_close(model.eval()(one).log_probs, model(data).log_probs)


def test_roles_missing_or_mismatched() -> None:
    model = build_model(_cfg(**MODEL_VARIANTS["roles-aggregate"]), 8, 3, "node")
    data = node_data()
    del data.roles
    with pytest.raises(ValueError, match="needs GraphRole role distributions as data.roles"):
        model(data)
    data.roles = torch.softmax(torch.randn(30, 5), -1)
    with pytest.raises(ValueError, match="num_experts=4"):
        model(data)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(gate="roles", placement="none", num_experts=1), "placement is 'none' .* but gate is 'roles'"),
        (dict(gate="shared", placement="aggregate"), "use placement: both"),
        (dict(gate="noisy_topk", top_k=8, num_experts=4), r"top_k \(8\) must be <= num_experts \(4\)"),
        (dict(placement="everywhere"), "placement must be one of"),
        (dict(pool="edge"), "pool must be one of"),
        (dict(message_gate_node="middle"), "message_gate_node must be one of"),
        (dict(update_activation="before"), "update_activation must be one of"),
        (dict(hidden=0), "hidden must be >= 1, got 0"),
        (dict(num_layers=1.5), "num_layers must be an integer, got 1.5"),
        (dict(num_layers=2.0), "num_layers must be an integer, got 2.0"),
        (dict(num_experts=True), "num_experts must be an integer, got True"),
        (dict(dropout=-0.1), "dropout must be >= 0, got -0.1"),
        (dict(dropout=1.0), "dropout must be < 1, got 1.0"),
        (dict(softmax="yes"), "softmax must be true or false, got 'yes'"),
        (dict(balance_loss_weight="a"), "balance_loss_weight must be a number, got 'a'"),
        (dict(expert=4), "unknown model config key"),
    ],
)
def test_build_model_rejects_bad_config(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model({**DESIGN_CFG, **overrides}, 8, 3, "node")


def test_bad_task() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        GraphSAGEMoE(8, 3, task="edge")


def test_keys_of_other_gates_are_not_cross_checked() -> None:
    # A resolved baseline config still carries top_k etc. from the defaults.
    build_model({**DESIGN_CFG, **BASELINE, "top_k": 4}, 8, 3, "graph")


def _fit(model: GraphSAGEMoE, data: Data, steps: int = 300) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    accuracy = 0.0
    for step in range(steps):
        model.train()
        optimizer.zero_grad()
        out = model(data)
        loss = torch.nn.functional.nll_loss(out.log_probs, data.y) + out.aux_loss
        loss.backward()
        optimizer.step()
        if step % 20 == 19:
            model.eval()
            with torch.no_grad():
                accuracy = (model(data).log_probs.argmax(1) == data.y).float().mean().item()
            if accuracy >= 0.95:
                break
    return accuracy


@pytest.mark.parametrize("variant", list(MODEL_VARIANTS))
def test_overfits_node_task(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(**MODEL_VARIANTS[variant]), 8, 3, "node")
    assert _fit(model, node_data()) >= 0.95


@pytest.mark.parametrize(
    "variant", ["baseline", "roles-aggregate", "dense-aggregate", "topk-graph-both", "shared-both"]
)
def test_overfits_graph_task(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(**MODEL_VARIANTS[variant]), 8, 2, "graph")
    assert _fit(model, graph_batch()) >= 0.95
