"""Snakemake script of rule `aggregate`: runs -> runs.csv, summary.csv (gsmoe.report.aggregate)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.report.aggregate import aggregate_runs  # noqa: E402

aggregate_runs(
    list(snakemake.input.runs),  # noqa: F821
    snakemake.params.expected,  # noqa: F821
    snakemake.output.runs,  # noqa: F821
    snakemake.output.summary,  # noqa: F821
    allow_missing=snakemake.params.allow_missing,  # noqa: F821
    config=snakemake.params.config,  # noqa: F821
)
