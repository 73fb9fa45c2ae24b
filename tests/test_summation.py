"""The rounding of a row's sum: rows whose terms round the same way at every addition.

One maximum and k equal values below it (and a few others): each addition of a small
term to a partial sum holding the maximum rounds by up to half an ulp of that sum, in
the same direction every time, so the sum's error is the depth of the summation tree
times 2^-24 (float32). The kernels add each state's terms in pairs or groups (a pairwise
tree per group, accumulators.h) and blocks in a binary cascade, so the depth stays near
log2 n; the bound of README "Accuracy" has that term:

  relative error <= base + (|x_i - max x| + log2 n) * u,  base 6e-7 / 2e-15, u 2^-24 / 2^-53.

Every algorithm, every tier this CPU runs; fixed seeds, so a failure reproduces.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core
from conftest import require_or_skip
from helpers import LD

ISAS = _core.compiled_isas()
BASE = {np.dtype(np.float32): (6e-7, 2.0**-24), np.dtype(np.float64): (2e-15, 2.0**-53)}


def equal_value_rows(rng, count, kmax, dtype):
    """Rows of one maximum and k (2..kmax) equal values 0..12 below it, some with a few
    other values near the equal ones; maxima in [-1000, 1000]."""
    for _ in range(count):
        k = int(rng.integers(2, kmax))
        hi = rng.uniform(-100, 100) if rng.random() < 0.5 else rng.uniform(-1000, 1000)
        hi = dtype(hi)
        lo = dtype(hi - dtype(rng.uniform(0, 12)))
        x = np.full(k + 1, lo, dtype)
        x[rng.integers(0, k + 1)] = hi
        if rng.random() < 0.3:
            m = int(rng.integers(1, 5))
            x[rng.integers(0, k + 1, m)] = (lo + rng.uniform(-3, 3, m)).astype(dtype)
        yield x


def relative_error_over_bound(x, y):
    base, u = BASE[x.dtype]
    xl = x.astype(LD)
    e = np.exp(xl - xl.max())
    ref = e / e.sum()
    bound = base + ((xl.max() - xl).astype(np.float64) + np.log2(x.size)) * u
    return np.max(np.abs(y.astype(LD) / ref - 1).astype(np.float64) / bound)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kmax", [300, 5000])
def test_rows_of_equal_values_meet_the_bound(dtype, algorithm, isa, kmax):
    require_or_skip(isa)
    rng = np.random.default_rng([kmax, np.dtype(dtype).itemsize, fastsoftmax.ALGORITHMS.index(algorithm)])
    worst, worst_x = 0.0, None
    for x in equal_value_rows(rng, 150, kmax, dtype):
        r = relative_error_over_bound(x, fastsoftmax.softmax(x, algorithm=algorithm, isa=isa))
        if r > worst:
            worst, worst_x = r, x
    assert worst <= 1.0, (f"error {worst:.2f}x the bound on a row of {worst_x.size}: max {worst_x.max()!r}, "
                          f"values {np.unique(worst_x)[:6]!r}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
def test_a_batch_of_equal_value_rows_is_the_rows_one_by_one(algorithm, isa):
    """The batched row path sums in the same order as one row at a time."""
    require_or_skip(isa)
    rng = np.random.default_rng(7)
    rows = [x[:600] for x in equal_value_rows(rng, 40, 5000, np.float32) if x.size >= 600]
    batch = np.stack(rows)
    y = fastsoftmax.softmax(batch, axis=-1, algorithm=algorithm, isa=isa)
    for i, x in enumerate(rows):
        assert np.array_equal(y[i], fastsoftmax.softmax(x, algorithm=algorithm, isa=isa))
