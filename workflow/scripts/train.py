"""Snakemake script of the train rules: train the job's runs, one JSON each (gsmoe.train.train_and_save)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.train import train_and_save  # noqa: E402

roles = snakemake.input.get("roles")  # noqa: F821
train_and_save(
    snakemake.params.runs,  # noqa: F821
    [Path(p) for p in snakemake.output],  # noqa: F821
    Path(snakemake.params.root),  # noqa: F821
    Path(roles) if roles else None,
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    die_with_parent=True,
)
