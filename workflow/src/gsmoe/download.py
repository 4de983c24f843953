"""Fetch one raw data file from its canonical URL or a local mirror, verified and atomic.

Every raw file the pipeline reads passes through :func:`fetch`, so a result can be traced
to bytes with a known SHA-256.  The file is written to a temporary name next to ``dest``
and renamed only after verification: a truncated or corrupt transfer never lands at
``dest``, where a rerun (or Snakemake) would trust it.

Two kinds of checksum exist because the local mirror's ``ENZYMES.zip`` is a rebuilt
archive: its inner files are byte-identical to the canonical ones, the zip bytes are not.
``members`` therefore verifies the inner files of a zip, which holds for both the canonical
and the mirror archive, while ``sha256`` verifies a whole file.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO

from gsmoe.io import atomic_path

__all__ = ["DEADLINE_S", "ChecksumError", "DownloadError", "fetch", "resolve_source", "sha256_file", "verify_raw_file"]

_CHUNK = 1 << 20
_URL_SCHEMES = ("http", "https", "file")
#: Longest wait for one network read (connecting, the headers, each piece of the body).
_HTTP_TIMEOUT_S = 60
#: Longest time one file's download may take in all, however steadily bytes trickle in
#: (the largest raw file, PubMed's features, is a few MB).
DEADLINE_S = 1800.0


class ChecksumError(ValueError):
    """A fetched file (or a member of a fetched zip) does not have the expected SHA-256."""


class DownloadError(OSError):
    """A network transfer failed or ended early."""


def resolve_source(base: str, relpath: str) -> str:
    """Join a canonical base URL or a mirror (folder or URL) with a file's relative path.

    The mirror reproduces the layout below the canonical base URL, so the same relative
    path (``ind.cora.x``, ``ENZYMES.zip``) addresses a file in either place.
    """
    rel = PurePosixPath(relpath)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"relpath must be a relative path without '..', got {relpath!r}")
    if urllib.parse.urlsplit(base).scheme in _URL_SCHEMES:
        return f"{base.rstrip('/')}/{rel.as_posix()}"
    return str(Path(base) / rel)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (the PubMed features are several MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    source: str,
    dest: Path,
    sha256: str | None = None,
    members: dict[str, str] | None = None,
    *,
    deadline_s: float = DEADLINE_S,
) -> None:
    """Copy ``source`` to ``dest`` and verify it before it appears at ``dest``.

    Args:
        source: ``http(s)://`` or ``file://`` URL, or a plain local path (the mirror).
        dest: final path; its folder is created.
        sha256: expected hex SHA-256 of the whole file.
        members: for a zip archive, ``{inner path: expected hex SHA-256}``; each listed
            member must exist with that hash (unlisted extra members are allowed).
        deadline_s: an ``http(s)`` download that has not finished after this many
            seconds fails (a read waits at most ``min(60 s, deadline_s)``).

    With neither ``sha256`` nor ``members`` only the transfer is atomic: nothing is
    verified.

    Raises:
        ChecksumError: a hash differs (the message names the file, both hashes and the fix).
        FileNotFoundError: a local or ``file://`` source does not exist.
        DownloadError: a network error, a transfer shorter than announced, or one past
            its deadline.
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            _copy_source(source, out, deadline_s)
        if sha256 is not None:
            _check(f"{source} (for {dest})", sha256, sha256_file(tmp), _DOWNLOAD_FIX)
        if members:
            _check_members(f"{source} (for {dest})", tmp, members, _DOWNLOAD_FIX)


def verify_raw_file(path: str | Path, sha256: str | None, members: Mapping[str, str] | None) -> dict[str, object]:
    """Verify a raw file that was fetched earlier, again, and return its checksums
    (``{"sha256": <whole file>, "members": {<member>: <sha256>}}``, members as configured).

    What ``prepare`` calls before it reads a raw file: a file under ``resources/raw/``
    edited after its download is refused, with the fix (fetch it again).
    """
    actual = sha256_file(path)
    if sha256 is not None:
        _check(f"raw file {path}", sha256, actual, _CHANGED_FIX)
    return {"sha256": actual, "members": _check_members(f"raw file {path}", Path(path), members or {}, _CHANGED_FIX)}


def _copy_source(source: str, out: IO[bytes], deadline_s: float) -> None:
    """Stream ``source`` into ``out``; local paths and ``file://`` get a mirror-specific error."""
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ("http", "https"):
        _copy_url(source, out, deadline_s)
        return
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path)) if scheme == "file" else Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"raw data file {path} does not exist; check the `mirror:` setting in the "
            "config (it must point at a folder laid out like the canonical URLs, e.g. "
            "<mirror>/planetoid/ind.cora.x, <mirror>/tu/ENZYMES.zip), or unset it to "
            "download from the canonical URLs"
        )
    with open(path, "rb") as handle:
        shutil.copyfileobj(handle, out, _CHUNK)


_NO_NETWORK_HINT = (
    ". No network here? Set `mirror:` in the config to a local copy of the raw files; "
    "for the mirror at ../shared/datasets beside the checkout run "
    "`snakemake --cores all --configfile config.yaml tests/workflow/mirror.yaml`"
)


def _copy_url(url: str, out: IO[bytes], deadline_s: float) -> None:
    """Download ``url`` with progress lines on stderr; a short transfer is an error, and so
    is one still running after ``deadline_s``."""
    hint = _NO_NETWORK_HINT
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=min(_HTTP_TIMEOUT_S, deadline_s)) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            received = _stream(url, response, out, total, started, deadline_s)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"downloading {url} failed: HTTP {err.code} {err.reason}{hint}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"downloading {url} failed: {reason}{hint}") from err
    if total is not None and received != total:
        raise DownloadError(
            f"downloading {url} ended after {received} of {total} bytes; rerun to retry{hint}"
        )


def _stream(
    url: str, response: http.client.HTTPResponse, out: IO[bytes], total: int | None, started: float, deadline_s: float
) -> int:
    """Copy a response body, printing progress at most once a second; fail once
    ``deadline_s`` have passed since ``started`` (a ``time.monotonic()`` value).

    ``read1`` returns whatever has arrived (``read(n)`` would wait for all ``n`` bytes,
    however slowly they come), so the deadline is checked after every piece.
    """
    received = 0
    last = time.monotonic()
    size = f"{total} bytes" if total is not None else "? bytes"
    for chunk in iter(lambda: response.read1(_CHUNK), b""):
        out.write(chunk)
        received += len(chunk)
        now = time.monotonic()
        if now - started >= deadline_s:
            raise DownloadError(
                f"downloading {url} did not finish within its deadline of {deadline_s:g} s ({received} of "
                f"{size} after {now - started:.1f} s): the server is too slow or stalled; nothing was kept. "
                f"Rerun later, or use another source{_NO_NETWORK_HINT}"
            )
        if now - last >= 1.0:
            print(
                f"fetch {url}: {received} / {size} after {now - started:.0f} s (deadline {deadline_s:g} s)",
                file=sys.stderr,
                flush=True,
            )
            last = now
    print(f"fetch {url}: done, {received} bytes in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return received


_DOWNLOAD_FIX = (
    "If this was a download, it is corrupt or truncated: delete the file and rerun. "
    "If the source is a mirror known to hold a different but valid version of this "
    "file, set `checksum_overrides` in the config for it."
)
_CHANGED_FIX = (
    "The file changed after its download was verified: delete it and rerun, which fetches "
    "and verifies it again (or, for a known different but valid file, set "
    "`checksum_overrides` in the config for it)."
)


def _check(what: str, expected: str, actual: str, fix: str) -> None:
    """Raise :class:`ChecksumError` with both hashes and ``fix``."""
    if actual.lower() == expected.lower():
        return
    raise ChecksumError(f"SHA-256 mismatch for {what}: expected {expected.lower()}, got {actual}. {fix}")


def _check_members(what: str, archive: Path, members: Mapping[str, str], fix: str) -> dict[str, str]:
    """Verify listed zip members by content, so a rebuilt archive with identical files
    passes; return their SHA-256."""
    if not members:
        return {}
    actual: dict[str, str] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            missing = sorted(set(members) - names)
            if missing:
                raise ChecksumError(
                    f"zip {what} lacks member(s) {missing}; it holds {sorted(names)}. {fix}"
                )
            for name, expected in members.items():
                digest = hashlib.sha256()
                with zf.open(name) as handle:
                    for chunk in iter(lambda: handle.read(_CHUNK), b""):
                        digest.update(chunk)
                _check(f"member {name} of {what}", expected, digest.hexdigest(), fix)
                actual[name] = digest.hexdigest()
    except zipfile.BadZipFile as err:
        raise ChecksumError(f"{what} is not a valid zip archive ({err}); it is corrupt or truncated. {fix}") from err
    return actual
