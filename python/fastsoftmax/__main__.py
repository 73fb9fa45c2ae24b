"""``python -m fastsoftmax``: what is running (see show_runtime()), as text or JSON.

The exit status is 0 when the configuration is what was asked for, 1 when it is not (a
``FASTSOFTMAX_ISA`` naming a tier this CPU cannot run). A malformed ``FASTSOFTMAX_ISA`` or
``FASTSOFTMAX_NUM_THREADS`` already fails at import, with status 1 too.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import __version__
from ._runtime import runtime_info, show_runtime


def main(argv: Optional[List[str]] = None) -> int:
    """Print the runtime report; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m fastsoftmax",
        description="Show the CPU features, the compiled and runnable instruction-set tiers, the kernel each "
                    "op/dtype uses and the thread configuration. Exit status 1 when the configuration is not "
                    "what was asked for (FASTSOFTMAX_ISA naming a tier this CPU cannot run); a malformed "
                    "FASTSOFTMAX_ISA or FASTSOFTMAX_NUM_THREADS fails at import (status 1 too).")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object "
                        "(fastsoftmax.runtime_info())")
    parser.add_argument("--version", action="version", version=f"fastsoftmax {__version__}")
    args = parser.parse_args(argv)
    if args.json:
        info = runtime_info()
        print(json.dumps(info, indent=2))
    else:
        show_runtime()
        info = runtime_info()
    return 1 if info["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
