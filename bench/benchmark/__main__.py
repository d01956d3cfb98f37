"""``python -m bench.benchmark``: the run (bench/run sets up its environment first)."""

import sys

from .run import main

sys.exit(main())
