"""``python -m gsmoe.bench``: see :mod:`gsmoe.bench.cli`."""

from gsmoe.bench.cli import main

raise SystemExit(main())
