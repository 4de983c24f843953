"""Snakemake script of rule `tables`: summary.csv -> LaTeX tables (gsmoe.report.tables.write_tables)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from gsmoe.report.tables import write_tables  # noqa: E402

write_tables(
    snakemake.input[0],  # noqa: F821
    snakemake.params.config,  # noqa: F821
    snakemake.params.out_dir,  # noqa: F821
)
