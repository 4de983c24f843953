"""Read and validate a config: one schema check, the schema's defaults, the semantic checks,
every error at once; then the shorthands made explicit."""

from __future__ import annotations

import copy
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gsmoe.config.schema import (
    ConfigError,
    fill_defaults,
    invalid_paths,
    load_schema,
    schema_error_message,
    schema_errors,
    split_defaults,
)
from gsmoe.config.semantics import check_meaningful_values, semantic_errors
from gsmoe.overlay import OverlayError, resolve_base

__all__ = ["load_config", "validate_config"]

_URL_SCHEMES = ("http", "https", "file")


def load_config(path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read a YAML config file and return it validated, with defaults filled in.

    ``base_dir`` is what a relative ``mirror`` folder and ``base`` file (:mod:`gsmoe.overlay`)
    are resolved against (default: the current working directory; the workflow passes the
    repository root).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ConfigError(f"config: {path} is not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    try:
        raw = resolve_base(raw, base_dir)  # an overlay: its base files beneath it
    except OverlayError as err:
        raise ConfigError(str(err)) from None
    return validate_config(raw, base_dir=base_dir)


def validate_config(
    config: Mapping[str, Any],
    base_dir: str | os.PathLike[str] | None = None,
    schema_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Return a checked copy of ``config`` with defaults filled in (``config`` is not changed).

    The schema is checked once (its defaults are valid by construction: a unit test checks
    each against its own property schema), then the semantic checks run on the sections
    the schema passed.

    Raises:
        ConfigError: every problem found, one per line, each starting with
            ``config: <key path>`` and saying what to change.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: the top level must be a mapping of keys, got {type(config).__name__}")
    schema = load_schema(schema_path)
    cfg = copy.deepcopy(dict(config))
    violations = schema_errors(cfg, schema)
    fill_defaults(cfg, schema, schema)
    errors = list(dict.fromkeys(schema_error_message(error) for error in violations))
    errors += semantic_errors(cfg, invalid=[path for error in violations for path in invalid_paths(error)])
    if not violations:  # compares values, which only a config that passed the schema has right
        errors += check_meaningful_values(cfg)
    if errors:
        raise ConfigError("\n".join(errors))
    _expand_shorthands(cfg)
    cfg["mirror"] = _resolve_mirror(cfg["mirror"], base_dir)
    return cfg


def _expand_shorthands(cfg: dict[str, Any]) -> None:
    """Make the "null = all / inherit / default" shorthands explicit for downstream consumers."""
    for exp in cfg["experiments"].values():
        if exp["datasets"] is None:
            exp["datasets"] = list(cfg["datasets"])
    for ds in cfg["datasets"].values():
        if ds["task"] == "graph":  # absent split = the default split (a node task has none)
            ds["split"] = {**split_defaults(), **ds.get("split", {})}
    used = [d for d in cfg["datasets"] if any(d in e["datasets"] for e in cfg["experiments"].values())]
    for table in cfg["tables"].values():
        if table["columns"] is None:
            table["columns"] = used
        for row in table["rows"]:
            if row["label"] is None:
                row["label"] = cfg["experiments"][row["experiment"]]["label"]


def _resolve_mirror(mirror: str | None, base_dir: str | os.PathLike[str] | None) -> str | None:
    if mirror is None or urllib.parse.urlsplit(mirror).scheme in _URL_SCHEMES:
        return mirror
    path = Path(os.path.expanduser(mirror))
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else os.getcwd()) / path
    return os.path.normpath(path)
