"""gsmoe.console.announce: a line for the job's log and for Snakemake's terminal."""

from __future__ import annotations

import io
import sys

import pytest

from gsmoe.console import announce


def test_announce_reaches_the_log_and_the_original_stderr(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a rule script: sys.stderr is the job's log; the terminal is still sys.__stderr__."""
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    announce("[Cora/moe8/seed3] done")
    assert log.getvalue() == "[Cora/moe8/seed3] done\n"
    assert capfd.readouterr().err == "[Cora/moe8/seed3] done\n"


def test_announce_prints_once_when_stderr_is_the_terminal(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    announce("one line")
    assert capfd.readouterr().err == "one line\n"
