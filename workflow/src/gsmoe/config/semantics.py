"""Checks of the config that a JSON schema cannot express, one message per problem.

Each check reads some top-level sections (:data:`_CHECKS`); it runs on what passed the
schema (skipping a dataset, experiment, ... with a schema error), so that one validation
reports every problem it can find, schema and semantic alike.  Every message starts with
``config: <key path>`` and says what to change.

:func:`check_meaningful_values` checks values that are valid but would make every result
meaningless; it reads a config that passed the schema as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gsmoe.config.claims import claims_errors
from gsmoe.config.runs import experiment_datasets, merged_model, raw_file_key
from gsmoe.loaders import SOURCE_TASKS, planetoid_raw_files, tu_members
from gsmoe.modelspec import model_problems
from gsmoe.protocols import TABLE_METRICS

__all__ = ["semantic_errors"]


def semantic_errors(config: Mapping[str, Any], invalid: Collection[Sequence[Any]] = ()) -> list[str]:
    """Checks a JSON schema cannot express; one message per problem (empty = fine).

    ``config`` must have passed the schema, defaults filled, except at the key paths in
    ``invalid`` (:func:`gsmoe.config.schema.invalid_paths`).  What lies there is not read: a
    check that needs it is left out, and the checks of named entries (a dataset, an
    experiment, ...) skip the invalid ones.
    """
    where = _Invalid(tuple(tuple(path) for path in invalid))
    errors: list[str] = []
    for whole, named, check in _CHECKS:
        if not any(where.at(key) for key in whole) and not any(where.names(key) for key in named):
            errors.extend(check(config, where))
    return errors


@dataclass(frozen=True)
class _Invalid:
    """The key paths the schema check found invalid (:func:`gsmoe.config.schema.invalid_paths`)."""

    paths: tuple[tuple[Any, ...], ...]

    def at(self, *path: Any) -> bool:
        """Something at, above or below ``path`` is invalid: reading ``path`` is not safe."""
        return any(p[: len(path)] == path or path[: len(p)] == p for p in self.paths)

    def names(self, section: str) -> bool:
        """Top-level ``section`` itself is invalid (not a mapping of valid names)."""
        return (section,) in self.paths


# --------------------------------------------------------------------------- datasets


def _dataset_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    errors: list[str] = []
    sources = config["sources"]
    known_files: dict[str, tuple[str, Any, Any]] = {}  # key -> (dataset, sha256, members)
    skipped = False  # a dataset the schema rejected: its files are not known
    for name, ds in config["datasets"].items():
        if any(invalid.at("datasets", name, key) for key in ("source", "pyg_name", "task", "files", "split")):
            skipped = True
            continue
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
        errors.extend(_loader_file_errors(config, name, ds))
        relpaths = [f["relpath"] for f in ds["files"]]
        for dup in sorted({r for r in relpaths if relpaths.count(r) > 1}):
            errors.append(f"config: datasets.{name}.files lists {dup!r} twice.")
        for i, spec in enumerate(ds["files"]):
            key = raw_file_key(ds["source"], spec["relpath"])
            other = known_files.setdefault(key, (name, spec["sha256"], spec["members"]))
            if other[0] != name and other[1:] != (spec["sha256"], spec["members"]):
                errors.append(
                    f"config: datasets.{name}.files[{i}] ({key}) has other checksums than the same "
                    f"file in datasets.{other[0]}.files; one file, one checksum."
                )
            if spec["members"] and not spec["relpath"].endswith(".zip"):
                errors.append(f"config: datasets.{name}.files[{i}].members is only allowed for .zip files.")
            if spec["sha256"] is None and not spec["members"]:
                errors.append(
                    f"config: datasets.{name}.files[{i}] ({spec['relpath']}) has no checksum; every raw "
                    "file is verified: set its sha256 (sha256sum <file>), or members for a zip archive."
                )
        errors.extend(_split_errors(name, ds))
    for key in sorted(config["checksum_overrides"]):
        if key not in known_files and not skipped:
            errors.append(
                f"config: checksum_overrides.{key} names no raw file of a configured dataset "
                f"(known: {', '.join(sorted(known_files)) or 'none'}); fix or remove the key."
            )
    return errors


def _loader_file_errors(config: Mapping[str, Any], name: str, ds: Mapping[str, Any]) -> list[str]:
    """The raw files against what the dataset's PyG loader reads for its ``pyg_name``: found
    here, a wrong ``pyg_name`` or a missing file does not wait for the prepare job."""
    pyg_name = ds["pyg_name"]
    if ds["source"] == "planetoid":
        given = {PurePosixPath(f["relpath"]).name for f in ds["files"]}
        missing = [f for f in planetoid_raw_files(pyg_name) if f not in given]
        if not missing:
            return []
        stems = sorted({g.split(".")[1] for g in given if g.startswith("ind.") and g.count(".") >= 2})
        hint = ""
        if stems and pyg_name.lower() not in stems:
            hint = f" The files listed are ind.{'/'.join(stems)}.*: is pyg_name wrong?"
        return [
            f"config: datasets.{name}.files lacks {', '.join(missing)}: PyG's Planetoid loader reads "
            f"these for pyg_name {pyg_name!r}; add them (with their sha256) or fix pyg_name.{hint}"
        ]
    if ds["source"] == "tu":
        if len(ds["files"]) != 1 or not ds["files"][0]["relpath"].endswith(".zip"):
            return [
                f"config: datasets.{name}.files must be one zip archive for the tu loader, got "
                f"{[f['relpath'] for f in ds['files']]}; list the dataset's <name>.zip only."
            ]
        (spec,) = ds["files"]
        overridden = raw_file_key(ds["source"], spec["relpath"]) in config["checksum_overrides"]
        if spec["members"] and spec["sha256"] is None and not overridden:
            # Without a checksum of the whole archive, prepare extracts the listed members only.
            missing = [m for m in tu_members(pyg_name) if m not in spec["members"]]
            if missing:
                return [
                    f"config: datasets.{name}.files[0].members lacks {', '.join(missing)}: PyG's TUDataset "
                    f"reads them for pyg_name {pyg_name!r} and prepare extracts only the listed members; "
                    "add them with their sha256 or fix pyg_name."
                ]
    return []


def _split_errors(name: str, ds: Mapping[str, Any]) -> list[str]:
    errors = []
    split = ds.get("split")  # no default: absent = the default split (graph tasks)
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
    return errors


def _unknown(path: str, kind: str, name: str, known: Collection[str]) -> str:
    """The message for a ``kind`` (``dataset`` or ``experiment``) named at ``path`` that the
    config does not define: the known names and the fix."""
    return (
        f"config: {path} names unknown {kind} {name!r} (known: {', '.join(known) or 'none'}); "
        f"correct the name, add it under {kind}s: or remove it."
    )


# --------------------------------------------------------------------------- experiments


def _experiment_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    errors: list[str] = []
    datasets = config["datasets"]
    for exp, spec in config["experiments"].items():
        if any(invalid.at("experiments", exp, key) for key in ("datasets", "paper", "model")):
            continue
        for d in spec["datasets"] or []:
            if d not in datasets:
                errors.append(_unknown(f"experiments.{exp}.datasets", "dataset", d, datasets))
        for d in spec["paper"]:
            if d not in datasets:
                errors.append(_unknown(f"experiments.{exp}.paper", "dataset", d, datasets))
        seen: set[str] = set()
        for d in [d for d in datasets if spec["datasets"] is None or d in spec["datasets"]]:
            if invalid.at("datasets", d, "model"):
                continue
            for msg in _model_errors(config, d, exp, config["roles"]["n_roles"]):
                if msg not in seen:  # the same mistake on every dataset: say it once
                    seen.add(msg)
                    errors.append(msg)
    return errors


def _model_key_owner(config: Mapping[str, Any], dataset: str, experiment: str, key: str) -> str:
    """Key path that set ``key`` for this run (for error messages)."""
    if key in config["experiments"][experiment]["model"]:
        return f"experiments.{experiment}.model.{key}"
    if key in config["datasets"][dataset]["model"]:
        return f"datasets.{dataset}.model.{key}"
    return f"experiments.{experiment}.model.{key} (built-in default)"


def _model_errors(config: Mapping[str, Any], dataset: str, experiment: str, n_roles: int) -> list[str]:
    """The model keys of one run after merging, against each other (the model-key invariants
    of :func:`gsmoe.modelspec.model_problems`), each under the key path that set it."""
    return [
        f"config: {_model_key_owner(config, dataset, experiment, key)} {text}"
        for key, text in model_problems(merged_model(config, dataset, experiment), n_roles=n_roles)
    ]


# --------------------------------------------------------------------------- reporting


def _table_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    errors: list[str] = []
    datasets, experiments = config["datasets"], config["experiments"]
    for name, table in config["tables"].items():
        if invalid.at("tables", name):
            continue
        for d in table["columns"] or []:
            if d not in datasets:
                errors.append(_unknown(f"tables.{name}.columns", "dataset", d, datasets))
        for i, row in enumerate(table["rows"]):
            if row["experiment"] not in experiments:
                path = f"tables.{name}.rows[{i}].experiment"
                errors.append(_unknown(path, "experiment", row["experiment"], experiments))
    return errors


def _figure_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    errors: list[str] = []
    datasets, experiments = config["datasets"], config["experiments"]
    for name, fig in config["figures"].items():
        if invalid.at("figures", name):
            continue
        if fig["dataset"] not in datasets:
            errors.append(_unknown(f"figures.{name}.dataset", "dataset", fig["dataset"], datasets))
            continue
        for exp in fig["experiments"]:
            if exp not in experiments:
                errors.append(_unknown(f"figures.{name}.experiments", "experiment", exp, experiments))
            elif not invalid.at("experiments", exp, "datasets") and (
                fig["dataset"] not in experiment_datasets(config, exp)
            ):
                errors.append(
                    f"config: figures.{name}.experiments: {exp!r} does not run on {fig['dataset']!r} "
                    f"(see experiments.{exp}.datasets)."
                )
    return errors


def _table_metric_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    pair = (config["table_metric"]["protocol"], config["table_metric"]["metric"])
    if pair in TABLE_METRICS:
        return []
    return [
        f"config: table_metric {{protocol: {pair[0]}, metric: {pair[1]}}} is not reported; use one of "
        + ", ".join(f"{{protocol: {p}, metric: {m}}}" for p, m in TABLE_METRICS)
        + "."
    ]


def _reference_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    """References name existing datasets and experiments: a typo must stop the workflow
    before training, not in the claims job at the end."""
    errors = []
    for dataset, ref in config["references"].items():
        if invalid.at("references", dataset):
            continue
        if dataset not in config["datasets"]:
            errors.append(_unknown(f"references.{dataset}", "dataset", dataset, config["datasets"]))
        if ref["experiment"] not in config["experiments"]:
            errors.append(
                _unknown(f"references.{dataset}.experiment", "experiment", ref["experiment"], config["experiments"])
            )
    return errors


def _claim_errors(config: Mapping[str, Any], invalid: _Invalid) -> list[str]:
    return claims_errors(config)


#: Each check, the top-level sections it needs valid as a whole, and those whose entries it
#: reads by name (it skips the invalid entries of those).
_CHECKS: list[tuple[tuple[str, ...], tuple[str, ...], Callable[[Mapping[str, Any], _Invalid], list[str]]]] = [
    ((), ("datasets", "sources", "checksum_overrides"), _dataset_errors),
    (("roles",), ("experiments", "datasets"), _experiment_errors),
    ((), ("tables", "datasets", "experiments"), _table_errors),
    ((), ("figures", "datasets", "experiments"), _figure_errors),
    (("table_metric",), (), _table_metric_errors),
    (("claims",), ("datasets", "experiments"), _claim_errors),
    ((), ("references", "datasets", "experiments"), _reference_errors),
]


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

    ``config`` must have passed the schema and have its defaults filled
    (:func:`gsmoe.config.validate_config` calls it so).
    """
    errors: list[str] = []
    datasets, experiments = config["datasets"], config["experiments"]
    for exp, spec in experiments.items():
        for dataset in [d for d in datasets if spec["datasets"] is None or d in spec["datasets"]]:
            own = spec["training"]
            training = {**datasets[dataset]["training"], **own}
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
    for i, seed in enumerate(config["seeds"]):
        if seed > NUMPY_SEED_MAX:
            errors.append(
                f"config: seeds[{i}] ({seed}) is outside the range numpy's seed accepts "
                f"(0 .. {NUMPY_SEED_MAX}); use a smaller seed."
            )
    roles_seed = config["roles"]["seed"]
    if roles_seed > NUMPY_SEED_MAX:
        errors.append(
            f"config: roles.seed ({roles_seed}) is outside the range numpy's seed accepts (0 .. {NUMPY_SEED_MAX}); "
            "use a smaller seed."
        )
    return errors
