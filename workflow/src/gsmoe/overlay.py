"""Config overlays: a config file that names ``base:`` files holds only what it changes.

``base: [config.yaml, tests/workflow/mirror.yaml]`` (one path or a list, relative to the
repository root like ``mirror``) reads those files, merges them in order and merges the
rest of this file over them.  Merging is Snakemake's ``--configfile a.yaml b.yaml``: a
mapping merges key by key, any other value (a list, a number, null) replaces.  In an
overlay, the key ``"*"`` of a mapping stands for each of its entries: its value is merged
into every entry (under what the overlay sets for that entry by name), e.g.
``experiments: {"*": {datasets: [Cora, ENZYMES]}}`` runs every experiment of the base on
two datasets.  The result is an ordinary config, validated as any other
(:func:`gsmoe.config.validate_config`): ``base`` and ``"*"`` are not config keys.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["EVERY", "OverlayError", "merge", "resolve_base"]

#: The key of an overlay mapping that applies to each of its entries.
EVERY = "*"


class OverlayError(ValueError):
    """A ``base:`` file cannot be read, or ``"*"`` is used outside an overlay."""


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` merged over ``base`` (neither is changed); see the module docstring."""
    if not isinstance(base, Mapping) or not isinstance(overlay, Mapping):
        return copy.deepcopy(overlay)
    every = overlay.get(EVERY)
    out = {key: copy.deepcopy(value) for key, value in base.items()}
    for key in [*base, *(k for k in overlay if k not in base and k != EVERY)]:
        value = out.get(key, {})
        if every is not None:
            value = merge(value, every)
        if key in overlay:
            value = merge(value, overlay[key])
        out[key] = value
    return out


def _read(path: Path, named_by: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as err:
        raise OverlayError(
            f"config: {named_by} names {path}, which cannot be read ({err.strerror}); "
            "base paths are relative to the repository root."
        ) from None
    except yaml.YAMLError as err:
        raise OverlayError(f"config: {path} (named by {named_by}) is not valid YAML: {err}") from None
    if not isinstance(data, Mapping):
        raise OverlayError(f"config: {path} (named by {named_by}) must be a mapping of config keys.")
    return dict(data)


def _stray_every(value: Any, where: str = "") -> str | None:
    """The key path of a ``"*"`` key, if ``value`` has one."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            path = f"{where}.{key}" if where else str(key)
            if key == EVERY:
                return path
            found = _stray_every(sub, path)
            if found:
                return found
    return None


def resolve_base(config: Any, root: str | os.PathLike[str] | None = None, _chain: tuple[Path, ...] = ()) -> Any:
    """``config`` with its ``base`` files beneath it (bases may name bases of their own).

    ``root``: what relative base paths are resolved against (default: the working
    directory; the workflow passes the repository root).  A config without ``base`` is
    returned as it is, and must not use ``"*"``.
    """
    if not isinstance(config, Mapping):  # not a config at all: validation says so
        return config
    if "base" not in config:
        stray = _stray_every(config)
        if stray:
            raise OverlayError(
                f"config: {stray}: the key '*' (every entry) only applies over a base config; "
                "name it, e.g. base: config.yaml."
            )
        return copy.deepcopy(dict(config))
    bases = config["base"]
    names = [bases] if isinstance(bases, str) else bases
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise OverlayError(f"config: base must be a file path or a list of them, got {bases!r}.")
    root_dir = Path(root) if root is not None else Path.cwd()
    merged: dict[str, Any] = {}
    for name in names:
        path = Path(os.path.normpath(root_dir / Path(name).expanduser()))
        if path in _chain:
            raise OverlayError(f"config: base {name} names itself through {' -> '.join(str(p) for p in _chain)}.")
        merged = merge(merged, resolve_base(_read(path, f"base {name}"), root, (*_chain, path)))
    return merge(merged, {key: value for key, value in config.items() if key != "base"})
