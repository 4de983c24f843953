"""Snakemake script of rule `download`: fetch one raw file and verify it (gsmoe.download.fetch)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from pathlib import Path  # noqa: E402

from gsmoe.download import fetch  # noqa: E402

spec = snakemake.params.spec  # noqa: F821
fetch(
    spec["url"],
    Path(snakemake.output[0]),  # noqa: F821
    sha256=spec["sha256"],
    members=spec["members"] or None,
)
