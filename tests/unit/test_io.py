"""gsmoe.io: permissions of atomically written files, errors naming an unreadable JSON file."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gsmoe.io import read_json, write_json

# The umask is read once, at import, so each case runs in a fresh process started with it.
WRITE_CHILD = """
import builtins, sys
import gsmoe.io
gsmoe.io.write_json(sys.argv[1], {"a": 1})
real_open = builtins.open
def no_proc(file, *args, **kwargs):
    if file == "/proc/self/status":
        raise OSError("no /proc here")
    return real_open(file, *args, **kwargs)
builtins.open = no_proc
print(oct(gsmoe.io._process_umask()))  # the fallback without /proc
"""


@pytest.mark.parametrize(
    ("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)], ids=["022", "002", "077"]
)
def test_atomic_write_mode_follows_umask(tmp_path: Path, umask: int, mode: int) -> None:
    out = tmp_path / "record.json"
    child = subprocess.run(
        [sys.executable, "-c", WRITE_CHILD, str(out)], umask=umask, capture_output=True, text=True, check=True
    )
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert json.loads(out.read_text()) == {"a": 1}
    assert child.stdout.strip() == oct(umask)


@pytest.mark.parametrize(
    "content", [b'{"metrics": {"paper": {"la', b"", b"\x89PNG\r\n\x1a\n\xff\xfe"], ids=["truncated", "empty", "binary"]
)
def test_read_json_of_a_corrupt_file_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "Cora" / "baseline" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"seed0\.json: not valid JSON .*delete it and rerun") as info:
        read_json(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)  # JSONDecodeError or UnicodeDecodeError, chained


def test_read_json_roundtrip(tmp_path: Path) -> None:
    write_json(tmp_path / "x.json", {"a": [1, 2.5, None]})
    assert read_json(tmp_path / "x.json") == {"a": [1, 2.5, None]}
