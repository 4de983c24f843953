"""The model keys of a run config: their schema and defaults, the rules between them, the gates.

Torch-free, so that config validation, the model library, the benchmark and the report all
read the same facts.  Each key's type, range, choices and default are written once, in the
config schema's ``$defs/model`` block (``workflow/schemas/config.schema.yaml``); this module
reads them from there and adds what a JSON schema cannot say: the rules between keys (one
message each, :func:`model_problems`) and what each gate is (:data:`GATES`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml

from gsmoe import SCHEMA_PATH

__all__ = [
    "GATES",
    "MODEL_KEYS",
    "NO_GATE",
    "PLACEMENT_STAGES",
    "STAGES",
    "GateSpec",
    "check_model",
    "model_defaults",
    "model_problems",
    "needs_roles",
]

with open(SCHEMA_PATH, encoding="utf-8") as _handle:
    _PROPERTIES: dict[str, Any] = yaml.safe_load(_handle)["$defs"]["model"]["properties"]

#: Keys of the ``model:`` block of a run config, in the schema's order.
MODEL_KEYS: tuple[str, ...] = tuple(_PROPERTIES)

#: The two stages of a layer that may hold experts: the messages (eq. 13) and the update
#: after the mean aggregation (eq. 14, 19).  The config's ``placement`` names where experts
#: sit; its value ``aggregate`` (the paper's "Message Aggregated") is the update stage.
STAGES: tuple[str, ...] = ("message", "update")
PLACEMENT_STAGES: dict[str, tuple[str, ...]] = {
    "none": (),
    "message": ("message",),
    "aggregate": ("update",),
    "both": STAGES,
}


@dataclass(frozen=True)
class GateSpec:
    """What the layer, the optimiser, the trainer and config validation know of a gate.

    Attributes:
        summary: What it is, for messages.
        options: The model keys the gate reads; the layer passes them to its class.
        sparse: Keeps ``top_k`` of the experts per routing row, so the experts no row
            chose get no gradient (lazy expert updates, expert load as choice counts).
        needs_roles: Reads GraphRole role distributions (``data.roles``), one expert per role.
        both_stages: One gate serves the message and the update stage (placement ``both``).
    """

    summary: str
    options: tuple[str, ...] = ()
    sparse: bool = False
    needs_roles: bool = False
    both_stages: bool = False


#: The ``gate`` of a model without experts (placement ``none``).
NO_GATE = "none"
#: Every gate, by its ``gate`` value; its class in :mod:`gsmoe.nn.gates` declares the same
#: name.  The schema's ``gate`` enum is ``NO_GATE`` and these names.
GATES: dict[str, GateSpec] = {
    "roles": GateSpec("the GraphRole role distribution, section 5.2.2 a", needs_roles=True),
    "dense": GateSpec("a non-sparse learned gate, section 5.2.2 b", options=("softmax",)),
    "noisy_topk": GateSpec(
        "Shazeer's noisy top-k gate, eq. 15-18",
        options=("top_k", "pool", "balance_loss_weight", "routing_noise", "router_init"),
        sparse=True,
    ),
    "shared": GateSpec("one gate for message and update, section 6.3", options=("softmax",), both_stages=True),
}


def model_defaults() -> dict[str, Any]:
    """Built-in model defaults: the ``default`` of each ``$defs/model`` property (a fresh copy)."""
    return {key: copy.deepcopy(p["default"]) for key, p in _PROPERTIES.items()}


def needs_roles(model: Mapping[str, Any]) -> bool:
    """Whether a model config's gate reads GraphRole role distributions."""
    spec = GATES.get(model["gate"])
    return spec is not None and spec.needs_roles


def model_problems(model: Mapping[str, Any], n_roles: int | None = None) -> list[tuple[str, str]]:
    """The rules between model keys that a JSON schema cannot express, as ``(key, text)``
    per broken rule: ``key`` is the key to change and ``f"{key} {text}"`` the message
    (config validation puts the key's path in front instead).

    A rule is checked when ``model`` holds its keys, so a gate or a layer checks the keys
    it has; the roles rule needs ``n_roles`` (the config's ``roles.n_roles``).  Options of
    another gate (e.g. ``top_k`` of a dense gate) are not cross-checked.
    """
    problems = []
    placement, gate, experts = model.get("placement"), model.get("gate"), model.get("num_experts")
    spec = GATES.get(gate) if isinstance(gate, str) else None
    if placement is not None and gate is not None:
        if placement == "none" and (gate != NO_GATE or experts != 1):
            problems.append(("placement", (
                f"is 'none' (plain GraphSAGE) but gate is {gate!r} and num_experts is {experts}; "
                "use gate: none and num_experts: 1, or choose a placement."
            )))  # fmt: skip
        if placement != "none" and gate == NO_GATE:
            problems.append(("gate", f"is 'none' but placement is {placement!r}; choose a gate ({', '.join(GATES)})."))
        if spec is not None and spec.both_stages and placement != "both":
            problems.append(("gate", f"is {gate!r} ({spec.summary}) but placement is {placement!r}; use placement: both."))
    if spec is None:
        return problems
    top_k = model.get("top_k")
    if "top_k" in spec.options and top_k is not None and experts is not None and top_k > experts:
        problems.append(("top_k", f"({top_k}) must be <= num_experts ({experts})."))
    weight, noise = model.get("balance_loss_weight"), model.get("routing_noise")
    if {"balance_loss_weight", "routing_noise"} <= set(spec.options) and noise != "independent" and (weight or 0) > 0:
        problems.append(("balance_loss_weight", (
            f"({weight}) needs routing_noise: independent (the balance loss estimates the load "
            "from independent noise); set it to 0."
        )))  # fmt: skip
    if spec.needs_roles and n_roles is not None and experts != n_roles:
        problems.append(("num_experts", (
            f"({experts}) must equal roles.n_roles ({n_roles}) for the {gate} gate (one expert per role)."
        )))  # fmt: skip
    return problems


def check_model(model: Mapping[str, Any]) -> None:
    """Raise a ValueError naming the first bad value (against the schema) or broken rule
    (:func:`model_problems`) among the model keys ``model`` holds; unknown keys are errors."""
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"unknown model key(s): {', '.join(unknown)} (known: {', '.join(MODEL_KEYS)})")
    for key, value in model.items():
        error = jsonschema.exceptions.best_match(_VALIDATORS[key].iter_errors(value))
        if error is not None:
            raise ValueError(_value_message(key, value, error))
    problems = model_problems(model)
    if problems:
        key, text = problems[0]
        raise ValueError(f"{key} {text}")


def _strict_integer(checker: Any, instance: Any) -> bool:
    # The schema's integers are counts: 2.0 is not one (jsonschema accepts it by default).
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)
_VALIDATORS = {key: _Validator(p) for key, p in _PROPERTIES.items()}
_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
_TYPES = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "a string"}


def _value_message(key: str, value: Any, error: jsonschema.ValidationError) -> str:
    kind, limit = error.validator, error.validator_value
    if kind == "enum":
        return f"{key} must be one of {', '.join(map(repr, limit))}; got {value!r}"
    if kind == "type":
        return f"{key} must be {_TYPES.get(limit, limit)}, got {value!r}"
    if kind in _BOUNDS:
        return f"{key} must be {_BOUNDS[kind]} {limit}, got {value!r}"
    return f"{key}: {error.message}"
