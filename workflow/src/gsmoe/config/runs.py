"""Runs of a validated config: the run table, one run's resolved config, its files and paths.

Model and training keys are merged per run (:func:`resolve_run`): built-in model defaults
(the schema's ``$defs/model`` defaults) <- ``datasets.<d>.model`` <- ``experiments.<e>.model``;
``datasets.<d>.training`` <- ``experiments.<e>.training``.  Every function here takes a
config that passed :func:`gsmoe.config.validate_config` (defaults filled, shorthands expanded).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gsmoe.config.schema import ConfigError, model_defaults
from gsmoe.download import resolve_source

__all__ = [
    "dataset_config",
    "experiment_datasets",
    "merged_model",
    "needs_roles",
    "raw_file_key",
    "raw_files",
    "regex_alternatives",
    "resolve_run",
    "run_record_path",
    "run_table",
    "seed_chunks",
    "verified_members",
]


def raw_file_key(source: str, relpath: str) -> str:
    """The ``checksum_overrides`` key (and path below resources/raw/) of a raw file."""
    return f"{source}/{relpath}"


def experiment_datasets(config: Mapping[str, Any], experiment: str) -> list[str]:
    """Datasets an experiment runs on, in ``datasets`` order (null = all)."""
    wanted = config["experiments"][experiment]["datasets"]
    return [d for d in config["datasets"] if wanted is None or d in wanted]


def merged_model(config: Mapping[str, Any], dataset: str, experiment: str) -> dict[str, Any]:
    """The model keys of one run: built-in defaults <- dataset's model <- experiment's model."""
    return {
        **model_defaults(),
        **config["datasets"][dataset]["model"],
        **config["experiments"][experiment]["model"],
    }


def dataset_config(config: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """``config["datasets"][dataset]``; a ConfigError naming the known datasets if there is none."""
    if dataset not in config["datasets"]:
        raise ConfigError(
            f"config: no dataset {dataset!r}; use one of {', '.join(config['datasets'])} "
            "(names are case-sensitive) or add it under `datasets:`"
        )
    return config["datasets"][dataset]


def resolve_run(config: Mapping[str, Any], dataset: str, experiment: str, seed: int) -> dict[str, Any]:
    """The fully resolved run config of docs/design.md ("Run config") for one run."""
    ds = dataset_config(config, dataset)
    if experiment not in config["experiments"]:
        raise ConfigError(f"config: no experiment {experiment!r} (known: {', '.join(config['experiments'])})")
    if dataset not in experiment_datasets(config, experiment):
        raise ConfigError(
            f"config: experiment {experiment!r} does not run on {dataset!r} (experiments.{experiment}.datasets)"
        )
    exp = config["experiments"][experiment]
    run: dict[str, Any] = {
        "dataset": dataset,
        "experiment": experiment,
        "seed": int(seed),
        "task": ds["task"],
        "source": ds["source"],
        "pyg_name": ds["pyg_name"],
        "model": copy.deepcopy(merged_model(config, dataset, experiment)),
        "training": {**copy.deepcopy(ds["training"]), **copy.deepcopy(exp["training"])},
    }
    if ds["task"] == "graph":
        run["split"] = copy.deepcopy(ds["split"])
    return run


def run_record_path(runs_dir: str, dataset: str, experiment: str, seed: int | str) -> str:
    """Where the record of one run lives: ``<runs_dir>/<dataset>/<experiment>/seed<seed>.json``."""
    return f"{runs_dir}/{dataset}/{experiment}/seed{seed}.json"


def run_table(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every run: each experiment x its datasets x every seed (config order)."""
    return [
        {"dataset": d, "experiment": e, "seed": int(s)}
        for e in config["experiments"]
        for d in experiment_datasets(config, e)
        for s in config["seeds"]
    ]


def raw_files(config: Mapping[str, Any], dataset: str) -> list[dict[str, Any]]:
    """Raw files of a dataset: ``relpath``, ``url`` (mirror applied), ``sha256`` (overrides applied), ``members``."""
    ds = dataset_config(config, dataset)
    source = ds["source"]
    overrides = config["checksum_overrides"]
    out = []
    for spec in ds["files"]:
        relpath = spec["relpath"]
        if config["mirror"]:
            url = resolve_source(config["mirror"], raw_file_key(source, relpath))
        else:
            url = resolve_source(config["sources"][source]["url"], relpath)
        out.append(
            {
                "relpath": relpath,
                "url": url,
                "sha256": overrides.get(raw_file_key(source, relpath), spec["sha256"]),
                "members": dict(spec["members"]),
            }
        )
    return out


def verified_members(config: Mapping[str, Any], dataset: str) -> list[str] | None:
    """Zip members that only their own checksums verify (archives without a whole-file
    checksum), or ``None`` when every raw file is verified as a whole: what
    :func:`gsmoe.datasets.prepare_dataset` may extract."""
    members = sorted(
        name for spec in raw_files(config, dataset) if spec["sha256"] is None for name in spec["members"]
    )
    return members or None


def needs_roles(config: Mapping[str, Any], dataset: str, experiment: str) -> bool:
    """Whether a run reads the GraphRole table (roles gate)."""
    return merged_model(config, dataset, experiment)["gate"] == "roles"


def seed_chunks(seeds: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive chunks of ``size`` seeds (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    seeds = [int(s) for s in seeds]
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def regex_alternatives(values: Iterable[str]) -> str:
    """``a|b|c`` with each value regex-escaped (for ``wildcard_constraints``)."""
    return "|".join(re.escape(str(v)) for v in values)
