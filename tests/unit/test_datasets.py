"""prepare_dataset / load_dataset on the local mirror: stats, no download, concurrency."""

from __future__ import annotations

import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import dataset_sizes

from gsmoe.config import load_config, verified_members
from gsmoe.datasets import load_dataset, prepare_dataset

REPO = Path(__file__).resolve().parents[2]

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not MIRROR.is_dir(), reason="local dataset mirror not available")


def _cora_raw() -> list[Path]:
    return sorted((MIRROR / "planetoid").glob("ind.cora.*"))


@pytest.fixture(scope="module")
def cora_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyg") / "Cora"
    prepare_dataset("planetoid", "Cora", _cora_raw(), root)
    return root


@pytest.fixture(scope="module")
def enzymes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyg") / "ENZYMES"
    prepare_dataset("tu", "ENZYMES", [MIRROR / "tu" / "ENZYMES.zip"], root)
    return root


def test_cora_stats(cora_root: Path) -> None:
    ds = load_dataset("planetoid", "Cora", cora_root)
    assert dataset_sizes(ds) == {
        "graphs": 1, "nodes": 2708, "edges": 10556, "features": 1433, "classes": 7,
        "train": 140, "val": 500, "test": 1000,
    }
    # Only the finished folder and the lock remain: no temporary build directory.
    assert sorted(p.name for p in cora_root.iterdir()) == [".Cora.lock", "Cora"]


def test_enzymes_stats(enzymes_root: Path) -> None:
    ds = load_dataset("tu", "ENZYMES", enzymes_root)
    assert dataset_sizes(ds) == {"graphs": 600, "nodes": 19580, "edges": 74564, "features": 3, "classes": 6}
    assert ds.y.bincount().tolist() == [100] * 6
    assert sorted(p.name for p in (enzymes_root / "ENZYMES" / "raw").glob("ENZYMES_*.txt")) == [
        "ENZYMES_A.txt", "ENZYMES_graph_indicator.txt", "ENZYMES_graph_labels.txt",
        "ENZYMES_node_attributes.txt", "ENZYMES_node_labels.txt",
    ]


def test_unverified_zip_members_are_not_extracted(tmp_path: Path) -> None:
    """An extra file in the archive (here edge labels, which PyG would read) is skipped when
    the config verifies the archive member by member, as it does for ENZYMES."""
    archive = tmp_path / "ENZYMES.zip"
    with zipfile.ZipFile(MIRROR / "tu" / "ENZYMES.zip") as src, zipfile.ZipFile(archive, "w") as dst:
        edges = src.read("ENZYMES/ENZYMES_A.txt").count(b"\n")
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("ENZYMES/ENZYMES_edge_labels.txt", "1\n" * edges)
    members = verified_members(load_config(REPO / "config.yaml"), "ENZYMES")
    assert members is not None and "ENZYMES/ENZYMES_A.txt" in members

    prepare_dataset("tu", "ENZYMES", [archive], tmp_path / "verified", members)
    assert not (tmp_path / "verified" / "ENZYMES" / "raw" / "ENZYMES_edge_labels.txt").exists()
    assert load_dataset("tu", "ENZYMES", tmp_path / "verified")._data.edge_attr is None  # noqa: SLF001

    prepare_dataset("tu", "ENZYMES", [archive], tmp_path / "whole")  # archive verified as a whole
    assert load_dataset("tu", "ENZYMES", tmp_path / "whole")._data.edge_attr is not None  # noqa: SLF001


def test_load_without_prepare_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not prepared") as info:
        load_dataset("tu", "ENZYMES", tmp_path)
    assert str(tmp_path / "ENZYMES") in str(info.value) and "prepare" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was created, nothing downloaded


def test_load_never_downloads(tmp_path: Path) -> None:
    root = tmp_path / "Cora"
    prepare_dataset("planetoid", "Cora", _cora_raw(), root)
    (root / "Cora" / "raw" / "ind.cora.x").unlink()
    with pytest.raises(RuntimeError, match="tried to download"):
        load_dataset("planetoid", "Cora", root)


def test_unknown_source_and_missing_raw(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset source"):
        load_dataset("ogb", "arxiv", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.graph"):
        prepare_dataset("planetoid", "Cora", [p for p in _cora_raw() if not p.name.endswith(".graph")], tmp_path)
    assert not (tmp_path / "Cora").exists()
    assert [p.name for p in tmp_path.iterdir()] == [".Cora.lock"]


def test_concurrent_prepare_and_replace(tmp_path: Path) -> None:
    root = tmp_path / "Cora"
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: prepare_dataset("planetoid", "Cora", _cora_raw(), root), range(2)))
    prepare_dataset("planetoid", "Cora", _cora_raw(), root)  # an existing folder is replaced
    assert sorted(p.name for p in root.iterdir()) == [".Cora.lock", "Cora"]
    assert load_dataset("planetoid", "Cora", root)[0].num_nodes == 2708
