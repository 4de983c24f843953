"""Snakemake script of rule `prepare`: raw files -> PyG folder (gsmoe.datasets.prepare_dataset)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from pathlib import Path  # noqa: E402

from gsmoe.datasets import prepare_dataset  # noqa: E402

prepare_dataset(
    snakemake.params.source,  # noqa: F821
    snakemake.wildcards.pyg_name,  # noqa: F821
    [Path(p) for p in snakemake.input],  # noqa: F821
    Path(snakemake.params.root),  # noqa: F821
)
