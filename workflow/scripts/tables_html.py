"""Snakemake script of rule `tables_html`: summary.csv -> an HTML page per table (gsmoe.report.html)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.report.html import write_tables_html  # noqa: E402

params = snakemake.params  # noqa: F821
write_tables_html(
    snakemake.input[0],  # noqa: F821
    params.tables,
    params.experiments,
    params.protocols,
    params.table_metric,
    params.seeds,
    dict(zip(params.tables, snakemake.output.tables, strict=True)),  # noqa: F821
)
