"""End-to-end smoke run of the workflow on tests/workflow/config_smoke.yaml (slow: minutes).

Every experiment on Cora and ENZYMES, 2 seeds, 3 epochs, raw data from the local mirror,
in a temporary working directory (``--directory``), then the HTML report.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMOKE = REPO / "tests" / "workflow" / "config_smoke.yaml"
MIRROR = (REPO / ".." / "shared" / "datasets").resolve()

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "--directory", str(workdir), *args, "--configfile", str(SMOKE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"local mirror {MIRROR} not present")
def test_smoke_run(tmp_path):
    snakemake(tmp_path)
    runs = sorted((tmp_path / "results" / "runs").glob("*/*/seed*.json"))
    assert len(runs) == 9 * 2 * 2
    record = json.loads(runs[0].read_text())
    assert record["config"]["training"]["epochs"] == 3
    assert len(record["curves"]["epoch"]) == 3
    with open(tmp_path / "results" / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert {(row["dataset"], row["experiment"]) for row in summary} >= {
        (d, e) for d in ("Cora", "ENZYMES") for e in ("baseline", "topk128", "roles_mp")
    }
    tables = tmp_path / "results" / "tables"
    for i in range(1, 6):
        text = (tables / f"table{i}.tex").read_text()
        assert "Cora" in text and "ENZYMES" in text and "PubMed" not in text
    assert (tables / "tables.tex").is_file()
    for fig in ("figure2", "figure3"):
        for ext in ("pdf", "png"):
            assert (tmp_path / "results" / "figures" / f"{fig}.{ext}").stat().st_size > 0
    # every job wrote its log and benchmark
    assert len(list((tmp_path / "logs" / "train").rglob("*.log"))) == 9 * 2
    assert len(list((tmp_path / "benchmarks" / "train").rglob("*.tsv"))) == 9 * 2
    # nothing left to do, and the report renders
    assert "Nothing to be done" in snakemake(tmp_path, "-n")
    snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 0
