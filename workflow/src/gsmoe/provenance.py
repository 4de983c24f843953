"""What produced a result: the code fingerprint, installed versions, and the raw-data manifest.

Every run record carries a ``provenance`` block (docs/design.md, "Run record") so that a
table cell can be traced to the code and the raw bytes of every run behind it, and so
that :mod:`gsmoe.report.verify` can refuse records that do not belong together:

``code``
    :func:`code_fingerprint`: a SHA-256 over the sources of the ``gsmoe`` package that
    training runs (every ``*.py`` below the package, except ``gsmoe/report/``, which
    only reads records), plus the git commit and whether the checkout was dirty (where
    there is a git checkout).  Only the hash is compared: a commit that changes no
    source file, or edits outside the package, does not make a record stale.
``data``
    The SHA-256 of every raw file the dataset was prepared from (and of each verified
    zip member), written by ``prepare`` into a manifest beside ``processed/data.pt``
    (:func:`write_prepared_manifest`) and copied into each record by training.

This module imports neither torch nor PyG: the Snakemake process and the report stage
use it too.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gsmoe import __version__
from gsmoe.download import sha256_file
from gsmoe.io import atomic_open, read_json, write_json

__all__ = [
    "PACKAGE_DIR",
    "RECORDED_PACKAGES",
    "RECORD_SCHEMA_VERSION",
    "DamagedDatasetError",
    "check_prepared",
    "code_fingerprint",
    "source_sha256",
    "environment",
    "manifest_path",
    "read_prepared_manifest",
    "update_code_fingerprint_file",
    "write_prepared_manifest",
]

#: Version of the run-record layout; 2 added ``schema_version`` and ``provenance``.
RECORD_SCHEMA_VERSION = 2
#: The package whose sources the code fingerprint covers.
PACKAGE_DIR = Path(__file__).resolve().parent
#: Subpackages that never influence a run record (they only read records).
_NOT_TRAINING = ("report",)
#: Packages whose versions go into every run record.
RECORDED_PACKAGES = ("torch", "torch_geometric", "numpy", "scipy", "graphrole", "networkx", "scikit-learn")
#: The manifest of a prepared dataset, beside PyG's ``processed/data.pt``.
MANIFEST_NAME = "gsmoe_manifest.json"


class DamagedDatasetError(RuntimeError):
    """A prepared dataset file differs from what ``prepare`` wrote (truncated, edited)."""


# --------------------------------------------------------------------------- code


def _source_files(package_dir: Path) -> list[Path]:
    return sorted(
        path
        for path in package_dir.rglob("*.py")
        if path.relative_to(package_dir).parts[0] not in _NOT_TRAINING and "__pycache__" not in path.parts
    )


def _git(package_dir: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(package_dir), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def source_sha256(package_dir: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 over each source file's path relative to the package and its bytes (a
    renamed, added or removed file changes it too); default: this package."""
    root = Path(package_dir) if package_dir is not None else PACKAGE_DIR
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def code_fingerprint(package_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``{sha256, files, git_commit, git_dirty}`` of the package at ``package_dir`` (default: this one).

    ``sha256`` is :func:`source_sha256`.  ``git_commit`` and ``git_dirty`` are ``None``
    outside a git checkout (a copied tree, an installed package).
    """
    root = Path(package_dir) if package_dir is not None else PACKAGE_DIR
    commit = _git(root, "rev-parse", "HEAD")
    # --no-optional-locks: a status must not take the index lock from a git command of the user
    status = _git(root, "--no-optional-locks", "status", "--porcelain") if commit is not None else None
    return {
        "sha256": source_sha256(root),
        "files": len(_source_files(root)),
        "git_commit": commit.strip() if commit is not None else None,
        "git_dirty": bool(status.strip()) if status is not None else None,
    }


def update_code_fingerprint_file(
    path: str | os.PathLike[str], package_dir: str | os.PathLike[str] | None = None, *, accept: bool = False
) -> bool:
    """Write the code fingerprint's hash to ``path`` when it differs from the file's; return
    whether it changed.

    The file is an input of every training job (workflow/rules/train.smk): it is rewritten,
    and so becomes newer than the records, only when the package code changed, which makes
    Snakemake retrain whatever its metadata says.  ``accept`` (for a change known not to
    alter results, docs/config.md "Code changes") writes the hash too, changed or not, but
    dates the file 1970-01-01, older than any record: the existing records stay up to date
    until the next code change rewrites it.
    """
    path = Path(path)
    sha = source_sha256(package_dir)
    try:
        old = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        old = None
    if old != sha:
        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.write(sha + "\n")
    if accept:
        os.utime(path, (0, 0))
    return old != sha


def environment() -> dict[str, str]:
    """Versions of Python, the platform, gsmoe and the recorded packages."""
    versions = {"python": platform.python_version(), "platform": platform.platform(), "gsmoe": __version__}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


# --------------------------------------------------------------------------- data


def manifest_path(processed_file: str | os.PathLike[str]) -> Path:
    """The manifest beside a prepared ``processed/data.pt``."""
    return Path(processed_file).with_name(MANIFEST_NAME)


def write_prepared_manifest(processed_file: str | os.PathLike[str], raw: Mapping[str, Mapping[str, Any]]) -> None:
    """Record the raw files' checksums (``{relpath: {sha256, members}}``) and the SHA-256 and
    size of ``processed_file`` itself, so that a later change of it is recognised."""
    processed = Path(processed_file)
    write_json(
        manifest_path(processed),
        {
            "raw": {name: dict(spec) for name, spec in sorted(raw.items())},
            "processed": {"file": processed.name, "sha256": sha256_file(processed), "bytes": processed.stat().st_size},
        },
    )


def read_prepared_manifest(processed_file: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a prepared dataset; a clear error when ``prepare`` wrote none."""
    path = manifest_path(processed_file)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {processed_file} was prepared by an older gsmoe that recorded "
            f"no raw-file checksums; delete {Path(processed_file).parent.parent} and rerun the "
            f"`prepare` rule (e.g. `snakemake {processed_file}`)"
        )
    return read_json(path)


def check_prepared(processed_file: str | os.PathLike[str], *, hash_contents: bool = True) -> dict[str, Any]:
    """Return the manifest after checking that ``processed_file`` is the file ``prepare`` wrote.

    ``hash_contents=False`` compares only the size (a ``stat``, cheap enough for the
    Snakemake process to check before it schedules a training job: a truncated file then
    fails once, before any job, instead of once per attempt of every job).  Raises :class:`DamagedDatasetError` naming the file and the fix when its size or
    SHA-256 differs (a truncated copy, a disk error, an edit); torch would otherwise fail
    in the middle of unpickling with a message that names no file.
    """
    processed = Path(processed_file)
    manifest = read_prepared_manifest(processed)
    expected = manifest["processed"]
    size = processed.stat().st_size
    problem = None
    if size != expected["bytes"]:
        problem = f"it has {size} bytes, prepare wrote {expected['bytes']}"
    elif hash_contents:
        actual = sha256_file(processed)
        if actual != expected["sha256"]:
            problem = f"its SHA-256 is {actual}, prepare wrote {expected['sha256']}"
    if problem is not None:
        raise DamagedDatasetError(
            f"prepared dataset {processed} is damaged ({problem}, see {manifest_path(processed)}); "
            f"delete {processed} and rerun the `prepare` rule (e.g. `snakemake {processed}`), "
            "then the training"
        )
    return manifest

