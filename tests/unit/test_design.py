"""Confirmatory design: per-row power, pilot / confirmatory seeds, the proposed seed count, the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gsmoe.config import load_config
from gsmoe.report import design as ds
from gsmoe.report import power as pw

REPO = Path(__file__).resolve().parents[2]

D = np.array([0.01, 0.03, -0.005, 0.02, 0.015, 0.0, 0.025, 0.01, 0.02, 0.005])


def test_directional_row_plans_for_the_papers_difference() -> None:
    r = ds.row_power(D, "greater", 0.02, 0.01, 0.05, 0.8, 60)
    sd = D.std(ddof=1)
    assert r.test == "directional" and r.n == 10 and r.sd == pytest.approx(sd) and r.target == 0.02
    assert r.mde == pytest.approx(pw.minimal_detectable_effect(sd, 10, 0.05))
    assert r.power == pytest.approx(pw.t_test_power(0.02, sd, 10, 0.05))
    assert r.pairs_needed == pw.pairs_needed(lambda n: pw.t_test_power(0.02, sd, n, 0.05), 0.8, 60, start=5)
    # "less" plans for the paper's difference in the claimed (negative) direction.
    mirrored = ds.row_power(-D, "less", -0.02, 0.01, 0.05, 0.8, 60)
    assert mirrored.pairs_needed == r.pairs_needed and mirrored.target == -0.02


def test_directional_row_never_below_the_sign_flip_minimum() -> None:
    # A huge paper difference: the t-test needs 2-3 pairs, the sign-flip test 5 (1/32 < 0.05).
    assert ds.row_power(D, "greater", 0.5, 0.01, 0.05, 0.8, 60).pairs_needed == 5


@pytest.mark.parametrize("paper_diff", [0.0, -0.02, math.nan])
def test_directional_row_without_a_target(paper_diff: float) -> None:
    r = ds.row_power(D, "greater", paper_diff, 0.01, 0.05, 0.8, 60)
    assert r.pairs_needed is None and math.isnan(r.power) and r.note.startswith("the paper")


def test_margin_rows_plan_for_a_true_difference_of_zero() -> None:
    sd = D.std(ddof=1)
    eq = ds.row_power(D, "equal", 0.0, 0.01, 0.05, 0.8, 200)
    assert eq.test == "equivalence" and eq.target == 0.01
    assert eq.mde == pytest.approx(pw.minimal_equivalence_margin(sd, 10, 0.05))
    assert eq.pairs_needed == pw.pairs_needed(lambda n: pw.tost_power(0.0, sd, n, 0.01, 0.05), 0.8, 200)
    ns = ds.row_power(D, "not_greater", 0.0, 0.01, 0.05, 0.8, 200)
    assert ns.test == "non-superiority"
    assert ns.pairs_needed == pw.pairs_needed(lambda n: pw.t_test_power(0.01, sd, n, 0.05), 0.8, 200)
    # TOST needs more pairs than the one-sided test at the same margin.
    assert eq.pairs_needed > ns.pairs_needed


def test_row_beyond_the_cap_and_without_spread() -> None:
    capped = ds.row_power(D, "equal", 0.0, 0.001, 0.05, 0.8, 30)
    assert capped.pairs_needed is None and capped.note == "more than 30 pairs" and not math.isnan(capped.power)
    flat = ds.row_power(np.full(5, 0.01), "greater", 0.02, 0.01, 0.05, 0.8, 30)
    assert flat.pairs_needed is None and flat.note == "zero spread over seeds: no power"
    with pytest.raises(ValueError, match="expect"):
        ds.row_power(D, "bigger", 0.02, 0.01, 0.05, 0.8, 30)


def _config(confirmatory: list[int] | None = None, cap: int = 40) -> dict:
    return {
        "seeds": list(range(8)) + (confirmatory or []),
        "datasets": {"Cora": {}, "ENZYMES": {}},
        "claims_alpha": 0.05,
        "claims_design": {
            "margin": 0.01, "power": 0.8, "max_confirmatory_seeds": cap, "confirmatory_seeds": confirmatory or [],
        },  # fmt: skip
        "experiments": {
            "baseline": {"paper": {"Cora": 0.70, "ENZYMES": 0.30}},
            "moe": {"paper": {"Cora": 0.73, "ENZYMES": 0.34}},
        },
        # As a validated config holds them: the schema's defaults filled in.
        "claims": [
            {"id": "moe_beats", "text": "t", "compare": {"a": "moe", "b": "baseline"}, "expect": "greater",
             "table": "", "group": "", "datasets": None, "expect_per_dataset": {}},
            {"id": "same", "text": "t", "compare": {"a": "moe", "b": "baseline"}, "expect": "equal",
             "table": "", "group": "", "datasets": ["Cora"], "expect_per_dataset": {}},
        ],  # fmt: skip
    }


def _runs(seeds: range, shift: dict[int, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for dataset in ("Cora", "ENZYMES"):
        for seed in seeds:
            base = rng.uniform(0.6, 0.8)
            d = rng.normal(0.02, 0.02) + (shift or {}).get(seed, 0.0)
            for experiment, acc in (("baseline", base), ("moe", base + d)):
                rows.append({"dataset": dataset, "experiment": experiment, "seed": seed, "paper_last": acc,
                             "standard_test": acc - 0.01, "wall_time_s": 2.0 if dataset == "Cora" else 5.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_power_table_rows_and_pairing() -> None:
    table = ds.power_table(_runs(range(8)), _config())
    assert list(table.columns) == ds.DESIGN_COLUMNS
    # moe_beats on 2 datasets, same on Cora only; each on both protocols.
    assert len(table) == 6
    assert set(table["protocol"]) == {"paper", "standard"}
    row = table[
        (table["claim"] == "moe_beats") & (table["dataset"] == "ENZYMES") & (table["protocol"] == "paper")
    ].iloc[0]
    assert row["paper_diff"] == pytest.approx(0.04) and row["n"] == 8 and row["test"] == "directional"
    runs = _runs(range(8)).query("dataset == 'ENZYMES'").set_index(["experiment", "seed"])["paper_last"]
    assert row["diff"] == pytest.approx((runs["moe"] - runs["baseline"]).mean())
    assert table.loc[table["claim"] == "same", "test"].eq("equivalence").all()


def test_power_table_reads_the_pilot_only() -> None:
    # Confirmatory seeds 8-9 differ wildly; the pilot's table must not see them.
    runs = _runs(range(10), shift={8: 0.5, 9: -0.5})
    pilot_only = ds.power_table(_runs(range(10)).query("seed < 8"), _config())
    table = ds.power_table(runs, _config(confirmatory=[8, 9]))
    assert (table["n"] == 8).all()
    pd.testing.assert_series_equal(table["sd"], pilot_only["sd"])


def test_design_seed_sets() -> None:
    assert ds.design_seed_sets(_config()) == (list(range(8)), [])
    assert ds.design_seed_sets(_config(confirmatory=[8, 9])) == (list(range(8)), [8, 9])
    bad = _config()
    bad["claims_design"]["confirmatory_seeds"] = [20]
    with pytest.raises(ValueError, match=r"\[20\] are not in seeds"):
        ds.design_seed_sets(bad)
    none_left = _config()
    none_left["claims_design"]["confirmatory_seeds"] = list(range(8))
    with pytest.raises(ValueError, match="no pilot seed"):
        ds.design_seed_sets(none_left)


def _table(needs: list[int | None], power: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"protocol": ["paper", "standard"] * (len(needs) // 2), "pairs_needed": pd.array(needs, dtype="Int64"),
         "power": power}
    )  # fmt: skip


def test_proposal_is_the_largest_need_within_the_cap() -> None:
    t = _table([12, 25, None, 7], [0.5, 0.3, 0.1, 0.9])
    p = ds.propose_confirmatory(t, cap=30, alpha=0.05, first_seed=10)
    assert p.count == 25 and p.seeds == list(range(10, 35))
    assert (p.decidable, p.beyond_cap, p.no_target) == (3, 1, 0)
    # A row without a target (power NaN) is not "beyond the cap".
    assert ds.propose_confirmatory(_table([6, None], [0.9, math.nan]), 30, 0.05, 0).no_target == 1


def test_proposal_floor_and_cap() -> None:
    # Small needs: the floor lets Holm's first step pass (family 2 per protocol -> 2^n > 40 -> 6).
    few = ds.propose_confirmatory(_table([5, 5, 5, 5], [0.9] * 4), cap=30, alpha=0.05, first_seed=0)
    assert few.floor == 6 and few.count == 6
    assert ds.propose_confirmatory(_table([5, 5, 5, 5], [0.9] * 4), cap=4, alpha=0.05, first_seed=0).count == 4
    with pytest.raises(ValueError, match="at least 2"):
        ds.propose_confirmatory(_table([5, 5], [0.9] * 2), cap=1, alpha=0.05, first_seed=0)


def test_seed_cost_is_the_sum_over_experiments() -> None:
    assert ds.seed_cost_s(_runs(range(4))) == {"Cora": 4.0, "ENZYMES": 10.0}


def test_schema_defaults_of_the_design() -> None:
    config = load_config(REPO / "config.yaml")
    assert config["claims_design"] == {
        "margin": 0.01, "power": 0.8, "max_confirmatory_seeds": 30, "confirmatory_seeds": [],
    }  # fmt: skip


def test_command_line_on_the_published_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runs = REPO / "docs" / "results" / "runs.csv"
    assert ds.main([str(runs), "--config", str(REPO / "config.yaml"), "--cores", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(rows) == 60  # 10 claims x 3 datasets x 2 protocols
    assert "Proposed confirmatory seeds:" in out and "core-hours" in out
