"""Check that every run record stands for the run whose place it takes, before aggregation.

Snakemake decides what to retrain from file times and its own metadata; neither tells
whether a record on disk was trained under today's settings.  After a change it was told
to ignore (``--rerun-triggers mtime input code software-env``), with ``.snakemake/``
deleted, or with results copied to another checkout, a table could otherwise average runs
of different settings, code or data.  :func:`verify_records` compares each record with
what it stands for:

- schema: it carries ``provenance`` (run-record schema :data:`RECORD_SCHEMA_VERSION`);
- path: its dataset, experiment and seed are the ones of its path;
- config: its ``config`` equals ``resolve_run`` of today's config for that run;
- code: its code fingerprint equals the current code's (``verify_code: current``), or
  the fingerprints of all records are equal (``verify_code: grid``, for a code change
  accepted as not changing results);
- data: the raw-file checksums it was trained from equal the config's.

Every mismatch of every record is collected into one :class:`RecordMismatchError` naming
the files, the keys that differ (old -> new) and the fix; nothing is aggregated then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gsmoe.config import ConfigError, load_schema, raw_files, resolve_run, run_record_path
from gsmoe.provenance import RECORD_SCHEMA_VERSION, source_sha256

__all__ = ["VERIFY_CODE_MODES", "RecordMismatchError", "config_differences", "verify_records"]

#: Values of the ``verify_code`` switch (config key, ``report --verify-code``): the schema's enum.
VERIFY_CODE_MODES: tuple[str, ...] = tuple(load_schema()["properties"]["verify_code"]["enum"])
#: Records listed in full in a message; the rest are counted.
_LISTED = 20
_ABSENT = "(absent)"
_MISSING = object()

_FIXES = {
    "schema": "a record without provenance was written before run-record schema "
    f"{RECORD_SCHEMA_VERSION} (by an older gsmoe): its numbers cannot be traced to code and data; "
    "delete it and retrain (`snakemake --forcerun aggregate <targets>` retrains missing records)",
    "path": "a record at the path of another run: delete it (or move it to the path of its run) and "
    "retrain (`snakemake --forcerun aggregate <targets>`)",
    "config": "trained under other settings than today's config (Snakemake was told to ignore the "
    "change, e.g. --rerun-triggers without params, or had no .snakemake/ metadata): delete these "
    "records and retrain them with `snakemake --forcerun aggregate <targets>` (without it Snakemake "
    "may take tables made before the change as up to date), or restore the old values in the config",
    "code": "trained by other code than the current one: rerun snakemake, which retrains after a "
    "change of the package code; for a change known not to alter results (see docs/config.md, "
    "'Code changes'), keep the records and aggregate with `verify_code: grid` (config) or "
    "`report --verify-code grid`, which requires one code version across all records",
    "grid": "the records were trained by different code versions: retrain the stale ones "
    "(rerun snakemake) so that one code version produced the whole grid",
    "data": "trained on data prepared from other raw files than the config's checksums: rerun "
    "snakemake, which prepares the dataset again from the verified files, and retrain",
}


class RecordMismatchError(ValueError):
    """Run records that do not match their run; ``problems`` maps each file to its findings."""

    def __init__(self, problems: Mapping[str, Sequence[tuple[str, str]]]) -> None:
        self.problems = {path: list(found) for path, found in problems.items()}
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"{len(self.problems)} run record(s) do not match the run they stand for; nothing was aggregated:"]
        for path in list(self.problems)[:_LISTED]:
            for kind, detail in self.problems[path]:
                lines.append(f"  {path}: {kind}: {detail}")
        if len(self.problems) > _LISTED:
            lines.append(f"  ... and {len(self.problems) - _LISTED} more record(s)")
        kinds = sorted({kind for found in self.problems.values() for kind, _ in found}, key=list(_FIXES).index)
        lines += [f"Fix ({kind}): {_FIXES[kind]}." for kind in kinds]
        return "\n".join(lines)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key.path: old -> new`` for every leaf where two nested configs differ."""
    a, b = _flat(old), _flat(new)
    show = lambda value: _ABSENT if value is _MISSING else repr(value)  # noqa: E731
    diffs = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key, _MISSING), b.get(key, _MISSING)
        # 1 and 1.0 (or True) are different settings in a config, though equal in Python
        if before != after or type(before) is not type(after):
            diffs.append(f"{key}: {show(before)} -> {show(after)}")
    return diffs


def _data_differences(recorded: Mapping[str, Any], config: Mapping[str, Any], dataset: str) -> list[str]:
    """Raw-file checksums a record was trained from against the config's (overrides applied)."""
    diffs = []
    configured = {spec["relpath"]: spec for spec in raw_files(config, dataset)}
    for relpath, spec in configured.items():
        got = recorded.get(relpath)
        if not isinstance(got, Mapping):
            diffs.append(f"data.{relpath}: {_ABSENT} -> sha256 {spec['sha256'] or spec['members']}")
            continue
        if spec["sha256"] is not None and got.get("sha256") != spec["sha256"]:
            diffs.append(f"data.{relpath}.sha256: {got.get('sha256')} -> {spec['sha256']}")
        got_members = got.get("members") or {}
        for member, sha in spec["members"].items():
            if got_members.get(member) != sha:
                diffs.append(f"data.{relpath}.members.{member}: {got_members.get(member, _ABSENT)} -> {sha}")
    diffs += [f"data.{relpath}: recorded -> {_ABSENT} (not a raw file of {dataset})" for relpath in sorted(set(recorded) - set(configured))]
    return diffs


def _run_of_path(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}/{path.stem}"


def verify_records(
    records: Sequence[tuple[str, Mapping[str, Any]]],
    config: Mapping[str, Any],
    *,
    verify_code: str = "current",
    code_sha256: str | None = None,
) -> None:
    """Raise :class:`RecordMismatchError` unless every ``(path, record)`` matches its run.

    Args:
        records: run records with the files they were read from (paths laid out by
            :func:`gsmoe.config.run_record_path`).
        config: today's validated config.
        verify_code: ``current``: each record's code fingerprint must equal
            ``code_sha256``; ``grid``: all records' fingerprints must be equal.
        code_sha256: the current code's fingerprint (default: the imported package's).
    """
    if verify_code not in VERIFY_CODE_MODES:
        raise ValueError(f"verify_code must be one of {VERIFY_CODE_MODES}, got {verify_code!r}")
    if verify_code == "current" and code_sha256 is None:
        code_sha256 = source_sha256()
    problems: dict[str, list[tuple[str, str]]] = {}
    codes: dict[str, str] = {}
    for source, record in records:
        found = problems.setdefault(str(source), [])
        provenance = record.get("provenance")
        if record.get("schema_version") != RECORD_SCHEMA_VERSION or not isinstance(provenance, Mapping):
            found.append(
                (
                    "schema",
                    f"schema_version {record.get('schema_version', _ABSENT)} -> {RECORD_SCHEMA_VERSION} "
                    "(no provenance: code and data unknown)",
                )
            )
            continue
        path = Path(source)
        dataset, experiment, seed = record["dataset"], record["experiment"], record["seed"]
        if Path(run_record_path(str(path.parent.parent.parent), dataset, experiment, seed)) != path:
            found.append(("path", f"the path is run {_run_of_path(path)}, the record is run {dataset}/{experiment}/seed{seed}"))
            continue
        try:
            expected = resolve_run(config, dataset, experiment, int(seed))
        except ConfigError as err:
            found.append(("config", f"not a run of today's config ({err})"))
            continue
        diffs = config_differences(record.get("config") or {}, expected)
        if diffs:
            found.append(("config", "; ".join(diffs)))
        data_diffs = _data_differences(provenance.get("data") or {}, config, dataset)
        if data_diffs:
            found.append(("data", "; ".join(data_diffs)))
        code = (provenance.get("code") or {}).get("sha256")
        codes[str(source)] = str(code)
        if verify_code == "current" and code != code_sha256:
            found.append(("code", f"code fingerprint {code} -> {code_sha256} (current code)"))
    if verify_code == "grid" and len(set(codes.values())) > 1:
        common, _ = Counter(codes.values()).most_common(1)[0]
        versions = len(set(codes.values()))
        for source, code in codes.items():
            if code != common:
                problems[source].append(
                    ("grid", f"code fingerprint {code} -> {common} (that of most records; {versions} versions in the grid)")
                )
    problems = {path: found for path, found in problems.items() if found}
    if problems:
        raise RecordMismatchError(problems)
