"""A process SIGKILLed while writing an output leaves the previous file or none, never a part.

Every output of the pipeline goes through ``gsmoe.io.atomic_path`` (run records, roles,
CSVs, tables, figures, downloads; PyG folders are built in a temporary folder and renamed).
Here a child process is killed in the middle of the two writers that matter most: a run
record (``write_json``) and a download (``fetch``).  The killed writer may leave its hidden
temporary file (``.<name>.<random>.tmp``) beside the output; nothing reads those.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Response

from gsmoe.io import read_json, write_json

# Writes half of the JSON, flushes, says so, then hangs until killed.
WRITE_JSON_CHILD = """
import json, sys, time
import gsmoe.io
def half_then_hang(obj, handle, **kwargs):
    text = json.dumps(obj, **kwargs)
    handle.write(text[: len(text) // 2])
    handle.flush()
    print("half", flush=True)
    time.sleep(600)
gsmoe.io.json.dump = half_then_hang
gsmoe.io.write_json(sys.argv[1], {"metrics": {"paper": {"last": 0.9}}, "curve": list(range(10000))})
"""

FETCH_CHILD = """
import sys
from pathlib import Path
from gsmoe.download import fetch
fetch(sys.argv[1], Path(sys.argv[2]), sha256="0" * 64)
"""


def _kill_when(child: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert child.poll() is None, child.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)


def _others(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


@pytest.mark.parametrize("previous", [True, False], ids=["over-previous", "new-file"])
def test_sigkill_during_write_json(tmp_path: Path, previous: bool) -> None:
    out = tmp_path / "seed0.json"
    if previous:
        write_json(out, {"metrics": {"paper": {"last": 0.5}}})
    child = subprocess.Popen(
        [sys.executable, "-c", WRITE_JSON_CHILD, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _kill_when(child, lambda: child.stdout.readline().strip() == "half")
    if previous:
        assert read_json(out) == {"metrics": {"paper": {"last": 0.5}}}  # untouched
    else:
        assert not out.exists()
    leftovers = _others(tmp_path, out.name)
    assert len(leftovers) == 1 and leftovers[0].startswith(".seed0.json.") and leftovers[0].endswith(".tmp")


@pytest.fixture
def stalling_server(serve_http: Callable[[dict[str, Response]], str]) -> str:
    """A URL that announces 2 MiB, sends 1 MiB, then stalls (until the test ends)."""
    return serve_http({"/ind.cora.x": Response(b"x" * (1 << 20), length=2 << 20, stall=True)}) + "/ind.cora.x"


def test_sigkill_during_download(tmp_path: Path, stalling_server: str) -> None:
    """Killed with half the file received: nothing at the destination; the rerun fetches anew."""
    dest = tmp_path / "raw" / "planetoid" / "ind.cora.x"
    child = subprocess.Popen(
        [sys.executable, "-c", FETCH_CHILD, stalling_server, str(dest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def half_received() -> bool:
        return (
            any(p.stat().st_size >= 1 << 20 for p in dest.parent.glob(".ind.cora.x.*.tmp"))
            if dest.parent.exists()
            else False
        )

    _kill_when(child, half_received)
    assert not dest.exists()
    assert [p.name.startswith(".ind.cora.x.") for p in dest.parent.iterdir()] == [True]
