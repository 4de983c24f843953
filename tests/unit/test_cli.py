"""The `python -m gsmoe` command line: fetch, train and report without Snakemake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from helpers import make_record, with_provenance, write_records

import gsmoe.cli
from gsmoe.cli import main
from gsmoe.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "reliability" / "config_tiny.yaml"  # Cora, baseline + moe4, seeds 0 and 1
MIRROR = ROOT.parent / "shared" / "datasets"

needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no local data mirror at {MIRROR}")


@needs_mirror
def test_fetch_train_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    cfg["mirror"] = str(MIRROR)
    cfg["datasets"]["Cora"]["training"].update(epochs=2, eval_every=1)  # report verifies each record's config
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    config = ["--config", str(tmp_path / "config.yaml")]
    root = tmp_path / "pyg" / "Cora"
    assert main([*config, "fetch", "Cora", "--raw-dir", str(tmp_path / "raw"), "--root", str(root)]) == 0
    runs = tmp_path / "runs"
    done = [("baseline", 0), ("baseline", 1), ("moe4", 0)]  # moe4 seed 1 is missing
    for experiment, seed in done:
        out = runs / "Cora" / experiment / f"seed{seed}.json"
        main([*config, "train", "Cora", experiment, str(seed), "--root", str(root), "--out", str(out)])

    capsys.readouterr()
    assert main([*config, "report", "--runs-dir", str(runs), "--out", str(tmp_path / "strict")]) == 1
    error = capsys.readouterr().err
    assert "error: 1 expected run(s) missing" in error and "Cora / moe4 / seed 1" in error
    assert "aggregate anyway with --allow-missing" in error
    assert not (tmp_path / "strict" / "summary.csv").exists()

    out = tmp_path / "report"
    main([*config, "report", "--runs-dir", str(runs), "--out", str(out), "--allow-missing"])
    summary = pd.read_csv(out / "summary.csv")
    n = summary[summary["metric"] == "paper_last"].set_index("experiment")["n"]
    assert n.to_dict() == {"baseline": 2, "moe4": 1}
    assert (out / "tables" / "tables.tex").is_file() and (out / "claims.md").is_file()


def test_fetch_extracts_only_verified_zip_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the prepare rule does: ENZYMES.zip has no whole-file checksum, so only the
    members its checksums pin may be extracted."""
    prepared: dict[str, Any] = {}
    monkeypatch.setattr("gsmoe.download.fetch", lambda url, dest, **checks: None)
    monkeypatch.setattr("gsmoe.datasets.prepare_dataset", lambda *args, **kwargs: prepared.update(args=args))
    config = ROOT / "config.yaml"
    assert main(["--config", str(config), "fetch", "ENZYMES", "--raw-dir", str(tmp_path), "--root", str(tmp_path / "pyg")]) == 0
    members = yaml.safe_load(config.read_text())["datasets"]["ENZYMES"]["files"][0]["members"]
    assert prepared["args"][-1] == sorted(members)


def test_epochs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "Cora", "baseline", "0", "--root", "x", "--out", "y", "--epochs", "0"])
    assert "must be >= 1" in capsys.readouterr().err


def _two_dataset_config(tmp_path: Path) -> Path:
    """The tiny config plus ENZYMES (from config.yaml) and one figure per dataset, no mirror."""
    cfg = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    cfg["mirror"] = None
    cfg["sources"] = shipped["sources"]
    cfg["datasets"]["ENZYMES"] = shipped["datasets"]["ENZYMES"]
    cfg["figures"] = {
        f"curves_{dataset}": {"title": dataset, "dataset": dataset, "experiments": ["baseline", "moe4"]}
        for dataset in ("Cora", "ENZYMES")
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_report_allow_missing_skips_a_figure_without_runs(tmp_path: Path) -> None:
    config = _two_dataset_config(tmp_path)
    cfg = load_config(config)
    runs = tmp_path / "runs"
    records = [make_record("Cora", e, seed, 0.6 + 0.01 * seed) for e in ("baseline", "moe4") for seed in (0, 1)]
    write_records(runs, [with_provenance(record, cfg) for record in records])
    out = tmp_path / "report"
    stale = [out / "figures" / "curves_ENZYMES.pdf", out / "figures" / "curves_ENZYMES.png"]
    for path in stale:  # from an earlier report, when ENZYMES had runs
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old figure")

    with pytest.warns(UserWarning) as caught:
        status = main(["--config", str(config), "report", "--runs-dir", str(runs), "--out", str(out), "--allow-missing"])
    assert status == 0
    assert any("figure curves_ENZYMES: no runs" in str(w.message) for w in caught)
    assert (out / "figures" / "curves_Cora.pdf").is_file() and (out / "figures" / "curves_Cora.png").is_file()
    assert not any(path.exists() for path in stale)
    assert (out / "claims.md").is_file() and (out / "claims.csv").is_file()


@pytest.mark.parametrize("command", ["fetch", "roles"])
def test_unknown_dataset_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = _two_dataset_config(tmp_path)
    extra = ["--out", str(tmp_path / "roles.npz")] if command == "roles" else []
    status = main(["--config", str(config), command, "cora", "--root", str(tmp_path / "pyg"), *extra])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "no dataset 'cora'; use one of Cora, ENZYMES" in err
    assert list(tmp_path.iterdir()) == [config]  # nothing fetched or written


def test_bad_config_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("datasets: [unclosed\n", encoding="utf-8")
    assert main(["--config", str(config), "fetch", "Cora", "--root", str(tmp_path / "pyg")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: config: {config} is not valid YAML")


def test_missing_config_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.yaml"), "fetch", "Cora", "--root", str(tmp_path / "pyg")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.yaml" in err and "Traceback" not in err


def test_bugs_keep_their_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(args: Any) -> None:
        raise KeyError("a bug, not bad input")

    monkeypatch.setattr(gsmoe.cli, "_roles", buggy)
    with pytest.raises(KeyError, match="a bug"):
        main(["roles", "Cora", "--root", str(tmp_path), "--out", str(tmp_path / "r.npz")])
