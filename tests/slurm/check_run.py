"""Checks of run_slurm_test.sh: did every job run in SLURM, and are the results a local run's?

    python tests/slurm/check_run.py jobs SNAKEMAKE_LOG SLURM_WORKDIR SLURMCTLD_LOG SNAKEFILE CONFIG
    python tests/slurm/check_run.py compare SLURM_WORKDIR LOCAL_WORKDIR

``jobs`` reads Snakemake's console log of the SLURM run: every job (``Job N: <its rule's
message>``, each message names its job) whose rule is not a local rule of the workflow
(SNAKEFILE with CONFIG) must have been submitted to SLURM (``Job N has been submitted with
SLURM jobid M``), every submission must have its plugin log under .snakemake/slurm_logs/
(the run keeps the logs of successful jobs), with the job's message in it, and must have
ended with exit status 0 in the slurmctld log, and every job must have finished.

``compare`` checks that the two working directories hold the same results: the same run
records (every field except the volatile ones below, floats compared exactly: both runs
train on this machine's CPU with one thread), the same role arrays and the same tables.
Exit status 0 when everything holds, 1 otherwise; the findings go to stdout.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

# Run-record fields that legitimately differ between two runs of the same config.
VOLATILE = {"wall_time_s", "environment"}
# Result files compared byte for byte (relative to the working directory).
EXACT_GLOBS = ["results/tables/*.tex", "results/summary.csv", "results/claims.csv"]

JOB = re.compile(r"^(\s*)Job (\d+): (.+)$")
GROUP = re.compile(r"Group job (\S+) \(jobs in ")
SUBMITTED = re.compile(r"^Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$")
FINISHED = re.compile(r"^Finished jobid: (\S+) \(Rule: (\S+)\)$")


def _jobs_in_log(text: str) -> list[dict]:
    """The jobs of a Snakemake console log: jobid, message, group, and the rule that its
    "Finished jobid" line names (None for a job that did not finish)."""
    jobs: list[dict] = []
    group = None
    for line in text.splitlines():
        if m := GROUP.search(line):
            group = m.group(1)
        elif m := JOB.match(line):
            jobs.append({"jobid": m.group(2), "message": m.group(3).strip(), "group": group if m.group(1) else None})
        elif line and not line[0].isspace() and not line.startswith(("[", "Reason:")):
            group = None  # e.g. "Job ... has been submitted": the group's listing ended
    rules = {m.group(1): m.group(2) for m in map(FINISHED.match, text.splitlines()) if m}
    for job in jobs:
        job["rule"] = rules.get(job["jobid"])
    return jobs


def local_rules(snakefile: Path, configfile: Path, workdir: Path) -> set[str]:
    """Rules whose jobs run on the submit host: ``localrule: True`` and rules without a
    script (the targets), as Snakemake's ``Workflow.is_local`` decides for ungrouped rules."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            ResourceSettings(), ConfigSettings(configfiles=[configfile]), snakefile=snakefile, workdir=workdir
        )
        workflow = workflow_api._workflow  # the loaded rules: Snakemake's API has no public accessor
        return {rule.name for rule in workflow.rules if rule.name in workflow._localrules or rule.norun}


def check_jobs(log_path: Path, workdir: Path, ctld_log: Path, local_rule_names: set[str]) -> list[str]:
    """Every job of a rule that is not a local rule ran inside a SLURM job that exited 0."""
    problems: list[str] = []
    text = log_path.read_text()
    jobs = _jobs_in_log(text)
    # a job that did not finish has no rule name here; it is reported below
    remote = {job["jobid"]: job for job in jobs if job["rule"] is not None and job["rule"] not in local_rule_names}
    local = {job["jobid"]: job for job in jobs if job["rule"] in local_rule_names}
    unfinished = {job["jobid"]: job for job in jobs if job["rule"] is None}
    submitted: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for m in map(SUBMITTED.match, text.splitlines()):
        if m:
            submitted[m.group(1)].append((m.group(2), Path(m.group(3))))
    if not remote:
        problems.append("the log shows no job that was meant for SLURM")

    # What each SLURM job that exited 0 ran, from its plugin log (Snakemake's own log of
    # the job step): the messages of the jobs it executed.
    ctld = ctld_log.read_text()
    ran_in_slurm: set[str] = set()
    slurm_ids = [sid for subs in submitted.values() for sid, _ in subs]
    for key, subs in submitted.items():
        sid, plugin_log = subs[-1]  # the last try must have succeeded
        if not re.search(rf"_job_complete: JobId={sid} WEXITSTATUS 0\b", ctld):
            problems.append(f"SLURM job {sid} (job {key}): slurmctld did not record exit status 0")
            continue
        if not plugin_log.is_file():
            problems.append(f"SLURM job {sid} (job {key}): no plugin log {plugin_log}")
            continue
        ran_in_slurm |= {job["message"] for job in _jobs_in_log(plugin_log.read_text())}
    group_submissions = [key for key in submitted if key not in remote]
    for jobid, job in sorted(remote.items(), key=lambda item: int(item[0])):
        name = f"job {jobid} (rule {job['rule']}: {job['message']})"
        if jobid not in submitted and not (job["group"] and group_submissions):
            problems.append(f"{name} was never submitted to SLURM")
        elif job["message"] not in ran_in_slurm:
            problems.append(f"{name} is in no log of a SLURM job that exited 0")
    for jobid, job in sorted(unfinished.items(), key=lambda item: int(item[0])):
        problems.append(f"job {jobid} ({job['message']}) did not finish")

    retried = sum(len(subs) - 1 for subs in submitted.values())
    by_rule: dict[str, int] = defaultdict(int)
    for job in remote.values():
        by_rule[job["rule"]] += 1
    print(
        f"{len(remote)} jobs ran in SLURM ("
        + ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items()))
        + f") as {len(slurm_ids)} SLURM jobs ({len(group_submissions)} group jobs, {retried} retries);"
        + f" {len(local)} local-rule jobs ran on the submit host"
    )
    return problems


def _diff(a, b, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'slurm' if key in a else 'local'} run")
            else:
                _diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} != {len(b)}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                _diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def compare(slurm: Path, local: Path) -> list[str]:
    problems: list[str] = []
    runs_s = {p.relative_to(slurm) for p in slurm.glob("results/runs/**/*.json")}
    runs_l = {p.relative_to(local) for p in local.glob("results/runs/**/*.json")}
    if not runs_l:
        problems.append(f"no run records under {local}/results/runs")
    for rel in sorted(runs_s ^ runs_l):
        problems.append(f"{rel}: only in the {'slurm' if rel in runs_s else 'local'} run")
    fields: set[str] = set()
    for rel in sorted(runs_s & runs_l):
        a = json.loads((slurm / rel).read_text())
        b = json.loads((local / rel).read_text())
        fields |= (set(a) | set(b)) - VOLATILE
        diffs: list[str] = []
        _diff({k: v for k, v in a.items() if k not in VOLATILE}, {k: v for k, v in b.items() if k not in VOLATILE}, "", diffs)
        problems += [f"{rel}: {d}" for d in diffs[:5]]
    print(f"{len(runs_s & runs_l)} run records compared on: {', '.join(sorted(fields))}")

    roles_s = {p.relative_to(slurm) for p in slurm.glob("results/roles/*.npz")}
    roles_l = {p.relative_to(local) for p in local.glob("results/roles/*.npz")}
    for rel in sorted(roles_s ^ roles_l):
        problems.append(f"{rel}: only in the {'slurm' if rel in roles_s else 'local'} run")
    for rel in sorted(roles_s & roles_l):
        with np.load(slurm / rel) as a, np.load(local / rel) as b:
            if set(a.files) != set(b.files):
                problems.append(f"{rel}: arrays {sorted(a.files)} != {sorted(b.files)}")
            for name in sorted(set(a.files) & set(b.files)):
                if not np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"):
                    problems.append(f"{rel}: array {name} differs")
    print(f"{len(roles_s & roles_l)} role files compared")

    n_exact = 0
    for pattern in EXACT_GLOBS:
        files_s = {p.relative_to(slurm) for p in slurm.glob(pattern)}
        files_l = {p.relative_to(local) for p in local.glob(pattern)}
        for rel in sorted(files_s ^ files_l):
            problems.append(f"{rel}: only in the {'slurm' if rel in files_s else 'local'} run")
        for rel in sorted(files_s & files_l):
            n_exact += 1
            if (slurm / rel).read_bytes() != (local / rel).read_bytes():
                problems.append(f"{rel}: contents differ")
    if not any(local.glob("results/tables/*.tex")):
        problems.append("no tables under results/tables")
    print(f"{n_exact} table/summary files compared byte for byte ({', '.join(EXACT_GLOBS)})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "jobs":
        local = local_rules(Path(argv[4]), Path(argv[5]), Path(argv[2]))
        problems = check_jobs(Path(argv[1]), Path(argv[2]), Path(argv[3]), local)
    elif len(argv) == 3 and argv[0] == "compare":
        problems = compare(Path(argv[1]), Path(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems[:50]:
        print(f"  MISMATCH {problem}" if argv[0] == "compare" else f"  PROBLEM {problem}")
    if len(problems) > 50:
        print(f"  ... and {len(problems) - 50} more")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
