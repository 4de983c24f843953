"""Snakemake script of rule `prepare`: verified raw files -> PyG folder (gsmoe.datasets.prepare_dataset)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.datasets import prepare_dataset  # noqa: E402

prepare_dataset(
    snakemake.params.source,  # noqa: F821
    snakemake.wildcards.pyg_name,  # noqa: F821
    [Path(p) for p in snakemake.input],  # noqa: F821
    Path(snakemake.params.root),  # noqa: F821
    snakemake.params.verified_members,  # noqa: F821
    checksums=snakemake.params.checksums,  # noqa: F821
)
