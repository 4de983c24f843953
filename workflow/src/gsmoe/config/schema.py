"""The config's JSON schema: loading it, every violation as a message naming the key path,
and its defaults (filled in once, at validation).

Generic JSON-schema handling only; what the keys mean is checked in
:mod:`gsmoe.config.semantics`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "SCHEMA_PATH",
    "ConfigError",
    "fill_defaults",
    "invalid_paths",
    "load_schema",
    "model_defaults",
    "schema_error_message",
    "schema_errors",
    "split_defaults",
]

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and, where possible, the fix."""


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_schema(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The config JSON schema (a fresh deep copy; callers may not mutate the cached one)."""
    return copy.deepcopy(_load_schema(str(path or SCHEMA_PATH)))


# --------------------------------------------------------------------------- violations


def schema_errors(instance: Any, schema: Mapping[str, Any]) -> list[ValidationError]:
    """Every violation of ``schema`` in ``instance``, in the order of their key paths in
    ``instance`` (the validator's own order is not stable: it collects unknown keys in a set).
    An ``anyOf`` / ``oneOf`` failure is one error; :func:`schema_error_message` picks its branch."""
    errors = jsonschema.Draft202012Validator(schema).iter_errors(instance)
    return sorted(errors, key=lambda error: _document_position(instance, error.absolute_path))


def invalid_paths(error: ValidationError) -> list[tuple[Any, ...]]:
    """The key paths ``error`` makes unsafe to read: a missing required key, an unknown key,
    else the path of the value that failed."""
    path, inst = tuple(error.absolute_path), error.instance
    if error.validator == "required" and isinstance(inst, Mapping):
        return [(*path, key) for key in error.validator_value if key not in inst]
    if error.validator == "additionalProperties" and isinstance(inst, Mapping):
        allowed = error.schema.get("properties", {})
        return [(*path, key) for key in inst if key not in allowed]
    return [path]


def _document_position(instance: Any, path: Iterable[Any]) -> tuple[int, ...]:
    """Where ``path`` is in ``instance``: the index of each key in its mapping (or list)."""
    position = []
    node = instance
    for part in path:
        if isinstance(node, Mapping):
            position.append(list(node).index(part) if part in node else len(node))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            position.append(part)
            node = node[part] if part < len(node) else None
        else:
            break
    return tuple(position)


def _key_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_error_message(error: ValidationError) -> str:
    """Turn a jsonschema error into ``config: <key path>: <problem>; <fix>``."""
    # an anyOf/oneOf failure: report the branch that got furthest
    while error.context:
        deeper = best_match(error.context)
        if deeper is None:
            break
        error = deeper
    path = _key_path(error.absolute_path)
    where = f"config: {path}" if path else "config"
    kind, value, inst = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(inst) - set(allowed)) if isinstance(inst, Mapping) else []
        keys = ", ".join(repr(k) for k in extra)
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key {keys} (misspelt?){hint}. See docs/config.md."
    if kind == "required":
        missing = [k for k in value if isinstance(inst, Mapping) and k not in inst]
        return f"{where}: missing required key {', '.join(repr(k) for k in missing)}. See docs/config.md."
    if kind == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        return f"{where}: expected {expected}, got {type(inst).__name__} {inst!r}."
    if kind == "enum":
        return f"{where}: {inst!r} is not one of {', '.join(repr(v) for v in value)}."
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return f"{where} ({inst!r}) must be {op} {value}."
    if kind == "minItems":
        if value == 1 and not inst:
            return f"{where} is empty; give at least one entry (e.g. {path.split('.')[-1]}: [0] for seeds)."
        return f"{where} has {len(inst)} entries, needs at least {value}."
    if kind == "maxItems":
        return f"{where} has {len(inst)} entries, at most {value} allowed."
    if kind == "minProperties":
        return f"{where} is empty; define at least {value} entry. See docs/config.md."
    if kind == "uniqueItems":
        return f"{where} has duplicate entries: {inst!r}."
    if kind == "pattern":
        if error.absolute_schema_path and "propertyNames" in error.absolute_schema_path:
            return f"{where}: key {inst!r} does not match {value!r} (letters, digits, '_' only)."
        return f"{where}: {inst!r} does not match {value!r}."
    if kind == "minLength":
        return f"{where} must not be empty."
    return f"{where}: {error.message}."


# --------------------------------------------------------------------------- defaults


def _deref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow local ``$ref``s (``#/...``), merging sibling keywords over the target."""
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
        if seen > 32:
            raise ValueError(f"$ref cycle at {ref!r}")
    return schema


def fill_defaults(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    """Fill (in place) missing properties that have a ``default`` directly in their property schema.

    A property schema that is only a ``$ref`` (the ``*_override`` definitions) is not
    filled: there, an absent key means "inherited" (see the schema's description).
    Values of the wrong type are left alone (the schema check reports them).
    """
    schema = _deref(schema, root)
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
        for key, value in instance.items():
            if key in props:
                fill_defaults(value, props[key], root)
            elif isinstance(schema.get("additionalProperties"), Mapping):
                fill_defaults(value, schema["additionalProperties"], root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for item in instance:
            fill_defaults(item, schema["items"], root)


def _property_defaults(*pointer: str, schema_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    node: Any = _load_schema(str(schema_path or SCHEMA_PATH))
    for part in pointer:
        node = node[part]
    return {key: copy.deepcopy(sub["default"]) for key, sub in node["properties"].items()}


def model_defaults(schema_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Built-in model defaults: the ``default`` of each ``$defs/model`` property."""
    return _property_defaults("$defs", "model", schema_path=schema_path)


def split_defaults(schema_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Default split of a graph dataset (``$defs/dataset/properties/split`` defaults)."""
    return _property_defaults("$defs", "dataset", "properties", "split", schema_path=schema_path)
