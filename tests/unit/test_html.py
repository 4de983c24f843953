"""HTML pages of the report: summary, tables and claims show the numbers; protocol words."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gsmoe.report.aggregate import SUMMARY_COLUMNS
from gsmoe.report.html import (
    CLAIMS_HTML_COLUMNS,
    read_claims_csv,
    render_claims_html,
    render_summary_html,
    write_claims_html,
    write_summary_html,
    write_tables_html,
)
from gsmoe.report.evaluation_sets import evaluation_set, protocol_descriptions, run_datasets

DATASETS: dict[str, Any] = {
    "Cora": {"task": "node"},
    "ENZYMES": {"task": "graph", "split": {"standard": [0.8, 0.1, 0.1], "paper": [0.8, 0.2], "seed_offset": 0}},
}
PROTOCOLS = protocol_descriptions(DATASETS)
LABELS = {"baseline": "Baseline <GraphSAGE>", "moe4": "4 Experts"}
EXPERIMENTS = {
    "baseline": {"label": "Baseline <GraphSAGE>", "paper": {"Cora": 0.71, "ENZYMES": 0.31}},
    "moe4": {"label": "4 Experts", "paper": {"Cora": 0.75, "ENZYMES": 0.34}},
}
TABLES = {
    "table3": {
        "title": "Non-sparse Gating",
        "columns": ["Cora", "ENZYMES"],
        "rows": [{"experiment": "baseline", "label": "Baseline"}, {"experiment": "moe4", "label": "4 Experts"}],
    }
}


def summary_row(dataset: str, experiment: str, metric: str, mean: float, n: int = 3, n_expected: int = 3) -> dict:
    protocol = "standard" if metric.startswith("standard") else "paper"
    paper = EXPERIMENTS[experiment]["paper"][dataset]
    return dict(
        zip(
            SUMMARY_COLUMNS,
            [dataset, experiment, protocol, metric, n, n_expected, mean, 0.0123, mean - 0.02, mean + 0.02, paper],
            strict=True,
        )
    )


def summary_frame() -> pd.DataFrame:
    rows = [
        summary_row("Cora", "baseline", "paper_last", 0.7016),
        summary_row("Cora", "baseline", "standard_test", 0.7472),
        summary_row("Cora", "moe4", "paper_last", 0.7211, n=2),
        summary_row("Cora", "moe4", "standard_test", 0.7451, n=2),
        summary_row("ENZYMES", "baseline", "paper_last", 0.2914),
        summary_row("ENZYMES", "baseline", "standard_test", 0.2700),
        # moe4 did not run on ENZYMES
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def test_protocol_words_per_task() -> None:
    assert evaluation_set("paper", "node") == "the Planetoid validation mask"
    assert evaluation_set("paper", "graph", DATASETS["ENZYMES"]["split"]) == "the 20 % of graphs held out"
    assert evaluation_set("test", "graph", DATASETS["ENZYMES"]["split"]) == "the 10 % test graphs"
    assert PROTOCOLS["paper"].startswith(
        "Paper protocol: what the authors call test accuracy, measured on Cora: the Planetoid validation mask; "
        "ENZYMES: the 20 % of graphs held out"
    )
    assert "Cora: the Planetoid test mask" in PROTOCOLS["standard"]
    with pytest.raises(ValueError, match="split"):
        evaluation_set("paper", "graph")


SPLIT = {"standard": [0.8, 0.1, 0.1], "paper": [0.8, 0.2], "seed_offset": 0}


def test_run_datasets_only_the_trained_ones() -> None:
    config = {
        "datasets": {"Cora": {"task": "node", "source": "x"}, "PubMed": {"task": "node"}, "ENZYMES": {"task": "graph", "split": SPLIT}},
        "experiments": {"baseline": {"datasets": ["Cora", "ENZYMES"]}},
    }  # a validated config: its graph datasets' split filled in
    out = run_datasets(config)
    assert list(out) == ["Cora", "ENZYMES"]  # PubMed is configured, not trained on
    assert out["Cora"] == {"task": "node"}  # nothing else of the dataset's config
    assert out["ENZYMES"] == {"task": "graph", "split": SPLIT}


def test_summary_shows_mean_interval_n_and_paper(tmp_path: Path) -> None:
    csv_path = tmp_path / "summary.csv"
    summary_frame().to_csv(csv_path, index=False)
    out = tmp_path / "summary.html"
    write_summary_html(str(csv_path), LABELS, list(DATASETS), PROTOCOLS, str(out))
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert '0.702 <span class="ci">[0.682, 0.722]</span> <span class="n">n=3</span></td><td class="paper">0.71</td>' in page
    assert '<span class="n flag">n=2 of 3</span>' in page  # missing runs are flagged
    assert page.count("<table>") == 2  # paper_last and standard_test (no paper_best rows)
    assert "Baseline &lt;GraphSAGE&gt;" in page  # labels escaped
    assert "the 20 % of graphs held out" in page


def test_summary_dash_for_a_cell_not_run() -> None:
    page = render_summary_html(summary_frame(), LABELS, list(DATASETS), PROTOCOLS)
    # 4 Experts on ENZYMES: not run
    row = next(line for line in page.splitlines() if line.startswith("<tr><th scope=\"row\">4 Experts"))
    assert row.endswith('<td class="num">--</td><td class="paper">--</td></tr>')


def test_tables_both_protocols_same_cells_as_latex(tmp_path: Path) -> None:
    csv_path = tmp_path / "summary.csv"
    summary_frame().to_csv(csv_path, index=False)
    out = tmp_path / "table3.html"
    write_tables_html(
        str(csv_path), TABLES, EXPERIMENTS, PROTOCOLS, {"protocol": "paper", "metric": "last"}, 3, {"table3": str(out)}
    )
    page = out.read_text()
    assert "<h1>table3: Non-sparse Gating</h1>" in page
    assert page.count("<table>") == 2
    paper_part, standard_part = page.split("<code>standard_test</code>")
    assert '<td class="num">0.702 ± 0.012</td><td class="paper">0.71</td>' in paper_part
    assert '<td class="num">0.747 ± 0.012</td><td class="paper">0.71</td>' in standard_part
    assert '0.721 ± 0.012 <span class="n flag">n=2</span>' in paper_part  # fewer seeds than 3
    with pytest.raises(ValueError, match="no output path"):
        write_tables_html(str(csv_path), TABLES, EXPERIMENTS, PROTOCOLS, {"protocol": "paper", "metric": "last"}, 3, {})


def claim_rows() -> list[dict[str, Any]]:
    base = {
        "claim": "moe4_beats_baseline",
        "group": "",
        "table": "table3",
        "text": "4 experts beat the baseline",
        "a": "moe4",
        "b": "baseline",
        "expect": "greater",
        "paper_a": 0.75,
        "paper_b": 0.71,
        "paper_diff": 0.04,
        "confidence": 0.95,
        "test": "sign-flip permutation (exact, 2^3)",
        "paired": True,
        "n_a": 3,
        "n_b": 3,
        "n_sample": 3,
        "verdict_holm": "inconclusive",
        "pilot_verdict": float("nan"),
        "paper_position": "inside",
        "paper_check": "the paper's +0.040 is inside [...]",
        "note": "",
    }
    rows = []
    for dataset, diffs in (("Cora", (0.019, -0.002)), ("ENZYMES", (0.045, float("nan")))):
        for protocol, metric, diff in zip(("paper", "standard"), ("paper_last", "standard_test"), diffs, strict=True):
            run = not math.isnan(diff)
            rows.append(
                {
                    **base,
                    "dataset": dataset,
                    "protocol": protocol,
                    "metric": metric,
                    "mean_a": 0.7,
                    "mean_b": 0.7,
                    "diff": diff,
                    "ci_low": diff - 0.01 if run else float("nan"),
                    "ci_high": diff + 0.01 if run else float("nan"),
                    "p_value": 0.027 if run else float("nan"),
                    "p_holm": 0.1,
                    "n": 3 if run else 0,
                    "verdict": ("holds" if diff > 0.01 else "inconclusive") if run else "not run",
                    "note": "" if run else "moe4 has no runs",
                }
            )
    return rows


def write_claims_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """As the claims rule writes it: NaN as an empty cell."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})


def claims_page(tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    """The HTML claims page of ``rows``, written as claims.csv."""
    path = tmp_path / "claims.csv"
    write_claims_csv(path, rows)
    out = tmp_path / "claims.html"
    write_claims_html(str(path), PROTOCOLS, str(out))
    return out.read_text()


def test_claims_show_difference_interval_p_and_verdict(tmp_path: Path) -> None:
    page = claims_page(tmp_path, claim_rows())
    assert '+0.019 <span class="ci">[+0.009, +0.029]</span></td><td class="num">0.027</td>' in page
    assert '<span class="verdict holds">holds</span>' in page
    assert '<td class="num">--</td><td class="num">--</td><td><span class="verdict none">not run</span>' in page
    assert "standard: moe4 has no runs" in page  # a note of one protocol says which
    assert "difference [95 % CI]" in page
    assert 'rowspan="2">4 experts beat the baseline' in page  # one claim, two datasets
    assert "pilot:" not in page and "is inside" not in page  # neither a pilot verdict nor an excluded paper value


def test_claims_show_new_verdicts_pilot_and_excluded_paper_difference(tmp_path: Path) -> None:
    rows = claim_rows()
    rows[0].update(verdict="holds", pilot_verdict="inconclusive", paper_position="above",
                   paper_check="the paper's +0.040 is excluded: at most +0.029")  # fmt: skip
    rows[1].update(verdict="equivalent", pilot_verdict="equivalent")  # the same: not repeated
    rows[2].update(verdict="superior", pilot_verdict="undecided")
    page = claims_page(tmp_path, rows)
    assert '<span class="verdict holds">holds</span><br><span class="note">pilot: inconclusive</span>' in page
    assert '<span class="verdict holds">equivalent</span></td>' in page
    assert '<span class="verdict fails">superior</span><br><span class="note">pilot: undecided</span>' in page
    assert "the paper&#x27;s +0.040 is excluded: at most +0.029" in page


def test_claims_mark_a_verdict_paired_on_fewer_seeds_than_its_sample(tmp_path: Path) -> None:
    """A partial confirmatory run: the verdict says how many of the sample's seeds it rests on."""
    rows = claim_rows()
    rows[0].update(verdict="holds", n=2, pilot_verdict="inconclusive")
    rows[1].update(n=2, p_value=0.0004)
    page = claims_page(tmp_path, rows)
    assert '<td class="num">&lt;0.001</td>' in page  # as claims.md prints it, not 0.000
    partial = '<br><span class="note">2 of 3 seeds</span>'
    assert f'<span class="verdict holds">holds</span>{partial}<br><span class="note">pilot: inconclusive</span>' in page
    assert f'<span class="verdict open">inconclusive</span>{partial}</td>' in page
    assert page.count("of 3 seeds") == 2  # not on the full rows nor on "not run"


def test_claims_csv_checked_and_empty(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "verdict"} for row in claim_rows()]
    path = tmp_path / "claims.csv"
    write_claims_csv(path, rows)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['verdict'\]"):
        read_claims_csv(path)
    empty = pd.DataFrame(columns=CLAIMS_HTML_COLUMNS)
    assert "No claims are configured" in render_claims_html(empty, PROTOCOLS)
