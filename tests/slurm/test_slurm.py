"""The SLURM profile on a real SLURM: tests/slurm/run_slurm_test.sh (minutes).

The script stands up a throw-away single-node SLURM (munged, slurmctld, slurmd) as root, runs
the smoke config through ``--workflow-profile profiles/slurm``, checks that every job ran
as a SLURM job and that the results equal a local run's, and stops what it started.  Where
it cannot stand up SLURM (not root, no apt-get, the install fails, a SLURM of the machine's
own) it exits 77 with ``SKIP: <reason>``, which becomes a pytest skip with that reason.
Deselected by default; run with ``pytest -m slurm`` (``make test`` includes it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "run_slurm_test.sh"
SKIPPED = 77

pytestmark = pytest.mark.slurm


def test_smoke_workflow_on_slurm():
    proc = subprocess.run(
        ["bash", str(SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=int(os.environ.get("GSMOE_SLURM_TIMEOUT", "1800")) * 2 + 300,
    )
    if proc.returncode == SKIPPED:
        reasons = [line for line in proc.stdout.splitlines() if line.startswith("SKIP: ")]
        pytest.skip(reasons[-1][len("SKIP: ") :] if reasons else "run_slurm_test.sh skipped")
    assert proc.returncode == 0, proc.stdout[-8000:]
    assert "PASS: every job ran in SLURM" in proc.stdout, proc.stdout[-8000:]
