"""Config overlays (gsmoe.overlay): base files beneath a file, "*" entries, and the smoke
config that is config.yaml's grid with only its differences."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gsmoe.config import ConfigError, load_config
from gsmoe.overlay import OverlayError, merge, resolve_base

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "tests" / "workflow" / "config_smoke.yaml"


def test_merge_mappings_key_by_key_and_replaces_the_rest() -> None:
    base = {"seeds": [0, 1, 2], "roles": {"n_roles": 4, "seed": 0}, "mirror": "x"}
    overlay = {"seeds": [5], "roles": {"seed": 3}, "mirror": None, "device": "cpu"}
    assert merge(base, overlay) == {"seeds": [5], "roles": {"n_roles": 4, "seed": 3}, "mirror": None, "device": "cpu"}
    assert base == {"seeds": [0, 1, 2], "roles": {"n_roles": 4, "seed": 0}, "mirror": "x"}  # not changed


def test_every_entry_under_the_named_ones() -> None:
    base = {"experiments": {"a": {"label": "A", "model": {"hidden": 32}}, "b": {"label": "B"}}}
    overlay = {"experiments": {"*": {"model": {"hidden": 8}, "datasets": ["Cora"]}, "b": {"datasets": None}}}
    assert merge(base, overlay) == {
        "experiments": {
            "a": {"label": "A", "model": {"hidden": 8}, "datasets": ["Cora"]},
            "b": {"label": "B", "model": {"hidden": 8}, "datasets": None},  # its own value wins
        }
    }


def test_bases_merge_in_order_relative_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("seeds: [0]\nroles: {n_roles: 4}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "two.yaml").write_text("base: one.yaml\nroles: {seed: 7}\ndevice: cuda\n")
    config = {"base": ["sub/two.yaml"], "device": "cpu"}
    assert resolve_base(config, tmp_path) == {"seeds": [0], "roles": {"n_roles": 4, "seed": 7}, "device": "cpu"}
    assert resolve_base({"seeds": [1]}, tmp_path) == {"seeds": [1]}  # no base: as it is


@pytest.mark.parametrize(
    ("config", "files", "match"),
    [
        ({"base": "missing.yaml"}, {}, r"base missing.yaml names .*missing.yaml, which cannot be read .*repository root"),
        ({"base": "a.yaml"}, {"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "names itself"),
        ({"base": "a.yaml"}, {"a.yaml": "[1, 2]\n"}, "must be a mapping"),
        ({"base": []}, {}, "base must be a file path or a list"),
        ({"experiments": {"*": {"datasets": ["Cora"]}}}, {}, r"experiments\.\*: the key '\*' .* base: config.yaml"),
    ],
)
def test_bad_overlays_name_the_problem(tmp_path: Path, config: dict, files: dict[str, str], match: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(OverlayError, match=match):
        resolve_base(config, tmp_path)


def test_load_config_reads_an_overlay_as_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("base: nope.yaml\n")
    with pytest.raises(ConfigError, match="base nope.yaml names"):
        load_config(path, base_dir=tmp_path)


def test_smoke_config_is_the_paper_grid_with_its_differences() -> None:
    """The smoke run runs config.yaml's experiments, tables, figures and claims: the file
    holds only datasets, seeds, epochs and model size (and the mirror's file)."""
    raw = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    assert set(raw) == {"base", "seeds", "device", "seeds_per_job", "datasets", "experiments", "tables"}
    smoke, default = load_config(SMOKE, base_dir=REPO), load_config(REPO / "config.yaml", base_dir=REPO)
    for key in ("figures", "claims", "claims_alpha", "references", "table_metric", "sources", "roles"):
        assert smoke[key] == default[key], key
    assert list(smoke["experiments"]) == list(default["experiments"])
    for name, experiment in default["experiments"].items():
        assert smoke["experiments"][name] == {**experiment, "datasets": ["Cora", "ENZYMES"]}
    for name, table in default["tables"].items():
        assert smoke["tables"][name] == {**table, "columns": ["Cora", "ENZYMES"]}
    for name, dataset in default["datasets"].items():
        training = {**dataset["training"], "epochs": 3, "eval_every": 1}
        assert smoke["datasets"][name] == {**dataset, "training": training, "model": {**dataset["model"], "hidden": 8}}
    assert (smoke["seeds"], smoke["device"], smoke["seeds_per_job"]) == ([0, 1], "cpu", 2)
