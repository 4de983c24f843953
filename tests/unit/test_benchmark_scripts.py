"""docs/benchmarks/compiled_step_bound.py: its plain tensor code computes the project's
model (issue #18's ceiling in docs/performance.md is measured on it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch_geometric.data import Batch, Data

from gsmoe.config import load_config, resolve_run
from gsmoe.nn.model import build_model

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    path = ROOT / "docs" / "benchmarks" / "compiled_step_bound.py"
    spec = importlib.util.spec_from_file_location("compiled_step_bound", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _graphs(seed: int) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for n in (5, 9, 1, 7):  # one graph of a single node, without edges
        edges = torch.randint(0, n, (2, 3 * n), generator=generator) if n > 1 else torch.empty(2, 0, dtype=torch.long)
        y = torch.randint(0, 6, (1,), generator=generator)
        graphs.append(Data(x=torch.rand(n, 3, generator=generator), edge_index=edges, y=y))
    return Batch.from_data_list(graphs)


@pytest.mark.parametrize("experiment", _script().EXPERIMENTS)
def test_plain_code_equals_the_project_model(experiment: str) -> None:
    script = _script()
    model_cfg = resolve_run(load_config(ROOT / "config.yaml"), "ENZYMES", experiment, 0)["model"]
    torch.manual_seed(0)
    model = build_model(model_cfg, in_channels=3, num_classes=6, task="graph")
    with torch.no_grad():  # away from the initial values, so that every term of the model matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.train()
    assert script.check_plain_equals_project(model, _graphs(seed=1)) < 1e-5
