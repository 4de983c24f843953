"""Snakemake script of rule `figure`: verified run records (gsmoe.report.verify) -> one figure (gsmoe.report.figures.write_figure)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.io import read_json  # noqa: E402
from gsmoe.report.figures import write_figure  # noqa: E402
from gsmoe.report.verify import verify_records  # noqa: E402

# The workflow's validated config (not a param: the report shows a figure's params).
config = snakemake.config  # noqa: F821
verify_records([(p, read_json(p)) for p in snakemake.input], config, verify_code=config["verify_code"])  # noqa: F821
write_figure(
    list(snakemake.input),  # noqa: F821
    snakemake.params.figure,  # noqa: F821
    {e: {"label": label} for e, label in snakemake.params.labels.items()},  # noqa: F821
    snakemake.output.pdf,  # noqa: F821
    snakemake.output.png,  # noqa: F821
)
