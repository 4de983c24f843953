"""Snakemake script of rule `download`: fetch one raw file and verify it (gsmoe.download.fetch)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
# the gsmoe package of this checkout (workflow/src), also inside conda envs, which
# block PYTHONPATH
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from gsmoe.console import announce  # noqa: E402
from gsmoe.download import ChecksumError, DownloadError, fetch  # noqa: E402

spec = snakemake.params.spec  # noqa: F821
try:
    fetch(
        spec["url"],
        Path(snakemake.output[0]),  # noqa: F821
        sha256=spec["sha256"],
        members=spec["members"] or None,
    )
except (ChecksumError, DownloadError, FileNotFoundError) as err:
    # These name their cause and fix (no network: set `mirror:`; a bad checksum): one line
    # on the terminal and in the log instead of a traceback.
    announce(f"download failed: {err}")
    sys.exit(1)
