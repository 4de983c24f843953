"""``python -m gsmoe``: see :mod:`gsmoe.cli`."""

import sys

from gsmoe.cli import main

sys.exit(main())
