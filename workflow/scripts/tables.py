"""Snakemake script of rule `tables`: summary.csv -> LaTeX tables (gsmoe.report.tables.write_tables)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.report.tables import write_tables  # noqa: E402

params = snakemake.params  # noqa: F821
write_tables(
    snakemake.input[0],  # noqa: F821
    params.tables,
    params.experiments,
    params.table_metric,
    params.seeds,  # the count of seeds
    params.out_dir,
)
