"""Shared pytest fixtures, and the CI guard for the data mirror."""

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import torch
from helpers import Response, http_server

#: The local data mirror the end-to-end tests read (they skip where it is absent).
MIRROR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``GSMOE_REQUIRE_MIRROR=1`` (set by ``.ci/run``) a missing mirror is an error:
    otherwise every test that needs it skips and CI passes without an end-to-end run."""
    if os.environ.get("GSMOE_REQUIRE_MIRROR") == "1" and not MIRROR.is_dir():
        raise pytest.UsageError(
            f"GSMOE_REQUIRE_MIRROR=1 but there is no data mirror at {MIRROR}: the end-to-end "
            "tests would all skip; put the mirror there (see its README) or unset the variable"
        )


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests share a small machine: keep torch to one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def serve_http() -> Iterator[Callable[[Mapping[str, Response]], str]]:
    """``serve_http(routes)``: the base URL of a local HTTP server answering ``routes``
    (:class:`helpers.Response` per path, 404 elsewhere), stopped after the test."""
    with contextlib.ExitStack() as servers:
        yield lambda routes: servers.enter_context(http_server(routes))
