"""Claims: verdicts on synthetic runs whose answer is known, the claims config, references, output files."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from gsmoe.config import ConfigError, load_config, load_schema, validate_config
from gsmoe.config.claims import claims_errors, parse_claims
from gsmoe.config.schema import fill_defaults
from gsmoe.protocols import COMPARED_COLUMNS
from gsmoe.report.aggregate import RUN_COLUMNS
from gsmoe.report.claims import write_claims
from gsmoe.report.power import minimal_detectable_effect, min_pairs_for_alpha
from gsmoe.report.references import REFERENCE_COLUMNS, check_references
from gsmoe.report.stats import holm
from gsmoe.report.verdicts import CLAIM_COLUMNS, decide, evaluate_claims

ROOT = Path(__file__).resolve().parents[2]
SEEDS = list(range(10))
# Fixed per-seed noise shared by all experiments of a dataset (what pairing removes),
# plus a small per-experiment wobble, so differences are clear but not constant.
SEED_EFFECT = np.linspace(-0.03, 0.03, len(SEEDS))
WOBBLE = np.array([0.002, -0.001, 0.0, 0.001, -0.002, 0.002, -0.001, 0.001, 0.0, -0.002])

EXPERIMENTS = {
    "base": {"label": "Base", "paper": {"Cora": 0.71, "ENZYMES": 0.31}},
    "win": {"label": "Wins", "paper": {"Cora": 0.75, "ENZYMES": 0.34}},
    "lose": {"label": "Loses", "paper": {"Cora": 0.69}},
    "noise": {"label": "Noise", "paper": {"Cora": 0.72}},
    "same": {"label": "Same", "paper": {"Cora": 0.71}},
    "close": {"label": "Close", "paper": {"Cora": 0.75}},  # +0.005 on Cora: a claim of +0.04 overstated
    "wide": {"label": "Wide", "paper": {"Cora": 0.71}},
    "absent": {"label": "Never run", "paper": {"Cora": 0.80}},
}
DATASETS = {"Cora": {}, "ENZYMES": {}}


def run_rows(dataset: str, experiment: str, means: float | list[float], seeds: list[int] = SEEDS) -> list[dict]:
    """runs.csv rows; ``means`` is one offset for all seeds or one value per seed."""
    rows = []
    for i, seed in enumerate(seeds):
        if isinstance(means, list):
            value = means[i]
        else:
            value = means + SEED_EFFECT[seed] + (WOBBLE[seed] if experiment != "base" else 0.0)
        rows.append(
            {
                "dataset": dataset,
                "experiment": experiment,
                "seed": seed,
                "paper_last": value,
                "paper_best": value + 0.01,
                "paper_best_epoch": 100,
                "standard_test": value - 0.01,
                "standard_val": value,
                "standard_epoch": 90,
                "wall_time_s": 1.0,
                "num_parameters": 100,
                "active_parameters": 100,
                "device": "cpu",
            }
        )
    return rows


def frame(*row_lists: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for rows in row_lists for r in rows], columns=RUN_COLUMNS)


def base_runs() -> pd.DataFrame:
    """base 0.70; win +0.05; lose -0.05; close +0.005; noise: ±0.01 and wide: ±0.05 alternating
    around base; same = base exactly."""
    base = [0.70 + e for e in SEED_EFFECT]
    noise = [b + (0.01 if s % 2 else -0.01) for s, b in enumerate(base)]
    wide = [b + (0.05 if s % 2 else -0.05) for s, b in enumerate(base)]
    return frame(
        run_rows("Cora", "base", 0.70),
        run_rows("Cora", "win", 0.75),
        run_rows("Cora", "lose", 0.65),
        run_rows("Cora", "close", 0.705),
        run_rows("Cora", "noise", noise),
        run_rows("Cora", "wide", wide),
        run_rows("Cora", "same", list(base)),
        run_rows("ENZYMES", "base", 0.30),
        run_rows("ENZYMES", "win", 0.25),
    )


def with_defaults(cfg: dict) -> dict:
    """``cfg`` with the schema's defaults of its claims sections and seeds (0-9), as validation fills them."""
    schema = load_schema()
    keys = ("seeds", "claims", "claims_alpha", "claims_design", "references")
    sections = {key: schema["properties"][key] for key in keys}
    cfg = copy.deepcopy(cfg)
    fill_defaults(cfg, {"properties": sections}, schema)
    return cfg


def config(*claims: dict, **extra: Any) -> dict:
    return with_defaults({"experiments": EXPERIMENTS, "datasets": DATASETS, "claims": list(claims), **extra})


def claim(cid: str, a: str, b: str, expect: str | None = "greater", **over: Any) -> dict:
    entry = {"id": cid, "text": f"{a} vs {b}", "table": "table9", "compare": {"a": a, "b": b}}
    if expect is not None:
        entry["expect"] = expect
    entry.update(over)
    return entry


def claims_md(tmp_path: Path, runs: pd.DataFrame, cfg: dict) -> str:
    """``claims.md`` as :func:`write_claims` writes it from ``runs`` (through a ``runs.csv``)."""
    runs_csv = tmp_path / "runs.csv"
    runs.to_csv(runs_csv, index=False)
    write_claims(str(runs_csv), cfg, str(tmp_path / "c.md"), str(tmp_path / "c.csv"))
    return (tmp_path / "c.md").read_text(encoding="utf-8")


def verdicts(df: pd.DataFrame, cid: str, dataset: str = "Cora") -> set[str]:
    """Verdicts of one claim on one dataset over both protocols."""
    return set(df[(df["claim"] == cid) & (df["dataset"] == dataset)]["verdict"])


# ----------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("a", "expect", "verdict"),
    [
        ("win", "greater", "holds"),  # clear win
        ("lose", "greater", "does not hold"),  # clear loss
        ("noise", "greater", "inconclusive"),  # no effect
        ("lose", "less", "holds"),
        ("win", "less", "does not hold"),
        ("noise", "less", "inconclusive"),
        ("noise", "equal", "equivalent"),  # mean 0, 90 % interval inside ±0.01
        ("close", "equal", "equivalent"),  # significantly different from 0, but by less than the margin
        ("wide", "equal", "undecided"),  # mean 0, too noisy to show equivalence
        ("same", "equal", "undecided"),  # identical values: zero spread, no t-test
        ("win", "equal", "different"),
        ("lose", "equal", "different"),
        ("lose", "not_greater", "not superior"),  # significantly less is "not greater"
        ("noise", "not_greater", "not superior"),
        ("wide", "not_greater", "undecided"),
        ("win", "not_greater", "superior"),
    ],
)
def test_known_verdicts(a: str, expect: str, verdict: str) -> None:
    df = evaluate_claims(base_runs(), config(claim("c", a, "base", expect, datasets=["Cora"])))
    assert len(df) == 2  # one dataset x two protocols
    assert verdicts(df, "c") == {verdict}
    assert (df["n"] == 10).all() and set(df["sample"]) == {"pilot"}


def test_paired_statistics_match_hand_computation() -> None:
    runs = base_runs()
    df = evaluate_claims(runs, config(claim("c", "win", "base", datasets=["Cora"])))
    row = df[df["protocol"] == "paper"].iloc[0]
    d = 0.05 + WOBBLE  # win - base per seed
    half = stats.t.ppf(0.975, 9) * d.std(ddof=1) / math.sqrt(10)
    assert row["diff"] == pytest.approx(d.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    # every difference is positive: one-sided, only the all-plus sign vector is as extreme
    assert row["p_value"] == pytest.approx(1 / 2**10)
    assert row["p_contrary"] == pytest.approx(1.0)
    assert row["test"] == "sign-flip permutation (one-sided, greater; exact, 2^10)"
    assert row["mean_a"] == pytest.approx(np.mean(0.75 + SEED_EFFECT + WOBBLE))
    assert row["confidence"] == pytest.approx(0.95)


def test_identical_values_give_zero_difference_and_no_t_test() -> None:
    df = evaluate_claims(base_runs(), config(claim("c", "same", "base", "equal", datasets=["Cora"])))
    row = df.iloc[0]
    assert (row["diff"], row["ci_low"], row["ci_high"], row["p_contrary"]) == (0.0, 0.0, 0.0, 1.0)
    assert math.isnan(row["p_value"]) and row["note"] == "zero spread over seeds"


def test_protocols_read_their_columns() -> None:
    runs = base_runs()
    runs.loc[runs["experiment"] == "win", "standard_test"] -= 0.10  # win loses under the standard protocol
    df = evaluate_claims(runs, config(claim("c", "win", "base", datasets=["Cora"])))
    by_protocol = dict(zip(df["protocol"], df["verdict"]))
    assert by_protocol == {"paper": "holds", "standard": "does not hold"}
    assert dict(zip(df["protocol"], df["metric"])) == COMPARED_COLUMNS


def test_decide_table() -> None:
    assert decide("greater", 0.01, 0.99, 0.05) == ("holds", "")
    assert decide("less", 0.05, 0.95, 0.05) == ("inconclusive", "")  # p must be < alpha
    assert decide("less", 0.99, 0.01, 0.05) == ("does not hold", "")
    assert decide("equal", 0.01, 0.01, 0.05) == ("equivalent", "a difference smaller than the margin")
    assert decide("equal", 0.2, 0.01, 0.05) == ("different", "")
    assert decide("equal", math.nan, 0.5, 0.05) == ("undecided", "")
    assert decide("not_greater", 0.01, 0.9, 0.05) == ("not superior", "")
    assert decide("not_greater", 0.3, 0.01, 0.05) == ("superior", "")
    with pytest.raises(ValueError, match="expect must be one of"):
        decide("bigger", 0.01, 0.9, 0.05)


# ----------------------------------------------------------------------------- too little data


def test_missing_experiment_and_dataset_are_not_run() -> None:
    cfg = config(
        claim("gone", "absent", "base"),  # experiment configured but never run
        claim("enz", "noise", "base"),  # noise has no ENZYMES runs
    )
    df = evaluate_claims(base_runs(), cfg)
    assert verdicts(df, "gone", "Cora") == {"not run"}
    assert verdicts(df, "gone", "ENZYMES") == {"not run"}
    assert verdicts(df, "enz", "ENZYMES") == {"not run"}
    assert verdicts(df, "enz", "Cora") == {"inconclusive"}
    row = df[(df["claim"] == "gone") & (df["dataset"] == "Cora")].iloc[0]
    assert "no runs of absent on Cora" in row["note"]
    assert math.isnan(row["diff"]) and math.isnan(row["p_value"]) and row["verdict_holm"] == "not run"


def test_empty_runs_table_is_all_not_run() -> None:
    df = evaluate_claims(frame(), config(claim("c", "win", "base")))
    assert len(df) == 4 and set(df["verdict"]) == {"not run"}


@pytest.mark.parametrize(("expect", "verdict"), [("greater", "inconclusive"), ("equal", "undecided"), ("not_greater", "undecided")])
def test_one_seed_decides_nothing(expect: str, verdict: str) -> None:
    runs = frame(run_rows("Cora", "base", 0.5, seeds=[0]), run_rows("Cora", "win", 0.9, seeds=[0]))
    df = evaluate_claims(runs, config(claim("c", "win", "base", expect, datasets=["Cora"]), seeds=[0]))
    assert verdicts(df, "c") == {verdict}
    assert (df["note"] == "fewer than 2 pairs").all() and (df["n"] == 1).all()
    assert df["mde"].isna().all() and df["seeds_needed"].isna().all()


def test_too_few_pairs_to_reach_alpha_is_inconclusive() -> None:
    # 4 pairs, all in the claimed direction: the one-sided sign-flip test cannot go below
    # 1/16 = 0.0625, so a clear win is still inconclusive at alpha 0.05 ...
    seeds = [0, 1, 2, 3]
    runs = frame(run_rows("Cora", "base", 0.5, seeds=seeds), run_rows("Cora", "win", 0.6, seeds=seeds))
    df = evaluate_claims(runs, config(claim("c", "win", "base", datasets=["Cora"])))
    assert verdicts(df, "c") == {"inconclusive"}
    assert df["p_value"].iloc[0] == pytest.approx(1 / 16)
    # ... and holds at alpha 0.1
    df = evaluate_claims(runs, config(claim("c", "win", "base", datasets=["Cora"]), claims_alpha=0.1))
    assert verdicts(df, "c") == {"holds"}
    assert df["confidence"].iloc[0] == pytest.approx(0.9)


def test_unmatched_seeds_pair_on_the_common_ones() -> None:
    runs = frame(run_rows("Cora", "base", 0.70), run_rows("Cora", "win", 0.75, seeds=SEEDS[:8]))
    df = evaluate_claims(runs, config(claim("c", "win", "base", datasets=["Cora"])))
    row = df.iloc[0]
    assert row["n"] == 8 and (row["n_a"], row["n_b"]) == (8, 10)
    assert "paired on 8 common seeds" in row["note"] and row["verdict"] == "holds"


def test_no_common_seed_decides_nothing(tmp_path: Path) -> None:
    # All tests are paired: runs of a and b on disjoint seeds cannot be compared seed by seed.
    runs = frame(run_rows("Cora", "win", 0.8, seeds=[0, 1, 2, 3]), run_rows("Cora", "base", 0.7, seeds=[4, 5, 6]))
    cfg = config(claim("c", "win", "base", datasets=["Cora"]))
    df = evaluate_claims(runs, cfg)
    assert verdicts(df, "c") == {"inconclusive"}
    row = df.iloc[0]
    assert row["n"] == 0 and (row["n_a"], row["n_b"]) == (4, 3) and math.isnan(row["diff"])
    assert row["note"].startswith("no seed in common; paired on 0 common seeds")
    text = claims_md(tmp_path, runs, cfg)
    assert "| -- | -- | inconclusive (0 of 10 seeds) | -- | -- | inconclusive (0 of 10 seeds) |" in text  # no "-- [--, --]"


def test_one_pair_prints_the_difference_without_an_interval(tmp_path: Path) -> None:
    runs = frame(run_rows("Cora", "base", 0.5, seeds=[0]), run_rows("Cora", "win", 0.6, seeds=[0]))
    cfg = config(claim("c", "win", "base", datasets=["Cora"]), seeds=[0])
    text = claims_md(tmp_path, runs, cfg)
    assert "| +0.102 | -- | inconclusive |" in text and "[--, --]" not in text


# ----------------------------------------------------------------------------- paper values, per-dataset


def test_paper_difference_from_config() -> None:
    df = evaluate_claims(base_runs(), config(claim("c", "win", "base")))
    cora = df[df["dataset"] == "Cora"].iloc[0]
    enz = df[df["dataset"] == "ENZYMES"].iloc[0]
    assert (cora["paper_a"], cora["paper_b"]) == (0.75, 0.71)
    assert cora["paper_diff"] == pytest.approx(0.04)
    assert enz["paper_diff"] == pytest.approx(0.03)
    df = evaluate_claims(base_runs(), config(claim("c", "lose", "base")))
    assert math.isnan(df[df["dataset"] == "ENZYMES"]["paper_diff"].iloc[0])  # lose has no ENZYMES value


def test_expect_per_dataset() -> None:
    # Table 4 style: expected below on Cora, above on ENZYMES; win is above on Cora, below on ENZYMES.
    cfg = config(claim("t4", "win", "base", None, expect_per_dataset={"Cora": "less", "ENZYMES": "greater"}))
    df = evaluate_claims(base_runs(), cfg)
    assert list(dict.fromkeys(df["dataset"])) == ["Cora", "ENZYMES"]
    assert set(df[df["dataset"] == "Cora"]["expect"]) == {"less"}
    assert verdicts(df, "t4", "Cora") == {"does not hold"}
    assert verdicts(df, "t4", "ENZYMES") == {"does not hold"}
    # expect plus an override: both datasets, override wins on ENZYMES
    df = evaluate_claims(
        base_runs(), config(claim("c", "win", "base", "greater", expect_per_dataset={"ENZYMES": "less"}))
    )
    assert verdicts(df, "c", "Cora") == {"holds"} and verdicts(df, "c", "ENZYMES") == {"holds"}


# ----------------------------------------------------------------------------- Holm


def test_holm_columns_per_protocol_family() -> None:
    cfg = config(claim("w", "win", "base", datasets=["Cora"]), claim("l", "lose", "base", "less", datasets=["Cora"]))
    df = evaluate_claims(base_runs(), cfg)
    for _, fam in df.groupby("protocol"):
        assert fam["p_holm"].to_numpy() == pytest.approx(holm(fam["p_value"].to_numpy()))
    assert (df["p_holm"] >= df["p_value"]).all()
    assert set(df["verdict_holm"]) == {"holds"}


def test_one_sided_tests_pass_holm_over_a_large_family() -> None:
    # 30 rows whose 10 differences all have the claimed sign: one-sided p = 1/1024, Holm's
    # smallest adjusted p = 30/1024 < 0.05 (the two-sided test's 60/1024 would not pass).
    claims = [claim(f"w{i}", "win", "base", datasets=["Cora"]) for i in range(15)]
    df = evaluate_claims(base_runs(), config(*claims))
    assert len(df) == 30 and (df.groupby("protocol").size() == 15).all()
    assert df["p_holm"].to_numpy() == pytest.approx(np.full(30, 15 / 1024))
    assert set(df["verdict_holm"]) == {"holds"}
    claims = [claim(f"w{i}", "win", "base", datasets=["Cora"]) for i in range(60)]
    df = evaluate_claims(base_runs(), config(*claims))
    assert set(df["verdict_holm"]) == {"inconclusive"} and set(df["verdict"]) == {"holds"}  # 60/1024 > 0.05


def test_holm_adjusts_the_contrary_p_too() -> None:
    claims = [claim(f"l{i}", "lose", "base", datasets=["Cora"]) for i in range(60)]  # each clearly fails
    df = evaluate_claims(base_runs(), config(*claims))
    assert set(df["verdict"]) == {"does not hold"}
    assert df["p_contrary_holm"].to_numpy() == pytest.approx(np.full(120, 60 / 1024))
    assert set(df["verdict_holm"]) == {"inconclusive"}


# ----------------------------------------------------------------------------- the paper's difference, power


def test_claim_can_hold_and_be_overstated() -> None:
    df = evaluate_claims(base_runs(), config(claim("c", "close", "base", datasets=["Cora"])))
    row = df[df["protocol"] == "paper"].iloc[0]
    assert row["verdict"] == "holds" and row["paper_diff"] == pytest.approx(0.04)
    assert row["paper_position"] == "above"
    assert row["paper_check"] == f"the paper's +0.040 is excluded: at most {row['ci_high']:+.3f}"
    inside = evaluate_claims(base_runs(), config(claim("c", "win", "base", datasets=["Cora"]))).iloc[0]
    assert inside["paper_position"] == "below"  # win beats base by more than the paper's +0.04
    wide = evaluate_claims(base_runs(), config(claim("c", "wide", "base", "equal", datasets=["Cora"]))).iloc[0]
    assert wide["paper_position"] == "inside" and wide["paper_check"].startswith("the paper's +0.000 is inside [")


def test_power_columns() -> None:
    df = evaluate_claims(base_runs(), config(claim("c", "win", "base", datasets=["Cora"])))
    row = df[df["protocol"] == "paper"].iloc[0]
    sd = float(np.std(0.05 + WOBBLE, ddof=1))
    assert row["mde"] == pytest.approx(minimal_detectable_effect(sd, 10, 0.05, 0.8), rel=1e-6)
    # the paper's +0.04 against an sd of 0.0015: the fewest pairs the sign-flip test can reject with
    assert row["seeds_needed"] == min_pairs_for_alpha(0.05) and row["power"] == pytest.approx(1.0)
    # a smaller power asked for gives a smaller MDE
    cfg = config(claim("c", "win", "base", datasets=["Cora"]), claims_design={"power": 0.5})
    assert evaluate_claims(base_runs(), cfg).iloc[0]["mde"] < row["mde"]
    # nothing of the paper's to detect: the paper's own difference is against the claim
    row = evaluate_claims(base_runs(), config(claim("c", "lose", "base", "greater", datasets=["Cora"]))).iloc[0]
    assert pd.isna(row["seeds_needed"]) and "nothing to detect" in row["note"]


def test_margin_from_config() -> None:
    # close - base = +0.005 with a small spread: equivalent within 0.01, different within 0.003
    cfg = config(claim("c", "close", "base", "equal", datasets=["Cora"]))
    df = evaluate_claims(base_runs(), cfg)
    assert verdicts(df, "c") == {"equivalent"} and set(df["note"]) == {"a difference smaller than the margin"}
    cfg = config(claim("c", "close", "base", "equal", datasets=["Cora"]), claims_design={"margin": 0.003})
    assert verdicts(evaluate_claims(base_runs(), cfg), "c") == {"different"}
    cfg = config(claim("c", "close", "base", "not_greater", datasets=["Cora"]), claims_design={"margin": 0.003})
    assert verdicts(evaluate_claims(base_runs(), cfg), "c") == {"superior"}


# ----------------------------------------------------------------------------- pilot and confirmatory


def confirmatory_runs() -> pd.DataFrame:
    """Seeds 0-9 (pilot): win - base alternates ±0.01; seeds 10-19 (confirmatory): win beats base by 0.05."""
    pilot, conf = list(range(10)), list(range(10, 20))
    base = [0.70 + 0.001 * s for s in pilot + conf]
    win = [b + (0.01 if s % 2 else -0.01) for s, b in zip(pilot, base)] + [b + 0.05 + 0.001 * (s % 3) for s, b in zip(conf, base[10:])]
    return frame(run_rows("Cora", "base", base, seeds=pilot + conf), run_rows("Cora", "win", win, seeds=pilot + conf))


def test_confirmatory_verdicts_not_pooled_and_pilot_beside(tmp_path: Path) -> None:
    seeds = list(range(20))
    cfg = config(claim("c", "win", "base", datasets=["Cora"]), seeds=seeds, claims_design={"confirmatory_seeds": seeds[10:]})
    df = evaluate_claims(confirmatory_runs(), cfg)
    assert set(df["sample"]) == {"confirmatory"} and (df["n"] == 10).all()  # 10 confirmatory pairs, not 20
    assert df["diff"].to_numpy() == pytest.approx(np.full(2, 0.05 + np.mean([s % 3 for s in seeds[10:]]) * 0.001))
    assert set(df["verdict"]) == {"holds"} and set(df["pilot_verdict"]) == {"inconclusive"}
    assert set(df["pilot_verdict_holm"]) == {"inconclusive"}
    text = claims_md(tmp_path, confirmatory_runs(), cfg)
    assert "Verdicts are computed on the confirmatory seeds 10-19 alone" in text
    assert "| holds (pilot: inconclusive) | holds (pilot: inconclusive) |" in text


def test_a_row_whose_confirmatory_seeds_did_not_run_shows_the_pilots_verdict(tmp_path: Path) -> None:
    """Confirmatory seeds run on Cora only: ENZYMES' rows are not run in the sample, the
    pilot's verdict beside (a partial confirmatory run is never passed off as the pilot)."""
    seeds = list(range(20))
    enzymes_pilot = frame(run_rows("ENZYMES", "base", [0.3] * 10), run_rows("ENZYMES", "win", [0.3 + 0.01 * (s + 1) for s in range(10)]))
    runs = pd.concat([confirmatory_runs(), enzymes_pilot], ignore_index=True)
    cfg = config(claim("c", "win", "base", datasets=["Cora", "ENZYMES"]), seeds=seeds,
                 claims_design={"confirmatory_seeds": seeds[10:]})  # fmt: skip
    df = evaluate_claims(runs, cfg)
    enzymes = df[df["dataset"] == "ENZYMES"]
    assert set(enzymes["verdict"]) == {"not run"} and set(enzymes["pilot_verdict"]) == {"holds"}
    text = claims_md(tmp_path, runs, cfg)
    assert "| win vs base | ENZYMES | +0.030 | -- | -- | not run (pilot: holds) | -- | -- | not run (pilot: holds) |" in text


def test_a_partial_confirmatory_sample_says_how_many_seeds_each_verdict_rests_on(tmp_path: Path) -> None:
    """Confirmatory seeds 10-19 configured, 10-14 run: verdicts on 5 pairs, marked as such."""
    seeds = list(range(20))
    runs = confirmatory_runs()
    runs = runs[runs["seed"] < 15]
    cfg = config(claim("c", "win", "base", datasets=["Cora"]), seeds=seeds, claims_design={"confirmatory_seeds": seeds[10:]})
    df = evaluate_claims(runs, cfg)
    assert (df["n"] == 5).all() and (df["n_sample"] == 10).all()
    text = claims_md(tmp_path, runs, cfg)
    assert "| 0.031 | holds (5 of 10 seeds; pilot: inconclusive) |" in text  # summary, both protocols
    assert "| holds (5 of 10 seeds; pilot: inconclusive) | holds (pilot: inconclusive) |  |" in text  # Holm: no mark
    assert "**Runs are missing**" in text and "the Holm verdicts are provisional" in text
    # the complete sample: no mark, no warning
    text = claims_md(tmp_path, confirmatory_runs(), cfg)
    assert "seeds;" not in text and "Runs are missing" not in text


def test_without_confirmatory_seeds_the_pilot_is_every_configured_seed() -> None:
    df = evaluate_claims(confirmatory_runs(), config(claim("c", "win", "base", datasets=["Cora"]), seeds=list(range(20))))
    assert set(df["sample"]) == {"pilot"} and (df["n"] == 20).all() and df["pilot_verdict"].isna().all()
    # runs of seeds outside `seeds` are not used
    df = evaluate_claims(confirmatory_runs(), config(claim("c", "win", "base", datasets=["Cora"])))
    assert (df["n"] == 10).all() and set(df["verdict"]) == {"inconclusive"}


def test_confirmatory_seed_not_in_seeds_is_refused() -> None:
    cfg = config(claim("c", "win", "base"), claims_design={"confirmatory_seeds": [42]})
    with pytest.raises(ValueError, match=r"confirmatory_seeds \[42\] are not in seeds"):
        evaluate_claims(base_runs(), cfg)


# ----------------------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (claim("c", "win", "nope"), r"^config: claims\[0\]\.compare\.b: claim 'c' names unknown experiment 'nope'"),
        (
            claim("c", "win", "base", datasets=["Pubmed"]),
            r"^config: claims\[0\]\.datasets: claim 'c' names unknown dataset 'Pubmed'",
        ),
        (
            claim("c", "win", "base", None, expect_per_dataset={"Pubmed": "less"}),
            r"^config: claims\[0\]\.expect_per_dataset: claim 'c' names unknown dataset 'Pubmed'",
        ),
        (
            claim("c", "win", "base", None, datasets=["Cora", "ENZYMES"], expect_per_dataset={"Cora": "less"}),
            r"^config: claims\[0\]: claim 'c' has no expectation for dataset 'ENZYMES'",
        ),
        (claim("c", "win", "win"), r"^config: claims\[0\]\.compare: claim 'c' compares 'win' with itself"),
    ],
)
def test_bad_claims_fail_loudly(entry: dict, match: str) -> None:
    (error,) = claims_errors(config(entry))
    assert re.search(match, error), error


def test_duplicated_claim_id() -> None:
    assert claims_errors(config(claim("c", "win", "base"), claim("c", "lose", "base"))) == [
        "config: claims[1].id: claim 'c' is already the id of an earlier claim; give each claim its own id."
    ]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"expect": "bigger"}, r"config: claims\[0\]\.expect: 'bigger' is not one of 'greater'"),
        ({"expect": None}, r"config: claims\[0\]: missing required key 'expect'"),  # nor expect_per_dataset
        ({"compare": {"a": "moe8"}}, r"config: claims\[0\]\.compare: missing required key 'b'"),
    ],
)
def test_malformed_claims_are_schema_errors(change: dict, match: str) -> None:
    cfg = _load("config.yaml")
    cfg["claims"][0].update(change)
    cfg["claims"][0].pop("expect_per_dataset", None)
    if cfg["claims"][0]["expect"] is None:
        del cfg["claims"][0]["expect"]
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg)


def test_claim_names_checked_with_the_config() -> None:
    cfg = _load("config.yaml")
    cfg["claims"][0]["compare"]["a"] = "moe5"
    cfg["claims"][1]["datasets"] = ["Citeseer"]
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and "'moe5'" in lines[0] and "'Citeseer'" in lines[1]


def test_duplicated_run_is_refused() -> None:
    runs = frame(run_rows("Cora", "base", 0.7), run_rows("Cora", "base", 0.7, seeds=[0]))
    with pytest.raises(ValueError, match="more than once"):
        evaluate_claims(runs, config(claim("c", "win", "base")))


# ----------------------------------------------------------------------------- references


def test_references_flag_far_baseline() -> None:
    refs = {
        "Cora": {"value": 0.72, "source": "A", "model": "GraphSAGE", "experiment": "base"},  # ours ~0.69 standard
        "ENZYMES": {"value": 0.582, "source": "B", "model": "GraphSAGE", "experiment": "base", "protocol": "paper"},
        "PubMed": {"value": 0.79, "source": "C", "model": "GCN", "experiment": "base"},
    }
    df = check_references(base_runs(), config(references=refs))
    assert list(df.columns) == REFERENCE_COLUMNS
    cora, enz, pub = (df[df["dataset"] == d].iloc[0] for d in ("Cora", "ENZYMES", "PubMed"))
    assert cora["mean"] == pytest.approx(0.69) and not cora["flag"] and cora["metric"] == "standard_test"
    assert enz["mean"] == pytest.approx(0.30) and enz["flag"] and enz["metric"] == "paper_last"
    assert "far from the reference: 0.282 below (tolerance 0.10)" in enz["note"]
    assert pub["n"] == 0 and not pub["flag"] and "no runs of base on PubMed" in pub["note"]
    # a tighter tolerance flags Cora too
    refs["Cora"]["tolerance"] = 0.01
    assert check_references(base_runs(), config(references=refs))["flag"].iloc[0]


# ----------------------------------------------------------------------------- files


def test_write_claims_files(tmp_path: Path) -> None:
    runs_csv = tmp_path / "runs.csv"
    base_runs().to_csv(runs_csv, index=False)
    cfg = config(
        claim("win_claim", "win", "base", text="Win | beats base"),
        claim("gone", "absent", "base"),
        references={"Cora": {"value": 0.815, "source": "Kipf & Welling 2017", "model": "GCN", "experiment": "base"}},
    )
    out_md, out_csv = tmp_path / "out" / "claims.md", tmp_path / "out" / "claims.csv"
    write_claims(str(runs_csv), cfg, str(out_md), str(out_csv))
    table = pd.read_csv(out_csv)
    assert list(table.columns) == CLAIM_COLUMNS
    assert len(table) == 2 * 2 * 2  # claims x datasets x protocols
    expected = evaluate_claims(base_runs(), cfg)
    assert list(table["verdict"]) == list(expected["verdict"])
    assert table["p_value"].to_numpy() == pytest.approx(expected["p_value"].to_numpy(), rel=1e-5, nan_ok=True)
    text = out_md.read_text(encoding="utf-8")
    assert (
        "| claim | table | dataset | protocol | expect | paper diff | our diff [95 % CI] | paper's difference | "
        "p | p against | p (Holm) | n | MDE | seeds needed | verdict | verdict (Holm) | note |"
    ) in text
    assert "Win \\| beats base" in text  # pipe escaped inside a cell
    win_paper = expected.iloc[0]
    assert (
        f"| win_claim | table9 | Cora | paper | greater | +0.040 | {win_paper['diff']:+.3f} "
        f"[{win_paper['ci_low']:+.3f}, {win_paper['ci_high']:+.3f}] | {win_paper['paper_check']} | <0.001 | 1.000 | "
        f"0.002 | 10 | {win_paper['mde']:.3f} | 5 | holds | holds |  |"
    ) in text
    assert "| gone | table9 | Cora | paper | greater | +0.090 | -- | -- | -- | -- | -- | 0 | -- | -- | not run | not run |" in text
    assert "Verdicts are the **pilot's**: all seeds 0-9" in text
    assert "## Sanity check" in text and "Kipf & Welling 2017" in text
    assert sorted(p.name for p in out_md.parent.iterdir()) == ["claims.csv", "claims.md"]  # no temp files left
    # the summary: one row per claim and dataset, both protocols side by side
    summary = text.split("## Summary\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert summary[0] == (
        "| claim | dataset | paper diff | ours, paper protocol [95 % CI] | p | verdict | "
        "ours, standard protocol [95 % CI] | p | verdict |"
    )
    assert len(summary) == 2 + 2 * 2  # header, rule, claims x datasets
    win = expected[(expected["claim"] == "win_claim") & (expected["dataset"] == "Cora")].set_index("protocol")
    cells = [f"{win.loc[p, 'diff']:+.3f} [{win.loc[p, 'ci_low']:+.3f}, {win.loc[p, 'ci_high']:+.3f}]" for p in ("paper", "standard")]
    assert summary[2].startswith(f"| Win \\| beats base | Cora | +0.040 | {cells[0]} | ")
    assert f" | {win.loc['paper', 'verdict']} | {cells[1]} | " in summary[2]
    assert summary[4] == "| absent vs base | Cora | +0.090 | -- | -- | not run | -- | -- | not run |"


def test_write_claims_header_only_runs(tmp_path: Path) -> None:
    runs_csv = tmp_path / "runs.csv"
    frame().to_csv(runs_csv, index=False)
    write_claims(str(runs_csv), config(claim("c", "win", "base")), str(tmp_path / "c.md"), str(tmp_path / "c.csv"))
    assert set(pd.read_csv(tmp_path / "c.csv")["verdict"]) == {"not run"}


@pytest.mark.parametrize("name", ["NA", "None", "null", "nan"])
def test_write_claims_reads_na_like_names_as_names(tmp_path: Path, name: str) -> None:
    # The config schema allows these names; pandas' default NA handling would turn them into NaN.
    runs = base_runs()
    runs = runs[runs["experiment"].isin(["base", "win"])]
    runs = runs.replace({"experiment": {"win": name}, "dataset": {"ENZYMES": name}})
    runs_csv = tmp_path / "runs.csv"
    runs.to_csv(runs_csv, index=False)
    cfg = with_defaults(
        {
            "experiments": {"base": EXPERIMENTS["base"], name: {"label": name, "paper": {"Cora": 0.75}}},
            "datasets": {"Cora": {}, name: {}},
            "claims": [claim("c", name, "base")],
        }
    )
    write_claims(str(runs_csv), cfg, str(tmp_path / "c.md"), str(tmp_path / "c.csv"))
    table = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    assert set(table["dataset"]) == {"Cora", name}
    assert set(table[table["dataset"] == "Cora"]["verdict"]) == {"holds"}
    assert set(table[table["dataset"] == name]["verdict"]) == {"does not hold"}  # ENZYMES' "win" loses

# ----------------------------------------------------------------------------- the shipped configs


def _load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def test_claims_section_is_schema_checked() -> None:
    cfg = _load("config.yaml")
    validate_config(copy.deepcopy(cfg))
    misspelt = copy.deepcopy(cfg)
    misspelt["claims"][0]["expct"] = "greater"
    with pytest.raises(ConfigError, match="claims"):
        validate_config(misspelt)
    percent = copy.deepcopy(cfg)
    percent["references"]["Cora"]["value"] = 81.5
    with pytest.raises(ConfigError, match="references"):
        validate_config(percent)


def test_default_claims_cover_the_paper() -> None:
    cfg = load_config(ROOT / "config.yaml")
    claims = parse_claims(cfg)
    assert {c.table for c in claims} == {f"table{i}" for i in range(1, 6)}
    assert {c.a for c in claims} | {c.b for c in claims} == set(cfg["experiments"])
    t4 = next(c for c in claims if c.table == "table4")
    assert dict(t4.expect_per_dataset) == {"Cora": "less", "PubMed": "less", "ENZYMES": "greater"}
    assert {c.expect for c in claims if c.table == "table1"} == {"not_greater"}
    assert {c.expect for c in claims if c.table == "table5"} == {"equal"}
    assert len([c for c in claims if c.table == "table3"]) == 5
    assert set(cfg["references"]) == {"Cora", "PubMed", "ENZYMES"}


def test_smoke_config_claims_run(tmp_path: Path) -> None:
    # The smoke config runs Cora and ENZYMES with 2 seeds: PubMed rows are "not run" and
    # 2 seeds can never reach alpha, so nothing may be decided -- and nothing may crash.
    cfg = load_config(ROOT / "tests/workflow/config_smoke.yaml", base_dir=ROOT)
    rows = [
        run_rows(d, e, 0.5 + 0.01 * i, seeds=[0, 1])
        for d in ("Cora", "ENZYMES")
        for i, e in enumerate(cfg["experiments"])
    ]
    runs_csv = tmp_path / "runs.csv"
    frame(*rows).to_csv(runs_csv, index=False)
    write_claims(str(runs_csv), cfg, str(tmp_path / "claims.md"), str(tmp_path / "claims.csv"))
    table = pd.read_csv(tmp_path / "claims.csv")
    assert set(table[table["dataset"] == "PubMed"]["verdict"]) == {"not run"}
    assert set(table[table["dataset"] != "PubMed"]["verdict"]) == {"inconclusive", "undecided"}
    assert len(table) == 2 * sum(len(c.datasets_for(list(cfg["datasets"]))) for c in parse_claims(cfg))
