"""Lines for Snakemake's terminal from inside a job.

Every rule script sends its ``stdout`` and ``stderr`` to the job's log file (the first line of
``workflow/scripts/*.py``), which keeps the terminal readable while jobs run in parallel.  A
few lines belong on the terminal as well: a finished training run with its accuracy, the
cause of a failed download.  The script's process still holds Snakemake's terminal as its
original stderr (``sys.__stderr__``), so :func:`announce` writes there too.
"""

from __future__ import annotations

import sys

__all__ = ["announce"]


def announce(line: str) -> None:
    """Print ``line`` to ``sys.stderr`` (the job's log) and, when that was redirected, to the
    terminal the process started with."""
    print(line, file=sys.stderr, flush=True)
    terminal = sys.__stderr__
    if terminal is not None and terminal is not sys.stderr:
        print(line, file=terminal, flush=True)
