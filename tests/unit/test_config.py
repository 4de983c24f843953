"""gsmoe.config: schema + semantic validation, defaults, merging, run table, raw files."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from gsmoe.config import (
    ConfigError,
    load_config,
    model_defaults,
    needs_roles,
    raw_files,
    regex_alternatives,
    resolve_run,
    run_table,
    seed_chunks,
    validate_config,
    verified_members,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "config.yaml"
SMOKE = REPO / "tests" / "workflow" / "config_smoke.yaml"

SHA = "0" * 64
CORA_FILES = [f"ind.cora.{part}" for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")]
ENZYMES_MEMBERS = [f"ENZYMES/ENZYMES_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")]


def minimal() -> dict:
    """A small valid config: one node and one graph dataset, three experiments."""
    return {
        "seeds": [0, 1],
        "sources": {"planetoid": {"url": "https://example.org/planetoid"}, "tu": {"url": "https://example.org/tu"}},
        "datasets": {
            "Cora": {
                "source": "planetoid",
                "pyg_name": "Cora",
                "task": "node",
                "files": [{"relpath": name, "sha256": SHA} for name in CORA_FILES],
                "model": {"dropout": 0.5},
            },
            "ENZYMES": {
                "source": "tu",
                "pyg_name": "ENZYMES",
                "task": "graph",
                "files": [{"relpath": "ENZYMES.zip", "members": dict.fromkeys(ENZYMES_MEMBERS, SHA)}],
                "training": {"lr": 0.001},
            },
        },
        "experiments": {
            "baseline": {"label": "Baseline", "model": {}},
            "moe4": {
                "label": "MoE 4",
                "model": {"placement": "aggregate", "gate": "dense", "num_experts": 4},
                "training": {"epochs": 50},
                "paper": {"Cora": 0.75},
            },
            "roles": {
                "label": "Roles",
                "model": {"placement": "message", "gate": "roles", "num_experts": 4, "dropout": 0.1},
                "datasets": ["ENZYMES"],
            },
        },
        "tables": {"t1": {"title": "T", "rows": [{"experiment": "baseline"}, {"experiment": "moe4", "label": "M"}]}},
        "figures": {"f": {"title": "F", "dataset": "Cora", "experiments": ["baseline", "moe4"]}},
    }


def check_fails(cfg: dict, pattern: str) -> ConfigError:
    with pytest.raises(ConfigError, match=pattern) as info:
        validate_config(cfg)
    return info.value


# ------------------------------------------------------------------ shipped configs


def test_default_config_is_the_full_grid():
    cfg = load_config(DEFAULT)
    assert list(cfg["datasets"]) == ["Cora", "PubMed", "ENZYMES"]
    assert len(cfg["experiments"]) == 9
    assert cfg["seeds"] == list(range(10))
    assert len(run_table(cfg)) == 3 * 9 * 10
    assert cfg["mirror"] is None and cfg["checksum_overrides"] == {}
    assert list(cfg["tables"]) == [f"table{i}" for i in range(1, 6)]
    assert list(cfg["figures"]) == ["figure2", "figure3"]


def test_default_config_canonical_checksums():
    cfg = load_config(DEFAULT)
    pubmed = {f["relpath"]: f for f in raw_files(cfg, "PubMed")}
    # the canonical allx, not the mirror's reconstruction
    assert pubmed["ind.pubmed.allx"]["sha256"] == "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e"
    assert pubmed["ind.pubmed.allx"]["url"] == "https://github.com/kimiyoung/planetoid/raw/master/data/ind.pubmed.allx"
    (zip_file,) = raw_files(cfg, "ENZYMES")
    assert zip_file["url"] == "https://www.chrsmrrs.com/graphkerneldatasets/ENZYMES.zip"
    assert zip_file["sha256"] is None and len(zip_file["members"]) == 6


def test_default_planetoid_checksums_match_mirror_sums():
    """Every planetoid sha256 equals the mirror's SHA256SUMS, except the reconstructed allx."""
    sums_file = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "SHA256SUMS"
    if not sums_file.is_file():
        pytest.skip("local mirror not present")
    sums = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line.strip())
    cfg = load_config(DEFAULT)
    for dataset in ("Cora", "PubMed"):
        for spec in raw_files(cfg, dataset):
            key = f"planetoid/{spec['relpath']}"
            if key == "planetoid/ind.pubmed.allx":
                assert spec["sha256"] != sums[key]
            else:
                assert spec["sha256"] == sums[key], key


def test_default_paper_numbers_and_roles_ma_activation():
    cfg = load_config(DEFAULT)
    assert cfg["experiments"]["moe16"]["paper"] == {"Cora": 0.77, "PubMed": 0.74, "ENZYMES": 0.42}
    run = resolve_run(cfg, "Cora", "roles_ma", 0)
    assert run["model"]["update_activation"] == "outside"
    assert resolve_run(cfg, "Cora", "moe4_softmax", 0)["model"]["update_activation"] == "inside"
    assert resolve_run(cfg, "PubMed", "baseline", 0)["training"]["lr"] == 0.001
    assert resolve_run(cfg, "Cora", "baseline", 0)["model"]["dropout"] == 0.5


def test_smoke_config_relative_mirror_and_override(tmp_path):
    cfg = load_config(SMOKE, base_dir=REPO)
    assert Path(cfg["mirror"]).resolve() == (REPO / ".." / "shared" / "datasets").resolve()
    allx = {f["relpath"]: f for f in raw_files(cfg, "PubMed")}["ind.pubmed.allx"]
    assert allx["sha256"] == "8894673ffbee796f2df41a3d919d67e1fed2ea3d6345cb8eb363b3238d0aeed6"
    assert allx["url"] == f"{cfg['mirror']}/planetoid/ind.pubmed.allx"
    assert {r["dataset"] for r in run_table(cfg)} == {"Cora", "ENZYMES"}
    assert len(run_table(cfg)) == 9 * 2 * 2
    assert all(t["columns"] == ["Cora", "ENZYMES"] for t in cfg["tables"].values())
    # resolved against the working directory when no base_dir is given
    cwd_cfg = load_config(SMOKE) if Path.cwd() == REPO else None
    if cwd_cfg is not None:
        assert cwd_cfg["mirror"] == cfg["mirror"]


# ------------------------------------------------------------------ defaults and merging


def test_defaults_filled():
    cfg = validate_config(minimal())
    assert cfg["mirror"] is None
    assert cfg["device"] == "auto" and cfg["gpu"] is False
    assert cfg["threads_per_job"] == 1 and cfg["seeds_per_job"] == 1
    assert cfg["roles"] == {"n_roles": 4, "seed": 0, "workers": 1}
    assert cfg["datasets"]["Cora"]["training"] == {
        "lr": 0.01,
        "weight_decay": 0.005,
        "epochs": 300,
        "eval_every": 10,
        "batch_size": 32,
        "expert_updates": "lazy",
    }
    assert cfg["table_metric"] == {"protocol": "paper", "metric": "last"}
    assert cfg["figures"]["f"]["metric"] == "paper_acc"
    # shorthands made explicit
    assert cfg["experiments"]["baseline"]["datasets"] == ["Cora", "ENZYMES"]
    assert cfg["tables"]["t1"]["columns"] == ["Cora", "ENZYMES"]
    assert [r["label"] for r in cfg["tables"]["t1"]["rows"]] == ["Baseline", "M"]


def test_override_maps_are_not_filled():
    """experiments.<e>.model/training carry no defaults: absent keys are inherited."""
    cfg = validate_config(minimal())
    assert cfg["experiments"]["moe4"]["training"] == {"epochs": 50}
    assert "dropout" not in cfg["experiments"]["moe4"]["model"]
    assert cfg["datasets"]["Cora"]["model"] == {"dropout": 0.5}


def test_input_not_modified():
    raw = minimal()
    before = copy.deepcopy(raw)
    validate_config(raw)
    assert raw == before


def test_resolve_run_merging_order():
    cfg = validate_config(minimal())
    run = resolve_run(cfg, "Cora", "moe4", 1)
    assert set(run) == {"dataset", "experiment", "seed", "task", "source", "pyg_name", "model", "training"}
    assert (run["dataset"], run["experiment"], run["seed"], run["task"]) == ("Cora", "moe4", 1, "node")
    assert (run["source"], run["pyg_name"]) == ("planetoid", "Cora")
    assert run["model"] == {
        **model_defaults(),
        "dropout": 0.5,
        "placement": "aggregate",
        "gate": "dense",
        "num_experts": 4,
    }
    assert run["training"]["epochs"] == 50 and run["training"]["lr"] == 0.01  # experiment <- dataset
    # experiment beats dataset for model keys
    graph = resolve_run(cfg, "ENZYMES", "roles", 0)
    assert graph["model"]["dropout"] == 0.1
    assert graph["training"]["lr"] == 0.001 and graph["training"]["epochs"] == 300
    assert graph["split"] == {"standard": [0.8, 0.1, 0.1], "paper": [0.8, 0.2], "seed_offset": 0}


def test_resolve_run_rejects_unknown_or_excluded():
    cfg = validate_config(minimal())
    with pytest.raises(ConfigError, match="no dataset 'Citeseer'"):
        resolve_run(cfg, "Citeseer", "baseline", 0)
    with pytest.raises(ConfigError, match="no experiment 'moe9'"):
        resolve_run(cfg, "Cora", "moe9", 0)
    with pytest.raises(ConfigError, match="does not run on 'Cora'"):
        resolve_run(cfg, "Cora", "roles", 0)


def test_run_table_and_roles():
    cfg = validate_config(minimal())
    table = run_table(cfg)
    assert table[:2] == [
        {"dataset": "Cora", "experiment": "baseline", "seed": 0},
        {"dataset": "Cora", "experiment": "baseline", "seed": 1},
    ]
    assert len(table) == (2 + 2 + 1) * 2
    assert needs_roles(cfg, "ENZYMES", "roles") and not needs_roles(cfg, "ENZYMES", "moe4")


def test_raw_files_mirror_and_overrides(tmp_path):
    raw = minimal()
    raw["mirror"] = "mirror_dir"
    raw["checksum_overrides"] = {"planetoid/ind.cora.y": "a" * 64}
    cfg = validate_config(raw, base_dir=tmp_path)
    assert cfg["mirror"] == str(tmp_path / "mirror_dir")
    files = raw_files(cfg, "Cora")
    assert files[0] == {
        "relpath": "ind.cora.x",
        "url": str(tmp_path / "mirror_dir/planetoid/ind.cora.x"),
        "sha256": SHA,
        "members": {},
    }
    assert next(f for f in files if f["relpath"] == "ind.cora.y")["sha256"] == "a" * 64
    raw["mirror"] = "http://127.0.0.1:8765/"
    cfg = validate_config(raw)
    assert raw_files(cfg, "ENZYMES")[0]["url"] == "http://127.0.0.1:8765/tu/ENZYMES.zip"
    assert raw_files(cfg, "ENZYMES")[0]["members"] == dict.fromkeys(ENZYMES_MEMBERS, SHA)


def test_verified_members_only_for_archives_without_a_checksum():
    raw = minimal()
    cfg = validate_config(raw)
    assert verified_members(cfg, "ENZYMES") == sorted(ENZYMES_MEMBERS)
    assert verified_members(cfg, "Cora") is None  # plain files, verified as a whole
    raw["checksum_overrides"] = {"tu/ENZYMES.zip": "b" * 64}  # now the archive itself is pinned
    assert verified_members(validate_config(raw), "ENZYMES") is None


def test_seed_chunks_and_regex():
    assert seed_chunks([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert seed_chunks([5], 3) == [[5]]
    with pytest.raises(ValueError):
        seed_chunks([0], 0)
    pattern = regex_alternatives(["ind.cora.x", "ENZYMES.zip"])
    assert re.fullmatch(pattern, "ind.cora.x") and not re.fullmatch(pattern, "indXcora.x")


# ------------------------------------------------------------------ bad configs: schema


def test_unknown_top_level_key():
    cfg = minimal()
    cfg["seed"] = [0]
    check_fails(cfg, r"^config: unknown key 'seed' \(misspelt\?\)")


def test_unknown_nested_key_names_path():
    cfg = minimal()
    cfg["experiments"]["moe4"]["model"]["topk"] = 2
    err = check_fails(cfg, r"config: experiments\.moe4\.model: unknown key 'topk'")
    assert "top_k" in str(err)  # lists the allowed keys


def test_wrong_type():
    cfg = minimal()
    cfg["datasets"]["Cora"]["training"] = {"epochs": "many"}
    check_fails(cfg, r"config: datasets\.Cora\.training\.epochs: expected integer, got str 'many'")


def test_unknown_gate():
    cfg = minimal()
    cfg["experiments"]["moe4"]["model"]["gate"] = "sparse"
    check_fails(cfg, r"config: experiments\.moe4\.model\.gate: 'sparse' is not one of 'none', 'roles'")


def test_negative_epochs():
    cfg = minimal()
    cfg["experiments"]["moe4"]["training"]["epochs"] = -3
    check_fails(cfg, r"config: experiments\.moe4\.training\.epochs \(-3\) must be >= 1")


def test_empty_seeds():
    cfg = minimal()
    cfg["seeds"] = []
    check_fails(cfg, r"config: seeds is empty; give at least one")


def test_missing_required_key():
    cfg = minimal()
    del cfg["datasets"]["Cora"]["task"]
    check_fails(cfg, r"config: datasets\.Cora: missing required key 'task'")


def test_bad_sha256():
    cfg = minimal()
    cfg["datasets"]["Cora"]["files"][0]["sha256"] = "abc"
    check_fails(cfg, r"config: datasets\.Cora\.files\[0\]\.sha256")


def test_bad_dataset_key():
    cfg = minimal()
    cfg["datasets"]["my-data"] = cfg["datasets"].pop("Cora")
    check_fails(cfg, r"config: datasets: key 'my-data' does not match")


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        validate_config([1, 2])  # type: ignore[arg-type]
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


# ------------------------------------------------------------------ bad configs: semantics


def test_top_k_larger_than_experts():
    cfg = minimal()
    cfg["experiments"]["topk"] = {
        "label": "k",
        "model": {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 4, "top_k": 5},
    }
    check_fails(cfg, r"^config: experiments\.topk\.model\.top_k \(5\) must be <= num_experts \(4\)\.$")


def test_top_k_default_checked_against_experts():
    cfg = minimal()
    cfg["experiments"]["topk"] = {
        "label": "k",
        "model": {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 2},
    }
    check_fails(cfg, r"experiments\.topk\.model\.top_k \(built-in default\) \(4\) must be <= num_experts \(2\)")


def test_shared_routing_noise_refuses_the_balance_loss():
    cfg = minimal()
    cfg["experiments"]["topk"] = {
        "label": "k",
        "model": {"placement": "aggregate", "gate": "noisy_topk", "num_experts": 4, "routing_noise": "shared",
                  "balance_loss_weight": 0.01},
    }  # fmt: skip
    check_fails(cfg, r"^config: experiments\.topk\.model\.balance_loss_weight \(0\.01\) needs routing_noise: independent")
    cfg["experiments"]["topk"]["model"]["balance_loss_weight"] = 0.0
    assert validate_config(cfg)["experiments"]["topk"]["model"]["routing_noise"] == "shared"


def test_roles_gate_needs_n_roles_experts():
    cfg = minimal()
    cfg["experiments"]["roles"]["model"]["num_experts"] = 8
    check_fails(cfg, r"config: experiments\.roles\.model\.num_experts \(8\) must equal roles\.n_roles \(4\)")


def test_placement_gate_consistency():
    cfg = minimal()
    cfg["experiments"]["moe4"]["model"]["gate"] = "none"
    check_fails(cfg, r"experiments\.moe4\.model\.gate is 'none' but placement is 'aggregate'")
    cfg = minimal()
    cfg["experiments"]["baseline"]["model"] = {"num_experts": 4}
    check_fails(cfg, r"placement \(built-in default\) is 'none' .* num_experts is 4")


def test_experiment_names_unknown_dataset():
    cfg = minimal()
    cfg["experiments"]["roles"]["datasets"] = ["ENZYMES", "Pubmed"]
    check_fails(cfg, r"config: experiments\.roles\.datasets names unknown dataset 'Pubmed'")


def test_paper_names_unknown_dataset():
    cfg = minimal()
    cfg["experiments"]["moe4"]["paper"]["CiteSeer"] = 0.7
    check_fails(cfg, r"experiments\.moe4\.paper names unknown dataset 'CiteSeer'")


def test_table_names_unknown_experiment_or_dataset():
    cfg = minimal()
    cfg["tables"]["t1"]["rows"].append({"experiment": "moe5"})
    check_fails(cfg, r"config: tables\.t1\.rows\[2\]\.experiment names unknown experiment 'moe5'")
    cfg = minimal()
    cfg["tables"]["t1"]["columns"] = ["Cora", "PubMed"]
    check_fails(cfg, r"config: tables\.t1\.columns names unknown dataset 'PubMed'")


def test_figure_names_unknown_experiment_or_dataset():
    cfg = minimal()
    cfg["figures"]["f"]["experiments"].append("moe5")
    check_fails(cfg, r"config: figures\.f\.experiments names unknown experiment 'moe5'")
    cfg = minimal()
    cfg["figures"]["f"]["dataset"] = "PubMed"
    check_fails(cfg, r"config: figures\.f\.dataset names unknown dataset 'PubMed'")
    cfg = minimal()
    cfg["figures"]["f"]["experiments"].append("roles")  # roles runs on ENZYMES only
    check_fails(cfg, r"config: figures\.f\.experiments: 'roles' does not run on 'Cora'")


def test_checksum_override_for_unknown_file():
    cfg = minimal()
    cfg["checksum_overrides"] = {"planetoid/ind.pubmed.allx": SHA}
    check_fails(cfg, r"config: checksum_overrides\.planetoid/ind\.pubmed\.allx names no raw file")


def test_shared_raw_file_needs_same_checksum():
    cfg = minimal()
    cfg["datasets"]["Cora2"] = copy.deepcopy(cfg["datasets"]["Cora"])
    validate_config(cfg)  # the same file with the same checksum: fine (one download job)
    cfg["datasets"]["Cora2"]["files"][0]["sha256"] = "b" * 64
    check_fails(cfg, r"config: datasets\.Cora2\.files\[0\] \(planetoid/ind\.cora\.x\) has other checksums")


def test_unknown_source():
    cfg = minimal()
    del cfg["sources"]["tu"]
    check_fails(cfg, r"config: datasets\.ENZYMES\.source \('tu'\) is not a key of sources")
    cfg = minimal()
    cfg["datasets"]["Cora"]["source"] = "ogb"  # no loader: only that is said, not "add it to sources"
    err = check_fails(cfg, r"config: datasets\.Cora\.source \('ogb'\) has no loader")
    assert len(str(err).splitlines()) == 1


def test_source_without_loader():
    cfg = minimal()
    cfg["sources"]["tu2"] = {"url": "https://example.org/tu"}
    cfg["datasets"]["ENZYMES"]["source"] = "tu2"
    check_fails(cfg, r"config: datasets\.ENZYMES\.source \('tu2'\) has no loader: gsmoe reads planetoid \(node task\) and tu")


@pytest.mark.parametrize("dataset,task,expected", [("Cora", "graph", "node"), ("ENZYMES", "node", "graph")])
def test_task_must_match_the_source(dataset: str, task: str, expected: str):
    """Cora as a graph task used to pass validation and fail in training with an IndexError."""
    cfg = minimal()
    cfg["datasets"][dataset]["task"] = task
    cfg["datasets"][dataset].pop("split", None)
    check_fails(cfg, rf"config: datasets\.{dataset}\.task is '{task}', but .* set task: {expected}\.")


def test_loader_tasks_match_the_loaders():
    from gsmoe.datasets import SOURCES
    from gsmoe.loaders import SOURCE_TASKS

    assert set(SOURCE_TASKS) == set(SOURCES)


def test_raw_file_needs_a_checksum():
    cfg = minimal()
    cfg["datasets"]["Cora"]["files"][0]["sha256"] = None
    check_fails(cfg, r"config: datasets\.Cora\.files\[0\] \(ind\.cora\.x\) has no checksum")
    cfg = minimal()
    zip_spec = next(f for f in cfg["datasets"]["ENZYMES"]["files"] if f["relpath"].endswith(".zip"))
    zip_spec["sha256"] = None
    validate_config(cfg)  # members alone verify a zip
    zip_spec["members"] = {}
    check_fails(cfg, r"config: datasets\.ENZYMES\.files\[0\] \(ENZYMES\.zip\) has no checksum")


def test_split_checks():
    cfg = minimal()
    cfg["datasets"]["ENZYMES"]["split"] = {"standard": [0.8, 0.1, 0.2]}
    check_fails(cfg, r"datasets\.ENZYMES\.split\.standard .* must sum to 1")
    cfg = minimal()
    cfg["datasets"]["Cora"]["split"] = {"seed_offset": 1}
    check_fails(cfg, r"datasets\.Cora\.split is only used by graph tasks")


def test_all_semantic_errors_reported_together():
    cfg = minimal()
    cfg["experiments"]["roles"]["datasets"] = ["Nope"]
    cfg["tables"]["t1"]["rows"].append({"experiment": "moe5"})
    err = check_fails(cfg, "Nope")
    lines = str(err).splitlines()
    assert len(lines) == 2 and all(line.startswith("config: ") for line in lines)


def test_default_yaml_round_trip_through_validation(tmp_path):
    """A config written back from a validated one validates to the same thing."""
    cfg = load_config(DEFAULT)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert load_config(path) == cfg


def test_shared_gate_needs_both_placements():
    cfg = minimal()
    cfg["experiments"]["moe4"]["model"]["gate"] = "shared"
    check_fails(cfg, r"experiments\.moe4\.model\.gate is 'shared' .* use placement: both")


def test_paper_split_follows_standard_split():
    cfg = minimal()
    cfg["datasets"]["ENZYMES"]["split"] = {"standard": [0.8, 0.1, 0.1], "paper": [0.5, 0.5]}
    check_fails(cfg, r"datasets\.ENZYMES\.split\.paper \(\[0\.5, 0\.5\]\) must be \[train, held-out\]")


def test_table_metric_must_be_reported():
    cfg = minimal()
    cfg["table_metric"] = {"protocol": "paper", "metric": "test"}
    check_fails(cfg, r"table_metric \{protocol: paper, metric: test\} is not reported")


def test_claims_and_references_checked_before_training():
    cfg = minimal()
    cfg["claims"] = [{"id": "c", "text": "t", "compare": {"a": "moe5", "b": "baseline"}, "expect": "greater"}]
    check_fails(cfg, r"config: claims\[0\]\.compare\.a: claim 'c' names unknown experiment 'moe5'")
    cfg = minimal()
    cfg["references"] = {"Cora": {"value": 0.8, "source": "s", "model": "GCN", "experiment": "basline"}}
    check_fails(cfg, r"references\.Cora\.experiment names unknown experiment 'basline'")
    cfg = minimal()
    cfg["references"] = {"CiteSeer": {"value": 0.7, "source": "s", "model": "GCN"}}
    check_fails(cfg, r"references\.CiteSeer names unknown dataset")


# ------------------------------------------------------------------ every error at once, before any job


def test_every_error_reported_at_once():
    """The same typo in two datasets is two errors, reported with the semantic errors elsewhere."""
    cfg = minimal()
    for name in ("Cora", "ENZYMES"):
        cfg["datasets"][name]["trainig"] = {"lr": 0.1}
    cfg["datasets"]["Cora"]["files"].pop()  # ind.cora.test.index
    cfg["experiments"]["moe4"]["model"].update(gate="noisy_topk", top_k=5)
    cfg["tables"]["t1"]["rows"].append({"experiment": "moe5"})
    lines = str(check_fails(cfg, "trainig")).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "datasets.Cora",
        "datasets.ENZYMES",
        "datasets.Cora.files lacks ind.cora.test.index",
        "experiments.moe4.model.top_k (5) must be <= num_experts (4).",
        "tables.t1.rows[2].experiment names unknown experiment 'moe5' (known",
    ]
    assert lines[0].startswith("config: datasets.Cora: unknown key 'trainig' (misspelt?)")
    assert lines[1].startswith("config: datasets.ENZYMES: unknown key 'trainig' (misspelt?)")


def test_entries_with_schema_errors_are_not_read_by_the_semantic_checks():
    """The semantic checks skip what the schema rejected (they would crash on it) and check the rest."""
    cfg = minimal()
    cfg["experiments"]["moe4"]["model"] = "dense"
    cfg["experiments"]["roles"]["model"]["num_experts"] = 8
    cfg["figures"]["f"]["dataset"] = "PubMed"
    lines = str(check_fails(cfg, r"experiments\.moe4\.model: expected object")).splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("config: experiments.roles.model.num_experts (8) must equal roles.n_roles (4)")
    assert lines[2].startswith("config: figures.f.dataset names unknown dataset 'PubMed'")


def test_schema_checked_once(monkeypatch: pytest.MonkeyPatch):
    import jsonschema

    calls = []
    iter_errors = jsonschema.Draft202012Validator.iter_errors
    monkeypatch.setattr(
        jsonschema.Draft202012Validator,
        "iter_errors",
        lambda self, instance, *args: calls.append(1) or iter_errors(self, instance, *args),
    )
    validate_config(minimal())
    assert len(calls) == 1


def _property_schemas(node, root, path=()):
    """(key path, property schema with its $ref resolved) of every property with a default."""
    from gsmoe.config.schema import _deref

    if isinstance(node, dict):
        resolved = _deref(node, root) if "$ref" in node else node
        if "default" in node:
            yield path, resolved
        for key, value in node.items():
            if key != "default":
                yield from _property_schemas(value, root, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _property_schemas(value, root, (*path, i))


def test_schema_defaults_are_valid():
    """Defaults are filled after the one schema check, so each must pass its own schema."""
    import jsonschema

    from gsmoe.config import load_schema

    schema = load_schema()
    checked = 0
    for path, sub in _property_schemas(schema, schema):
        validator = jsonschema.Draft202012Validator({**sub, "$defs": schema["$defs"]})
        errors = [e.message for e in validator.iter_errors(sub["default"])]
        assert not errors, f"default of {'/'.join(map(str, path))}: {errors}"
        checked += 1
    assert checked > 40


def test_planetoid_raw_files_checked_against_pyg_name():
    cfg = minimal()
    cfg["datasets"]["Cora"]["files"] = [f for f in cfg["datasets"]["Cora"]["files"] if f["relpath"] != "ind.cora.graph"]
    check_fails(cfg, r"^config: datasets\.Cora\.files lacks ind\.cora\.graph: PyG's Planetoid loader reads these")
    cfg = minimal()
    cfg["datasets"]["Cora"]["pyg_name"] = "CiteSeer"
    err = check_fails(cfg, r"datasets\.Cora\.files lacks ind\.citeseer\.x, ind\.citeseer\.tx, .* pyg_name 'CiteSeer'")
    assert "The files listed are ind.cora.*: is pyg_name wrong?" in str(err)
    cfg = minimal()
    for spec in cfg["datasets"]["Cora"]["files"]:
        spec["relpath"] = f"sub/{spec['relpath']}"  # the loader reads the file names
    validate_config(cfg)


def test_tu_files_checked_against_pyg_name():
    cfg = minimal()
    del cfg["datasets"]["ENZYMES"]["files"][0]["members"]["ENZYMES/ENZYMES_graph_labels.txt"]
    check_fails(cfg, r"datasets\.ENZYMES\.files\[0\]\.members lacks ENZYMES/ENZYMES_graph_labels\.txt")
    cfg["checksum_overrides"] = {"tu/ENZYMES.zip": SHA}  # a pinned archive is extracted whole
    validate_config(cfg)
    cfg = minimal()
    cfg["datasets"]["ENZYMES"]["files"].append({"relpath": "extra.txt", "sha256": SHA})
    check_fails(cfg, r"datasets\.ENZYMES\.files must be one zip archive for the tu loader")


def test_shipped_configs_name_the_files_their_loaders_read():
    for path in (DEFAULT, SMOKE, REPO / "tests" / "reliability" / "config_tiny.yaml"):
        load_config(path, base_dir=REPO)


def test_schema_enums_are_the_protocols():
    from gsmoe.config import load_schema
    from gsmoe.protocols import PROTOCOL_METRICS, PROTOCOLS

    schema = load_schema()
    table_metric = schema["properties"]["table_metric"]["properties"]
    assert tuple(table_metric["protocol"]["enum"]) == PROTOCOLS
    assert table_metric["metric"]["enum"] == list(dict.fromkeys(m for ms in PROTOCOL_METRICS.values() for m in ms))
    assert tuple(schema["$defs"]["reference"]["properties"]["protocol"]["enum"]) == PROTOCOLS


def test_validation_imports_neither_the_report_layer_nor_torch():
    import subprocess
    import sys

    code = (
        "import sys; from gsmoe.config import load_config; load_config(sys.argv[1]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'scipy', 'torch') "
        "or m.startswith('gsmoe.report')); print(heavy); sys.exit(bool(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(DEFAULT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
