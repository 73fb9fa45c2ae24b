"""Sizes beyond 32-bit indexing: rows longer than 2^31 elements, arrays of more than 2^31
elements, byte offsets beyond 2^32 (docs/bad-input.md, "Sizes").

Marked slow and off by default: each test needs about 9 GiB of free memory (one 8 GiB
float32 array, computed in place or written from a zero-stride input) and a minute or two
on two cores. Run them with ``python -m pytest --run-slow tests/test_size_limits.py``.

The inputs are periodic, so the exact result is known from one period (in float64) and the
check streams over the result in chunks without a float64 copy of 8 GiB. Markers placed
beyond index 2^31 (the row maximum lives there) catch any index that wraps at 32 bits.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastsoftmax

pytestmark = pytest.mark.slow

N = (1 << 31) + (1 << 20) + 37  # one row: past 2^31, with an uneven tail
P = 4096  # period of the input pattern
CHUNK = 1 << 22  # elements checked at a time (a multiple of P)


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@pytest.fixture(autouse=True)
def enough_memory():
    need = 9 << 30
    if available_bytes() < need:
        pytest.skip(f"needs {need >> 30} GiB of available memory")


def pattern() -> np.ndarray:
    return np.random.default_rng(31).standard_normal(P).astype(np.float32)


def fill_periodic(x: np.ndarray, p: np.ndarray) -> None:
    """x[i] = p[i % P] without a temporary of x's size."""
    full = x.size // P * P
    x[:full].reshape(-1, P)[...] = p
    x[full:] = p[: x.size - full]


def check_chunks(y: np.ndarray, expected_of, what: str) -> float:
    """Compares y with expected_of(start, stop) -> (values, bounds), chunk by chunk; returns
    the worst error / bound."""
    worst = 0.0
    for start in range(0, y.size, CHUNK):
        stop = min(y.size, start + CHUNK)
        want, bound = expected_of(start, stop)
        ratio = np.abs(y[start:stop] - want) / bound
        i = int(np.argmax(ratio))
        if not ratio[i] <= 1:
            raise AssertionError(f"{what}: element {start + i}: got {y[start + i]!r}, expected {want[i]!r}")
        worst = max(worst, float(ratio[i]))
    return worst


# Markers beyond 2^31: the row maximum, and a value right at the end.
MARKERS = {(1 << 31) + 5: 12.0, N - 1: 11.0}


@pytest.mark.parametrize("op, algorithm, threads", [
    ("softmax", "two-pass", None),  # the default thread count: the row is split into chunks
    ("log_softmax", "three-pass-reload", 1),  # max pass, stores, and reloads past 2^31
    ("softmax", "online", 2),
])
def test_row_longer_than_2_pow_31(op, algorithm, threads):
    p = pattern()
    x = np.empty(N, np.float32)  # 8 GiB; in place, so no second array
    fill_periodic(x, p)
    for i, v in MARKERS.items():
        x[i] = v
    # The exact softmax: sum of exp over whole periods, the tail and the markers (float64).
    e = np.exp(p.astype(np.float64))
    full = N // P * P
    s = (N // P) * e.sum() + e[: N - full].sum()
    for i, v in MARKERS.items():
        s += np.exp(v) - e[i % P]
    log_s = np.log(s)

    fn = getattr(fastsoftmax, op)
    assert fn(x, out=x, algorithm=algorithm, threads=threads) is x

    def expected(v):  # the exact result for inputs v (float64), and its allowed error
        if op == "softmax":
            # The README bound (1e-6 + |x_i - max x| 2^-24 up to 2^26 elements), with room
            # for the longer pairwise sum; max x = 12.
            want = np.exp(v) / s
            return want, want * (2e-6 + (12.0 - v) * 2.0**-24) + np.finfo(np.float32).tiny
        want = v - log_s
        return want, 4 * np.finfo(np.float32).eps * np.maximum(np.maximum(1.0, np.abs(v)), abs(log_s))

    # Chunks start at multiples of P, so all share one tiled expectation; markers are patched in.
    tile_want, tile_bound = expected(np.tile(p.astype(np.float64), CHUNK // P))

    def expected_of(start, stop):
        want, bound = tile_want[: stop - start], tile_bound[: stop - start]
        hits = [(i - start, v) for i, v in MARKERS.items() if start <= i < stop]
        if hits:
            want, bound = want.copy(), bound.copy()
            for j, v in hits:
                want[j], bound[j] = (float(a[0]) for a in expected(np.array([v])))
        return want, bound

    worst = check_chunks(x, expected_of, f"{op} {algorithm} threads={threads}")
    print(f"{op} {algorithm} threads={threads}: worst error / bound = {worst:.3f}")


def test_more_than_2_pow_31_elements_in_rows_and_columns():
    """(2^21 + 1) x 1024 float32 (more than 2^31 elements): softmax along the rows (the row
    offsets pass 2^31 elements) and along the columns (a strided row whose byte offsets pass
    2^33), in place."""
    rows, cols = (1 << 21) + 1, 1024
    p = pattern()[:cols]
    x = np.empty((rows, cols), np.float32)
    x[...] = p
    x[-1] += 1.0  # the last row differs
    e = np.exp(p.astype(np.float64))

    fastsoftmax.softmax(x, axis=1, out=x)
    want = e / e.sum()
    want_last = np.exp(p.astype(np.float64) + 1) / np.exp(p.astype(np.float64) + 1).sum()
    for start in range(0, rows - 1, 1 << 12):
        block = x[start: min(rows - 1, start + (1 << 12))]
        assert np.allclose(block, want, rtol=2e-6, atol=0), f"rows {start}..: wrong"
    assert np.allclose(x[-1], want_last, rtol=2e-6, atol=0), "last row wrong"

    # Columns: column j holds want[j] (2^21 times) and want_last[j] (once, at the end).
    x[:-1] = want.astype(np.float32)
    x[-1] = want_last.astype(np.float32)
    fastsoftmax.softmax(x, axis=0, out=x)
    a = np.exp(want.astype(np.float32).astype(np.float64))
    b = np.exp(want_last.astype(np.float32).astype(np.float64))
    s = (rows - 1) * a + b
    for start in range(0, rows - 1, 1 << 12):
        block = x[start: min(rows - 1, start + (1 << 12))]
        assert np.allclose(block, a / s, rtol=2e-6, atol=0), f"columns, rows {start}..: wrong"
    assert np.allclose(x[-1], b / s, rtol=2e-6, atol=0), "columns, last row wrong"


def test_zero_stride_row_longer_than_2_pow_31():
    """A broadcast (zero-stride) input row of N elements into a contiguous 8 GiB out: the
    strided path gathers a row longer than 2^31."""
    x = np.broadcast_to(np.float32(3.0), (N,))
    out = np.full(N, -1.0, np.float32)
    assert fastsoftmax.softmax(x, out=out) is out
    want = np.float32(1.0 / N)
    for start in range(0, N, CHUNK):
        block = out[start: start + CHUNK]
        assert np.allclose(block, want, rtol=2e-6, atol=0), f"elements {start}..: {block[:3]} != {want}"
