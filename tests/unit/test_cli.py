"""The `python -m gsmoe` command line: fetch, train and report without Snakemake."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gsmoe.cli import main
from gsmoe.report.aggregate import IncompleteRunsError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "reliability" / "config_tiny.yaml"  # Cora, baseline + moe4, seeds 0 and 1
MIRROR = ROOT.parent / "shared" / "datasets"

pytestmark = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no local data mirror at {MIRROR}")


def test_fetch_train_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the config's relative mirror is resolved against the repository
    config = ["--config", str(CONFIG)]
    root = tmp_path / "pyg" / "Cora"
    assert main([*config, "fetch", "Cora", "--raw-dir", str(tmp_path / "raw"), "--root", str(root)]) == 0
    runs = tmp_path / "runs"
    done = [("baseline", 0), ("baseline", 1), ("moe4", 0)]  # moe4 seed 1 is missing
    for experiment, seed in done:
        out = runs / "Cora" / experiment / f"seed{seed}.json"
        main([*config, "train", "Cora", experiment, str(seed), "--root", str(root), "--out", str(out), "--epochs", "2"])

    with pytest.raises(IncompleteRunsError, match=r"Cora.*moe4.*1"):
        main([*config, "report", "--runs-dir", str(runs), "--out", str(tmp_path / "strict")])
    assert not (tmp_path / "strict" / "summary.csv").exists()

    out = tmp_path / "report"
    main([*config, "report", "--runs-dir", str(runs), "--out", str(out), "--allow-missing"])
    summary = pd.read_csv(out / "summary.csv")
    n = summary[summary["metric"] == "paper_last"].set_index("experiment")["n"]
    assert n.to_dict() == {"baseline": 2, "moe4": 1}
    assert (out / "tables" / "tables.tex").is_file() and (out / "claims.md").is_file()


def test_epochs_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "Cora", "baseline", "0", "--root", "x", "--out", "y", "--epochs", "0"])
    assert "must be >= 1" in capsys.readouterr().err
