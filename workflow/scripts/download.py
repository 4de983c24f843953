"""Snakemake script of rule `download`: fetch one raw file and verify it (gsmoe.download.fetch)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.download import fetch  # noqa: E402

spec = snakemake.params.spec  # noqa: F821
fetch(
    spec["url"],
    Path(snakemake.output[0]),  # noqa: F821
    sha256=spec["sha256"],
    members=spec["members"] or None,
)
