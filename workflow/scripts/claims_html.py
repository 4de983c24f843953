"""Snakemake script of rule `claims_html`: claims.csv -> claims.html (gsmoe.report.html.write_claims_html)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.report.html import write_claims_html  # noqa: E402

write_claims_html(
    snakemake.input[0],  # noqa: F821
    snakemake.params.protocols,  # noqa: F821
    snakemake.output[0],  # noqa: F821
)
