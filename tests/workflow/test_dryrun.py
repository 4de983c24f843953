"""The workflow itself: dry runs list exactly the run table, lint and format are clean.

Each test runs Snakemake in a subprocess with ``--directory`` pointing at a temporary
folder, so nothing in the checkout (results/, .snakemake/) is read or locked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow" / "src"))

from gsmoe.config import load_config, run_table, seed_chunks  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMOKE = REPO / "tests" / "workflow" / "config_smoke.yaml"
RUN_RE = re.compile(r"results/runs/(\w+)/(\w+)/seed(\d+)\.json")


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> str:
    proc = subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, out[-4000:]
    return out


def dry_run(tmp_path: Path, *args: str) -> str:
    """Dry run in ``tmp_path``; config.yaml (relative to the working directory) is given
    explicitly unless the test passes its own --configfile."""
    config = [] if "--configfile" in args else ["--configfile", str(REPO / "config.yaml")]
    return snakemake("-n", "--directory", str(tmp_path), *args, *config)


def job_counts(out: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: {rule: count}."""
    table = out.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def train_outputs(out: str) -> set[tuple[str, str, int]]:
    """(dataset, experiment, seed) of every run record that a dry run in an empty folder
    plans: the "Missing output files" of each job's reason (the rules' `message:` replaces
    Snakemake's listing of a job's output; in an empty folder every output is missing)."""
    runs = set()
    for line in out.splitlines():
        if line.startswith("Reason: Missing output files:"):
            missing = line.split(";", 1)[0]  # not "Input files updated by another job: ..."
            runs |= {(d, e, int(s)) for d, e, s in RUN_RE.findall(missing)}
    return runs


def expected(config_path: Path) -> set[tuple[str, str, int]]:
    cfg = load_config(config_path, base_dir=REPO)
    return {(r["dataset"], r["experiment"], r["seed"]) for r in run_table(cfg)}


def test_default_dry_run_lists_every_run(tmp_path):
    out = dry_run(tmp_path)
    want = expected(REPO / "config.yaml")
    assert len(want) == 3 * 9 * 10
    assert train_outputs(out) == want
    counts = job_counts(out)
    # config.yaml trains 5 seeds per job: one job per (dataset, experiment) and chunk
    assert counts["train_seeds_0_4"] == counts["train_seeds_5_9"] == 27 and "train" not in counts
    assert counts["download"] == 8 + 8 + 1
    assert counts["prepare"] == 3 and counts["roles"] == 3
    assert counts["aggregate"] == 1 and counts["tables"] == 1 and counts["figure"] == 2
    assert counts["all"] == 1


def test_one_seed_per_job(tmp_path):
    out = dry_run(tmp_path, "--config", "seeds_per_job=1")
    assert train_outputs(out) == expected(REPO / "config.yaml")
    counts = job_counts(out)
    assert counts["train"] == 3 * 9 * 10  # one job per run
    assert not any(rule.startswith("train_seeds") for rule in counts)


def test_seeds_per_job_chunks(tmp_path):
    out = dry_run(tmp_path, "--config", "seeds_per_job=4")
    assert train_outputs(out) == expected(REPO / "config.yaml")
    counts = job_counts(out)
    chunks = seed_chunks(range(10), 4)
    assert chunks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for chunk in chunks:  # one job per (dataset, experiment) and chunk
        assert counts[f"train_seeds_{chunk[0]}_{chunk[-1]}"] == 27
    assert "train" not in counts


def test_smoke_config_replaces_default(tmp_path):
    out = dry_run(tmp_path, "--configfile", str(SMOKE))
    want = expected(SMOKE)
    assert {d for d, _, _ in want} == {"Cora", "ENZYMES"}
    assert train_outputs(out) == want
    counts = job_counts(out)
    assert counts["download"] == 8 + 1  # PubMed is configured but not run: not fetched
    assert counts["train_seeds_0_1"] == 9 * 2
    # the relative mirror resolves against the repository, not --directory
    assert str((REPO / ".." / "shared" / "datasets").resolve()) in out or "PubMed" not in out


@pytest.mark.parametrize("overlay", sorted((REPO / "docs" / "probes").glob("*.yaml")), ids=lambda path: path.stem)
def test_probe_overlay_adds_its_runs(tmp_path, overlay):
    """docs/probes/*.yaml are overlays: merged after config.yaml, they add experiments."""
    out = dry_run(tmp_path, "dataset_ENZYMES", "--configfile", str(REPO / "config.yaml"), str(overlay))
    runs = train_outputs(out)
    probes = set(yaml.safe_load(overlay.read_text(encoding="utf-8"))["experiments"])
    for probe in probes:
        assert {s for d, e, s in runs if (d, e) == ("ENZYMES", probe)} == set(range(10))
    assert {e for _, e, _ in runs} == set(load_config(REPO / "config.yaml")["experiments"]) | probes


def test_confirmatory_overlay_trains_pilot_and_confirmatory_seeds(tmp_path):
    """docs/claims_confirmatory.yaml: the pilot's seeds 0-9 and the disjoint confirmatory seeds."""
    overlay = REPO / "docs" / "claims_confirmatory.yaml"
    out = dry_run(tmp_path, "dataset_Cora", "--configfile", str(REPO / "config.yaml"), str(overlay))
    confirmatory = yaml.safe_load(overlay.read_text(encoding="utf-8"))["claims_design"]["confirmatory_seeds"]
    assert set(confirmatory).isdisjoint(load_config(REPO / "config.yaml")["seeds"])
    assert {s for _, _, s in train_outputs(out)} == set(range(10)) | set(confirmatory)


def test_dataset_target(tmp_path):
    out = dry_run(tmp_path, "dataset_ENZYMES")
    runs = train_outputs(out)
    assert runs == {r for r in expected(REPO / "config.yaml") if r[0] == "ENZYMES"}
    counts = job_counts(out)
    assert "aggregate" not in counts and counts["prepare"] == 1


@pytest.mark.parametrize(
    ("target", "rules"),
    [("tables", {"tables", "aggregate", "train_seeds_0_4"}), ("figures", {"figure", "figures", "train_seeds_5_9"})],
)
def test_tables_and_figures_targets(tmp_path, target, rules):
    counts = job_counts(dry_run(tmp_path, target))
    assert rules <= set(counts)
    assert "all" not in counts


def test_bad_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    # an overlay of the smoke config (base paths are relative to the repository, not --directory)
    bad.write_text("base: tests/workflow/config_smoke.yaml\nexperiments: {topk128: {model: {top_k: 200}}}\n")
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(bad), check=False)
    assert "config: experiments.topk128.model.top_k (200) must be <= num_experts (128)" in out
    bad.write_text("base: tests/workflow/config_smoke.yaml\nsead: 3\n")
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(bad), check=False)
    assert "config: unknown key 'sead'" in out
    bad.write_text("base: tests/workflow/no_such.yaml\n")
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(bad), check=False)
    assert "config: base tests/workflow/no_such.yaml names" in out


def test_partial_configfile_error_says_it_replaces_config_yaml(tmp_path):
    """A --configfile meant as an overlay of config.yaml replaces it; the error says so."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    partial = tmp_path / "my.yaml"
    partial.write_text("seeds: [0, 1]\n")
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(partial), check=False)
    assert "config: missing required key 'datasets', 'experiments'" in out
    assert "these keys of config.yaml are not set: checksum_overrides, claims," in out
    assert f"pass --configfile config.yaml {partial}, or name it in the file: base: config.yaml" in out


def test_scripts_log_first_and_import_the_checkout():
    """Each rule script sends its output to the log, then puts workflow/src on sys.path."""
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    assert scripts
    assert all(f'"../scripts/{script.name}"' in rules for script in scripts), "a script no rule uses"
    src_line = 'sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))'
    for script in scripts:
        code = [
            line
            for line in script.read_text().splitlines()
            if line and not line.startswith(("#", '"""', "import", "from pathlib"))
        ]
        assert code[0].startswith("sys.stdout = sys.stderr = open(snakemake.log[0]"), script.name
        assert code[1].startswith(src_line), script.name
    assert (scripts[0].parent.parent / "src" / "gsmoe" / "__init__.py").is_file()


def test_lint_clean():
    out = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition" in out, out[-4000:]


def test_snakefmt_clean():
    proc = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
