"""Reporting: run records -> CSV summaries, statistics, LaTeX tables, figures and claims.

* :mod:`gsmoe.report.aggregate` -- ``runs.csv`` / ``summary.csv`` (``aggregate_runs``)
* :mod:`gsmoe.report.stats` -- mean/std/t-interval, paired differences, Welch's test
* :mod:`gsmoe.report.tables` -- the paper's Tables 1-5 as booktabs LaTeX (``write_tables``)
* :mod:`gsmoe.report.figures` -- the paper's Figures 2-3, accuracy curves (``write_figure``)
* :mod:`gsmoe.report.verdicts` -- the paper's claims tested on ``runs.csv`` (``evaluate_claims``)
* :mod:`gsmoe.report.references` -- our baseline against published accuracies (``check_references``)
* :mod:`gsmoe.report.claims` -- ``claims.md`` / ``claims.csv`` (``write_claims``)

Submodules are imported on demand so that, e.g., aggregation does not pull in matplotlib.
"""
