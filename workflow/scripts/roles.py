"""Snakemake script of rule `roles`: GraphRole roles of a prepared dataset (gsmoe.roles)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.datasets import load_dataset  # noqa: E402
from gsmoe.roles import dataset_roles, save_roles  # noqa: E402

params = snakemake.params  # noqa: F821
dataset = load_dataset(params.source, params.pyg_name, Path(params.root))
table = dataset_roles(
    dataset,
    n_roles=params.n_roles,
    seed=params.seed,
    workers=snakemake.threads,  # noqa: F821
    progress=True,
)
save_roles(snakemake.output[0], table)  # noqa: F821
