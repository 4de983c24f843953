"""Faults that would let a table cell stand for runs it does not come from.

Records of other settings, code or data than today's; old records without provenance; raw
files changed after their download; a damaged prepared dataset; a training job that
outlives its Snakemake; a mirror that trickles.  The fast tests run the package functions;
the workflow-level ones (``slow``) run Snakemake on tests/reliability/config_tiny.yaml in a
temporary folder.  docs/faults.md maps each fault to its test.
"""

from __future__ import annotations

import copy
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import with_provenance

from gsmoe.config import load_config, raw_files, validate_config
from gsmoe.datasets import load_dataset, prepare_dataset, prepared_file
from gsmoe.download import ChecksumError, DownloadError, fetch
from gsmoe.io import read_json, write_json
from gsmoe.provenance import DamagedDatasetError, code_fingerprint, update_code_fingerprint_file
from gsmoe.report.aggregate import aggregate_runs
from gsmoe.report.verify import RecordMismatchError, verify_records

REPO = Path(__file__).resolve().parents[2]

BIN = Path(sys.executable).parent
TINY = REPO / "tests" / "reliability" / "config_tiny.yaml"
MIRROR = (REPO / ".." / "shared" / "datasets").resolve()
needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"local mirror {MIRROR} not present")


def tiny(**training: Any) -> dict[str, Any]:
    """config_tiny.yaml with the mirror made absolute and ``training`` changes for Cora."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["mirror"] = str(MIRROR)
    cfg["datasets"]["Cora"]["training"].update(training)
    return cfg


def metrics_record(dataset: str, experiment: str, seed: int) -> dict[str, Any]:
    """The fields aggregation reads, with made-up accuracies."""
    return {
        "dataset": dataset,
        "experiment": experiment,
        "seed": seed,
        "device": "cpu",
        "metrics": {
            "paper": {"last": 0.7, "best": 0.71, "best_epoch": 20},
            "standard": {"test": 0.65, "val": 0.68, "epoch": 10},
        },
        "wall_time_s": 1.0,
        "num_parameters": 10,
        "active_parameters": 10,
    }


def grid(tmp_path: Path, config: dict[str, Any]) -> list[str]:
    """Records with provenance of every run of ``config`` (as training writes them)."""
    paths = []
    for experiment in config["experiments"]:
        for seed in config["seeds"]:
            path = tmp_path / "runs" / "Cora" / experiment / f"seed{seed}.json"
            write_json(path, with_provenance(metrics_record("Cora", experiment, seed), config))
            paths.append(str(path))
    return paths


def verify(paths: list[str], config: dict[str, Any], **kwargs: Any) -> None:
    verify_records([(p, read_json(p)) for p in paths], config, **kwargs)


# --------------------------------------------------------------------- record verification


def test_matching_records_pass_and_aggregate(tmp_path: Path) -> None:
    config = validate_config(tiny(), base_dir=REPO)
    paths = grid(tmp_path, config)
    verify(paths, config)
    aggregate_runs(paths, [], str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"), allow_missing=True, config=config)
    assert (tmp_path / "summary.csv").is_file()


def test_config_drift_names_file_and_keys_old_to_new(tmp_path: Path) -> None:
    """Records of lr 0.01 against a config that now says 0.05 (what --rerun-triggers without
    params, or a results folder without .snakemake/, would let through)."""
    old = validate_config(tiny(), base_dir=REPO)
    paths = grid(tmp_path, old)
    new = copy.deepcopy(old)
    new["experiments"]["moe4"]["training"] = {"lr": 0.05, "epochs": 500}
    with pytest.raises(RecordMismatchError) as caught:
        aggregate_runs(paths, [], str(tmp_path / "runs.csv"), str(tmp_path / "summary.csv"), allow_missing=True, config=new)
    message = str(caught.value)
    assert message.startswith("2 run record(s) do not match the run they stand for; nothing was aggregated:")
    for seed in (0, 1):
        assert f"runs/Cora/moe4/seed{seed}.json: config: training.epochs: 400 -> 500; training.lr: 0.01 -> 0.05" in message
    assert "baseline" not in message.split("Fix")[0]
    assert "Fix (config): " in message and "delete these records and retrain them" in message
    assert not (tmp_path / "summary.csv").exists()


def test_record_at_another_runs_path_is_refused(tmp_path: Path) -> None:
    config = validate_config(tiny(), base_dir=REPO)
    paths = grid(tmp_path, config)
    shutil.copyfile(paths[0], paths[1])  # baseline seed0's record at baseline seed1's path
    with pytest.raises(RecordMismatchError, match=r"seed1\.json: path: the path is run Cora/baseline/seed1, the record is run Cora/baseline/seed0"):
        verify(paths, config)


def test_old_record_without_provenance_is_refused(tmp_path: Path) -> None:
    config = validate_config(tiny(), base_dir=REPO)
    paths = grid(tmp_path, config)
    old = read_json(paths[2])
    del old["provenance"], old["schema_version"]
    write_json(paths[2], old)
    with pytest.raises(RecordMismatchError) as caught:
        verify(paths, config)
    message = str(caught.value)
    assert f"{paths[2]}: schema: schema_version (absent) -> 2 (no provenance: code and data unknown)" in message
    assert "Fix (schema): a record without provenance was written before run-record schema 2" in message


def test_code_fingerprint_current_and_grid(tmp_path: Path) -> None:
    """Records of other code fail against the current code; ``verify_code: grid`` accepts
    them when all are of one version, and names the odd one out otherwise."""
    config = validate_config(tiny(), base_dir=REPO)
    paths = grid(tmp_path, config)
    current = code_fingerprint()["sha256"]
    for path in paths:
        record = read_json(path)
        record["provenance"]["code"]["sha256"] = "a" * 64
        write_json(path, record)
    with pytest.raises(RecordMismatchError, match=rf"code: code fingerprint a{{64}} -> {current} \(current code\)") as caught:
        verify(paths, config)
    assert "verify_code: grid" in str(caught.value)
    verify(paths, config, verify_code="grid")  # one code version across the grid
    record = read_json(paths[3])
    record["provenance"]["code"]["sha256"] = "b" * 64
    write_json(paths[3], record)
    with pytest.raises(RecordMismatchError, match=r"seed1\.json: grid: code fingerprint b{64} -> a{64} \(that of most records; 2 versions"):
        verify(paths, config, verify_code="grid")


def test_data_checksums_must_equal_the_configs(tmp_path: Path) -> None:
    config = validate_config(tiny(), base_dir=REPO)
    paths = grid(tmp_path, config)
    record = read_json(paths[0])
    record["provenance"]["data"]["ind.cora.x"]["sha256"] = "0" * 64
    write_json(paths[0], record)
    expected = raw_files(config, "Cora")[0]["sha256"]
    with pytest.raises(RecordMismatchError, match=rf"seed0\.json: data: data\.ind\.cora\.x\.sha256: 0{{64}} -> {expected}"):
        verify(paths, config)


def test_report_switch_verify_code_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m gsmoe report` fails on records of other code and passes with --verify-code grid."""
    from gsmoe.cli import main

    cfg = tiny()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    config = load_config(tmp_path / "config.yaml")
    paths = grid(tmp_path, config)
    for path in paths:
        record = read_json(path)
        record["provenance"]["code"]["sha256"] = "c" * 64
        write_json(path, record)
    args = ["--config", str(tmp_path / "config.yaml"), "report", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    assert main(args) == 1
    assert "4 run record(s) do not match" in capsys.readouterr().err
    assert not (tmp_path / "out" / "summary.csv").exists()
    assert main([*args, "--verify-code", "grid"]) == 0
    assert (tmp_path / "out" / "summary.csv").is_file()


# ------------------------------------------------------------------------ code fingerprint


def test_fingerprint_file_changes_only_with_the_code(tmp_path: Path) -> None:
    package = tmp_path / "gsmoe"
    shutil.copytree(REPO / "workflow" / "src" / "gsmoe", package, ignore=shutil.ignore_patterns("__pycache__"))
    file = tmp_path / "results" / "code_fingerprint.txt"
    assert update_code_fingerprint_file(file, package)
    stamp = file.stat().st_mtime_ns
    assert not update_code_fingerprint_file(file, package) and file.stat().st_mtime_ns == stamp
    (package / "report" / "tables.py").write_text("# reading records changes no record\n", encoding="utf-8")
    assert not update_code_fingerprint_file(file, package)
    (package / "train.py").write_text((package / "train.py").read_text() + "\n# an edit\n", encoding="utf-8")
    time.sleep(0.01)
    assert update_code_fingerprint_file(file, package) and file.stat().st_mtime_ns > stamp
    # accept: the new hash, dated older than any record (training jobs stay up to date)
    (package / "nn" / "gates.py").write_text((package / "nn" / "gates.py").read_text() + "\n# cosmetic\n")
    assert update_code_fingerprint_file(file, package, accept=True)
    assert file.stat().st_mtime_ns == 0 and file.read_text().strip() == code_fingerprint(package)["sha256"]
    assert not update_code_fingerprint_file(file, package) and file.stat().st_mtime_ns == 0


# ---------------------------------------------------------------------- data: raw, prepared


def _cora_raw(tmp_path: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    config = validate_config(tiny(), base_dir=REPO)
    specs = raw_files(config, "Cora")
    raw = tmp_path / "raw"
    raw.mkdir()
    paths = []
    for spec in specs:
        shutil.copyfile(MIRROR / "planetoid" / spec["relpath"], raw / spec["relpath"])
        paths.append(raw / spec["relpath"])
    return paths, specs


@needs_mirror
def test_prepare_refuses_a_raw_file_edited_after_download(tmp_path: Path) -> None:
    paths, specs = _cora_raw(tmp_path)
    with open(paths[1], "ab") as handle:  # ind.cora.tx, edited after its download
        handle.write(b"\0")
    root = tmp_path / "pyg"
    with pytest.raises(ChecksumError) as caught:
        prepare_dataset("planetoid", "Cora", paths, root, checksums=specs)
    message = str(caught.value)
    assert f"SHA-256 mismatch for raw file {paths[1]}: expected {specs[1]['sha256']}, got " in message
    assert "changed after its download was verified: delete it and rerun" in message
    assert not (root / "Cora").exists()


@needs_mirror
def test_prepared_dataset_carries_raw_checksums_and_a_truncated_file_fails_clearly(tmp_path: Path) -> None:
    paths, specs = _cora_raw(tmp_path)
    root = tmp_path / "pyg"
    prepare_dataset("planetoid", "Cora", paths, root, checksums=specs)
    manifest = read_json(prepared_file(root, "Cora").with_name("gsmoe_manifest.json"))
    assert manifest["raw"] == {s["relpath"]: {"sha256": s["sha256"], "members": {}} for s in specs}
    processed = prepared_file(root, "Cora")
    data = processed.read_bytes()
    processed.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedDatasetError) as caught:
        load_dataset("planetoid", "Cora", root)
    message = str(caught.value)
    assert f"prepared dataset {processed} is damaged (it has {len(data) // 2} bytes, prepare wrote {len(data)}" in message
    assert f"delete {processed} and rerun the `prepare` rule" in message
    processed.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(DamagedDatasetError, match="its SHA-256 is"):
        load_dataset("planetoid", "Cora", root)


# ----------------------------------------------------------------------------- downloads


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Announces 1000 bytes, then sends one every 0.5 s (until the client gives up)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def trickling_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_trickling_mirror_fails_within_the_deadline(
    tmp_path: Path, trickling_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each read returns within the socket timeout, so only an overall deadline stops it."""
    dest = tmp_path / "raw" / "ind.cora.x"
    start = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        fetch(f"{trickling_server}/planetoid/ind.cora.x", dest, sha256="0" * 64, deadline_s=3)
    elapsed = time.monotonic() - start
    assert 3 <= elapsed < 5, elapsed
    message = str(caught.value)
    assert f"downloading {trickling_server}/planetoid/ind.cora.x did not finish within its deadline of 3 s" in message
    assert "of 1000 bytes" in message and "nothing was kept" in message
    assert list((tmp_path / "raw").iterdir()) == []  # neither the file nor a temporary one
    progress = capsys.readouterr().err
    assert re.search(r"fetch \S+/planetoid/ind\.cora\.x: \d+ / 1000 bytes after \d s \(deadline 3 s\)", progress), progress


# ------------------------------------------------------------------------- orphaned jobs

# The middle process starts a training job (what Snakemake does) and waits; the test
# SIGKILLs it, as an OOM killer or a lost login shell would.
_MIDDLE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
print(child.pid, flush=True)
time.sleep(600)
"""
_JOB = """
import signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
if sys.argv[3] == "ignore-sigterm":  # leaves only the parent check between epochs
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
import gsmoe.train as train_mod
from test_training_faults import node_dataset, run_config
dataset = node_dataset()
train_mod.load_dataset = lambda source, name, root: dataset
train_mod.read_prepared_manifest = lambda processed: {"raw": {}}
cfg = run_config("node", epochs=10**7, eval_every=10**6)
train_mod.train_and_save([cfg], [Path(sys.argv[2])], "unused", device="cpu", threads=1, die_with_parent=True)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mechanism", ["pdeathsig", "ignore-sigterm"])
def test_training_job_dies_with_its_parent(tmp_path: Path, mechanism: str) -> None:
    out, log = tmp_path / "seed0.json", tmp_path / "job.log"
    with open(log, "w") as stderr:
        middle = subprocess.Popen(
            [sys.executable, "-c", _MIDDLE, _JOB, str(REPO / "tests" / "reliability"), str(out), mechanism],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    job = int(middle.stdout.readline())
    try:
        deadline = time.monotonic() + 120
        while "training on cpu" not in log.read_text():
            assert middle.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        middle.kill()
        middle.wait()
        deadline = time.monotonic() + 30
        while _alive(job) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(job), "the training job outlived its parent"
    finally:
        if _alive(job):
            os.kill(job, signal.SIGKILL)
    assert not out.exists() and list(tmp_path.iterdir()) == [log]
    if mechanism == "ignore-sigterm":
        assert "OrphanedJobError: the process that started this training job" in log.read_text()
        assert "stopping without writing a record" in log.read_text()
