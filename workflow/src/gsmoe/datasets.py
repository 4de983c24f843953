"""Turn verified raw files into PyG dataset folders, and load them without any network access.

PyG datasets download their raw files themselves when these are missing.  In this pipeline
the raw files come only from :mod:`gsmoe.download` (checksum-verified), so the PyG classes
used here refuse to download: if PyG ever wanted to, a raw file is missing and the run
would otherwise silently depend on whatever the internet serves that day.  Loading is
likewise separated from processing: :func:`load_dataset` never (re)processes, so every
training run reads the one processed copy made by the ``prepare`` rule.

``prepare`` verifies the raw files again (they may have changed since their download) and
leaves a manifest beside ``processed/data.pt`` (:mod:`gsmoe.provenance`): the raw files'
SHA-256, which every run record copies, and the processed file's own size and SHA-256,
against which :func:`load_dataset` checks it.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from torch_geometric.data import InMemoryDataset
from torch_geometric.datasets import Planetoid, TUDataset

from gsmoe.download import verify_raw_file
from gsmoe.loaders import planetoid_raw_files, tu_members
from gsmoe.provenance import check_prepared, write_prepared_manifest

__all__ = ["SOURCES", "load_dataset", "prepared_file", "prepare_dataset"]


class _Offline:
    """Mixin: forbid PyG's download, and processing unless explicitly allowed.

    ``may_process`` is set before PyG's ``__init__`` runs, because that ``__init__`` is
    what decides to download and process.
    """

    _may_process = False

    def download(self) -> None:
        raise RuntimeError(
            f"PyG tried to download {self.name!r} into {self.raw_dir}: its raw files are "  # type: ignore[attr-defined]
            "missing there. This pipeline never lets PyG download; fetch the raw files "
            "(download rule) and rerun the `prepare` rule for this dataset."
        )

    def process(self) -> None:
        if not self._may_process:
            raise RuntimeError(
                f"{self.processed_dir} holds no processed data for {self.name!r}; "  # type: ignore[attr-defined]
                "run the `prepare` rule for this dataset (gsmoe.datasets.prepare_dataset)."
            )
        super().process()  # type: ignore[misc]


class OfflinePlanetoid(_Offline, Planetoid):
    """:class:`~torch_geometric.datasets.Planetoid` that never downloads (public split)."""

    def __init__(self, root: str, name: str, *, may_process: bool = False) -> None:
        self._may_process = may_process
        super().__init__(root, name)


class OfflineTUDataset(_Offline, TUDataset):
    """:class:`~torch_geometric.datasets.TUDataset` that never downloads.

    ``use_node_attr`` stays False (PyG's default), as in the authors' code: ENZYMES then
    has the 3 one-hot node labels as features.
    """

    def __init__(self, root: str, name: str, *, may_process: bool = False) -> None:
        self._may_process = may_process
        super().__init__(root, name)


_CLASSES: dict[str, type[OfflinePlanetoid] | type[OfflineTUDataset]] = {
    "planetoid": OfflinePlanetoid,
    "tu": OfflineTUDataset,
}
SOURCES = tuple(_CLASSES)


def _dataset_class(source: str) -> type[OfflinePlanetoid] | type[OfflineTUDataset]:
    try:
        return _CLASSES[source]
    except KeyError:
        raise ValueError(f"unknown dataset source {source!r}; expected one of {SOURCES}") from None


def prepare_dataset(
    source: str,
    pyg_name: str,
    raw_files: list[Path],
    root: Path,
    verified_members: Collection[str] | None = None,
    *,
    checksums: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """Build ``root/<pyg_name>/{raw,processed}`` from verified raw files.

    Args:
        source: ``"planetoid"`` (raw files are the eight ``ind.<name>.*`` files) or
            ``"tu"`` (one raw file, the dataset's zip archive).
        pyg_name: PyG's dataset name (``Cora``, ``PubMed``, ``ENZYMES``).
        raw_files: the verified raw files (from :func:`gsmoe.download.fetch`).
        root: the PyG root folder.
        verified_members: for a zip verified member by member (the ``members`` of its
            config entry), the inner paths that were verified: only they are extracted,
            so an extra, unverified file in the archive (PyG reads optional ones such as
            ``<name>_edge_labels.txt``) cannot change the dataset.  ``None``: the archive
            was verified as a whole, every member is extracted.
        checksums: per raw file, in the order of ``raw_files``, its config entry
            (``relpath``, ``sha256``, ``members``; :func:`gsmoe.config.raw_files`): each
            file is verified against it again before it is read, and a file changed since
            its download raises :class:`gsmoe.download.ChecksumError` naming it and the
            fix.  ``None`` (tests) verifies nothing; the manifest then records the files'
            SHA-256 without members.

    The folder is built in a temporary directory inside ``root`` and renamed into place,
    under an exclusive lock on ``root/.<pyg_name>.lock``: two jobs preparing the same root
    at once leave one complete folder, and a crash never leaves a half-processed one that
    :func:`load_dataset` would accept.  An existing folder is replaced.
    """
    cls = _dataset_class(source)
    root = Path(root)
    raw_files = [Path(p) for p in raw_files]
    if checksums is not None and len(checksums) != len(raw_files):
        raise ValueError(f"{len(raw_files)} raw files but {len(checksums)} checksum entries")
    specs = checksums if checksums is not None else [{"relpath": p.name, "sha256": None} for p in raw_files]
    # Before anything is read: the bytes the dataset is built from are the verified ones.
    verified = {
        spec["relpath"]: verify_raw_file(path, spec.get("sha256"), spec.get("members"))
        for path, spec in zip(raw_files, specs, strict=True)
    }
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{pyg_name}.lock"):
        build = Path(tempfile.mkdtemp(prefix=f".{pyg_name}.", suffix=".tmp", dir=root))
        try:
            raw_dir = build / pyg_name / "raw"
            raw_dir.mkdir(parents=True)
            if source == "planetoid":
                _stage_planetoid(pyg_name, raw_files, raw_dir)
            else:
                _stage_tu(pyg_name, raw_files, raw_dir, verified_members)
            cls(str(build), pyg_name, may_process=True)
            write_prepared_manifest(prepared_file(build, pyg_name), verified)
            final = root / pyg_name
            if final.exists():
                final.rename(build / "previous")
            (build / pyg_name).rename(final)
        finally:
            shutil.rmtree(build, ignore_errors=True)


def prepared_file(root: str | Path, pyg_name: str) -> Path:
    """PyG's processed file of a prepared dataset, ``root/<pyg_name>/processed/data.pt``."""
    return Path(root) / pyg_name / "processed" / "data.pt"


def load_dataset(source: str, pyg_name: str, root: Path) -> InMemoryDataset:
    """Load a dataset prepared by :func:`prepare_dataset`; never downloads or processes.

    The processed file is checked against its manifest first: a truncated or otherwise
    changed file raises :class:`gsmoe.provenance.DamagedDatasetError` naming it and the
    fix, instead of an unpickling error that names no file.
    """
    cls = _dataset_class(source)
    processed = prepared_file(root, pyg_name)
    if not processed.is_file():
        raise FileNotFoundError(
            f"dataset {pyg_name!r} is not prepared: {processed} does not exist. Run the "
            f"`prepare` rule for it (e.g. `snakemake {Path(root)}`) or "
            f"gsmoe.datasets.prepare_dataset({source!r}, {pyg_name!r}, raw_files, {str(root)!r})."
        )
    check_prepared(processed)
    return cls(str(root), pyg_name, may_process=False)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (POSIX; released if the process dies)."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _stage_planetoid(pyg_name: str, raw_files: list[Path], raw_dir: Path) -> None:
    """Copy the eight ``ind.<name>.*`` files; any missing one is an error here, not in PyG."""
    expected = set(planetoid_raw_files(pyg_name))
    given = {p.name: p for p in raw_files}
    missing = sorted(expected - set(given))
    if missing:
        raise FileNotFoundError(f"Planetoid {pyg_name!r} needs raw files {missing}, not given in {sorted(given)}")
    for name in sorted(expected):
        shutil.copyfile(given[name], raw_dir / name)


def _stage_tu(pyg_name: str, raw_files: list[Path], raw_dir: Path, verified_members: Collection[str] | None) -> None:
    """Extract ``<name>/<file>`` members of the zip flat into ``raw_dir``, as PyG does."""
    if len(raw_files) != 1:
        raise ValueError(f"TU dataset {pyg_name!r} expects one raw zip file, got {raw_files}")
    with zipfile.ZipFile(raw_files[0]) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or len(parts) != 2 or parts[0] != pyg_name:
                continue
            if verified_members is not None and info.filename not in verified_members:
                print(f"skipping {info.filename} of {raw_files[0]}: not among the verified members", file=sys.stderr)
                continue
            with zf.open(info) as src, open(raw_dir / parts[1], "wb") as dst:
                shutil.copyfileobj(src, dst)
    missing = [m for m in tu_members(pyg_name) if not (raw_dir / PurePosixPath(m).name).is_file()]
    if missing:
        raise FileNotFoundError(f"{raw_files[0]} has no member(s) {missing}")
