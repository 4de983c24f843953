"""End-to-end smoke run of the workflow on tests/workflow/config_smoke.yaml (slow: minutes).

Every experiment on Cora and ENZYMES, 2 seeds, 3 epochs, raw data from the local mirror,
in a temporary working directory (``--directory``), then the HTML report, which is opened
in headless Chromium where it is installed (Debian's ``chromium``; CI installs it).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
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


needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"local mirror {MIRROR} not present")


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke workflow (one per module: it takes minutes)."""
    workdir = tmp_path_factory.mktemp("smoke")
    snakemake(workdir)
    return workdir


@pytest.fixture(scope="module")
def smoke_report(smoke_dir: Path) -> Path:
    """The smoke run's HTML report (``--report``, with the run's ``--configfile``)."""
    report = smoke_dir / "report.html"
    snakemake(smoke_dir, "--report", str(report))
    return report


@needs_mirror
def test_smoke_run(smoke_dir, smoke_report):
    tmp_path = smoke_dir
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
    # nothing left to do, and the report was written
    assert "Nothing to be done" in snakemake(tmp_path, "-n")
    assert smoke_report.stat().st_size > 0


# ---------------------------------------------------------------- the report in a browser
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip() -> str:
    """Path of Chromium; skips where it is not installed, except in CI, which installs it."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true" and os.environ.get("GSMOE_REQUIRE_MIRROR") == "1":
        pytest.fail("chromium is not installed, but CI must check the report in it: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip("chromium not installed (Debian: apt-get install -y chromium): the report is not opened in a browser")


def chromium(binary: str, profile: Path, url: str, *args: str) -> str:
    """Run headless Chromium on ``url``; its standard output (``--dump-dom``: the rendered DOM)."""
    proc = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args, url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def report_results(report: Path) -> dict:
    """The report's ``results`` object: each result's name, labels, mime type and data URI."""
    found = re.search(r"var results = (\{.*?\});\s*</script>", report.read_text(encoding="utf-8"), re.S)
    assert found, f"{report}: no results object"
    return json.loads(found.group(1))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@needs_mirror
def test_report_shows_results_in_chromium(smoke_dir, smoke_report, tmp_path):
    """The report renders in Chromium and shows a table cell and a claim verdict in the page
    (not only as downloads); screenshots saved next to the report."""
    binary = chromium_or_skip()
    home = chromium(binary, tmp_path / "profile", smoke_report.as_uri(), "--dump-dom")
    # the home page is written from the config that ran, and every result category is listed
    assert "Datasets</strong> (2 trained on)" in home and "Configured but not trained on: PubMed" in home
    assert "0, 1, so 36 runs in all" in home
    for category in ("Summary", "Tables", "Figures", "Claims"):
        assert f">{category}<" in home

    results = report_results(smoke_report)
    summary = {(r["dataset"], r["experiment"], r["metric"]): r for r in read_csv(smoke_dir / "results" / "summary.csv")}
    claims = read_csv(smoke_dir / "results" / "claims.csv")
    # each page as the report's iframe shows it: the data URI the report embeds
    table = results["results/tables/table1.html"]
    assert table["mime_type"] == "text/html"
    table_dom = chromium(binary, tmp_path / "profile", table["data_uri"], "--dump-dom")
    cell = summary[("ENZYMES", "baseline", "paper_last")]
    assert f"{float(cell['mean']):.3f} ± {float(cell['std']):.3f}" in table_dom
    claims_dom = chromium(binary, tmp_path / "profile", results["results/claims.html"]["data_uri"], "--dump-dom")
    first = claims[0]
    assert '<span class="verdict' in claims_dom and f">{first['verdict']}</span>" in claims_dom
    assert f"{float(first['diff']):+.3f}" in claims_dom

    # screenshots: the report's home page, and the report with a page open as a click on
    # its eye button in the category's list opens it (the report has no URL for a result)
    head, body_end, tail = smoke_report.read_text(encoding="utf-8").rpartition("</body>")  # the page's own, last
    shots = {"report_home.png": smoke_report}
    for category, path in (("Tables", "results/tables/table1.html"), ("Claims", "results/claims.html")):
        show = (
            "<script>window.addEventListener('load', () => setTimeout(() => app.setView({"
            f" navbarMode: 'subcategory', category: '{category}',"
            f" subcategory: Object.keys(categories['{category}'])[0],"
            f" content: 'html', contentPath: results['{path}'].data_uri, resultPath: '{path}'"
            " }), 200));</script>"
        )
        opened = smoke_dir / f"report_{Path(path).stem}.html"
        opened.write_text(head + show + body_end + tail, encoding="utf-8")
        shots[f"report_{Path(path).stem}.png"] = opened
    for name, page in shots.items():
        chromium(binary, tmp_path / "profile", page.as_uri(), "--window-size=1400,1000", f"--screenshot={smoke_dir / name}")
        assert (smoke_dir / name).stat().st_size > 10_000, name
    print("screenshots:", *(smoke_dir / name for name in shots))
