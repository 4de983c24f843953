"""fetch: checksum and zip-member verification, atomicity, mirror and network errors."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Response

from gsmoe.download import ChecksumError, DownloadError, fetch, resolve_source, sha256_file

MIRROR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
CORA_X_SHA = "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab"
PUBMED_ALLX_CANONICAL = "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e"
PUBMED_ALLX_MIRROR = "8894673ffbee796f2df41a3d919d67e1fed2ea3d6345cb8eb363b3238d0aeed6"
ENZYMES_MEMBERS = {
    "ENZYMES/ENZYMES_A.txt": "5553c84f8f562f3e199dfd27192174f485e85c44c1357661098668937a739cbf",
    "ENZYMES/ENZYMES_graph_indicator.txt": "95ba0fa47eba6f02e6b754a215dc66d5b49de3f45f57a128514301a8d7ed5f46",
    "ENZYMES/ENZYMES_graph_labels.txt": "04743e08967e61e65cdacbb90f8df6ee53742b3d2e7b84675b85ebac70506856",
    "ENZYMES/ENZYMES_node_attributes.txt": "305a8fc3b12f79fb844ef3374d6a3c8ceeb4887dd4f86bbfe37932c4c5434e7b",
    "ENZYMES/ENZYMES_node_labels.txt": "8263eb9b64efa231a5886343483ccfc0342f2407014763a8f738fd51c32ce770",
    "ENZYMES/README.txt": "32d5fef501200221a2c0e1af3366797fa443ab8f490231c5fb4a8719e1df48cf",
}

needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason="local dataset mirror not available")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- resolve_source ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://github.com/kimiyoung/planetoid/raw/master/data", "https://github.com/kimiyoung/planetoid/raw/master/data/ind.cora.x"),
        ("https://example.org/data/", "https://example.org/data/ind.cora.x"),
        ("file:///mirror/planetoid", "file:///mirror/planetoid/ind.cora.x"),
        ("/mirror/planetoid", "/mirror/planetoid/ind.cora.x"),
    ],
)
def test_resolve_source_joins(base: str, expected: str) -> None:
    assert resolve_source(base, "ind.cora.x") == expected


@pytest.mark.parametrize("relpath", ["/etc/passwd", "../x", ""])
def test_resolve_source_rejects_escaping_paths(relpath: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        resolve_source("/mirror", relpath)


# --- whole-file checksum -----------------------------------------------------------------


def test_fetch_local_ok(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello graph")
    dest = tmp_path / "out" / "dest.bin"
    fetch(str(src), dest, sha256=_sha(b"hello graph"))
    assert dest.read_bytes() == b"hello graph"
    assert _leftovers(dest.parent) == ["dest.bin"]


def test_fetch_file_url_ok(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    dest = tmp_path / "dest.bin"
    fetch(src.as_uri(), dest, sha256=_sha(b"abc").upper())
    assert dest.read_bytes() == b"abc"


def test_wrong_checksum_message_and_no_dest(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"truncat")  # a truncated copy of b"truncated"
    dest = tmp_path / "out" / "dest.bin"
    expected = _sha(b"truncated")
    with pytest.raises(ChecksumError) as info:
        fetch(str(src), dest, sha256=expected)
    msg = str(info.value)
    assert str(src) in msg and expected in msg and _sha(b"truncat") in msg
    assert "delete" in msg and "checksum_overrides" in msg
    assert isinstance(info.value, ValueError)
    assert _leftovers(dest.parent) == []


def test_wrong_checksum_keeps_previous_dest(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"new")
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"old, verified")
    with pytest.raises(ChecksumError):
        fetch(str(src), dest, sha256=_sha(b"something else"))
    assert dest.read_bytes() == b"old, verified"


def test_missing_mirror_file_message(tmp_path: Path) -> None:
    missing = tmp_path / "mirror" / "planetoid" / "ind.cora.x"
    with pytest.raises(FileNotFoundError, match="mirror:") as info:
        fetch(str(missing), tmp_path / "dest")
    assert str(missing) in str(info.value)
    with pytest.raises(FileNotFoundError, match="mirror:"):
        fetch(missing.as_uri(), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


@needs_mirror
def test_mirror_file_and_override(tmp_path: Path) -> None:
    fetch(str(MIRROR / "planetoid" / "ind.cora.x"), tmp_path / "ind.cora.x", sha256=CORA_X_SHA)
    assert sha256_file(tmp_path / "ind.cora.x") == CORA_X_SHA
    # The mirror's PubMed allx is a documented reconstruction: the canonical checksum
    # must refuse it, the explicit override must accept it.
    src = str(MIRROR / "planetoid" / "ind.pubmed.allx")
    with pytest.raises(ChecksumError, match=PUBMED_ALLX_MIRROR):
        fetch(src, tmp_path / "allx", sha256=PUBMED_ALLX_CANONICAL)
    assert not (tmp_path / "allx").exists()
    fetch(src, tmp_path / "allx", sha256=PUBMED_ALLX_MIRROR)
    assert (tmp_path / "allx").stat().st_size == (MIRROR / "planetoid" / "ind.pubmed.allx").stat().st_size


# --- zip members -------------------------------------------------------------------------


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_zip_members_ok_with_extra_member(tmp_path: Path) -> None:
    src = _zip(tmp_path / "a.zip", {"D/a.txt": b"1 2\n", "D/b.txt": b"3\n", "D/extra.txt": b"x"})
    dest = tmp_path / "out" / "a.zip"
    fetch(str(src), dest, members={"D/a.txt": _sha(b"1 2\n"), "D/b.txt": _sha(b"3\n")})
    assert dest.read_bytes() == src.read_bytes()


def test_zip_tampered_member(tmp_path: Path) -> None:
    src = _zip(tmp_path / "a.zip", {"D/a.txt": b"1 2\n", "D/b.txt": b"tampered\n"})
    dest = tmp_path / "out" / "a.zip"
    with pytest.raises(ChecksumError, match="D/b.txt") as info:
        fetch(str(src), dest, members={"D/a.txt": _sha(b"1 2\n"), "D/b.txt": _sha(b"3\n")})
    assert _sha(b"3\n") in str(info.value) and _sha(b"tampered\n") in str(info.value)
    assert _leftovers(dest.parent) == []


def test_zip_missing_member(tmp_path: Path) -> None:
    src = _zip(tmp_path / "a.zip", {"D/a.txt": b"1"})
    with pytest.raises(ChecksumError, match="lacks member"):
        fetch(str(src), tmp_path / "out.zip", members={"D/a.txt": _sha(b"1"), "D/b.txt": _sha(b"2")})
    assert not (tmp_path / "out.zip").exists()


def test_zip_truncated_archive(tmp_path: Path) -> None:
    full = _zip(tmp_path / "a.zip", {"D/a.txt": b"1" * 1000})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(full.read_bytes()[:50])
    with pytest.raises(ChecksumError, match="not a valid zip"):
        fetch(str(cut), tmp_path / "out.zip", members={"D/a.txt": _sha(b"1" * 1000)})
    assert not (tmp_path / "out.zip").exists()


@needs_mirror
def test_mirror_enzymes_members(tmp_path: Path) -> None:
    dest = tmp_path / "ENZYMES.zip"
    fetch(str(MIRROR / "tu" / "ENZYMES.zip"), dest, members=ENZYMES_MEMBERS)
    assert dest.is_file()


# --- HTTP --------------------------------------------------------------------------------


#: /ok serves b"0123456789"; /short announces 10 bytes but sends 4.
ROUTES = {"/ok": Response(b"0123456789"), "/short": Response(b"0123", length=10)}


@pytest.fixture
def server(serve_http: Callable[[dict[str, Response]], str]) -> str:
    return serve_http(ROUTES)


def test_http_ok(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "d"
    fetch(resolve_source(server, "ok"), dest, sha256=_sha(b"0123456789"))
    assert dest.read_bytes() == b"0123456789"


def test_http_short_transfer_leaves_nothing(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="mirror:") as info:
        fetch(f"{server}/short", tmp_path / "d")
    assert f"{server}/short" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_http_404_names_url_and_mirror(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404") as info:
        fetch(f"{server}/missing", tmp_path / "d")
    assert f"{server}/missing" in str(info.value) and "mirror:" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_unreachable_host_names_url(tmp_path: Path) -> None:
    # Port 9 on localhost (discard) is closed on any sane test machine: connection refused.
    with pytest.raises(DownloadError, match="mirror:") as info:
        fetch("http://127.0.0.1:9/x.zip", tmp_path / "d")
    assert "http://127.0.0.1:9/x.zip" in str(info.value)
