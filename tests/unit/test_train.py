"""gsmoe.train on the real Cora and ENZYMES (from the local mirror), a few epochs each."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gsmoe.config import load_config, resolve_run
from gsmoe.datasets import load_dataset, prepare_dataset
from gsmoe.train import pick_device, train_and_save, train_run

ROOT = Path(__file__).resolve().parents[2]
MIRROR = ROOT.parent / "shared" / "datasets"

pytestmark = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no local data mirror at {MIRROR}")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_config(ROOT / "config.yaml")


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pyg")
    cora = [MIRROR / "planetoid" / f"ind.cora.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")]
    prepare_dataset("planetoid", "Cora", cora, base / "Cora")
    prepare_dataset("tu", "ENZYMES", [MIRROR / "tu" / "ENZYMES.zip"], base / "ENZYMES")
    return {"Cora": base / "Cora", "ENZYMES": base / "ENZYMES"}


def short_run(config: dict[str, Any], dataset: str, experiment: str, seed: int, epochs: int = 4) -> dict[str, Any]:
    run = resolve_run(config, dataset, experiment, seed)
    run["training"].update(epochs=epochs, eval_every=2)
    return run


def test_node_task_record_and_paper_protocol(config: dict[str, Any], roots: dict[str, Path]) -> None:
    dataset = load_dataset("planetoid", "Cora", roots["Cora"])
    record = train_run(short_run(config, "Cora", "moe4_softmax", 0), dataset, device="cpu")
    curves = record["curves"]
    assert curves["epoch"] == [0, 2]  # the authors' schedule: epoch % eval_every == 0
    # The authors' "test" accuracy on Planetoid is the validation mask.
    assert curves["paper_acc"] == curves["val_acc"]
    assert record["metrics"]["paper"]["last"] == curves["paper_acc"][-1]
    best = max(range(2), key=lambda i: (curves["val_acc"][i], -i))
    assert record["metrics"]["standard"] == {
        "test": curves["test_acc"][best],
        "val": curves["val_acc"][best],
        "epoch": curves["epoch"][best],
    }
    assert len(record["loss_per_epoch"]) == 4
    assert record["num_parameters"] == record["active_parameters"] > 0
    load = record["expert_load"]["conv0.update"]
    assert len(load) == 4 and sum(load) == pytest.approx(1.0)
    assert record["device"] == "cpu" and record["environment"]["torch"].startswith("2.")
    # Exact fractions correct / total (Cora's public split: 140 / 500 / 1000 nodes), not
    # float32 means: tied differences between runs must stay ties for the paired tests.
    for key, total in (("train_acc", 140), ("val_acc", 500), ("test_acc", 1000)):
        assert all(round(acc * total) / total == acc for acc in curves[key]), key


def test_graph_task_splits_and_top_k_load(config: dict[str, Any], roots: dict[str, Path]) -> None:
    dataset = load_dataset("tu", "ENZYMES", roots["ENZYMES"])
    record = train_run(short_run(config, "ENZYMES", "topk128", 1, epochs=1), dataset, device="cpu")
    # 600 graphs: 480 train, 60 val, 60 test; the paper's 20 % held-out part is val + test.
    paper = record["curves"]["paper_acc"][0]
    val, test = record["curves"]["val_acc"][0], record["curves"]["test_acc"][0]
    assert paper == pytest.approx((val + test) / 2)
    assert round(paper * 120) == pytest.approx(paper * 120, abs=1e-6)
    # Expert load of the trained model over all 600 graphs: 4 choices per graph.
    load = record["expert_load"]["conv0.update"]
    assert len(load) == 128 and sum(load) == pytest.approx(4.0)
    assert all(round(f * 600) == pytest.approx(f * 600, abs=1e-6) for f in load)
    assert record["active_parameters"] < record["num_parameters"]


def test_batch_routing_is_evaluated_in_training_sized_batches(config: dict[str, Any], roots: dict[str, Path]) -> None:
    """The authors' top-k (pool: batch, shared noise): one choice per batch of 32 graphs,
    also when evaluating, where one batch of all 600 graphs would take a single choice."""
    dataset = load_dataset("tu", "ENZYMES", roots["ENZYMES"])
    run = short_run(config, "ENZYMES", "topk128", 1, epochs=1)
    run["model"].update(pool="batch", routing_noise="shared")
    record = train_run(run, dataset, device="cpu")
    load = torch.tensor(record["expert_load"]["conv0.update"])
    assert float(load.sum()) == pytest.approx(4.0)
    batches = -(-600 // 32)  # the last 19th batch has 24 graphs
    assert 4 < int((load > 0).sum()) <= 4 * batches
    # every expert's share is a sum of whole batches: multiples of 32/600 plus maybe 24/600
    shares = (load * 600).round()
    assert all(int(share) % 32 in (0, 24) for share in shares.tolist())


def test_same_seed_same_numbers_other_seed_differs(config: dict[str, Any], roots: dict[str, Path]) -> None:
    dataset = load_dataset("tu", "ENZYMES", roots["ENZYMES"])
    first = train_run(short_run(config, "ENZYMES", "moe4_softmax", 3, epochs=2), dataset, device="cpu")
    again = train_run(short_run(config, "ENZYMES", "moe4_softmax", 3, epochs=2), dataset, device="cpu")
    other = train_run(short_run(config, "ENZYMES", "moe4_softmax", 4, epochs=2), dataset, device="cpu")
    assert first["curves"] == again["curves"] and first["loss_per_epoch"] == again["loss_per_epoch"]
    assert first["loss_per_epoch"] != other["loss_per_epoch"]


def test_train_and_save_writes_one_record_per_run(config: dict[str, Any], roots: dict[str, Path], tmp_path: Path) -> None:
    runs = [short_run(config, "Cora", "baseline", seed, epochs=2) for seed in (0, 1)]
    outputs = [tmp_path / f"seed{seed}.json" for seed in (0, 1)]
    train_and_save(runs, outputs, roots["Cora"], None, device="cpu", threads=1)
    records = [json.loads(p.read_text()) for p in outputs]
    assert [r["seed"] for r in records] == [0, 1]
    assert torch.get_num_threads() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0.json", "seed1.json"]  # no temp files


def test_train_and_save_refuses_roles_gate_without_roles(config: dict[str, Any], roots: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="roles gate but no roles file"):
        train_and_save([short_run(config, "Cora", "roles_ma", 0)], [tmp_path / "r.json"], roots["Cora"], None)
    assert not (tmp_path / "r.json").exists()


def test_pick_device() -> None:
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(pick_device("auto")) == expected
    assert str(pick_device("cpu")) == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            pick_device("cuda")


def _restoring_step(model: torch.nn.Module, optimizer: torch.optim.Adam) -> None:
    """The straightforward lazy step: a full Adam step, then the unrouted rows (values and
    moments; moments that did not exist yet are zero) put back."""
    from gsmoe.nn import SAGEMoEConv

    saved = []
    for conv in model.modules():
        if isinstance(conv, SAGEMoEConv):
            for experts, mask in conv.unused_experts():
                for param in (experts.weight, experts.bias):
                    state = optimizer.state.get(param, {})
                    moments = {
                        k: state[k][mask].clone() if k in state else torch.zeros_like(param[mask])
                        for k in ("exp_avg", "exp_avg_sq")
                    }
                    saved.append((param, mask, param.detach()[mask].clone(), moments))
    optimizer.step()
    with torch.no_grad():
        for param, mask, values, moments in saved:
            param[mask] = values
            for key, value in moments.items():
                optimizer.state[param][key][mask] = value


@pytest.mark.parametrize("placement", ["aggregate", "both"])
def test_lazy_expert_updates_equal_a_full_step_with_unrouted_rows_restored(placement: str) -> None:
    """Bit for bit, over steps that route to different experts (and from the first step,
    when Adam's state does not exist yet)."""
    from torch_geometric.data import Batch, Data

    from gsmoe.config import model_defaults
    from gsmoe.nn import build_model
    from gsmoe.optim import LazyExpertUpdates, _parameter_groups

    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(5, 4), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]), y=torch.tensor([i % 3]))
              for i in range(6)]  # fmt: skip
    batch = Batch.from_data_list(graphs)
    cfg = {**model_defaults(), "placement": placement, "gate": "noisy_topk", "num_experts": 16, "top_k": 2}
    lazy_model = build_model(cfg, 4, 3, "graph")
    full_model = copy.deepcopy(lazy_model)
    lazy = LazyExpertUpdates(lazy_model, torch.optim.Adam(_parameter_groups(lazy_model, 0.01, undecayed_routers=True), lr=0.05))
    full = torch.optim.Adam(_parameter_groups(full_model, 0.01, undecayed_routers=True), lr=0.05)
    for step in range(5):
        for model, optimizer in ((lazy_model, lazy), (full_model, full)):
            torch.manual_seed(step)  # the same routing noise in both
            optimizer.zero_grad()
            out = model(batch)
            torch.nn.functional.nll_loss(out.log_probs, batch.y).backward()
        lazy.step()
        _restoring_step(full_model, full)
        for (name, a), b in zip(lazy_model.named_parameters(), full_model.parameters(), strict=True):
            assert torch.equal(a, b), (step, name)
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(lazy.optimizer.state[a][key], full.state[b][key]), (step, name, key)


def test_lazy_expert_updates_refuse_what_they_cannot_reproduce() -> None:
    from gsmoe.optim import LazyExpertUpdates

    model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="needs torch.optim.Adam"):
        LazyExpertUpdates(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="amsgrad"):
        LazyExpertUpdates(model, torch.optim.Adam(model.parameters(), amsgrad=True))


def test_lazy_expert_updates_touch_only_routed_experts() -> None:
    from torch_geometric.data import Data

    from gsmoe.config import model_defaults
    from gsmoe.nn import build_model
    from gsmoe.optim import LazyExpertUpdates, _parameter_groups

    torch.manual_seed(0)
    data = Data(x=torch.randn(6, 5), edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]), y=torch.arange(6) % 2)
    cfg = {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 8, "top_k": 2, "pool": "graph", "dropout": 0.0}
    model = build_model({**model_defaults(), **cfg}, 5, 2, "node")
    groups = _parameter_groups(model, 0.5, undecayed_routers=True)
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]  # the router is not decayed
    optimizer = LazyExpertUpdates(model, torch.optim.Adam(groups, lr=0.1))
    experts = model.convs[0].update_experts
    for _ in range(3):
        before = experts.weight.detach().clone()
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(model(data).log_probs, data.y).backward()
        used = model.convs[0].routing["update"].indices.reshape(-1).unique()
        optimizer.step()
        changed = (experts.weight.detach() != before).flatten(1).any(1)
        assert changed.nonzero().flatten().tolist() == used.tolist()


def test_lazy_decayed_router_is_adam_with_one_parameter_per_expert() -> None:
    """The authors' code under torch >= 2.0: one ``nn.Linear`` per expert, an unrouted
    expert's gradient None (so torch's Adam skips it and counts its steps alone), every
    parameter decayed.  Replayed with torch's own Adam on one tensor per expert."""
    from torch_geometric.data import Batch, Data

    from gsmoe.config import model_defaults
    from gsmoe.nn import SAGEMoEConv, build_model
    from gsmoe.optim import make_optimizer

    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(5, 4), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]), y=torch.tensor([i % 3]))
              for i in range(6)]  # fmt: skip
    batch = Batch.from_data_list(graphs)
    cfg = {**model_defaults(), "placement": "both", "gate": "noisy_topk", "num_experts": 16, "top_k": 2}
    model = build_model(cfg, 4, 3, "graph")
    optimizer = make_optimizer(model, lr=0.05, weight_decay=0.01, expert_updates="lazy_decayed_router")
    expert_params = {
        id(param): experts
        for conv in model.modules() if isinstance(conv, SAGEMoEConv)
        for experts in (conv.message_experts, conv.update_experts) if experts is not None
        for param in (experts.weight, experts.bias)
    }  # fmt: skip
    reference = {
        name: [row.detach().clone().requires_grad_() for row in param] if id(param) in expert_params
        else [param.detach().clone().requires_grad_()]
        for name, param in model.named_parameters()
    }  # fmt: skip
    reference_adam = torch.optim.Adam([t for ts in reference.values() for t in ts], lr=0.05, weight_decay=0.01, foreach=False)
    for step in range(8):
        torch.manual_seed(step)
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(model(batch).log_probs, batch.y).backward()
        unused = {id(experts): mask for conv in model.modules() if isinstance(conv, SAGEMoEConv)
                  for experts, mask in conv.unused_experts()}  # fmt: skip
        reference_adam.zero_grad()
        for name, param in model.named_parameters():
            if id(param) not in expert_params:
                reference[name][0].grad = param.grad.clone()
                continue
            mask = unused[id(expert_params[id(param)])]
            for row, tensor in enumerate(reference[name]):
                tensor.grad = None if mask[row] else param.grad[row].clone()
        reference_adam.step()
        optimizer.step()
        for name, param in model.named_parameters():
            expected = torch.stack(reference[name]) if id(param) in expert_params else reference[name][0]
            torch.testing.assert_close(param.detach(), expected.detach(), rtol=1e-5, atol=1e-7, msg=f"{step} {name}")
    counts = optimizer.optimizer.state[model.convs[0].update_experts.weight]["expert_step"]
    assert 0 < counts.min() < counts.max() < 8  # experts first routed at different steps


def test_expert_updates_are_the_schemas() -> None:
    from gsmoe.config.schema import load_schema
    from gsmoe.optim import EXPERT_UPDATES

    schema = load_schema()
    assert schema["$defs"]["training"]["properties"]["expert_updates"]["enum"] == list(EXPERT_UPDATES)
