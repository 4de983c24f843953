"""envs/*.yaml: parse, exact pins, equal to requirements.lock and to the tested environment.

conda cannot reach a channel on the test machines, so the environments are not built here;
instead every pin is compared with requirements.lock (what CI installs) and with the version
installed in the running interpreter (what the tests actually ran against).
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import shlex
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
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
