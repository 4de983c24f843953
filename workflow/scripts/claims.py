"""Snakemake script of rule `claims`: runs.csv -> claims.md, claims.csv (gsmoe.report.claims)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.report.claims import write_claims  # noqa: E402

params = snakemake.params  # noqa: F821
write_claims(
    snakemake.input[0],  # noqa: F821
    {
        "datasets": params.datasets,
        "experiments": params.experiments,
        "claims": params.claims,
        "claims_alpha": params.claims_alpha,
        "references": params.references,
    },
    snakemake.output.md,  # noqa: F821
    snakemake.output.csv,  # noqa: F821
)
