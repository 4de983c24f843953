"""gsmoe.modelspec: the model keys from the schema, the rules between them, torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gsmoe import SCHEMA_PATH
from gsmoe.modelspec import (
    MODEL_KEYS,
    PLACEMENT_STAGES,
    STAGES,
    check_model,
    model_defaults,
    model_problems,
    needs_roles,
)


def test_keys_defaults_and_choices_are_the_schemas() -> None:
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))["$defs"]
    properties = schema["model"]["properties"]
    assert MODEL_KEYS == tuple(properties)
    assert model_defaults() == {key: p["default"] for key, p in properties.items()}
    # The overrides block accepts exactly the same keys.
    assert set(schema["model_override"]["properties"]) == set(MODEL_KEYS)


def test_config_doc_lists_every_key_with_its_default() -> None:
    """docs/config.md's model-key table: one row per key, the schema's default."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    table = text.split("#### Model keys", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    documented = {key.strip().strip("`"): yaml.safe_load(default.strip().strip("`")) for key, default in rows}
    assert documented == model_defaults()


def test_model_defaults_are_a_fresh_copy() -> None:
    defaults = model_defaults()
    defaults["hidden"] = 0
    assert model_defaults()["hidden"] == 32


def test_every_placement_names_its_stages() -> None:
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(PLACEMENT_STAGES) == set(schema["$defs"]["model"]["properties"]["placement"]["enum"])
    assert PLACEMENT_STAGES["aggregate"] == ("update",) and PLACEMENT_STAGES["both"] == STAGES


def test_importing_it_and_config_needs_no_torch() -> None:
    code = "import sys, gsmoe.config, gsmoe.modelspec; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _model(**overrides) -> dict:
    return {**model_defaults(), "placement": "aggregate", "gate": "dense", "num_experts": 4, **overrides}


@pytest.mark.parametrize(
    "overrides,key,text",
    [
        (dict(placement="none", num_experts=1), "placement", "is 'none' (plain GraphSAGE) but gate is 'dense'"),
        (dict(gate="none"), "gate", "is 'none' but placement is 'aggregate'; choose a gate (roles, dense, "),
        (dict(gate="shared"), "gate", "is 'shared' (one gate for message and update, section 6.3) but placement"),
        (dict(gate="noisy_topk", top_k=5), "top_k", "(5) must be <= num_experts (4)."),
        (
            dict(gate="noisy_topk", routing_noise="shared", balance_loss_weight=0.1),
            "balance_loss_weight",
            "(0.1) needs routing_noise: independent",
        ),
    ],
)
def test_each_rule_one_message(overrides: dict, key: str, text: str) -> None:
    problems = model_problems(_model(**overrides))
    assert len(problems) == 1 and problems[0][0] == key and problems[0][1].startswith(text)
    with pytest.raises(ValueError, match="^" + key):
        check_model(_model(**overrides))


def test_options_of_another_gate_are_not_cross_checked() -> None:
    assert model_problems(_model(top_k=8, routing_noise="shared", balance_loss_weight=0.1)) == []


def test_roles_rule_needs_n_roles() -> None:
    model = _model(gate="roles", num_experts=8)
    assert model_problems(model) == []
    assert model_problems(model, n_roles=4) == [
        ("num_experts", "(8) must equal roles.n_roles (4) for the roles gate (one expert per role).")
    ]
    assert needs_roles(model) and not needs_roles(_model()) and not needs_roles(model_defaults())


def test_a_rule_is_checked_when_its_keys_are_there() -> None:
    assert model_problems({"gate": "noisy_topk", "num_experts": 4}) == []
    assert model_problems({"gate": "noisy_topk", "num_experts": 4, "top_k": 6})[0][0] == "top_k"


@pytest.mark.parametrize(
    "values,match",
    [
        ({"hidden": 0}, "hidden must be >= 1, got 0"),
        ({"num_layers": 2.0}, "num_layers must be an integer, got 2.0"),
        ({"softmax": 1}, "softmax must be true or false, got 1"),
        # the list of gates is the registry's (test_gates.py pins it to the schema's enum)
        ({"gate": "mlp"}, "gate must be one of 'none', 'roles', .*; got 'mlp'"),
        ({"expert": 4}, r"unknown model key\(s\): expert \(known: hidden, "),
    ],
)
def test_check_model_names_the_bad_value(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_model(values)
