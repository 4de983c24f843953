"""LaTeX tables: rows/columns as configured, paper values, escaping, dashes, compiling."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import make_record, validated_config

from gsmoe.report.aggregate import runs_frame, summarize
from gsmoe.report.tables import (
    format_number,
    format_p,
    latex_escape,
    render_markdown_summary,
    render_table,
    table_grid,
    write_tables,
)

DATASETS = ["Cora", "PubMed", "ENZYMES"]

_EXPERIMENTS: dict[str, Any] = {
    "baseline": {"label": "Baseline", "model": {}, "paper": {"Cora": 0.71, "PubMed": 0.72, "ENZYMES": 0.31}},
    "roles_mp": {"label": "Roles MP", "model": {}, "paper": {"Cora": 0.70, "PubMed": 0.70, "ENZYMES": 0.33}},
    "roles_ma": {"label": "Roles MA", "model": {}, "paper": {"Cora": 0.71, "PubMed": 0.69, "ENZYMES": 0.32}},
    "moe4_softmax": {"label": "4 Experts", "model": {}, "paper": {"Cora": 0.75, "PubMed": 0.74, "ENZYMES": 0.34}},
    "moe4_nosoftmax": {"label": "No Softmax", "model": {}, "paper": {"Cora": 0.72, "PubMed": 0.72, "ENZYMES": 0.34}},
}

CONFIG: dict[str, Any] = validated_config(
    seeds=[0, 1, 2],
    experiments=_EXPERIMENTS,
    table_metric={"protocol": "paper", "metric": "last"},
    tables={
        "table1": {
            "title": "Mixture by 4 Roles",
            "columns": DATASETS,
            "rows": [
                {"experiment": "baseline", "label": "Baseline"},
                {"experiment": "roles_mp", "label": "Mixture by 4 Roles - Message Passing"},
                {"experiment": "roles_ma", "label": "Mixture by 4 Roles - Message Aggregated"},
            ],
        },
        "table2": {
            "title": "Softmax",
            "columns": DATASETS,
            "rows": [
                {"experiment": "baseline", "label": "Baseline"},
                {"experiment": "moe4_softmax", "label": "4 Experts with Non-sparse Gating - Softmax"},
                # special characters on purpose
                {"experiment": "moe4_nosoftmax", "label": "No Softmax & 100% of_experts #1 {x} ~ ^"},
            ],
        },
    },
)
EXPERIMENTS: dict[str, Any] = CONFIG["experiments"]
#: What the tables rule gives write_tables.
TABLE_SECTIONS = (CONFIG["tables"], EXPERIMENTS, CONFIG["table_metric"], len(CONFIG["seeds"]))


def make_summary(
    skip_pubmed_for: tuple[str, ...] = ("roles_mp",), short: tuple[str, ...] = ("roles_ma",)
) -> pd.DataFrame:
    """All experiments on all datasets, 3 seeds, except: no PubMed runs for ``skip_pubmed_for``,
    only 2 Cora seeds for ``short``."""
    records = []
    for e_i, experiment in enumerate(EXPERIMENTS):
        for dataset in DATASETS:
            if dataset == "PubMed" and experiment in skip_pubmed_for:
                continue
            seeds = [0, 1] if (experiment in short and dataset == "Cora") else [0, 1, 2]
            records += [make_record(dataset, experiment, s, 0.70 + 0.01 * e_i + 0.01 * s) for s in seeds]
    expected = [{"dataset": d, "experiment": e, "seed": s} for e in EXPERIMENTS for d in DATASETS for s in (0, 1, 2)]
    return summarize(runs_frame(records), experiments_cfg=EXPERIMENTS, expected=expected)


@pytest.fixture
def summary_csv(tmp_path: Path) -> Path:
    path = tmp_path / "summary.csv"
    make_summary().to_csv(path, index=False, na_rep="")
    return path


def _body_rows(tex: str) -> list[str]:
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    # Data rows without the label column's "\\raggedright " prefix.
    return [line.strip().removeprefix("\\raggedright ") for line in body.strip().splitlines()]


def test_rows_columns_and_paper_values() -> None:
    grid = table_grid(
        make_summary(), CONFIG["tables"]["table1"], EXPERIMENTS, CONFIG["table_metric"], name="table1", n_seeds=3
    )
    tex = render_table(grid)
    for label in ("Baseline", "Mixture by 4 Roles - Message Passing", "Mixture by 4 Roles - Message Aggregated"):
        assert label in tex
    rows = _body_rows(tex)
    assert len(rows) == 3
    assert rows[0].startswith("Baseline &")
    # 1 label + 3 datasets x (ours, paper)
    assert all(r.count(" & ") == 6 for r in rows)
    # baseline (experiment 0): seeds .70, .71, .72 -> 0.710 +- 0.010; paper 0.71 0.72 0.31
    assert rows[0] == (
        "Baseline & $0.710 \\pm 0.010$ & 0.71 & $0.710 \\pm 0.010$ & 0.72 & $0.710 \\pm 0.010$ & 0.31 \\\\"
    )
    for header in (
        "\\toprule",
        "\\midrule",
        "\\bottomrule",
        "\\multicolumn{2}{c}{Cora}",
        "\\multicolumn{2}{c}{PubMed}",
    ):
        assert header in tex
    assert "\\label{tab:table1}" in tex
    assert "\\caption{Mixture by 4 Roles. " in tex
    assert "paper protocol" in tex and "last evaluation" in tex and "over 3 seeds" in tex


def test_dash_for_dataset_not_run_and_n_for_fewer_seeds() -> None:
    grid = table_grid(
        make_summary(), CONFIG["tables"]["table1"], EXPERIMENTS, CONFIG["table_metric"], name="table1", n_seeds=3
    )
    tex = render_table(grid)
    rows = _body_rows(tex)
    mp_cells = rows[1].removesuffix(" \\\\").split(" & ")
    assert mp_cells[3] == "--"  # PubMed not run ...
    assert mp_cells[4] == "0.70"  # ... but the paper's value still shown
    ma_cells = rows[2].removesuffix(" \\\\").split(" & ")
    assert "n=2" in ma_cells[1]  # Cora: two of three seeds
    assert "n=" not in ma_cells[3] and "n=" not in ma_cells[5]
    assert "superscript $n$" in tex


def test_no_n_note_when_complete() -> None:
    summary = make_summary(skip_pubmed_for=(), short=())
    grid = table_grid(summary, CONFIG["tables"]["table2"], EXPERIMENTS, CONFIG["table_metric"], name="table2")
    tex = render_table(grid)
    assert "n=" not in tex and "superscript" not in tex
    assert "--" not in "".join(_body_rows(tex))


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [
        (0.7125, False, "0.713"),  # three decimals
        (0.7125, True, "+0.713"),
        (-0.0104, True, "-0.010"),
        (0, False, "0.000"),
        (np.float32(0.25), True, "+0.250"),
        (None, False, "--"),
        (math.nan, True, "--"),
        (np.float32("nan"), False, "--"),  # not a Python float, still missing
        (pd.NA, False, "--"),
        (math.inf, True, "--"),
        (-math.inf, False, "--"),
    ],
)
def test_format_number(value: Any, signed: bool, text: str) -> None:
    assert format_number(value, signed) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0312, "0.031"), (0.001, "0.001"), (0.00099, "<0.001"), (0.0, "<0.001"), (1.0, "1.000"),
     (None, "--"), (math.nan, "--"), (pd.NA, "--"), (math.inf, "--")],
)  # fmt: skip
def test_format_p(value: Any, text: str) -> None:
    assert format_p(value) == text


def test_escaping() -> None:
    assert latex_escape("a & b_c 100% #1 {x} ~ ^ $ \\") == (
        "a \\& b\\_c 100\\% \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\$ \\textbackslash{}"
    )
    grid = table_grid(make_summary(), CONFIG["tables"]["table2"], EXPERIMENTS, CONFIG["table_metric"], name="table2")
    tex = render_table(grid)
    assert "No Softmax \\& 100\\% of\\_experts \\#1 \\{x\\} \\textasciitilde{} \\textasciicircum{}" in tex


def test_standard_protocol_and_unknown_metric() -> None:
    summary = make_summary()
    standard = {"protocol": "standard", "metric": "test"}
    grid = table_grid(summary, CONFIG["tables"]["table1"], EXPERIMENTS, standard, name="table1")
    tex = render_table(grid, label_suffix="-standard")
    assert "\\label{tab:table1-standard}" in tex and "standard protocol" in tex
    assert "$0.660 \\pm 0.010$" in tex  # standard test = paper last - 0.05
    with pytest.raises(ValueError, match="unknown table metric"):
        table_grid(summary, CONFIG["tables"]["table1"], EXPERIMENTS, {"protocol": "paper", "metric": "median"})


def test_write_tables_files(tmp_path: Path, summary_csv: Path) -> None:
    out = tmp_path / "tables"
    write_tables(str(summary_csv), *TABLE_SECTIONS, str(out))
    for name in (
        "table1.tex",
        "table2.tex",
        "tables.tex",
        "standard/table1.tex",
        "standard/table2.tex",
        "tables_standard.tex",
        "summary.md",
    ):
        assert (out / name).is_file(), name
    index = (out / "tables.tex").read_text()
    assert "booktabs" in index
    assert "\\input{\\gsmoetablesdir table1}" in index and "\\input{\\gsmoetablesdir table2}" in index
    assert "\\input{\\gsmoetablesdir standard/table1}" in (out / "tables_standard.tex").read_text()
    # no stray temporary files from the atomic writes
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    # rerun: identical bytes
    before = (out / "table1.tex").read_bytes()
    write_tables(str(summary_csv), *TABLE_SECTIONS, str(out))
    assert (out / "table1.tex").read_bytes() == before


def test_markdown_summary() -> None:
    text = render_markdown_summary(
        make_summary(), EXPERIMENTS, ["Cora", "PubMed"], [{"protocol": "paper", "metric": "last"}, {"protocol": "standard", "metric": "test"}]
    )
    sections = text.split("#### ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "Paper protocol, last evaluation (the authors' test split: Planetoid validation mask, ENZYMES 20 % held out)",
        "Standard protocol, test accuracy at the best validation accuracy",
    ]
    rows = [line for line in sections[0].splitlines() if line.startswith("| ")]
    assert rows[0] == "| experiment | Cora ours | Cora paper | PubMed ours | PubMed paper |"
    # config order; mean ± sample std (n); the paper's value with two decimals
    assert rows[1] == "| Baseline | 0.710 ± 0.010 (n=3) | 0.71 | 0.710 ± 0.010 (n=3) | 0.72 |"
    assert rows[2] == "| Roles MP | 0.720 ± 0.010 (n=3) | 0.70 | -- | 0.70 |"  # PubMed not run
    assert rows[3] == "| Roles MA | 0.725 ± 0.007 (n=2) | 0.71 | 0.730 ± 0.010 (n=3) | 0.69 |"  # 2 Cora seeds
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| " + e["label"] for e in EXPERIMENTS.values()]
    standard = [line for line in sections[1].splitlines() if line.startswith("| Baseline")]
    assert standard == ["| Baseline | 0.660 ± 0.010 (n=3) | 0.71 | 0.660 ± 0.010 (n=3) | 0.72 |"]


def _pdflatex(directory: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", name],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (texlive-latex-base)")
def test_tables_compile_with_pdflatex(tmp_path: Path, summary_csv: Path) -> None:
    out = tmp_path / "tables"
    write_tables(str(summary_csv), *TABLE_SECTIONS, str(out))
    preamble = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
    # 1) from the tables folder itself
    (out / "doc.tex").write_text(preamble + "\\input{tables.tex}\n\\end{document}\n")
    result = _pdflatex(out, "doc.tex")
    assert result.returncode == 0, result.stdout[-3000:]
    assert (out / "doc.pdf").read_bytes().startswith(b"%PDF")
    # 2) from another directory, both protocols, with the folder macro
    (tmp_path / "paper.tex").write_text(
        preamble
        + "\\newcommand{\\gsmoetablesdir}{tables/}\n"
        + "\\input{tables/tables.tex}\n\\input{tables/tables_standard.tex}\n"
        + "See Table~\\ref{tab:table1} and~\\ref{tab:table2-standard}.\n\\end{document}\n"
    )
    result = _pdflatex(tmp_path, "paper.tex")
    assert result.returncode == 0, result.stdout[-3000:]
    # Readable on an article page: the paper's long row labels wrap instead of overflowing.
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log
