"""Concurrent jobs on one dataset: preparing is serialised and atomic, loading never writes.

The workflow has one ``prepare`` job per dataset and every training job only loads its
output (tests/workflow/test_dryrun.py counts one prepare job per dataset).  These tests
check the two properties that make that safe even when jobs do overlap: two processes
preparing the same root at once both succeed and leave one complete folder, and
``load_dataset`` never writes into the PyG folder (so parallel training jobs cannot race on
PyG's processed files).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import dataset_sizes

from gsmoe.datasets import load_dataset, prepare_dataset

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"local dataset mirror {MIRROR} not present")

ENZYMES_SIZES = {"graphs": 600, "nodes": 19580, "edges": 74564, "features": 3, "classes": 6}

# Each child imports gsmoe (slow), says "ready", waits for the go file, then prepares
# ENZYMES (about 2 s of work, so the two calls surely overlap).
CHILD = """
import sys, time
from pathlib import Path
from gsmoe.datasets import prepare_dataset
root, go, raw = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
start = time.monotonic()
prepare_dataset("tu", "ENZYMES", [raw], root)
print(f"done {start} {time.monotonic()}", flush=True)
"""


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file and folder below ``root``: any write shows up,
    including a file created and removed again (its folder's mtime changes)."""
    out = {".": (0, root.stat().st_mtime_ns)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return out


def test_two_processes_prepare_the_same_root(tmp_path: Path) -> None:
    root, go = tmp_path / "pyg" / "ENZYMES", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(go), str(MIRROR / "tu" / "ENZYMES.zip")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for child in children:  # both imported everything: they start preparing together
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        go.touch()
        outputs = [child.communicate(timeout=300) for child in children]
    finally:
        for child in children:
            child.kill()
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-3000:]
    # the calls really overlapped: the second began before the first returned
    (first_start, first_end), (second_start, _) = sorted(tuple(map(float, out.split()[1:3])) for out, _ in outputs)
    assert second_start < first_end
    assert sorted(p.name for p in root.iterdir()) == [".ENZYMES.lock", "ENZYMES"]  # no leftover build folder
    assert dataset_sizes(load_dataset("tu", "ENZYMES", root)) == ENZYMES_SIZES


@pytest.mark.parametrize(
    ("source", "name", "raw"),
    [
        ("planetoid", "Cora", lambda: sorted((MIRROR / "planetoid").glob("ind.cora.*"))),
        ("tu", "ENZYMES", lambda: [MIRROR / "tu" / "ENZYMES.zip"]),
    ],
)
def test_load_dataset_never_writes(tmp_path: Path, source: str, name: str, raw) -> None:
    root = tmp_path / name
    prepare_dataset(source, name, raw(), root)
    before = snapshot(root)
    time.sleep(0.01)  # a write now would get a different mtime
    for _ in range(2):
        dataset = load_dataset(source, name, root)
        dataset[0]
    assert snapshot(root) == before
    # PyG's bookkeeping files are optional for loading; without them nothing is re-created
    for extra in ("pre_transform.pt", "pre_filter.pt"):
        (root / name / "processed" / extra).unlink(missing_ok=True)
    before = snapshot(root)
    time.sleep(0.01)
    load_dataset(source, name, root)
    assert snapshot(root) == before


def test_load_of_a_half_prepared_folder_fails_without_writing(tmp_path: Path) -> None:
    """raw/ present but no processed data (a prepare killed before its rename cannot leave
    this, but a hand-copied folder can): loading refuses to process it."""
    root = tmp_path / "Cora"
    prepare_dataset("planetoid", "Cora", sorted((MIRROR / "planetoid").glob("ind.cora.*")), root)
    (root / "Cora" / "processed" / "data.pt").unlink()
    before = snapshot(root)
    with pytest.raises(FileNotFoundError, match=r"not prepared: .*data\.pt does not exist. Run the `prepare` rule"):
        load_dataset("planetoid", "Cora", root)
    assert snapshot(root) == before
