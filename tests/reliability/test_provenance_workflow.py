"""The provenance guarantees seen through Snakemake, whatever its metadata says (slow).

Each test runs Snakemake with ``--directory <tmp>`` on a shortened copy of
tests/reliability/config_tiny.yaml (3 epochs): config drift hidden by
``--rerun-triggers`` or by a deleted ``.snakemake/``; a package edit; a raw file edited
after its download; a truncated prepared dataset; Snakemake SIGKILLed under a training job.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from test_workflow_faults import BIN, MIRROR, REPO, _session_processes, needs_mirror, ok, run_paths, snakemake, tiny_config

pytestmark = [pytest.mark.slow, needs_mirror]
TRIGGERS_WITHOUT_PARAMS = ["--rerun-triggers", "mtime", "input", "code", "software-env"]
RECORD = "results/runs/Cora/baseline/seed0.json"


def short(seeds: list[int], **moe4_training: Any):
    def change(cfg: dict[str, Any]) -> None:
        cfg["mirror"] = str(MIRROR)
        cfg["seeds"] = seeds
        cfg["datasets"]["Cora"]["training"].update(epochs=3, eval_every=1)
        if moe4_training:
            cfg["experiments"]["moe4"]["training"] = moe4_training

    return change


def test_config_drift_fails_aggregation_with_any_rerun_triggers_or_no_metadata(tmp_path: Path) -> None:
    """moe4's lr changed and a seed added, run with --rerun-triggers that ignore params:
    Snakemake trains only the new seed, and aggregation refuses the old moe4 record
    (naming it and lr old -> new) instead of averaging lr 0.01 and 0.05; the same without
    .snakemake/.  Retraining the named record is the fix."""
    work = tmp_path / "work"
    ok(snakemake(work, tiny_config(tmp_path / "before.yaml", short([0])), "tables"))
    changed = tiny_config(tmp_path / "after.yaml", short([0, 1], lr=0.05))

    proc = snakemake(work, changed, "tables", *TRIGGERS_WITHOUT_PARAMS)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    # A job's rule block is replaced by its message; its reason names the missing record.
    trained = {
        path.strip(",")
        for line in out.splitlines()
        if line.startswith("Reason: Missing output files: results/runs/")
        for path in line.removeprefix("Reason: Missing output files: ").split()
    }
    assert trained == {"results/runs/Cora/baseline/seed1.json", "results/runs/Cora/moe4/seed1.json"}, out[-6000:]
    log = (work / "logs" / "aggregate" / "aggregate.log").read_text()
    assert "1 run record(s) do not match the run they stand for; nothing was aggregated:" in log, log[-3000:]
    assert "results/runs/Cora/moe4/seed0.json: config: training.lr: 0.01 -> 0.05" in log
    assert "Fix (config): " in log
    assert not (work / "results" / "summary.csv").exists()

    shutil.rmtree(work / ".snakemake")  # results copied elsewhere, or metadata lost
    (work / "logs" / "aggregate" / "aggregate.log").unlink()
    proc = snakemake(work, changed, "tables")
    assert proc.returncode != 0
    assert "results/runs/Cora/moe4/seed0.json: config: training.lr: 0.01 -> 0.05" in (
        work / "logs" / "aggregate" / "aggregate.log"
    ).read_text()

    (work / "results/runs/Cora/moe4/seed0.json").unlink()  # the fix the message names
    assert "--forcerun aggregate" in (work / "logs" / "aggregate" / "aggregate.log").read_text()
    ok(snakemake(work, changed, "tables", "--forcerun", "aggregate"))
    assert len(pd.read_csv(work / "results" / "runs.csv")) == 4


def _checkout_copy(tmp_path: Path) -> Path:
    """The workflow and package in a folder of their own, free to edit."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("Snakefile", "envs", "profiles", "workflow"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, copy / name)
    return copy


def _planned(proc: subprocess.CompletedProcess[str]) -> str:
    out = ok(proc)
    return "nothing" if "Nothing to be done" in out else out


def test_package_edit_reruns_training_unless_accepted(tmp_path: Path) -> None:
    copy = _checkout_copy(tmp_path)
    config = tiny_config(tmp_path / "config.yaml", short([0]))
    work = tmp_path / "work"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "snakemake"), *args, "--cores", "1", "-s", str(copy / "Snakefile"), "--directory", str(work),
             "--configfile", str(config)],
            capture_output=True, text=True, timeout=900,
        )

    ok(run(RECORD))
    assert _planned(run(RECORD, "-n")) == "nothing"
    report = copy / "workflow" / "src" / "gsmoe" / "report" / "tables.py"
    report.write_text(report.read_text() + "\n# reading records changes no record\n")
    assert _planned(run(RECORD, "-n")) == "nothing"

    gates = copy / "workflow" / "src" / "gsmoe" / "nn" / "gates.py"
    gates.write_text(gates.read_text() + "\n# an edit of the training code\n")
    plan = _planned(run(RECORD, "-n", "--rerun-triggers", "mtime"))
    # each job is shown by its message (workflow/rules/train.smk), then its reason
    train_job = "train Cora baseline seed 0, 3 epochs"
    assert train_job in plan and "Reason: Updated input files: results/code_fingerprint.txt" in plan, plan[-3000:]
    shutil.rmtree(work / ".snakemake")
    assert train_job in _planned(run(RECORD, "-n"))  # without metadata too

    # the documented opt-out for a change known not to matter
    env = {**os.environ, "PYTHONPATH": str(copy / "workflow" / "src")}
    accepted = subprocess.run(
        [sys.executable, "-m", "gsmoe", "accept-code", "--file", str(work / "results" / "code_fingerprint.txt")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert accepted.returncode == 0, accepted.stderr
    assert _planned(run(RECORD, "-n")) == "nothing"


def test_edited_raw_file_and_truncated_prepared_data_fail_clearly(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "config.yaml", short([0]))
    work = tmp_path / "work"
    prepared = "resources/pyg/Cora/Cora/processed/data.pt"
    ok(snakemake(work, config, prepared))

    raw = work / "resources" / "raw" / "planetoid" / "ind.cora.x"
    with open(raw, "ab") as handle:  # edited after its verified download
        handle.write(b"\n")
    proc = snakemake(work, config, prepared, "--show-failed-logs")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    assert "SHA-256 mismatch for raw file resources/raw/planetoid/ind.cora.x: expected 23cfa55d" in out, out[-6000:]
    assert "changed after its download was verified" in out
    raw.unlink()  # the fix the message names: fetch it again
    ok(snakemake(work, config, prepared))

    data = (work / prepared).read_bytes()
    (work / prepared).write_bytes(data[: len(data) // 3])
    proc = snakemake(work, config, RECORD)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    assert f"prepared dataset {prepared} is damaged (it has {len(data) // 3} bytes, prepare wrote {len(data)}" in out
    assert f"delete {prepared} and rerun the `prepare` rule" in out
    # failed before any job (a job would print its message, "train Cora ..."): no retry
    assert "train Cora" not in out and "Error in rule" not in out
    (work / prepared).unlink()
    ok(snakemake(work, config, RECORD))


def test_training_job_dies_with_its_sigkilled_snakemake(tmp_path: Path) -> None:
    """SIGKILL to Snakemake only (not its process group): the training job stops and
    writes no record."""

    def change(cfg: dict[str, Any]) -> None:
        short([0])(cfg)
        cfg["datasets"]["Cora"]["training"].update(epochs=10**6, eval_every=10)

    config = tiny_config(tmp_path / "config.yaml", change)
    work = tmp_path / "work"
    with open(tmp_path / "snakemake.out", "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "snakemake"), RECORD, "--cores", "1", "--directory", str(work), "--configfile", str(config)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    log = work / "logs" / "train" / "Cora" / "baseline" / "seed0.log"
    try:
        deadline = time.monotonic() + 600
        while not (log.exists() and "epoch" in log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "snakemake.out").read_text()[-4000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # Snakemake alone, as the OOM killer would
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _session_processes(proc.pid), [p.cmdline() for p in _session_processes(proc.pid)]
    finally:
        for orphan in _session_processes(proc.pid):
            orphan.kill()
    assert run_paths(work) == []
