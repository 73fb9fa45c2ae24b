"""pytest-benchmark suite for fastsoftmax (regression tracking; not part of the CI test command).

Run from the repository root:

    python -m pytest benchmarks/ --benchmark-only

Compare against a saved baseline with ``--benchmark-autosave`` / ``--benchmark-compare``.
The full paper-style sweep (rooflines, peers, plots) is ``fastsoftmax-bench``.
"""

import os

import numpy as np
import pytest

# One thread for the pools of anything else (fastsoftmax gets threads= per call in every case).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def make_input():
    """Cached N(0, 1) inputs (seeded) and a pre-faulted output per (shape, dtype)."""
    cache = {}

    def make(shape, dtype):
        key = (tuple(shape), np.dtype(dtype).name)
        if key not in cache:
            rng = np.random.default_rng(12345)
            if np.dtype(dtype).itemsize == 2:  # float16, bfloat16: float32 values rounded to the type
                x = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
            else:
                x = rng.standard_normal(shape).astype(dtype)
            out = np.zeros_like(x)  # zeros_like writes the pages: no page fault is timed
            out.fill(0)
            cache[key] = (x, out)
        return cache[key]

    return make
