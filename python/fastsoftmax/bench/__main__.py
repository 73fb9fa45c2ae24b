"""``python -m fastsoftmax.bench`` / ``fastsoftmax-bench``: run the benchmark harness."""

import sys
from typing import List, Optional

from ._cli import main as _main


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``fastsoftmax-bench`` console script; returns the exit status."""
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
