"""``claims.md`` and ``claims.csv``: the paper's claims, their verdicts and the sanity check.

The claims are configured in ``config["claims"]`` (:mod:`gsmoe.config.claims`), tested by
:mod:`gsmoe.report.verdicts` (tests in :mod:`gsmoe.report.hypothesis`, power in
:mod:`gsmoe.report.power`, pilot / confirmatory seeds in :mod:`gsmoe.report.design`) and the
baseline checked against published accuracies by :mod:`gsmoe.report.references`; this
module writes both results.  ``claims.md`` says which sample the verdicts are computed on
(the pilot's, while ``claims_design.confirmatory_seeds`` is empty) and, with a confirmatory
sample, gives the pilot's verdict beside each that differs.  Entry point:
:func:`write_claims` (atomic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from gsmoe.config.claims import parse_claims
from gsmoe.io import atomic_open
from gsmoe.protocols import COMPARED_COLUMNS
from gsmoe.report.aggregate import RUN_COLUMNS, RUN_TEXT_COLUMNS, read_csv_keeping_names
from gsmoe.report.references import check_references
from gsmoe.report.design import design_seed_sets
from gsmoe.report.tables import DASH, format_number, format_p
from gsmoe.report.verdicts import CONFIRMATORY, NOT_RUN, evaluate_claims, seeds_mark, verdict_notes

__all__ = ["render_markdown", "write_claims"]


# --------------------------------------------------------------------------- output


def _md(text: Any) -> str:
    """Plain text safe inside a markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _difference(row: Mapping[str, Any]) -> str:
    """Our difference and its interval, ``+0.012 [-0.003, +0.027]``: the difference alone
    without an interval (one pair, no spread), ``--`` without a pair."""
    if pd.isna(row["diff"]):
        return DASH
    if pd.isna(row["ci_low"]):
        return format_number(row["diff"], True)
    low, high = format_number(row["ci_low"], True), format_number(row["ci_high"], True)
    return f"{format_number(row['diff'], True)} [{low}, {high}]"


def _verdict(row: Mapping[str, Any], column: str = "verdict") -> str:
    """The verdict, with its notes beside it in parentheses (:func:`verdict_notes`)."""
    notes = verdict_notes(row, column)
    return f"{row[column]} ({'; '.join(notes)})" if notes else str(row[column])


def _seeds_needed(row: Mapping[str, Any], cap: int) -> str:
    if not pd.isna(row["seeds_needed"]):
        return str(int(row["seeds_needed"]))
    # beyond the cap, or nothing to detect / no spread (the note says which)
    return f"> {cap}" if math.isfinite(float(row["power"])) else "--"


def _sample_sentence(claims_df: pd.DataFrame, seeds: Sequence[int]) -> str:
    """Which seeds the verdicts are computed on (docs/claims_design.md)."""
    if (claims_df["sample"] == CONFIRMATORY).any():
        return (
            f"Verdicts are computed on the confirmatory seeds {_seed_list(seeds)} alone (not pooled with the "
            "pilot's); where the pilot's verdict differs it is given beside, as *(pilot: ...)*."
            + _partial_sentence(claims_df)
        )
    return (
        f"Verdicts are the **pilot's**: all seeds {_seed_list(seeds)} (no confirmatory seeds configured, "
        "`claims_design.confirmatory_seeds`); they size a confirmatory run, docs/claims_design.md."
        + _partial_sentence(claims_df)
    )


def _partial_sentence(claims_df: pd.DataFrame) -> str:
    """What a report with runs still missing says about its verdicts ('' for a complete one)."""
    partial = any(seeds_mark(row) for _, row in claims_df.iterrows())
    if not partial and not (claims_df["verdict"] == NOT_RUN).any():
        return ""
    return (
        f" **Runs are missing** (a report with `--allow-missing`): a verdict on fewer than the sample's seeds "
        "says so, as *(15 of 29 seeds)*, and Holm's adjustment runs over the rows that have a p-value, a "
        "smaller family than planned: the Holm verdicts are provisional."
    )


def _seed_list(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


_EXPECT_TEXT = {
    "greater": "a > b",
    "less": "a < b",
    "equal": "a = b (no significant difference)",
    "not_greater": "a not > b",
}


def _summary_lines(claims_df: pd.DataFrame, conf: str) -> list[str]:
    """One row per claim and dataset, the protocols side by side (paper first)."""
    protocols = list(dict.fromkeys(claims_df["protocol"]))
    header = "| claim | dataset | paper diff | " + " | ".join(
        f"ours, {p} protocol [{conf} CI] | p | verdict" for p in protocols
    )
    lines = [header + " |", "|---|---|---:|" + "---:|---:|---|" * len(protocols)]
    for (_, dataset), group in claims_df.groupby(["claim", "dataset"], sort=False):
        by_protocol = {r["protocol"]: r for _, r in group.iterrows()}
        first = group.iloc[0]
        cells = [_md(first["text"]), _md(dataset), format_number(first["paper_diff"], True)]
        for protocol in protocols:
            r = by_protocol.get(protocol)
            if r is None:
                cells += [DASH, DASH, NOT_RUN]
            elif r["verdict"] == NOT_RUN:  # the pilot's verdict beside, if the pilot ran it
                cells += [DASH, DASH, _verdict(r)]
            else:
                cells += [
                    _difference(r),
                    format_p(r["p_value"]),
                    _verdict(r),
                ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    claims_df: pd.DataFrame, refs_df: pd.DataFrame, config: Mapping[str, Any], sample_seeds: Sequence[int]
) -> str:
    """``claims.md``: the rules, a summary, the claims, the results table and the sanity section.

    ``sample_seeds``: the seeds the verdicts are computed on (:func:`gsmoe.report.design.design_seed_sets`).
    """
    alpha = float(config["claims_alpha"])
    design = config["claims_design"]
    margin, cap = float(design["margin"]), int(design["max_confirmatory_seeds"])
    conf = f"{100 * (1 - alpha):g} %"
    compared = ", ".join(f"{protocol}: `{column}`" for protocol, column in COMPARED_COLUMNS.items())
    lines = [
        "# Do the paper's claims hold?",
        "",
        "<!-- Generated by gsmoe.report.claims from runs.csv -- do not edit by hand. -->",
        "",
        f"Difference = accuracy of a minus accuracy of b, per dataset and protocol ({compared}), paired by seed, "
        f"with its {conf} t-interval. alpha = {alpha:g}, no "
        "multiple-comparison correction in *verdict* (Holm's adjustment per protocol in *Holm*). "
        + _sample_sentence(claims_df, sample_seeds),
        "",
        "Each claim gets the test that answers it (docs/claims_design.md): *a > b* / *a < b*: a one-sided sign-flip "
        "permutation test in the claimed direction, **holds** when significant, **does not hold** when the opposite "
        "direction is, else **inconclusive**; *no significant difference*: equivalence within "
        f"±{margin:g} (margin `claims_design.margin`) by two one-sided t-tests, **equivalent**, else **different** "
        "when the two-sided sign-flip test finds a difference, else **undecided**; *does not outperform*: "
        f"non-superiority by {margin:g} (one-sided t-test), **not superior**, else **superior** when a is "
        "significantly better, else **undecided**. *p* is the p-value of the claim's test, *p against* that of the "
        "contrary test. *Paper's difference*: is the paper's own difference inside our interval (a claim can hold "
        f"and still be overstated)? *MDE*: the smallest true difference (directional rows) or margin (the others) "
        f"our seeds show with {float(design['power']):g} power; *seeds needed*: the seeds that would show the "
        f"paper's difference (directional) or the margin at a true difference of 0, `> {cap}` beyond the cap "
        "`claims_design.max_confirmatory_seeds`. **not run**: an experiment has no runs on the dataset.",
        "",
        "## Summary",
        "",
        *_summary_lines(claims_df, conf),
        "",
        "## Claims",
        "",
        "| claim | table | a | b | expects | paper's claim |",
        "|---|---|---|---|---|---|",
    ]
    for c in parse_claims(config):
        expects = _EXPECT_TEXT[c.expect] if c.expect else ""
        if c.expect_per_dataset:
            per = ", ".join(f"{d}: {_EXPECT_TEXT[e]}" for d, e in c.expect_per_dataset.items())
            expects = f"{expects}; {per}" if expects else per
        lines.append(f"| {_md(c.id)} | {_md(c.table)} | {_md(c.a)} | {_md(c.b)} | {_md(expects)} | {_md(c.text)} |")
    lines += [
        "",
        "## Results",
        "",
        f"| claim | table | dataset | protocol | expect | paper diff | our diff [{conf} CI] | paper's difference | "
        "p | p against | p (Holm) | n | MDE | seeds needed | verdict | verdict (Holm) | note |",
        "|---|---|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for _, r in claims_df.iterrows():
        if r["verdict"] == NOT_RUN:
            ours, check, mde, needed = "--", "--", "--", "--"
        else:
            ours = _difference(r)
            check, mde, needed = _md(r["paper_check"]), format_number(r["mde"]), _seeds_needed(r, cap)
        lines.append(
            f"| {_md(r['claim'])} | {_md(r['table'])} | {_md(r['dataset'])} | {r['protocol']} | {r['expect']} | "
            f"{format_number(r['paper_diff'], True)} | {ours} | {check} | {format_p(r['p_value'])} | "
            f"{format_p(r['p_contrary'])} | "
            f"{format_p(r['p_holm'])} | {int(r['n'])} | {mde} | {needed} | {_verdict(r)} | "
            f"{_verdict(r, 'verdict_holm')} | {_md(r['note'])} |"
        )
    counts = claims_df.groupby(["protocol", "verdict"], sort=False).size()
    lines += ["", "Tally: " + "; ".join(f"{p} {v}: {k}" for (p, v), k in counts.items()) if len(counts) else "", ""]
    lines += [
        "## Sanity check: our baseline against published accuracies",
        "",
    ]
    if refs_df.empty:
        lines.append("No references configured.")
    else:
        lines += [
            f"| dataset | ours (experiment, protocol) | mean [{conf} CI] | n | reference | model | ours - ref | flag | source | note |",
            "|---|---|---|---:|---:|---|---:|---|---|---|",
        ]
        for _, r in refs_df.iterrows():
            interval = f"[{format_number(r['ci_low'])}, {format_number(r['ci_high'])}]"
            ci = f"{format_number(r['mean'])} {interval}" if r["n"] else "--"
            flag = "**far**" if r["flag"] else ("--" if not r["n"] else "ok")
            lines.append(
                f"| {_md(r['dataset'])} | {_md(r['experiment'])}, {r['protocol']} | {ci} | {int(r['n'])} | "
                f"{format_number(r['reference'])} | {_md(r['reference_model'])} | "
                f"{format_number(r['difference'], True)} | {flag} | "
                f"{_md(r['source'])} | {_md(r['note'])} |"
            )
        lines += [
            "",
            "References use other protocols (and, where the model column says so, another model); a flag asks for a "
            "look at the training setup, it is not a verdict.",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_claims(runs_csv: str, config: dict, out_md: str, out_csv: str) -> None:
    """Evaluate ``config["claims"]`` and ``config["references"]`` (a validated config) on ``runs_csv``.

    Writes ``out_md`` (readable report) and ``out_csv`` (one row per claim x dataset x
    protocol, :data:`CLAIM_COLUMNS`; NaN as an empty cell), both atomically.
    """
    runs = read_csv_keeping_names(runs_csv, RUN_COLUMNS, RUN_TEXT_COLUMNS)
    claims_df = evaluate_claims(runs, config)
    refs_df = check_references(runs, config)
    pilot, confirmatory = design_seed_sets(config)
    text = render_markdown(claims_df, refs_df, config, confirmatory or pilot)
    with atomic_open(out_csv, "w", encoding="utf-8", newline="") as handle:
        claims_df.to_csv(handle, index=False, na_rep="", lineterminator="\n", float_format="%.6g")
    with atomic_open(out_md, "w", encoding="utf-8") as handle:
        handle.write(text)
