"""``python -m benchmarks --quick``: every comparison in one go, docs/benchmarks.md refreshed.

See `benchmarks.suite` for what it runs and how it summarises.
"""

from __future__ import annotations

import sys

from benchmarks.suite import main

if __name__ == "__main__":
    sys.exit(main())
