"""What the terminal says: a message for every job, the cause of a failed job, training progress.

Snakemake runs from the checkout, so it reads profiles/default (show-failed-logs), with
``--directory`` pointing at a temporary folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMOKE = REPO / "tests" / "workflow" / "config_smoke.yaml"
MIRROR = (REPO / ".." / "shared" / "datasets").resolve()
JOB_RE = re.compile(r"^Job (\d+): (.+)$", re.M)


def snakemake(workdir: Path, *args: str, expect_ok: bool = True) -> str:
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--directory", str(workdir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == expect_ok, out[-6000:]
    return out


def job_total(out: str) -> int:
    return int(re.search(r"^total\s+(\d+)$", out, re.M).group(1))


def test_dry_run_prints_one_message_per_job_and_no_rule_blocks(tmp_path: Path) -> None:
    out = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config.yaml"))
    messages = dict(JOB_RE.findall(out))
    assert len(messages) == job_total(out) > 80  # the full grid: 270 runs in 54 train jobs, and the rest
    assert "Shell command" not in out
    assert not re.search(r"^(local)?rule \w+:$", out, re.M), "a job without a message printed its rule block"
    assert "train Cora moe16 seeds 0-4, 300 epochs; log logs/train/Cora/moe16/seeds0-4.log" in messages.values()
    assert (
        "download planetoid/ind.cora.x from https://github.com/kimiyoung/planetoid/raw/master/data/ind.cora.x, "
        "checksum-verified" in messages.values()
    )
    assert "roles PubMed: GraphRole, 4 roles per node, 1 worker(s); log logs/roles/PubMed.log" in messages.values()
    assert "aggregate 270 run records -> results/runs.csv, results/summary.csv" in messages.values()


def test_one_seed_per_job_message_names_the_seed(tmp_path: Path) -> None:
    out = snakemake(
        tmp_path, "-n", "results/runs/Cora/moe8/seed3.json", "--configfile", str(REPO / "config.yaml"), "--config", "seeds_per_job=1"
    )
    assert "train Cora moe8 seed 3, 300 epochs; log logs/train/Cora/moe8/seed3.log" in dict(JOB_RE.findall(out)).values()


def test_unreachable_source_says_the_cause_and_shows_the_log(tmp_path: Path) -> None:
    """No network (here: a closed local port) and no mirror: the terminal shows the job,
    the cause with the `mirror:` fix, and the failed job's log, on every try."""
    config = tmp_path / "offline.yaml"  # config.yaml, without the mirror, one source unreachable
    config.write_text(yaml.safe_dump({"base": "config.yaml", "sources": {"planetoid": {"url": "http://127.0.0.1:9/planetoid"}}}))
    out = snakemake(tmp_path / "work", "resources/raw/planetoid/ind.cora.x", "--configfile", str(config), expect_ok=False)
    url = "http://127.0.0.1:9/planetoid/ind.cora.x"
    tries = [m for m in JOB_RE.findall(out) if m[1] == f"download planetoid/ind.cora.x from {url}, checksum-verified"]
    assert tries, out[-4000:]
    assert f"download failed: downloading {url} failed:" in out
    assert "No network here? Set `mirror:` in the config" in out
    assert "Logfile logs/download/planetoid/ind.cora.x.log:" in out  # show-failed-logs
    # the cause reaches the terminal from the job itself and again in the shown log
    assert out.count("download failed: ") == 2 * len(tries)
    assert "Traceback" not in out


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"local mirror {MIRROR} not present")
def test_training_prints_a_line_per_finished_run(tmp_path: Path) -> None:
    out = snakemake(tmp_path, "results/runs/Cora/baseline/seed0.json", "--configfile", str(SMOKE))
    assert "train Cora baseline seeds 0-1, 3 epochs; log logs/train/Cora/baseline/seeds0-1.log" in dict(JOB_RE.findall(out)).values()
    for seed in (0, 1):
        assert re.search(
            rf"^\[Cora/baseline/seed{seed}\] done in \d+\.\ds: paper protocol 0\.\d{{4}} \(last evaluation\), "
            r"standard protocol 0\.\d{4} \(test at best validation\)$",
            out,
            re.M,
        ), out[-4000:]
