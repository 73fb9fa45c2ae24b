"""The rows of docs/bad-input.md that no other test covers, and a check that every test the
catalogue names exists.

Rows already covered elsewhere (test_bad_input.py: non-real dtypes, bad out arrays, partial
overlap, unknown algorithm/isa; test_edge_cases.py: bool, special values, integers,
float16, empty and 0-d input, axis errors, layouts; test_dispatch.py: FASTSOFTMAX_ISA;
test_parallel.py: threads=; test_memory.py: MemoryError) are referenced from the doc table.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastsoftmax
from conftest import KERNELS, kernel_id, require_or_skip, run_kernel
from helpers import assert_same_as_scipy, run_scipy

OPS = ("softmax", "log_softmax")
FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax}
SENTINEL = -3.5
DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"


def sentinel_out(shape=(2, 3), dtype=np.float64):
    return np.full(shape, SENTINEL, dtype=dtype)


def assert_untouched(out):
    assert np.all(out == SENTINEL), "a failing call modified the caller's out"


# ---- input x ------------------------------------------------------------------------------------

@pytest.mark.parametrize("obj", [None, {"a": 1}, {1.0, 2.0}, "abc", b"ab", object()],
                         ids=["None", "dict", "set", "str", "bytes", "object"])
@pytest.mark.parametrize("op", OPS)
def test_non_array_objects(op, obj):
    """Whatever np.asarray makes of them is not real numbers: a TypeError. SciPy raises too
    (a TypeError, or for log_softmax of a non-array an AttributeError)."""
    _, exc = run_scipy(op, obj)
    assert isinstance(exc, (TypeError, AttributeError))
    with pytest.raises(TypeError, match="real numbers"):
        FUNCS[op](obj)
    out = np.full((), SENTINEL)
    with pytest.raises(TypeError):
        FUNCS[op](obj, out=out)
    assert_untouched(out)


@pytest.mark.parametrize("op", OPS)
def test_ragged_list(op):
    x = [[1.0, 2.0], [3.0]]
    _, exc = run_scipy(op, x)
    assert isinstance(exc, ValueError)
    with pytest.raises(ValueError, match="inhomogeneous"):
        FUNCS[op](x)
    out = sentinel_out((2,))
    with pytest.raises(ValueError):
        FUNCS[op](x, axis=0, out=out)
    assert_untouched(out)


@pytest.mark.parametrize("op", OPS)
def test_array_subclasses_like_scipy(op):
    """SciPy converts with np.asarray: the mask of a masked array is ignored and the result
    is a plain ndarray. We do the same (rather than guess what a mask should mean)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is discouraged
        matrix = np.matrix([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    cases = {"masked": np.ma.masked_array([1.0, 2.0, 100.0], mask=[False, False, True]), "matrix": matrix}
    for name, x in cases.items():
        for axis in (None, -1):
            theirs, exc = run_scipy(op, x, axis=axis)
            assert exc is None
            ours = FUNCS[op](x, axis=axis)
            assert type(ours) is np.ndarray
            assert_same_as_scipy(op, ours, np.asarray(theirs), x=np.asarray(x), what=f"{name} axis={axis}")


def misaligned(a: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of `a` whose data starts `offset` bytes past an aligned address."""
    buf = np.zeros(a.nbytes + a.itemsize, np.uint8)
    shift = (-buf.ctypes.data) % a.itemsize  # first aligned byte of buf
    if shift + offset + a.nbytes > buf.size:
        shift -= a.itemsize
    v = np.ndarray(a.shape, a.dtype, buf, shift + offset)
    v[...] = a
    return v


@pytest.mark.parametrize("k", KERNELS, ids=kernel_id)
def test_misaligned_input_and_out(k):
    """Data at an odd byte offset (a view into a byte buffer) gives the aligned result
    bitwise, for input, out and in place; long enough for the SIMD body and a tail; rows
    with NaN and huge values take the exact path. (Under tools/sanitize.sh, UBSan also
    checks that no kernel dereferences a misaligned pointer, which C++ leaves undefined.)"""
    require_or_skip(k["isa"])
    dt = np.dtype(k["dtype"])
    rng = np.random.default_rng(17)
    x = (3 * rng.standard_normal((4, 1000 + 37))).astype(dt)
    x[2, 5] = np.nan
    x[3, 7] = 1e30 if dt != np.float16 else np.inf  # float16 holds no value beyond the fast range
    want = run_kernel(k, x, axis=1)
    for offset in (1, dt.itemsize // 2, dt.itemsize - 1):
        xm = misaligned(x, offset)
        assert not xm.flags.aligned
        assert np.array_equal(run_kernel(k, xm, axis=1), want, equal_nan=True), f"misaligned x, offset {offset}"
        out = misaligned(np.zeros_like(x), offset)
        assert run_kernel(k, x, axis=1, out=out) is out
        assert np.array_equal(out, want, equal_nan=True), f"misaligned out, offset {offset}"
        assert run_kernel(k, xm, axis=1, out=xm) is xm
        assert np.array_equal(xm, want, equal_nan=True), f"misaligned, in place, offset {offset}"


# ---- values ---------------------------------------------------------------------------------

inf, nan = np.inf, np.nan
NON_FINITE_TABLE = [
    # (row, softmax, log_softmax) -- the rows of the "Values" table, exactly.
    ([1.0, nan, 2.0], [nan, nan, nan], [nan, nan, nan]),
    ([1.0, inf, 2.0], [nan, nan, nan], [-inf, nan, -inf]),
    ([inf, 0.0, inf], [nan, nan, nan], [nan, -inf, nan]),
    ([-inf, -inf], [nan, nan], [nan, nan]),
    ([0.0, -inf, 0.0], [0.5, 0.0, 0.5], [-np.log(2), -inf, -np.log(2)]),
    ("max", [0.5, 0.5], "log(1/2)"),
    ("max, -max", [1.0, 0.0], "-2 max"),
    ("denormals", [0.5, 0.5], "log(1/2)"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
def test_non_finite_values_table(algorithm, dtype):
    big = np.finfo(dtype).max
    tiny = np.finfo(dtype).smallest_subnormal
    for row, want_soft, want_log in NON_FINITE_TABLE:
        if row == "max":
            row, want_log = [big, big], [-np.log(2)] * 2
        elif row == "max, -max":
            row, want_log = [big, -big], [0.0, -inf]  # -2*max is below -max: -inf
        elif row == "denormals":
            row, want_log = [tiny, tiny], [-np.log(2)] * 2
        x = np.array(row, dtype)
        for op, want in (("softmax", want_soft), ("log_softmax", want_log)):
            got = FUNCS[op](x, algorithm=algorithm)
            want = np.array(want, dtype)
            assert np.array_equal(np.isnan(got), np.isnan(want)), f"{op}{row}: {got} != {want}"
            fin = ~np.isnan(want)
            assert np.allclose(got[fin], want[fin], rtol=4 * np.finfo(dtype).eps, atol=0), \
                f"{op}{row}: {got} != {want}"
            theirs, _ = run_scipy(op, x)  # and it is SciPy's answer
            assert_same_as_scipy(op, got, theirs, x=x, what=f"{op}{row}")
            # The same row next to an ordinary row: rows do not affect each other.
            x2 = np.stack([x, np.zeros_like(x)])
            got2 = FUNCS[op](x2, axis=1, algorithm=algorithm)
            assert np.array_equal(got2[0], got, equal_nan=True)
            assert np.allclose(got2[1], FUNCS[op](np.zeros_like(x)))


# ---- out= -------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_byte_swapped_out_is_a_dtype_error(op):
    x = np.arange(6.0).reshape(2, 3)
    out = sentinel_out(dtype=np.dtype(np.float64).newbyteorder())
    with pytest.raises(TypeError, match="dtype"):
        FUNCS[op](x, axis=1, out=out)
    assert_untouched(out)


@pytest.mark.parametrize("op", OPS)
def test_self_overlapping_out(op):
    """A writable zero-stride view cannot hold one result per element: refused (before the
    fast path for last-axis calls, and in the general path), also as out=x."""
    as_strided = np.lib.stride_tricks.as_strided
    x = np.arange(6.0).reshape(2, 3)
    for axis in (1, 0, None):
        base = np.full(3, SENTINEL)
        out = as_strided(base, shape=(2, 3), strides=(0, 8))
        assert out.flags.writeable
        with pytest.raises(ValueError, match=r"out overlaps itself \(shape \(2, 3\), strides \(0, 8\)"):
            FUNCS[op](x, axis=axis, out=out)
        assert_untouched(base)
    base = np.arange(3.0)
    xo = as_strided(base, shape=(2, 3), strides=(0, 8))
    with pytest.raises(ValueError, match="overlaps itself"):
        FUNCS[op](xo, axis=1, out=xo)
    assert np.array_equal(base, np.arange(3.0))
    # A zero stride on a length-1 axis (np.newaxis makes those) is an ordinary out.
    y = np.zeros((2, 3))
    out = y[:, np.newaxis, :]
    assert 0 in out.strides or out.strides[1] == 24
    assert FUNCS[op](x[:, np.newaxis, :], axis=-1, out=out) is out
    assert np.array_equal(y, FUNCS[op](x, axis=1))


def _out_entries():
    """Every public function taking out=, on each of its paths, as name -> (call(out), result
    shape). The out is float32 (8, 64) rows of 64 floats unless the shape says otherwise."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    x3 = rng.standard_normal((8, 64, 3)).astype(np.float32)
    stats = fastsoftmax.softmax_stats(x, axis=-1)
    tier = fastsoftmax._core.active_isa()
    return {
        "softmax, last axis (C fast path)": lambda out: fastsoftmax.softmax(x, axis=-1, out=out),
        "log_softmax, last axis (C fast path)": lambda out: fastsoftmax.log_softmax(x, axis=1, out=out),
        "softmax, isa= (Python fast path)": lambda out: fastsoftmax.softmax(x, axis=-1, out=out, isa=tier),
        "log_softmax, threads= (Python fast path)": lambda out: fastsoftmax.log_softmax(x, axis=-1, out=out,
                                                                                         threads=1),
        "softmax, axis=0": lambda out: fastsoftmax.softmax(x, axis=0, out=out),
        "log_softmax, axis=None": lambda out: fastsoftmax.log_softmax(x, out=out),
        "softmax, float64 in (mixed precision)": lambda out: fastsoftmax.softmax(x.astype(np.float64), axis=-1,
                                                                                 out=out),
        "softmax, float16 in (mixed precision)": lambda out: fastsoftmax.softmax(x.astype(np.float16), axis=-1,
                                                                                 out=out),
        "softmax, dtype=": lambda out: fastsoftmax.softmax(x.astype(np.float64), axis=-1, out=out,
                                                           dtype=np.float32),
        "logsumexp": lambda out: fastsoftmax.logsumexp(x3, axis=-1, out=out),
        "softmax_from_stats": lambda out: fastsoftmax.softmax_from_stats(x, stats, out=out),
        "log_softmax_from_stats": lambda out: fastsoftmax.log_softmax_from_stats(x, stats, out=out),
    }


@pytest.mark.parametrize("entry", list(_out_entries()))
def test_out_whose_rows_overlap_each_other(entry):
    """Regression (adversarial probe): out = as_strided(buf, (8, 64), (128, 4)) -- rows of 64
    float32 that start 32 floats apart, so each row shares half its memory with the next --
    was accepted, and out[-1] was not the softmax of x[-1] (it summed to 0.55). Only a zero
    stride was refused. Any out two of whose elements share memory is now refused by every
    function taking out=, with nothing written."""
    call = _out_entries()[entry]
    buf = np.full(8 * 32 + 32, SENTINEL, np.float32)
    out = np.lib.stride_tricks.as_strided(buf, (8, 64), (128, 4))
    assert out.flags.writeable and 0 not in out.strides
    with pytest.raises(ValueError, match=r"out overlaps itself \(shape \(8, 64\), strides \(128, 4\)"):
        call(out)
    assert_untouched(buf)
    # The same call into an ordinary out works (the refusal is about out, not the call).
    good = np.full((8, 64), SENTINEL, np.float32)
    assert call(good) is good
    assert np.isfinite(good).all()


def test_native_core_refuses_a_self_overlapping_out_too():
    """The bindings' own check, under the public functions' (the last line of defence for
    any internal caller)."""
    core = fastsoftmax._core
    x = np.zeros((8, 64), np.float32)
    buf = np.full(8 * 32 + 32, SENTINEL, np.float32)
    out = np.lib.stride_tricks.as_strided(buf, (8, 64), (128, 4))
    with pytest.raises(ValueError, match="overlaps itself"):
        core.run("softmax", "auto", x, out)
    m, e, shift = core.row_stats(x)
    with pytest.raises(ValueError, match="overlaps itself"):
        core.from_stats("softmax", x, out, m, e, shift)
    assert_untouched(buf)


def _brute_force_overlap(shape, strides, itemsize) -> bool:
    """Two distinct elements sharing a byte, by listing every element's address."""
    if 0 in shape:
        return False
    offsets = sorted(sum(i * s for i, s in zip(index, strides))
                     for index in itertools.product(*(range(n) for n in shape)))
    return any(b - a < itemsize for a, b in zip(offsets, offsets[1:]))


def _blocks_nest(shape, strides, itemsize) -> bool:
    """The check's shortcut (csrc/overlap.cpp): by increasing |stride|, each stride steps over
    the block below it. True means no overlap; False means the exact search decides."""
    extent = itemsize
    for n, s in sorted(((n, abs(s)) for n, s in zip(shape, strides) if n > 1), key=lambda t: t[1]):
        if s < extent:
            return False
        extent += s * (n - 1)
    return True


def test_self_overlap_check_is_exact():
    """fastsoftmax._core.overlaps_itself against listing every element's bytes, over random
    strides (any sign, zero, smaller than an element, interleaved), and end to end: an out
    that does not overlap itself is filled with the result (and nothing between its
    elements is touched); one that does is refused with nothing written."""
    rng = random.Random(11)
    as_strided = np.lib.stride_tricks.as_strided
    seen = {"no (shortcut)": 0, "no (search)": 0, "yes": 0}
    for _ in range(3000):
        ndim = rng.randint(1, 4)
        dtype = np.dtype(rng.choice([np.float16, np.float32, np.float64]))
        shape = tuple(rng.choice([1, 2, 3, 4, 7]) for _ in range(ndim))
        strides = tuple(rng.choice([-1, 1]) * rng.randint(0, 12) * rng.choice([1, dtype.itemsize])
                        for _ in range(ndim))
        span = dtype.itemsize + sum(abs(s) * (n - 1) for n, s in zip(shape, strides))
        buf = np.full(2 * span // dtype.itemsize + 2, SENTINEL, dtype)
        out = as_strided(buf[len(buf) // 2:], shape, strides)  # room for negative strides below
        want = _brute_force_overlap(shape, strides, dtype.itemsize)
        assert fastsoftmax._core.overlaps_itself(out) is want, (shape, strides, dtype)
        seen["yes" if want else "no (shortcut)" if _blocks_nest(shape, strides, dtype.itemsize)
             else "no (search)"] += 1
        x = np.linspace(-3, 3, math.prod(shape)).reshape(shape).astype(dtype)
        before = buf.copy()
        if want:
            with pytest.raises(ValueError, match="overlaps itself"):
                fastsoftmax.softmax(x, axis=-1, out=out)
            assert np.array_equal(buf, before)
        else:
            assert fastsoftmax.softmax(x, axis=-1, out=out) is out
            assert np.array_equal(out, fastsoftmax.softmax(x, axis=-1))
            mine = np.zeros(buf.nbytes, bool)  # the bytes of out's elements
            start = (len(buf) // 2) * dtype.itemsize
            for index in itertools.product(*(range(n) for n in shape)):
                o = start + sum(i * s for i, s in zip(index, strides))
                mine[o:o + dtype.itemsize] = True
            raw, raw_before = buf.view(np.uint8), before.view(np.uint8)
            assert np.array_equal(raw[~mine], raw_before[~mine]), "wrote between out's elements"
    # Each answer came up often, the search's "no" too (interleaved layouts).
    assert min(seen.values()) >= 50, seen


def test_irregular_out_that_does_not_overlap_is_accepted():
    """Rows 8 bytes apart whose elements are 12 bytes apart interleave without sharing a byte
    (float32 at 0, 12 | 8, 20 | 16, 28): beyond the shortcut, the exact search says no
    overlap, and every path fills such an out."""
    buf = np.full(8, SENTINEL, np.float32)
    out = np.lib.stride_tricks.as_strided(buf, (3, 2), (8, 12))
    x = np.array([[0.0, 1.0], [2.0, 0.0], [-1.0, 3.0]], np.float32)
    assert not _blocks_nest(out.shape, out.strides, 4)
    for kw in ({"axis": -1}, {"axis": 0}, {"axis": None}, {"axis": -1, "threads": 1}):
        assert fastsoftmax.softmax(x, out=out, **kw) is out
        assert np.array_equal(out, fastsoftmax.softmax(x, **kw))
    assert buf[1] == SENTINEL and buf[6] == SENTINEL  # the two bytes ranges no element covers


def test_out_too_irregular_to_decide_is_refused():
    """Six long axes of unrelated strides near 300 KB: the bounded exact search gives up
    (2^16 steps) and the out is refused rather than trusted. No ordinary array gets here."""
    shape = (6, 5, 11, 9, 12, 10)
    strides = (73244, 79844, 75192, 74376, 69852, 75184)
    span = 4 + sum(s * (n - 1) for n, s in zip(shape, strides))
    buf = np.full(span // 4 + 1, SENTINEL, np.float32)
    out = np.lib.stride_tricks.as_strided(buf, shape, strides)
    assert fastsoftmax._core.overlaps_itself(out) is None
    x = np.broadcast_to(np.float32(1.0), shape)
    for fn in (fastsoftmax.softmax, fastsoftmax.log_softmax):
        with pytest.raises(ValueError, match="too irregular"):
            fn(x, axis=-1, out=out)
    assert_untouched(buf)


# ---- other arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "longdouble", "float16", "0-d", "axis=()"])
@pytest.mark.parametrize("op", OPS)
def test_bad_algorithm_or_tier_without_a_kernel_call(op, kind):
    """Regression (found by fuzzing): an unknown isa was ignored whenever no kernel ran --
    empty input, long double input -- instead of raising like any other call."""
    x = {"empty": np.zeros((0, 3)), "longdouble": np.ones((2, 3), np.longdouble),
         "float16": np.ones((2, 3), np.float16), "0-d": np.float64(1.0), "axis=()": np.ones((2, 3))}[kind]
    kw = {"axis": ()} if kind == "axis=()" else {"axis": 1} if kind == "empty" else {}
    for bad, exc, pattern in [({"isa": "sse2"}, ValueError, "isa"), ({"isa": ""}, ValueError, "isa"),
                              ({"isa": 2}, TypeError, "isa"), ({"algorithm": "fast"}, ValueError, "two-pass")]:
        with pytest.raises(exc, match=pattern):
            FUNCS[op](x, **kw, **bad)
        res = FUNCS[op](x, **kw)
        out = np.full(np.shape(res), SENTINEL, np.asarray(res).dtype)
        with pytest.raises(exc, match=pattern):
            FUNCS[op](x, **kw, out=out, **bad)
        assert_untouched(out)


# ---- the catalogue itself ---------------------------------------------------------------------

def test_every_test_the_catalogue_names_exists():
    """docs/bad-input.md names the test for each row; each must exist, so the table cannot
    point at a test that was renamed or removed. `module.py::test_x` names a test; a bare
    `::test_y` right after it is in the same module; `catalogue` is this file."""
    text = DOC.read_text()
    tests_dir = Path(__file__).resolve().parent
    sources = {p.name: p.read_text() for p in tests_dir.glob("test_*.py")}
    found = 0
    current = None
    for m in re.finditer(r"`(?P<mod>[a-z_]+\.py|catalogue)?::(?P<name>test_[A-Za-z0-9_*]+)`", text):
        if m.group("mod"):
            current = "test_bad_input_catalogue.py" if m.group("mod") == "catalogue" else m.group("mod")
        assert current in sources, f"docs/bad-input.md names {current}, which does not exist"
        pattern = re.escape(m.group("name")).replace(r"\*", r"\w*")
        assert re.search(rf"^def {pattern}\(", sources[current], re.M), \
            f"docs/bad-input.md names {current}::{m.group('name')}, which does not exist"
        found += 1
    assert found > 30, "the catalogue's test references were not found"
    for module in re.findall(r"`(test_[a-z_]+\.py)`", text):
        assert module in sources, f"docs/bad-input.md names {module}, which does not exist"
