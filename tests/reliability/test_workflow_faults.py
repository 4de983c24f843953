"""Faults seen through the workflow: bad config, bad mirror, a killed run, a diverged run.

Every Snakemake call runs with ``--directory <tmp>`` on tests/reliability/config_tiny.yaml
(Cora only, 2 experiments x 2 seeds) or a changed copy of it, so nothing in the checkout's
results/, resources/, logs/ or .snakemake/ is read, written or locked.  The bad-config
tests are dry runs (seconds); the others train and are marked slow.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import yaml

from gsmoe.config import load_config, run_table
from gsmoe.report.aggregate import IncompleteRunsError, aggregate_runs, load_runs

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = REPO / "tests" / "reliability" / "config_tiny.yaml"
MIRROR = (REPO / ".." / "shared" / "datasets").resolve()
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"local mirror {MIRROR} not present")
RUN_RE = re.compile(r"results/runs/(\w+)/(\w+)/seed(\d+)\.json")


def tiny_config(path: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write tests/reliability/config_tiny.yaml, changed by ``change``, to ``path``."""
    cfg = yaml.safe_load(TINY.read_text())
    if change is not None:
        change(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(workdir: Path, config: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """``snakemake <args> --cores 1 --directory <workdir> --configfile <config>`` (not checked)."""
    return subprocess.run(
        [str(BIN / "snakemake"), *args, "--cores", "1", "--directory", str(workdir), "--configfile", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def files_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def run_paths(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "runs").glob("*/*/seed*.json"))


# ----------------------------------------------------------------------------- bad config


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(cfg: dict[str, Any]) -> None:
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value

    return change


def _add_enzymes(**split: Any) -> Callable[[dict[str, Any]], None]:
    """Add config.yaml's ENZYMES (a graph dataset, which has splits) with ``split``."""

    def change(cfg: dict[str, Any]) -> None:
        shipped = yaml.safe_load((REPO / "config.yaml").read_text())
        cfg["sources"]["tu"] = shipped["sources"]["tu"]
        cfg["datasets"]["ENZYMES"] = {**shipped["datasets"]["ENZYMES"], "split": split}

    return change


BAD_CONFIGS = {
    "unknown-key": (
        _set("experiments", "moe4", "model", "topk", value=2),
        "config: experiments.moe4.model: unknown key 'topk' (misspelt?)",
    ),
    "wrong-type": (
        _set("datasets", "Cora", "training", "epochs", value="many"),
        "config: datasets.Cora.training.epochs: expected integer, got str 'many'",
    ),
    "top-k-above-experts": (
        _set(
            "experiments",
            "moe4",
            "model",
            value={"placement": "aggregate", "gate": "noisy_topk", "num_experts": 4, "top_k": 5},
        ),
        "config: experiments.moe4.model.top_k (5) must be <= num_experts (4)",
    ),
    "unknown-gate": (
        _set("experiments", "moe4", "model", "gate", value="sparse"),
        "config: experiments.moe4.model.gate: 'sparse' is not one of 'none', 'roles'",
    ),
    "unknown-dataset": (
        _set("experiments", "moe4", "datasets", value=["Pubmed"]),
        "config: experiments.moe4.datasets names unknown dataset 'Pubmed' (known: Cora)",
    ),
    "empty-seeds": (_set("seeds", value=[]), "config: seeds is empty; give at least one"),
    "negative-epochs": (
        _set("experiments", "moe4", "training", value={"epochs": -3}),
        "config: experiments.moe4.training.epochs (-3) must be >= 1",
    ),
    # valid for the schema, meaningless as results (gsmoe.config.check_meaningful_values)
    "eval-every-above-epochs": (
        _set("experiments", "moe4", "training", value={"eval_every": 500}),
        "config: experiments.moe4.training.eval_every (500) must be smaller than epochs (400): only epoch 0",
    ),
    "seed-beyond-numpy": (
        _set("seeds", value=[0, 2**32]),
        "config: seeds[1] (4294967296) is outside the range numpy's seed accepts (0 .. 4294967295)",
    ),
    "empty-test-split": (
        _add_enzymes(standard=[0.8, 0.1999999, 1e-7]),
        "config: datasets.ENZYMES.split.standard[2] (1e-07) leaves the test part empty",
    ),
}


# A real (not dry) run too for one schema error and one semantic error: the dry run of every
# case shows the message, these show that no job starts either.
REAL_RUN = {"unknown-key", "top-k-above-experts"}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_rejected_before_any_job(tmp_path: Path, case: str) -> None:
    """``snakemake -n`` (and a real run) fails while parsing, naming the key; nothing is created."""
    change, message = BAD_CONFIGS[case]
    config = tiny_config(tmp_path / "bad.yaml", change)
    workdir = tmp_path / "work"
    workdir.mkdir()
    for args in (["-n"], ["tables"]) if case in REAL_RUN else (["-n"],):
        proc = snakemake(workdir, config, *args, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert message in out, out[-3000:]
        assert "Job stats" not in out and not re.search(r"^Job \d+: ", out, re.M), out[-3000:]  # no job was scheduled
    # no job ran: no output, log or benchmark folder, and no job metadata
    assert sorted(p.name for p in workdir.iterdir()) in ([], [".snakemake"])
    assert files_below(workdir / ".snakemake" / "metadata") == []


# ----------------------------------------------------------------------- bad mirror files


@pytest.mark.slow
@needs_mirror
def test_corrupt_truncated_and_missing_mirror_files(tmp_path: Path) -> None:
    """A mirror with one corrupted, one truncated and one missing Cora file: the download
    jobs of those fail naming the file, the expected and the actual checksum (or the
    missing path and the `mirror:` fix); nothing lands at resources/raw/<file>; nothing
    downstream runs.  After the mirror is fixed a rerun fetches them."""
    mirror = tmp_path / "mirror" / "planetoid"
    mirror.mkdir(parents=True)
    for original in sorted((MIRROR / "planetoid").glob("ind.cora.*")):
        (mirror / original.name).symlink_to(original)
    corrupt, truncated, missing = mirror / "ind.cora.x", mirror / "ind.cora.tx", mirror / "ind.cora.y"
    data = bytearray((MIRROR / "planetoid" / "ind.cora.x").read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.unlink()
    corrupt.write_bytes(bytes(data))
    truncated.unlink()
    truncated.write_bytes((MIRROR / "planetoid" / "ind.cora.tx").read_bytes()[:1000])
    missing.unlink()

    config = tiny_config(tmp_path / "config.yaml", _set("mirror", value=str(mirror.parent)))
    expected = {f["relpath"]: f["sha256"] for f in yaml.safe_load(TINY.read_text())["datasets"]["Cora"]["files"]}
    workdir = tmp_path / "work"
    proc = snakemake(workdir, config, "tables", "--keep-going", "--show-failed-logs")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]

    for bad in (corrupt, truncated):
        actual = hashlib.sha256(bad.read_bytes()).hexdigest()
        assert (
            f"SHA-256 mismatch for {bad} (for resources/raw/planetoid/{bad.name}): "
            f"expected {expected[bad.name]}, got {actual}. " in out
        ), out[-6000:]
        assert f"logs/download/planetoid/{bad.name}.log" in out
    assert "delete the file and rerun" in out and "checksum_overrides" in out
    assert f"raw data file {missing} does not exist; check the `mirror:` setting" in out
    # the good files were fetched; the bad ones left nothing (no temporary file either)
    good = sorted(set(expected) - {"ind.cora.x", "ind.cora.tx", "ind.cora.y"})
    assert files_below(workdir / "resources") == [f"raw/planetoid/{name}" for name in good]
    assert files_below(workdir / "results") == ["code_fingerprint.txt"]  # written while parsing; no job

    # the fix named in the message: put the right files in the mirror, rerun
    for bad in (corrupt, truncated, missing):
        bad.unlink(missing_ok=True)
        bad.symlink_to(MIRROR / "planetoid" / bad.name)
    targets = [f"resources/raw/planetoid/{name}" for name in ("ind.cora.x", "ind.cora.tx", "ind.cora.y")]
    ok(snakemake(workdir, config, *targets))
    for target in targets:
        assert hashlib.sha256((workdir / target).read_bytes()).hexdigest() == expected[Path(target).name]


# ------------------------------------------------------------------------ killed training


def _session_processes(sid: int) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def _start_and_kill_mid_training(workdir: Path, config: Path, out_path: Path) -> tuple[set[str], set[str]]:
    """Start ``snakemake tables``; once one run is done and another is training, SIGKILL
    Snakemake's whole process group.  Returns (finished runs, the runs being trained)."""
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "snakemake"),
                "tables",
                "--cores",
                "1",
                "--directory",
                str(workdir),
                "--configfile",
                str(config),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sid = proc.pid
    try:
        deadline = time.monotonic() + 600
        while True:
            done = {str(p.relative_to(workdir)) for p in run_paths(workdir)}
            training = set()
            for log in (workdir / "logs" / "train").glob("*/*/seed*.log"):
                run = "results/runs/" + str(log.relative_to(workdir / "logs" / "train").with_suffix(".json"))
                if run not in done and "epoch" in log.read_text():
                    training.add(run)
            if done and training:
                break
            assert proc.poll() is None, "snakemake ended before it could be killed:\n" + out_path.read_text()[-4000:]
            assert time.monotonic() < deadline, out_path.read_text()[-4000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _session_processes(sid) and time.monotonic() < deadline:  # the job dies with it
            time.sleep(0.1)
        assert not _session_processes(sid), [p.cmdline() for p in _session_processes(sid)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return done, training


@pytest.mark.slow
@needs_mirror
def test_sigkill_mid_training_then_rerun_incomplete_equals_uninterrupted(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "config.yaml")
    cfg = load_config(config, base_dir=REPO)
    all_runs = {f"results/runs/{r['dataset']}/{r['experiment']}/seed{r['seed']}.json" for r in run_table(cfg)}
    assert len(all_runs) == 4

    killed = tmp_path / "killed"
    done, training = _start_and_kill_mid_training(killed, config, tmp_path / "killed.out")

    # no output looks complete unless it is: every record on disk parses and validates,
    # the killed run has none, nothing was aggregated
    on_disk = {str(p.relative_to(killed)) for p in run_paths(killed)}
    assert on_disk == done and not (on_disk & training)
    assert len(load_runs(run_paths(killed))) == len(on_disk)
    leftovers = [f for f in files_below(killed / "results") if f"results/{f}" not in on_disk]
    leftovers.remove("code_fingerprint.txt")  # written while parsing the workflow
    assert all(re.fullmatch(r"runs/\w+/\w+/\.seed\d+\.json\.\w+\.tmp", f) for f in leftovers), leftovers
    assert not (killed / "results" / "runs.csv").exists()
    stamps = {run: (killed / run).stat().st_mtime_ns for run in on_disk}

    # Snakemake plans exactly the missing runs (and the aggregation)
    dry = ok(snakemake(killed, config, "tables", "-n"))
    # each planned job's missing outputs (its `message:` replaces Snakemake's `output:` line)
    outputs = "\n".join(
        line.split(";", 1)[0] for line in dry.splitlines() if line.startswith("Reason: Missing output files:")
    )
    planned = {f"results/runs/{d}/{e}/seed{s}.json" for d, e, s in RUN_RE.findall(outputs)}
    assert planned == all_runs - on_disk

    # the kill left Snakemake's lock: the documented recovery is --unlock, then --rerun-incomplete
    locked = snakemake(killed, config, "tables", "--rerun-incomplete")
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    ok(snakemake(killed, config, "--unlock"))
    rerun = ok(snakemake(killed, config, "tables", "--rerun-incomplete"))
    assert re.search(r"^train\s+" + str(len(all_runs - on_disk)) + r"$", rerun, re.M), rerun[-4000:]
    assert {run: (killed / run).stat().st_mtime_ns for run in on_disk} == stamps  # finished runs kept
    assert {str(p.relative_to(killed)) for p in run_paths(killed)} == all_runs

    # an uninterrupted run elsewhere gives the same tables and metrics
    clean = tmp_path / "clean"
    ok(snakemake(clean, config, "tables"))
    tables = files_below(clean / "results" / "tables")
    assert tables == files_below(killed / "results" / "tables") and "table1.tex" in tables
    for name in tables:
        assert (killed / "results" / "tables" / name).read_text() == (clean / "results" / "tables" / name).read_text()
    assert (killed / "results" / "summary.csv").read_text() == (clean / "results" / "summary.csv").read_text()
    runs_killed = pd.read_csv(killed / "results" / "runs.csv").drop(columns="wall_time_s")
    runs_clean = pd.read_csv(clean / "results" / "runs.csv").drop(columns="wall_time_s")
    pd.testing.assert_frame_equal(runs_killed, runs_clean)
    assert len(runs_clean) == 4


# ----------------------------------------------------------------------- diverged training


@pytest.mark.slow
@needs_mirror
def test_diverged_run_fails_its_job_and_nothing_is_aggregated(tmp_path: Path) -> None:
    """An experiment with lr 1e30 diverges: with --keep-going the other run finishes, the
    failed job's log names the run and epoch, no record is written for it, and aggregate
    does not run; aggregating the partial results by hand names the missing run."""

    def change(cfg: dict[str, Any]) -> None:
        cfg["seeds"] = [0]
        cfg["datasets"]["Cora"]["training"].update(epochs=3, eval_every=1)
        cfg["experiments"]["moe4"]["training"] = {"lr": 1e30}

    config = tiny_config(tmp_path / "config.yaml", change)
    workdir = tmp_path / "work"
    proc = snakemake(workdir, config, "tables", "--keep-going", "--show-failed-logs")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    assert "Error in rule train" in out and "logs/train/Cora/moe4/seed0.log" in out
    log = (workdir / "logs" / "train" / "Cora" / "moe4" / "seed0.log").read_text()
    assert re.search(r"TrainingDivergedError: run Cora/moe4/seed0: .*epoch 0", log), log[-3000:]
    assert [str(p.relative_to(workdir)) for p in run_paths(workdir)] == ["results/runs/Cora/baseline/seed0.json"]
    assert files_below(workdir / "results" / "runs" / "Cora" / "moe4") == []
    assert not (workdir / "results" / "summary.csv").exists() and not (workdir / "results" / "tables").exists()

    # the aggregate rule's function on what exists: it names the missing run ...
    expected = run_table(load_config(config, base_dir=REPO))
    paths = [str(workdir / f"results/runs/{r['dataset']}/{r['experiment']}/seed{r['seed']}.json") for r in expected]
    with pytest.raises(IncompleteRunsError, match=r"1 expected run\(s\) missing.*\n  Cora / moe4 / seed 0\n"):
        aggregate_runs(paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"))
    assert not (tmp_path / "summary.csv").exists()
    # ... and, allowed to go on, records n per cell instead of hiding the gap
    with pytest.warns(UserWarning, match="Cora / moe4 / seed 0"):
        aggregate_runs(paths, expected, str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"), allow_missing=True)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert set(summary["experiment"]) == {"baseline"}
    assert (summary["n"] == 1).all() and (summary["n_expected"] == 1).all()
