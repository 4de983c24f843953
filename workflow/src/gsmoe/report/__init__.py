"""Reporting: run records -> CSV summaries, statistics, LaTeX tables, figures and claims.

* :mod:`gsmoe.report.verify` -- each run record checked against the config, code and data it
  stands for, before aggregation and figures (``verify_records``)
* :mod:`gsmoe.report.aggregate` -- ``runs.csv`` / ``summary.csv`` (``aggregate_runs``)
* :mod:`gsmoe.report.stats` -- mean/std/t-interval, Holm's adjustment
* :mod:`gsmoe.report.tables` -- the paper's Tables 1-5 as booktabs LaTeX (``write_tables``)
* :mod:`gsmoe.report.figures` -- the paper's Figures 2-3, accuracy curves (``write_figure``)
* :mod:`gsmoe.report.verdicts` -- the paper's claims tested on ``runs.csv`` (``evaluate_claims``), with
  :mod:`gsmoe.report.seed_runs` (runs per seed), :mod:`gsmoe.report.hypothesis` (the tests),
  :mod:`gsmoe.report.power` and :mod:`gsmoe.report.design` (power, pilot / confirmatory seeds)
* :mod:`gsmoe.report.references` -- our baseline against published accuracies (``check_references``)
* :mod:`gsmoe.report.claims` -- ``claims.md`` / ``claims.csv`` (``write_claims``)
* :mod:`gsmoe.report.html` -- the summary, tables and claims as HTML pages for the Snakemake
  report, with :mod:`gsmoe.report.evaluation_sets` (what each protocol measures, in words)

Submodules are imported on demand so that, e.g., aggregation does not pull in matplotlib.
"""
