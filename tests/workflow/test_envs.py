"""envs/*.yaml: parse, exact pins, equal to requirements.lock and to the tested environment,
and each environment's pip section alone runs the rules that declare it.

conda cannot reach a channel on the test machines, so conda itself never runs here.  Every
pin is compared with requirements.lock (what CI installs) and with the version installed in
the running interpreter (what the tests actually ran against); and the slow
``test_env_pip_section_runs_its_rules`` builds a fresh virtual environment from each
environment's pip section (no lock) plus its post-deploy script, and runs in it every job of
a small smoke workflow whose rule declares that environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SMOKE = REPO / "tests" / "workflow" / "config_smoke.yaml"
MIRROR = (REPO / ".." / "shared" / "datasets").resolve()
ENV_JOB = REPO / "tests" / "workflow" / "env_job.py"
ENVS = sorted((REPO / "envs").glob("*.yaml"))
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
CONDA_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)=(?P<version>[0-9][A-Za-z0-9_.]*)$")
PIP_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>[0-9][A-Za-z0-9_.+!-]*)$")


def read_lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = PIP_PIN.match(line)
            assert match, f"requirements.lock: not an exact pin: {line!r}"
            pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def installed(name: str) -> str:
    """Installed public version (torch's local label such as +cpu is dropped)."""
    return Version(importlib.metadata.version(name)).public


def env_parts(path: Path) -> tuple[dict, list[str], list[str]]:
    env = yaml.safe_load(path.read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) <= 1, f"{path.name}: more than one pip section"
    return env, conda, (pip_sections[0] if pip_sections else [])


def test_env_files_exist():
    assert [p.name for p in ENVS] == ["gsmoe.yaml", "report.yaml"]


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_parses_and_uses_conda_forge(path):
    env, conda, pip = env_parts(path)
    assert set(env) <= {"name", "channels", "dependencies"}, f"{path.name}: unexpected keys {set(env)}"
    assert env["channels"][0] == "conda-forge"
    assert set(env["channels"]) <= {"conda-forge", "nodefaults"}
    assert conda and pip


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_conda_packages_pinned_exactly(path):
    _, conda, _ = env_parts(path)
    names = {}
    for dep in conda:
        match = CONDA_PIN.match(dep)
        assert match, f"{path.name}: conda dependency {dep!r} is not pinned as name=version"
        names[match["name"]] = match["version"]
    assert names.get("python") == "3.11.7"
    # The lock's wheels are those of Python 3.11 (the Makefile accepts any 3.11.x): the
    # envs pin one patch release, the tests need the same minor version.
    minor = ".".join(names["python"].split(".")[:2])
    assert ".".join(platform.python_version_tuple()[:2]) == minor, "tests run on another Python than the envs pin"
    assert names.get("pip") == installed("pip")
    assert set(names) == {"python", "pip"}, f"{path.name}: packages come from the pip section (lock pins)"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_pip_pins_equal_lock_and_installed(path):
    _, _, pip = env_parts(path)
    lock = read_lock()
    seen = set()
    for dep in pip:
        match = PIP_PIN.match(dep)
        assert match, f"{path.name}: pip dependency {dep!r} is not pinned exactly (name==version)"
        name = canonicalize_name(match["name"])
        assert name not in seen, f"{path.name}: {name} listed twice"
        seen.add(name)
        assert name != "graphrole", f"{path.name}: graphrole must come from the post-deploy script (--no-deps)"
        assert name in lock, f"{path.name}: {name} is not in requirements.lock"
        assert match["version"] == lock[name], f"{path.name}: {name}=={match['version']} but the lock has {lock[name]}"
        assert match["version"] == installed(match["name"]), f"{path.name}: {name} differs from the installed version"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_pip_pins_closed_under_dependencies(path):
    """Every installed requirement of a pinned package is pinned too (no unpinned drift)."""
    from packaging.requirements import Requirement

    _, _, pip = env_parts(path)
    pinned = {canonicalize_name(PIP_PIN.match(d)["name"]) for d in pip}
    missing = set()
    for name in pinned:
        for spec in importlib.metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(req.name) not in pinned | {"setuptools"}:
                missing.add(f"{req.name} (needed by {name})")
    assert not missing, f"{path.name}: unpinned dependencies: {sorted(missing)}"


def test_gsmoe_env_covers_package_imports():
    _, _, pip = env_parts(REPO / "envs" / "gsmoe.yaml")
    pinned = {canonicalize_name(PIP_PIN.match(d)["name"]) for d in pip}
    assert {"torch", "torch-geometric", "numpy", "scipy", "pandas", "networkx", "scikit-learn"} <= pinned
    _, _, pip = env_parts(REPO / "envs" / "report.yaml")
    pinned = {canonicalize_name(PIP_PIN.match(d)["name"]) for d in pip}
    assert {"pandas", "numpy", "scipy", "matplotlib", "seaborn"} <= pinned


def test_post_deploy_installs_graphrole_without_deps():
    script = REPO / "envs" / "gsmoe.post-deploy.sh"
    assert script.is_file(), "envs/gsmoe.post-deploy.sh must sit next to envs/gsmoe.yaml"
    assert script.read_text().startswith("#!")
    commands = [
        shlex.split(line)
        for line in script.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and "pip" in shlex.split(line)
    ]
    assert len(commands) == 1, commands
    (cmd,) = commands
    assert "install" in cmd and "--no-deps" in cmd
    pins = [arg for arg in cmd if arg.startswith("graphrole")]
    assert pins, cmd
    match = PIP_PIN.match(pins[0])
    assert match, f"graphrole is not pinned exactly: {pins[0]!r}"
    assert match["version"] == installed("graphrole")
    makefile = REPO / "Makefile"
    if makefile.is_file():  # the venv recipe must install the same graphrole
        assert f"graphrole=={match['version']}" in makefile.read_text()
    # the lock documents the --no-deps install instead of pinning graphrole itself
    assert "graphrole" not in read_lock()


def test_every_rule_env_exists_and_every_env_is_used():
    used = set()
    for rule_file in RULES:
        text = rule_file.read_text()
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', text):
            target = (rule_file.parent / env).resolve()
            assert target.is_file(), f"{rule_file.name}: conda env {env} does not exist"
            used.add(target)
    assert used == {p.resolve() for p in ENVS}


# ------------------------------------------------------------ each env runs its own rules
CONDA_RE = re.compile(r'conda:\s*\n\s*"([^"]+)"')
SCRIPT_RE = re.compile(r'script:\s*\n\s*"([^"]+)"')
PREAMBLE_START = "######## snakemake preamble start (automatically inserted, do not edit) ########\n"
PREAMBLE_END = "\n######## snakemake preamble end"
# The smoke config's experiments that the environment test trains: the plain model, the
# roles gate (so the roles rule and GraphRole run) and dense gating.
ENV_TEST_EXPERIMENTS = ("baseline", "roles_ma", "moe4_softmax")


def script_envs() -> dict[str, Path]:
    """Rule script name -> the conda env of the rules that run it (one env per rule file)."""
    envs = {}
    for rule_file in RULES:
        text = rule_file.read_text()
        conda = {(rule_file.parent / env).resolve() for env in CONDA_RE.findall(text)}
        assert len(conda) <= 1, f"{rule_file.name}: rules with different envs {sorted(conda)}"
        for script in SCRIPT_RE.findall(text):
            envs[Path(script).name] = next(iter(conda))
    return envs


def small_smoke_config(path: Path) -> Path:
    """The smoke config (its overlay resolved) with ENV_TEST_EXPERIMENTS only (tables,
    figures, claims cut to them), as a complete config."""
    from gsmoe.overlay import resolve_base

    cfg = resolve_base(yaml.safe_load(SMOKE.read_text()), REPO)
    keep = set(ENV_TEST_EXPERIMENTS)
    cfg["experiments"] = {name: exp for name, exp in cfg["experiments"].items() if name in keep}
    for table in cfg["tables"].values():
        table["rows"] = [row for row in table["rows"] if row["experiment"] in keep]
    for figure in cfg["figures"].values():
        figure["experiments"] = [e for e in figure["experiments"] if e in keep]
    cfg["claims"] = [c for c in cfg["claims"] if {c["compare"]["a"], c["compare"]["b"]} <= keep]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _plain(value: Any) -> Any:
    """Snakemake's containers and path strings as builtins, picklable without Snakemake."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def kept_script_job(kept: Path) -> dict[str, Any]:
    """The job of a script that Snakemake kept (--skip-script-cleanup): what its preamble
    hands the script, as builtins, and the path of the rule's own script."""
    preamble = kept.read_text().split(PREAMBLE_START, 1)[1].split(PREAMBLE_END, 1)[0]
    namespace: dict[str, Any] = {"__file__": str(kept)}
    saved_path = list(sys.path)
    try:
        exec(preamble, namespace)  # unpickles Snakemake's `snakemake` object
    finally:
        sys.path[:] = saved_path
    job = namespace["snakemake"]
    named = {
        key: ([_plain(v) for v in getattr(job, key)], {n: _plain(v) for n, v in getattr(job, key).items()})
        for key in ("input", "output", "log", "params", "wildcards", "resources")
    }
    return {
        **named,
        "threads": job.threads,
        "config": _plain(job.config),
        "rule": job.rule,
        "scriptdir": str(job.scriptdir),
        "script": namespace["__file__"],  # the preamble points __file__ at the rule's script
    }


def build_env_venv(env_path: Path, venv: Path) -> Path:
    """A fresh virtual environment from the env's pip section alone, then its post-deploy
    script, as Snakemake would deploy it (with conda's python and pip at their pins)."""
    _, conda, pip = env_parts(env_path)
    pins = dict(CONDA_PIN.match(dep).group("name", "version") for dep in conda)
    assert platform.python_version() == pins["python"], f"tests run on Python {platform.python_version()}, the env pins {pins['python']}"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run([str(python), "-m", "pip", "install", *quiet, f"pip=={pins['pip']}"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", *quiet, *pip], check=True)
    post_deploy = env_path.with_name(f"{env_path.stem}.post-deploy.sh")
    if post_deploy.is_file():
        path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
        subprocess.run(["bash", str(post_deploy)], check=True, env={**os.environ, "PATH": path})
    return python


def installed_in(python: Path) -> dict[str, str]:
    """{canonical name: public version} of what ``pip freeze`` lists in that interpreter."""
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    return {
        canonicalize_name(name): Version(version).public
        for name, version in (line.split("==", 1) for line in frozen.splitlines() if "==" in line)
    }


@pytest.fixture(scope="module")
def smoke_jobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A small smoke workflow run by Snakemake in the test's environment (the reference),
    and the job of every script it ran."""
    if not MIRROR.is_dir():
        pytest.skip(f"local mirror {MIRROR} not present")
    base = tmp_path_factory.mktemp("envs")
    work = base / "work"
    config = small_smoke_config(base / "config.yaml")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "--directory", str(work), "--configfile", str(config), "--skip-script-cleanup"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    jobs = [kept_script_job(p) for p in sorted((work / ".snakemake" / "scripts").glob("*.py"))]
    return work, jobs


@pytest.mark.slow
@pytest.mark.parametrize("env_path", ENVS, ids=lambda p: p.name)
def test_env_pip_section_runs_its_rules(env_path: Path, smoke_jobs, tmp_path: Path) -> None:
    """Every job of the rules that declare this env, rerun in a venv built from the env's
    pip section (no lock) and post-deploy script only, writes its outputs again, and the
    same ones: a missing pin fails the import, a wrong pin the install or the results."""
    work, jobs = smoke_jobs
    envs = script_envs()
    mine = [job for job in jobs if envs[Path(job["script"]).name] == env_path.resolve()]
    rules = {job["rule"] for job in mine}
    declared = {Path(s).stem for s, env in envs.items() if env == env_path.resolve()}
    assert {Path(job["script"]).stem for job in mine} == declared, f"no smoke job ran some script of {env_path.name}"

    python = build_env_venv(env_path, tmp_path / "venv")
    _, _, pip = env_parts(env_path)
    pinned = {canonicalize_name(PIP_PIN.match(d)["name"]): PIP_PIN.match(d)["version"] for d in pip}
    extra = {"graphrole": installed("graphrole")} if env_path.with_name(f"{env_path.stem}.post-deploy.sh").is_file() else {}
    got, want = installed_in(python), {**pinned, **extra}
    # e.g. an index that serves torch's CUDA build (PyPI on Linux) adds unpinned nvidia-* packages
    assert got == want, (
        f"{env_path.name}: pip installed other packages than the env pins: "
        f"unpinned {sorted(set(got) - set(want))}, missing {sorted(set(want) - set(got))}, "
        f"other versions {sorted((n, got[n], want[n]) for n in set(got) & set(want) if got[n] != want[n])}"
    )

    for job in mine:
        outputs = [work / out for out in job["output"][0]]
        before = {out: out.read_bytes() for out in outputs}
        for out in outputs:
            out.unlink()
        job_file = tmp_path / "job.pickle"
        job_file.write_bytes(pickle.dumps(job))
        proc = subprocess.run([str(python), "-I", str(ENV_JOB), str(job_file)], cwd=work, capture_output=True, text=True, timeout=900)
        log = (work / job["log"][0][0]).read_text()
        assert proc.returncode == 0, f"rule {job['rule']} in the {env_path.name} venv failed:\n{log[-4000:]}{proc.stderr[-2000:]}"
        for out in outputs:
            assert out.is_file() and out.stat().st_size > 0, f"rule {job['rule']}: {out} not written"
            if out.suffix == ".json":
                old, new = json.loads(before[out]), json.loads(out.read_bytes())
                if "metrics" in old:  # a run record: same training under the env's pins
                    assert (new["metrics"], new["curves"]) == (old["metrics"], old["curves"]), out
                else:  # a prepared dataset's manifest: the same raw files verified
                    assert new["raw"] == old["raw"], out
            elif out.suffix in (".tex", ".md") or out.name == "summary.csv":
                assert out.read_bytes() == before[out], f"rule {job['rule']}: {out} differs"
    print(f"{env_path.name}: {len(mine)} jobs of rules {sorted(rules)} ran in its own venv")
