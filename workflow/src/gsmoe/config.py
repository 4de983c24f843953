"""Load and check the workflow configuration; resolve one run's config; the run table.

The workflow (``workflow/rules/common.smk``) and the unit tests both go through this module,
so every rule sees a configuration that

1. passed ``workflow/schemas/config.schema.yaml`` (a failure names the key path and the fix),
2. has every schema default filled in, ``mirror`` made absolute, and the "null = all"
   shorthands (``experiments.<e>.datasets``, ``tables.<t>.columns``, row labels) expanded,
3. passed the checks a JSON schema cannot express (:func:`semantic_errors`), and those of
   values that are valid but would make the results meaningless
   (:func:`check_meaningful_values`).

Model and training keys are merged per run (:func:`resolve_run`): built-in model defaults
(the schema's ``$defs/model`` defaults) <- ``datasets.<d>.model`` <- ``experiments.<e>.model``;
``datasets.<d>.training`` <- ``experiments.<e>.training``.
"""

from __future__ import annotations

import copy
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from gsmoe.download import resolve_source

__all__ = [
    "SCHEMA_PATH",
    "ConfigError",
    "load_config",
    "load_schema",
    "validate_config",
    "schema_error_message",
    "semantic_errors",
    "check_meaningful_values",
    "model_defaults",
    "dataset_config",
    "resolve_run",
    "run_record_path",
    "run_table",
    "raw_files",
    "verified_members",
    "raw_file_key",
    "roles_datasets",
    "needs_roles",
    "seed_chunks",
    "experiment_datasets",
    "regex_alternatives",
    "split_defaults",
]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
#: The task of each dataset source's loader (``gsmoe.datasets``, which this module does not
#: import: the report stage validates the config without torch): Planetoid datasets are one
#: graph with public node masks, TU datasets many labelled graphs.
SOURCE_TASKS = {"planetoid": "node", "tu": "graph"}
_URL_SCHEMES = ("http", "https", "file")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and, where possible, the fix."""


# --------------------------------------------------------------------------- loading


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_schema(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The config JSON schema (a fresh deep copy; callers may not mutate the cached one)."""
    return copy.deepcopy(_load_schema(str(path or SCHEMA_PATH)))


def load_config(path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read a YAML config file and return it validated, with defaults filled in.

    ``base_dir`` is what a relative ``mirror`` folder is resolved against (default: the
    current working directory; the workflow passes the repository root).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ConfigError(f"config: {path} is not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    return validate_config(raw, base_dir=base_dir)


def validate_config(
    config: Mapping[str, Any],
    base_dir: str | os.PathLike[str] | None = None,
    schema_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Return a checked copy of ``config`` with defaults filled in (``config`` is not changed).

    Raises:
        ConfigError: schema violation (first, most relevant one) or semantic errors (all
            of them, one per line); every line starts with ``config: <key path>``.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: the top level must be a mapping of keys, got {type(config).__name__}")
    schema = load_schema(schema_path)
    cfg = copy.deepcopy(dict(config))
    _schema_check(cfg, schema)
    _fill_defaults(cfg, schema, schema)
    _schema_check(cfg, schema)  # the filled defaults must be valid too
    errors = semantic_errors(cfg) + check_meaningful_values(cfg)
    if errors:
        raise ConfigError("\n".join(errors))
    _expand_shorthands(cfg)
    cfg["mirror"] = _resolve_mirror(cfg["mirror"], base_dir)
    return cfg


def _schema_check(cfg: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    error = best_match(validator.iter_errors(cfg))
    if error is not None:
        raise ConfigError(schema_error_message(error)) from None


def _resolve_mirror(mirror: str | None, base_dir: str | os.PathLike[str] | None) -> str | None:
    if mirror is None or urllib.parse.urlsplit(mirror).scheme in _URL_SCHEMES:
        return mirror
    path = Path(os.path.expanduser(mirror))
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else os.getcwd()) / path
    return os.path.normpath(path)


# --------------------------------------------------------------------------- schema errors


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


def _fill_defaults(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    """Fill missing properties that have a ``default`` directly in their property schema.

    A property schema that is only a ``$ref`` (the ``*_override`` definitions) is not
    filled: there, an absent key means "inherited" (see the schema's description).
    """
    schema = _deref(schema, root)
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
        for key, value in instance.items():
            if key in props:
                _fill_defaults(value, props[key], root)
            elif isinstance(schema.get("additionalProperties"), Mapping):
                _fill_defaults(value, schema["additionalProperties"], root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for item in instance:
            _fill_defaults(item, schema["items"], root)


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


# --------------------------------------------------------------------------- semantics


def raw_file_key(source: str, relpath: str) -> str:
    """The ``checksum_overrides`` key (and path below resources/raw/) of a raw file."""
    return f"{source}/{relpath}"


def experiment_datasets(config: Mapping[str, Any], experiment: str) -> list[str]:
    """Datasets an experiment runs on, in ``datasets`` order (null = all)."""
    wanted = config["experiments"][experiment].get("datasets")
    return [d for d in config["datasets"] if wanted is None or d in wanted]


def _merged_model(config: Mapping[str, Any], dataset: str, experiment: str) -> dict[str, Any]:
    return {
        **model_defaults(),
        **config["datasets"][dataset].get("model", {}),
        **config["experiments"][experiment].get("model", {}),
    }


def _model_key_owner(config: Mapping[str, Any], dataset: str, experiment: str, key: str) -> str:
    """Key path that set ``key`` for this run (for error messages)."""
    if key in config["experiments"][experiment].get("model", {}):
        return f"experiments.{experiment}.model.{key}"
    if key in config["datasets"][dataset].get("model", {}):
        return f"datasets.{dataset}.model.{key}"
    return f"experiments.{experiment}.model.{key} (built-in default)"


def semantic_errors(config: Mapping[str, Any]) -> list[str]:
    """Checks a JSON schema cannot express; one message per problem (empty = fine).

    ``config`` must already have passed the schema (defaults filled or not).
    """
    errors: list[str] = []
    datasets = config.get("datasets", {})
    experiments = config.get("experiments", {})
    sources = config.get("sources", {})
    roles_cfg = config.get("roles", {})

    # datasets and their files
    known_files: dict[str, tuple[str, Any, Any]] = {}  # key -> (dataset, sha256, members)
    for name, ds in datasets.items():
        if ds["source"] not in SOURCE_TASKS:
            errors.append(
                f"config: datasets.{name}.source ({ds['source']!r}) has no loader: gsmoe reads "
                f"{' and '.join(f'{s} ({t} task)' for s, t in SOURCE_TASKS.items())} datasets; "
                "another format needs a loader in gsmoe.datasets."
            )
        elif ds["source"] not in sources:
            errors.append(
                f"config: datasets.{name}.source ({ds['source']!r}) is not a key of sources "
                f"(known: {', '.join(sources) or 'none'}); add it under sources: with its url."
            )
        if ds["source"] in SOURCE_TASKS and ds["task"] != SOURCE_TASKS[ds["source"]]:
            errors.append(
                f"config: datasets.{name}.task is {ds['task']!r}, but {ds['source']} datasets are "
                f"{SOURCE_TASKS[ds['source']]}-classification data; set task: {SOURCE_TASKS[ds['source']]}."
            )
        relpaths = [f["relpath"] for f in ds["files"]]
        for dup in sorted({r for r in relpaths if relpaths.count(r) > 1}):
            errors.append(f"config: datasets.{name}.files lists {dup!r} twice.")
        for i, spec in enumerate(ds["files"]):
            key = raw_file_key(ds["source"], spec["relpath"])
            other = known_files.setdefault(key, (name, spec.get("sha256"), spec.get("members") or {}))
            if other[0] != name and other[1:] != (spec.get("sha256"), spec.get("members") or {}):
                errors.append(
                    f"config: datasets.{name}.files[{i}] ({key}) has other checksums than the same "
                    f"file in datasets.{other[0]}.files; one file, one checksum."
                )
            if spec.get("members") and not spec["relpath"].endswith(".zip"):
                errors.append(f"config: datasets.{name}.files[{i}].members is only allowed for .zip files.")
            if spec.get("sha256") is None and not spec.get("members"):
                errors.append(
                    f"config: datasets.{name}.files[{i}] ({spec['relpath']}) has no checksum; every raw "
                    "file is verified: set its sha256 (sha256sum <file>), or members for a zip archive."
                )
        split = ds.get("split")
        if ds["task"] == "node" and split:
            errors.append(f"config: datasets.{name}.split is only used by graph tasks; remove it (task is node).")
        for part in ("standard", "paper"):
            fractions = (split or {}).get(part)
            if fractions is not None and abs(sum(fractions) - 1.0) > 1e-6:
                errors.append(
                    f"config: datasets.{name}.split.{part} ({fractions}) must sum to 1, sums to {sum(fractions):g}."
                )
        standard, paper = (split or {}).get("standard"), (split or {}).get("paper")
        # One training run serves both protocols: the paper's held-out part is the
        # standard validation + test parts, so the paper split follows from the standard one.
        if standard and paper and (len(paper) != 2 or abs(paper[0] - standard[0]) > 1e-6):
            errors.append(
                f"config: datasets.{name}.split.paper ({paper}) must be [train, held-out] with the "
                f"train fraction of split.standard ({standard[0]}): the held-out part is val + test."
            )
    for key in sorted(config.get("checksum_overrides", {})):
        if key not in known_files:
            errors.append(
                f"config: checksum_overrides.{key} names no raw file of a configured dataset "
                f"(known: {', '.join(sorted(known_files)) or 'none'}); fix or remove the key."
            )

    # experiments x datasets: model consistency after merging
    for exp, spec in experiments.items():
        for d in spec.get("datasets") or []:
            if d not in datasets:
                errors.append(
                    f"config: experiments.{exp}.datasets names unknown dataset {d!r} "
                    f"(known: {', '.join(datasets)}); add it under datasets: or remove it."
                )
        for d in spec.get("paper", {}):
            if d not in datasets:
                errors.append(
                    f"config: experiments.{exp}.paper names unknown dataset {d!r} (known: {', '.join(datasets)})."
                )
        seen: set[str] = set()
        for d in [d for d in datasets if spec.get("datasets") is None or d in spec["datasets"]]:
            for msg in _model_errors(config, d, exp, roles_cfg.get("n_roles", 4)):
                if msg not in seen:  # the same mistake on every dataset: say it once
                    seen.add(msg)
                    errors.append(msg)

    # tables and figures
    for name, table in config.get("tables", {}).items():
        for d in table.get("columns") or []:
            if d not in datasets:
                errors.append(
                    f"config: tables.{name}.columns names unknown dataset {d!r} (known: {', '.join(datasets)})."
                )
        for i, row in enumerate(table["rows"]):
            if row["experiment"] not in experiments:
                errors.append(
                    f"config: tables.{name}.rows[{i}].experiment names unknown experiment "
                    f"{row['experiment']!r} (known: {', '.join(experiments)})."
                )
    for name, fig in config.get("figures", {}).items():
        if fig["dataset"] not in datasets:
            errors.append(
                f"config: figures.{name}.dataset names unknown dataset {fig['dataset']!r} "
                f"(known: {', '.join(datasets)})."
            )
            continue
        for exp in fig["experiments"]:
            if exp not in experiments:
                errors.append(
                    f"config: figures.{name}.experiments names unknown experiment {exp!r} "
                    f"(known: {', '.join(experiments)})."
                )
            elif fig["dataset"] not in experiment_datasets(config, exp):
                errors.append(
                    f"config: figures.{name}.experiments: {exp!r} does not run on {fig['dataset']!r} "
                    f"(see experiments.{exp}.datasets)."
                )
    metric = config.get("table_metric") or {}
    pair = (metric.get("protocol", "paper"), metric.get("metric", "last"))
    if pair not in TABLE_METRICS:
        errors.append(
            f"config: table_metric {{protocol: {pair[0]}, metric: {pair[1]}}} is not reported; use one of "
            + ", ".join(f"{{protocol: {p}, metric: {m}}}" for p, m in TABLE_METRICS)
            + "."
        )
    errors.extend(_claims_errors(config))
    return errors


#: Seeds ``np.random.seed`` accepts: 0 .. 2**32 - 1.
NUMPY_SEED_MAX = 2**32 - 1
#: A split fraction this small is 0 within the tolerance of the sum check: its part is empty.
_EMPTY_FRACTION = 1e-6


def check_meaningful_values(config: Mapping[str, Any]) -> list[str]:
    """Values the schema accepts but that make every result meaningless; one message each.

    - ``eval_every`` >= ``epochs`` (with more than one epoch): only epoch 0 is evaluated,
      so each record's "last evaluation" is the untrained model's accuracy;
    - a split part of a graph dataset whose fraction is 0 within the sum's tolerance: an
      evaluation set would be empty (a part too small for the classes of the data is
      refused when the split is made, :func:`gsmoe.splits.graph_splits`);
    - seeds (and ``roles.seed``) above what ``np.random.seed`` accepts.

    ``config`` must have passed the schema.
    """
    errors: list[str] = []
    datasets, experiments = config.get("datasets", {}), config.get("experiments", {})
    for exp, spec in experiments.items():
        for dataset in [d for d in datasets if spec.get("datasets") is None or d in spec["datasets"]]:
            own, base = spec.get("training") or {}, datasets[dataset].get("training") or {}
            training = {**base, **own}
            if "epochs" not in training or "eval_every" not in training:
                continue  # defaults not filled yet; checked again after filling
            epochs, every = training["epochs"], training["eval_every"]
            if epochs > 1 and every >= epochs:
                owner = f"experiments.{exp}.training" if "eval_every" in own or "epochs" in own else f"datasets.{dataset}.training"
                message = (
                    f"config: {owner}.eval_every ({every}) must be smaller than epochs ({epochs}): only "
                    "epoch 0 would be evaluated, and every record would report the untrained model's "
                    "accuracy as its last evaluation; lower eval_every or raise epochs."
                )
                if message not in errors:
                    errors.append(message)
    for name, ds in datasets.items():
        split = ds.get("split") or {}
        for part, names in (("standard", ("train", "val", "test")), ("paper", ("train", "held-out"))):
            for i, fraction in enumerate(split.get(part) or []):
                if fraction < _EMPTY_FRACTION:
                    errors.append(
                        f"config: datasets.{name}.split.{part}[{i}] ({fraction:g}) leaves the {names[i]} "
                        f"part empty (a fraction below {_EMPTY_FRACTION:g} is 0 for the sum check); give "
                        "every part at least one graph of each class."
                    )
    for i, seed in enumerate(config.get("seeds", [])):
        if seed > NUMPY_SEED_MAX:
            errors.append(
                f"config: seeds[{i}] ({seed}) is outside the range numpy's seed accepts "
                f"(0 .. {NUMPY_SEED_MAX}); use a smaller seed."
            )
    roles_seed = (config.get("roles") or {}).get("seed", 0)
    if roles_seed > NUMPY_SEED_MAX:
        errors.append(
            f"config: roles.seed ({roles_seed}) is outside the range numpy's seed accepts (0 .. {NUMPY_SEED_MAX})."
        )
    return errors


#: (protocol, metric) pairs that summary.csv holds and the tables can show.
TABLE_METRICS = (("paper", "last"), ("paper", "best"), ("standard", "test"))


def _claims_errors(config: Mapping[str, Any]) -> list[str]:
    """Claims and references name existing experiments and datasets: a typo must stop the
    workflow before training, not in the claims job at the end."""
    from gsmoe.report.claims import parse_claims  # pandas/scipy only when claims are checked

    errors = []
    try:
        parse_claims(config)
    except ValueError as err:
        errors.append(f"config: claims: {err}")
    for dataset, ref in (config.get("references") or {}).items():
        if dataset not in config.get("datasets", {}):
            errors.append(f"config: references.{dataset} names unknown dataset {dataset!r}.")
        experiment = ref.get("experiment", "baseline")
        if experiment not in config.get("experiments", {}):
            errors.append(f"config: references.{dataset}.experiment names unknown experiment {experiment!r}.")
    return errors


def _model_errors(config: Mapping[str, Any], dataset: str, experiment: str, n_roles: int) -> list[str]:
    model = _merged_model(config, dataset, experiment)
    owner = lambda key: _model_key_owner(config, dataset, experiment, key)  # noqa: E731
    errors = []
    placement, gate, experts = model["placement"], model["gate"], model["num_experts"]
    if placement == "none" and (gate != "none" or experts != 1):
        errors.append(
            f"config: {owner('placement')} is 'none' (plain GraphSAGE) but gate is {gate!r} and "
            f"num_experts is {experts}; use gate: none and num_experts: 1, or choose a placement."
        )
    if placement != "none" and gate == "none":
        errors.append(
            f"config: {owner('gate')} is 'none' but placement is {placement!r}; choose a gate "
            "(roles, dense, noisy_topk, shared)."
        )
    if gate == "shared" and placement != "both":
        errors.append(
            f"config: {owner('gate')} is 'shared' (one gate for message and update, section 6.3) "
            f"but placement is {placement!r}; use placement: both."
        )
    if gate == "noisy_topk" and model["top_k"] > experts:
        errors.append(f"config: {owner('top_k')} ({model['top_k']}) must be <= num_experts ({experts}).")
    if gate == "noisy_topk" and model["routing_noise"] == "shared" and model["balance_loss_weight"] > 0:
        errors.append(
            f"config: {owner('balance_loss_weight')} ({model['balance_loss_weight']}) needs routing_noise: "
            "independent (the balance loss estimates the load from independent noise); set it to 0."
        )
    if gate == "roles" and experts != n_roles:
        errors.append(
            f"config: {owner('num_experts')} ({experts}) must equal roles.n_roles ({n_roles}) "
            "for the roles gate (one expert per role)."
        )
    return errors


def _expand_shorthands(cfg: dict[str, Any]) -> None:
    """Make the "null = all / inherit" shorthands explicit for downstream consumers."""
    for exp in cfg["experiments"].values():
        if exp.get("datasets") is None:
            exp["datasets"] = list(cfg["datasets"])
    used = [d for d in cfg["datasets"] if any(d in e["datasets"] for e in cfg["experiments"].values())]
    for table in cfg["tables"].values():
        if table.get("columns") is None:
            table["columns"] = used
        for row in table["rows"]:
            if row.get("label") is None:
                row["label"] = cfg["experiments"][row["experiment"]]["label"]


# --------------------------------------------------------------------------- runs


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
    training_base = copy.deepcopy(ds.get("training", {}))
    run: dict[str, Any] = {
        "dataset": dataset,
        "experiment": experiment,
        "seed": int(seed),
        "task": ds["task"],
        "source": ds["source"],
        "pyg_name": ds["pyg_name"],
        "model": copy.deepcopy(_merged_model(config, dataset, experiment)),
        "training": {**training_base, **copy.deepcopy(exp.get("training", {}))},
    }
    if ds["task"] == "graph":
        run["split"] = {**split_defaults(), **copy.deepcopy(ds.get("split") or {})}
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
    overrides = config.get("checksum_overrides", {})
    out = []
    for spec in ds["files"]:
        relpath = spec["relpath"]
        if config.get("mirror"):
            url = resolve_source(config["mirror"], raw_file_key(source, relpath))
        else:
            url = resolve_source(config["sources"][source]["url"], relpath)
        out.append(
            {
                "relpath": relpath,
                "url": url,
                "sha256": overrides.get(raw_file_key(source, relpath), spec.get("sha256")),
                "members": dict(spec.get("members") or {}),
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
    return _merged_model(config, dataset, experiment)["gate"] == "roles"


def roles_datasets(config: Mapping[str, Any]) -> list[str]:
    """Datasets some run needs roles for."""
    return [
        d
        for d in config["datasets"]
        if any(needs_roles(config, d, e) for e in config["experiments"] if d in experiment_datasets(config, e))
    ]


def seed_chunks(seeds: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive chunks of ``size`` seeds (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    seeds = [int(s) for s in seeds]
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def regex_alternatives(values: Iterable[str]) -> str:
    """``a|b|c`` with each value regex-escaped (for ``wildcard_constraints``)."""
    return "|".join(re.escape(str(v)) for v in values)
