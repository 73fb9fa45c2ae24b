"""The C API (include/fastsoftmax/fastsoftmax.h) called through ctypes: every argument is
checked before anything is read or written ("Arguments" in the header), and the calls it
accepts give the Python API's results.

A refused call runs in a child process of its own (ctypes only, no NumPy: a few tens of
milliseconds), so that a call that is not refused and crashes -- as n = SIZE_MAX did --
fails its own test instead of killing the test run. The child fills a buffer holding x and y
with a byte pattern, makes the call and reports the status and whether every byte of the
buffer (x, y and the guard regions around them) is as it was.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax

LIB_PATH = fastsoftmax.get_library()
OK, INVALID_ARGUMENT = 0, 1
SIZE_MAX = 2**64 - 1
PTRDIFF_MAX, PTRDIFF_MIN = 2**63 - 1, -(2**63)
ITEMSIZE = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2}
ENTRIES = [f"fastsoftmax_{op}_{dt}" for dt in ITEMSIZE for op in ("softmax", "log_softmax")]
ARGTYPES = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t,
            ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int]
BUFFER = 1 << 14  # bytes; x and y of a refused call point into it (or at absolute addresses)
X_AT, Y_AT = 1024, 8192  # their default byte offsets: guard regions on every side

CHILD = r"""
import ctypes, json, sys
lib_path, entry, size, x_at, y_at, rows, n, xs, ys, alg, threads = sys.argv[1:]
lib = ctypes.CDLL(lib_path)
fn = getattr(lib, entry)
fn.restype = ctypes.c_int
fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t,
               ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int]
size = int(size)
pattern = bytes((i * 37 + 11) % 251 for i in range(size))
buf = ctypes.create_string_buffer(pattern, size)
base = ctypes.addressof(buf)
def pointer(at):  # "null", "abs:ADDRESS", or a byte offset into buf
    if at == "null":
        return None
    return int(at[4:]) if at.startswith("abs:") else base + int(at)
status = fn(pointer(x_at), pointer(y_at), int(rows), int(n), int(xs), int(ys), int(alg), int(threads))
print(json.dumps({"status": status, "intact": buf.raw == pattern}))
"""


def run_child(entry, rows, n, xs, ys, alg=0, threads=1, x_at=X_AT, y_at=Y_AT):
    args = [LIB_PATH, entry, BUFFER, x_at, y_at, rows, n, xs, ys, alg, threads]
    r = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True, timeout=60)
    if r.returncode < 0:
        pytest.fail(f"{entry}{tuple(args[3:])} crashed: {signal.Signals(-r.returncode).name}", pytrace=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def refused(entry, **call):
    """The call returns FASTSOFTMAX_ERROR_INVALID_ARGUMENT and leaves every byte alone."""
    result = run_child(entry, **call)
    assert result == {"status": INVALID_ARGUMENT, "intact": True}, (entry, call, result)


# ---- refused calls ------------------------------------------------------------------------------
# (byte strides of the cases below are for float32; `e` is the element size of the entry)

def every_entry_cases(e):
    return {
        # The probe's crashes: no overflow check of n * itemsize or rows * n.
        "n = SIZE_MAX": dict(rows=1, n=SIZE_MAX, xs=0, ys=0),
        "rows = 2^62, n = 4": dict(rows=2**62, n=4, xs=4, ys=4),
        # The probe: returned OK after undefined behaviour (-ys overflowed); row 1 overwrote row 0.
        "y_row_stride = PTRDIFF_MIN": dict(rows=2, n=4, xs=4, ys=PTRDIFF_MIN),
        # The probe: an unknown algorithm passed when the call was empty.
        "unknown algorithm, rows = 0": dict(rows=0, n=4, xs=4, ys=4, alg=99),
        # The header: other overlaps are invalid -- but y one element past x was computed.
        "y one element past x": dict(rows=2, n=4, xs=4, ys=4, x_at=X_AT, y_at=X_AT + e),
    }


@pytest.mark.parametrize("case", list(every_entry_cases(4)))
@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_checks_its_arguments(entry, case):
    refused(entry, **every_entry_cases(ITEMSIZE[entry.rsplit("_", 1)[1]])[case])


F32_CASES = {
    "n * 4 wraps to 0": dict(rows=1, n=2**62, xs=0, ys=0),
    "n * 4 beyond PTRDIFF_MAX": dict(rows=1, n=2**61, xs=0, ys=0),
    "rows * n beyond PTRDIFF_MAX bytes": dict(rows=2**61, n=1, xs=1, ys=1),
    "the last row's offset wraps": dict(rows=3, n=4, xs=4, ys=2**61),
    "x_row_stride = PTRDIFF_MIN": dict(rows=2, n=4, xs=PTRDIFF_MIN, ys=4),
    "x_row_stride = PTRDIFF_MAX": dict(rows=2, n=4, xs=PTRDIFF_MAX, ys=4),
    "y_row_stride = PTRDIFF_MAX": dict(rows=2, n=4, xs=4, ys=PTRDIFF_MAX),
    "y_row_stride = -PTRDIFF_MAX": dict(rows=2, n=4, xs=4, ys=-PTRDIFF_MAX),
    "y past the end of the address space": dict(rows=1, n=32, xs=0, ys=0, y_at=f"abs:{2**64 - 64}"),
    "y's rows below address 0": dict(rows=8, n=4, xs=4, ys=-1024, y_at="abs:4096"),
    "x's rows below address 0": dict(rows=8, n=4, xs=-1024, ys=4, x_at="abs:4096"),
    "output rows overlap": dict(rows=4, n=16, xs=16, ys=8),
    "output rows overlap, negative stride": dict(rows=4, n=16, xs=16, ys=-8),
    "output rows repeat (stride 0)": dict(rows=4, n=16, xs=16, ys=0),
    "y in x's second row": dict(rows=2, n=8, xs=8, ys=8, x_at=X_AT, y_at=X_AT + 40),
    "x in y's last row (x broadcast)": dict(rows=3, n=8, xs=0, ys=8, x_at=Y_AT + 64, y_at=Y_AT),
    "y reversed over x": dict(rows=4, n=8, xs=8, ys=-8, x_at=X_AT, y_at=X_AT + 96),
    "x == y, other strides": dict(rows=2, n=4, xs=4, ys=8, x_at=X_AT, y_at=X_AT),
    "x == y, x broadcast": dict(rows=2, n=4, xs=0, ys=4, x_at=X_AT, y_at=X_AT),
    "y two rows on, 2^40 rows (same stride: decided at once)": dict(rows=2**40, n=4, xs=4, ys=4,
                                                                    x_at=f"abs:{2**44}", y_at=f"abs:{2**44 + 32}"),
    "x and y interleaving over 2^22 rows with other strides (too many to list)": dict(
        rows=2**22, n=1, xs=4, ys=2, x_at=f"abs:{2**40}", y_at=f"abs:{2**40 + 4}"),
    "unknown algorithm": dict(rows=2, n=4, xs=4, ys=4, alg=5),
    "negative algorithm, n = 0": dict(rows=2, n=0, xs=4, ys=4, alg=-1),
    "threads = -1, rows = 0": dict(rows=0, n=4, xs=4, ys=4, threads=-1),
    "threads = 1025": dict(rows=2, n=4, xs=4, ys=4, threads=1025),
    "null x": dict(rows=1, n=4, xs=4, ys=4, x_at="null"),
    "null y": dict(rows=1, n=4, xs=4, ys=4, y_at="null"),
}


@pytest.mark.parametrize("case", list(F32_CASES))
def test_bad_arguments_are_refused_with_nothing_touched(case):
    refused("fastsoftmax_softmax_f32", **F32_CASES[case])


def test_the_child_sees_a_write():
    """The harness itself: a valid call through the child does report OK and a changed buffer,
    so `intact` above is not vacuous."""
    assert run_child("fastsoftmax_softmax_f32", rows=2, n=4, xs=4, ys=4) == {"status": OK, "intact": False}


# ---- accepted calls -----------------------------------------------------------------------------

LIB = ctypes.CDLL(LIB_PATH)
for _name in ENTRIES:
    getattr(LIB, _name).restype = ctypes.c_int
    getattr(LIB, _name).argtypes = ARGTYPES


def dtype_of(entry):
    dt = entry.rsplit("_", 1)[1]
    if dt == "bf16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype({"f32": np.float32, "f64": np.float64, "f16": np.float16}[dt])


def call(entry, x, y, rows, n, xs, ys, alg=0, threads=1):
    """x, y: addresses (int) or None."""
    return getattr(LIB, entry)(x, y, rows, n, xs, ys, alg, threads)


def python_result(entry, x):
    fn = fastsoftmax.log_softmax if "_log_softmax_" in entry else fastsoftmax.softmax
    return fn(x, axis=-1)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("entry", ENTRIES)
def test_accepted_layouts_give_the_python_result(entry):
    """Rows with padding, reversed, in place, broadcast and interleaved with x (sharing a
    buffer but no byte) are accepted and give the Python API's result bitwise; nothing
    outside y's rows is written."""
    dt = dtype_of(entry)
    rows, n = 5, 37
    rng = np.random.default_rng(3)
    x = (3 * rng.standard_normal((rows, n))).astype(dt)
    want = python_result(entry, x)

    def guarded(shape):  # an array in the middle of a sentinel-filled buffer
        buf = np.full(np.prod(shape) + 64, -7.0, np.float32).astype(dt)
        return buf, buf[32:32 + np.prod(shape)].reshape(shape)

    # padded rows: pitch n + 3 in x and y
    xbuf, xp = guarded((rows, n + 3))
    xp[:, :n] = x
    ybuf, yp = guarded((rows, n + 3))
    before = ybuf.copy()
    assert call(entry, xp.ctypes.data, yp.ctypes.data, rows, n, n + 3, n + 3) == OK
    assert np.array_equal(bits(yp[:, :n]), bits(want))
    mask = np.ones(ybuf.shape, bool)
    mask[32:32 + yp.size] = np.tile(np.r_[np.zeros(n, bool), np.ones(3, bool)], rows)
    assert np.array_equal(bits(ybuf[mask]), bits(before[mask])), "wrote outside y's rows"

    # y's rows in reverse order (a negative stride from the last row)
    ybuf, yr = guarded((rows, n))
    before = ybuf.copy()
    assert call(entry, x.ctypes.data, yr[-1].ctypes.data, rows, n, n, -n) == OK
    assert np.array_equal(bits(yr[::-1]), bits(want))
    assert np.array_equal(bits(ybuf[:32]), bits(before[:32])) and np.array_equal(bits(ybuf[-32:]), bits(before[-32:]))

    # in place
    xi = x.copy()
    assert call(entry, xi.ctypes.data, xi.ctypes.data, rows, n, n, n) == OK
    assert np.array_equal(bits(xi), bits(want))

    # a broadcast row (x_row_stride 0)
    y = np.zeros((rows, n), dt)
    assert call(entry, x[2].ctypes.data, y.ctypes.data, rows, n, 0, n) == OK
    assert np.array_equal(bits(y), bits(np.broadcast_to(want[2], (rows, n))))

    # x and y interleaved in one buffer: x rows at even slots, y rows at odd ones
    both = np.zeros((rows, 2, n), dt)
    both[:, 0] = x
    assert call(entry, both[:, 0].ctypes.data, both[:, 1].ctypes.data, rows, n, 2 * n, 2 * n) == OK
    assert np.array_equal(bits(both[:, 1]), bits(want))
    assert np.array_equal(bits(both[:, 0]), bits(x)), "x was modified"
    # ... and the other way round (y first), with x's rows reversed
    both = np.zeros((rows, 2, n), dt)
    both[:, 1] = x[::-1]
    assert call(entry, both[-1, 1].ctypes.data, both[:, 0].ctypes.data, rows, n, -2 * n, 2 * n) == OK
    assert np.array_equal(bits(both[:, 0]), bits(want))

    # one row: the strides are not used, any value goes
    y = np.zeros(n, dt)
    assert call(entry, x[1].ctypes.data, y.ctypes.data, 1, n, PTRDIFF_MAX, PTRDIFF_MIN) == OK
    assert np.array_equal(bits(y), bits(want[1]))


def test_rows_taking_turns_are_accepted_however_many():
    """x and y rows alternating in one buffer with the same stride are decided without listing
    rows, so 2^21 of them (beyond the 2^20 rows the other-strides check lists) are computed."""
    rows = 1 << 21
    both = np.zeros((rows, 2), np.float32)
    both[:, 0] = np.arange(rows) % 7
    assert call("fastsoftmax_log_softmax_f32", both[:, 0].ctypes.data, both[:, 1].ctypes.data, rows, 1, 2, 2) == OK
    assert (both[:, 1] == 0).all() and np.array_equal(both[:, 0], np.arange(rows) % 7)
    assert call("fastsoftmax_log_softmax_f32", both[::-1, 1].ctypes.data, both[:, 0].ctypes.data, rows, 1, -2,
                2) == OK
    assert (both == 0).all()


@pytest.mark.parametrize("alg", range(5))
def test_every_algorithm_code_is_accepted(alg):
    x = np.random.default_rng(alg).standard_normal((3, 100))
    y = np.zeros_like(x)
    assert call("fastsoftmax_softmax_f64", x.ctypes.data, y.ctypes.data, 3, 100, 100, 100, alg) == OK
    name = fastsoftmax.ALGORITHMS[alg]
    assert np.array_equal(y, fastsoftmax.softmax(x, axis=-1, algorithm=name))


def test_empty_calls_use_no_pointer():
    """rows or n of 0: OK with NULL pointers and any strides -- but the algorithm is checked."""
    for rows, n in ((0, 4), (4, 0), (0, 0)):
        assert call("fastsoftmax_softmax_f32", None, None, rows, n, PTRDIFF_MIN, PTRDIFF_MAX) == OK
        assert call("fastsoftmax_softmax_f32", None, None, rows, n, 4, 4, 7) == INVALID_ARGUMENT


def test_overlap_rules_match_listing_bytes():
    """Random rows/strides/placements of float32 x and y in one buffer (offsets of 2 bytes too,
    so rows can share part of an element): the call is refused exactly when y's rows share a
    byte, or x and y share one without being the same array in place -- by listing the bytes
    of every row -- and otherwise computes every y row, writing nothing else."""
    rng = np.random.default_rng(8)
    size = 4096
    outcomes = {"refused": 0, "accepted, x and y apart": 0, "accepted, interleaved": 0, "in place": 0}
    for _ in range(1500):
        rows, n = int(rng.integers(1, 5)), int(rng.integers(1, 9))
        xs, ys = (int(rng.choice([-1, 1]) * rng.integers(0, 2 * n + 2)) for _ in range(2))
        x_at = int(rng.integers(256, 512)) * 2
        y_at = x_at if rng.random() < 0.15 else x_at + int(rng.integers(-40, 40)) * 2
        if rng.random() < 0.1:
            ys = xs
        if rng.random() < 0.2:  # x and y rows taking turns in one buffer, near or exactly fitting
            xs = ys = int(rng.choice([-1, 1])) * (2 * n + int(rng.integers(0, 3)))
            y_at = x_at + 4 * int(rng.integers(n - 1, abs(xs) - n + 2)) + int(rng.choice([-2, 0, 0, 2]))

        def row_bytes(at, stride):
            return [set(range(at + 4 * r * stride, at + 4 * r * stride + 4 * n)) for r in range(rows)]

        xb, yb = row_bytes(x_at, xs), row_bytes(y_at, ys)
        y_self = any(yb[i] & yb[j] for i in range(rows) for j in range(i))
        in_place = x_at == y_at and (rows == 1 or xs == ys)
        shared = not in_place and any(a & b for a in xb for b in yb)
        buf = rng.standard_normal(size // 4).astype(np.float32).view(np.uint8)
        before = buf.copy()
        status = call("fastsoftmax_softmax_f32", buf.ctypes.data + x_at, buf.ctypes.data + y_at, rows, n, xs, ys)
        if y_self or shared:
            assert status == INVALID_ARGUMENT, (rows, n, xs, ys, x_at, y_at)
            assert np.array_equal(buf, before)
            outcomes["refused"] += 1
            continue
        assert status == OK, (rows, n, xs, ys, x_at, y_at)
        x = np.ndarray((rows, n), np.float32, before, x_at, (4 * xs, 4))
        y = np.ndarray((rows, n), np.float32, buf, y_at, (4 * ys, 4))
        assert np.array_equal(y, fastsoftmax.softmax(x, axis=-1), equal_nan=True)
        mine = np.zeros(size, bool)
        for b in yb:
            mine[sorted(b)] = True
        assert np.array_equal(buf[~mine], before[~mine]), "wrote outside y's rows"
        outcomes["in place" if in_place else "accepted, interleaved"
                 if min(map(min, xb)) < max(map(max, yb)) and min(map(min, yb)) < max(map(max, xb))
                 else "accepted, x and y apart"] += 1
    assert min(outcomes.values()) >= 30, outcomes
