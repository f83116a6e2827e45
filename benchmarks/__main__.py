"""``python -m benchmarks``: run the suite (see :mod:`benchmarks.cli` for the options)."""

import sys

from benchmarks.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
