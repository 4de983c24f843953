"""The confirmatory design of the claims: how many new seeds decide the claims, from a pilot.

The seeds of a run are split in two (``config["claims_design"]``, docs/claims_design.md):

* the **pilot**: ``seeds`` less ``claims_design.confirmatory_seeds`` (today the 10 seeds
  0-9).  Its paired differences give each claim row's standard deviation, hence its power;
* the **confirmatory** sample: ``claims_design.confirmatory_seeds``, disjoint from the pilot
  by construction, on which the final verdicts are computed.  The two are never pooled for a
  verdict: choosing how many seeds to add from the pilot's results and then testing on
  pilot + new seeds would be optional stopping.

Per claim row (claim x dataset x protocol) :func:`row_power` gives, at the pilot's number of
pairs ``n`` and standard deviation ``sd`` of the paired differences, for the row's test
(:mod:`gsmoe.report.hypothesis`):

=================  =====================================  ==========================================
expect             target (what the confirmatory run       MDE at n (power ``claims_design.power``)
                   must be able to show)
=================  =====================================  ==========================================
greater / less     the paper's own difference, in the     smallest true difference the one-sided
                   claimed direction (one-sided t power)   paired t-test detects
equal              equivalence within ``margin`` when     smallest margin TOST shows when the true
                   the true difference is 0 (TOST power)   difference is 0
not_greater        non-superiority by ``margin`` when     smallest margin the one-sided test shows
                   the true difference is 0                when the true difference is 0
=================  =====================================  ==========================================

The margin rows are planned at a true difference of 0, the claims' own hypothesis: it is
the best case for showing equivalence (at a true ``|difference| >= margin`` it can never be
shown), so a row that needs more seeds than the cap at 0 cannot be decided in the budget at
all, and planning on the pilot's noisy estimate instead would let the pilot's chance
differences size the run.  ``pairs_needed`` is the smallest number of pairs with the
requested power, None beyond ``claims_design.max_confirmatory_seeds``; a directional row
whose paper difference is 0 or against the claim has no target (None, with a note).

:func:`propose_confirmatory` turns the table into a seed count: the largest need among the
rows that the cap can decide, at least the fewest pairs with which the one-sided sign-flip
test can pass Holm's correction over a protocol's rows
(:func:`gsmoe.report.power.min_pairs_for_alpha`), at most the cap.

Command line: ``python -m gsmoe.report.design results/runs.csv --config config.yaml``
prints the per-row table, the proposal and its cost (training time of the pilot's runs).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gsmoe.config.claims import parse_claims
from gsmoe.protocols import COMPARED_COLUMNS
from gsmoe.report.aggregate import RUN_COLUMNS, RUN_TEXT_COLUMNS, read_csv_keeping_names
from gsmoe.report.power import (
    min_pairs_for_alpha,
    minimal_detectable_effect,
    minimal_equivalence_margin,
    pairs_needed,
    t_test_power,
    tost_power,
)
from gsmoe.report.seed_runs import checked_runs, paired_differences, paper_value, seed_values
from gsmoe.report.tables import format_number

__all__ = [
    "DESIGN_COLUMNS",
    "TESTS",
    "Proposal",
    "RowPower",
    "design_seed_sets",
    "power_table",
    "propose_confirmatory",
    "render_design",
    "row_power",
    "seed_cost_s",
]

#: expect -> the test that decides the row (gsmoe.report.hypothesis).
TESTS: dict[str, str] = {
    "greater": "directional",
    "less": "directional",
    "equal": "equivalence",
    "not_greater": "non-superiority",
}

#: Columns of :func:`power_table`, in order.
DESIGN_COLUMNS: list[str] = [
    "claim",
    "dataset",
    "protocol",
    "expect",
    "test",
    "n",
    "sd",
    "diff",
    "paper_diff",
    "target",
    "mde",
    "power",
    "pairs_needed",
    "note",
]


@dataclass(frozen=True)
class RowPower:
    """Power of one claim row at the pilot's ``n`` pairs (module docstring).

    ``target``: the paper's difference (directional rows, signed a - b) or the margin;
    ``power``: the power at ``n`` to show the target; ``pairs_needed``: None beyond the cap
    or without a target.
    """

    test: str
    n: int
    sd: float
    diff: float
    target: float
    mde: float
    power: float
    pairs_needed: int | None
    note: str = ""


def row_power(
    d: Sequence[float] | np.ndarray,
    expect: str,
    paper_diff: float,
    margin: float,
    alpha: float,
    power: float,
    cap: int,
) -> RowPower:
    """Power, MDE and the pairs needed for one row with pilot differences ``d = a - b``."""
    if expect not in TESTS:
        raise ValueError(f"expect must be one of {list(TESTS)}, got {expect!r}")
    arr = np.asarray(d, dtype=float)
    test = TESTS[expect]
    n = int(arr.size)
    diff = float(arr.mean()) if n else math.nan
    sd = float(arr.std(ddof=1)) if n >= 2 else math.nan
    target = paper_diff if test == "directional" else margin
    if not (n >= 2 and sd > 0.0):
        why = "fewer than 2 pairs" if n < 2 else "zero spread over seeds"
        return RowPower(test, n, sd, diff, target, math.nan, math.nan, None, f"{why}: no power")
    if test == "equivalence":
        mde = minimal_equivalence_margin(sd, n, alpha, power)

        def power_at(k: int) -> float:
            return tost_power(0.0, sd, k, margin, alpha)

        start = 2
    else:
        mde = minimal_detectable_effect(sd, n, alpha, power, "greater")
        # directional: the paper's difference in the claimed direction; non-superiority: the
        # margin above a true difference of 0 (the same one-sided power).
        effect = (paper_diff if expect == "greater" else -paper_diff) if test == "directional" else margin
        if not math.isfinite(effect):
            return RowPower(test, n, sd, diff, target, mde, math.nan, None, "the paper gives no difference")
        if effect <= 0.0:
            note = "the paper's own difference is 0 or against the claim: nothing to detect"
            return RowPower(test, n, sd, diff, target, mde, math.nan, None, note)

        def power_at(k: int) -> float:
            return t_test_power(effect, sd, k, alpha, "greater")

        # The sign-flip test of the verdict cannot reach alpha with fewer pairs.
        start = min_pairs_for_alpha(alpha) if test == "directional" else 2
    needed = pairs_needed(power_at, power, cap, start=min(start, cap))
    note = "" if needed is not None else f"more than {cap} pairs"
    return RowPower(test, n, sd, diff, target, mde, power_at(n), needed, note)


# --------------------------------------------------------------------------- config and runs


def design_seed_sets(config: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """``(pilot, confirmatory)`` seeds: ``seeds`` less the confirmatory ones, and those.

    Raises ``ValueError`` when a confirmatory seed is not in ``seeds`` (it would never be
    run) or when no pilot seed is left.
    """
    seeds = [int(s) for s in config["seeds"]]
    confirmatory = [int(s) for s in config["claims_design"]["confirmatory_seeds"]]
    missing = sorted(set(confirmatory) - set(seeds))
    if missing:
        raise ValueError(
            f"claims_design.confirmatory_seeds {missing} are not in seeds: add them to seeds so that they are run"
        )
    pilot = [s for s in seeds if s not in set(confirmatory)]
    if not pilot:
        raise ValueError("claims_design.confirmatory_seeds leave no pilot seed: keep the pilot seeds in seeds")
    return pilot, confirmatory


def power_table(runs: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """One :class:`RowPower` per claim x dataset x protocol on the pilot seeds (:data:`DESIGN_COLUMNS`)."""
    design = config["claims_design"]
    alpha = float(config["claims_alpha"])
    pilot, _ = design_seed_sets(config)
    runs = checked_runs(runs)
    runs = runs[runs["seed"].isin(pilot)]
    configured = [str(d) for d in config["datasets"]]
    rows = []
    for claim in parse_claims(config):
        for dataset in claim.datasets_for(configured):
            expect = claim.expectation(dataset)
            paper_diff = paper_value(config, claim.a, dataset) - paper_value(config, claim.b, dataset)
            for protocol, metric in COMPARED_COLUMNS.items():
                d = paired_differences(
                    seed_values(runs, dataset, claim.a, metric), seed_values(runs, dataset, claim.b, metric)
                )
                r = row_power(
                    d, expect, paper_diff, float(design["margin"]), alpha, float(design["power"]),
                    int(design["max_confirmatory_seeds"]),
                )  # fmt: skip
                rows.append(
                    {"claim": claim.id, "dataset": dataset, "protocol": protocol, "expect": expect, **vars(r),
                     "paper_diff": paper_diff}
                )  # fmt: skip
    frame = pd.DataFrame(rows, columns=DESIGN_COLUMNS)
    frame["pairs_needed"] = frame["pairs_needed"].astype("Int64")
    return frame


def seed_cost_s(runs: pd.DataFrame) -> dict[str, float]:
    """Training core-seconds of one seed of every experiment, per dataset (mean over seeds).

    From ``wall_time_s`` of single-threaded runs: process start-up and data loading (a few
    seconds per job, docs/performance.md) are not in it.
    """
    per_seed = runs.groupby(["dataset", "seed"], sort=False)["wall_time_s"].sum()
    return {str(k): float(v) for k, v in per_seed.groupby(level="dataset", sort=False).mean().items()}


# --------------------------------------------------------------------------- proposal


@dataclass(frozen=True)
class Proposal:
    """The confirmatory seed count and what it decides."""

    count: int
    seeds: list[int]
    cap: int
    floor: int  # fewest pairs for Holm over the largest protocol family
    decidable: int  # rows whose need is within the cap
    beyond_cap: int  # rows with a target whose need exceeds the cap
    no_target: int  # rows without a target or a spread


def propose_confirmatory(table: pd.DataFrame, cap: int, alpha: float, first_seed: int) -> Proposal:
    """Seeds ``first_seed, first_seed + 1, ...``: as many as the most demanding row the cap decides.

    The count is ``max(floor, largest need within the cap)``, at most ``cap``; ``floor`` is
    :func:`gsmoe.report.power.min_pairs_for_alpha` over the largest protocol family, so Holm
    can confirm a row whose differences all have the claimed sign.
    """
    if cap < 2:
        raise ValueError(f"the cap of confirmatory seeds must be at least 2, got {cap}")
    family = int(table.groupby("protocol").size().max()) if len(table) else 1
    floor = min_pairs_for_alpha(alpha, family)
    needs = table["pairs_needed"].dropna().astype(int)
    count = min(cap, max([floor, *needs.tolist()]))
    # A row with a target and a spread has a power at n; without a need it is beyond the cap.
    beyond = int((table["pairs_needed"].isna() & table["power"].notna()).sum())
    return Proposal(
        count=count,
        seeds=list(range(first_seed, first_seed + count)),
        cap=cap,
        floor=floor,
        decidable=int(needs.size),
        beyond_cap=beyond,
        no_target=int(len(table) - needs.size - beyond),
    )


def render_design(table: pd.DataFrame, proposal: Proposal, cost_s: Mapping[str, float], cores: int) -> str:
    """Markdown: the per-row power table, the proposed confirmatory seeds and their cost."""
    lines = [
        "| claim | dataset | protocol | test | n | sd of a - b | our diff | paper diff | target | MDE | power at n | seeds needed | note |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, r in table.iterrows():
        needed = str(int(r["pairs_needed"])) if not pd.isna(r["pairs_needed"]) else "--"
        lines.append(
            f"| {r['claim']} | {r['dataset']} | {r['protocol']} | {r['test']} | {int(r['n'])} | "
            f"{format_number(r['sd'])} | {format_number(r['diff'], True)} | {format_number(r['paper_diff'], True)} | "
            f"{format_number(r['target'], True)} | {format_number(r['mde'])} | {format_number(r['power'])} | "
            f"{needed} | {r['note']} |"
        )
    per_seed = sum(cost_s.values())
    core_h = proposal.count * per_seed / 3600.0
    first, last = proposal.seeds[0], proposal.seeds[-1]
    lines += [
        "",
        f"Rows decidable within the cap of {proposal.cap} seeds: {proposal.decidable}; needing more: "
        f"{proposal.beyond_cap}; without a target or spread: {proposal.no_target}.",
        f"Fewest seeds for Holm over a protocol's rows: {proposal.floor}.",
        f"Proposed confirmatory seeds: {proposal.count} (`claims_design.confirmatory_seeds: [{first}, ..., {last}]`).",
        "Cost at the pilot's speed, training only: "
        + ", ".join(f"{d} {s:.0f} s" for d, s in cost_s.items())
        + f" per seed of all experiments ({per_seed:.0f} core-s); {proposal.count} seeds = {core_h:.1f} core-hours"
        f" = {core_h / cores:.1f} h on {cores} cores.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from gsmoe.config import load_config

    parser = argparse.ArgumentParser(prog="python -m gsmoe.report.design", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_csv", help="runs.csv of the pilot (e.g. results/runs.csv)")
    parser.add_argument("--config", default="config.yaml", help="workflow config (default: config.yaml)")
    parser.add_argument("--cores", type=int, default=2, help="cores the confirmatory run gets (cost in hours)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    runs = read_csv_keeping_names(args.runs_csv, RUN_COLUMNS, RUN_TEXT_COLUMNS)
    pilot, _ = design_seed_sets(config)
    table = power_table(runs, config)
    proposal = propose_confirmatory(
        table, int(config["claims_design"]["max_confirmatory_seeds"]), float(config["claims_alpha"]),
        first_seed=max(int(s) for s in config["seeds"]) + 1,
    )  # fmt: skip
    print(render_design(table, proposal, seed_cost_s(runs[runs["seed"].isin(pilot)]), args.cores), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
