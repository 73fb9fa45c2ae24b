"""The rows of docs/bad-input.md that no other test covers, and a check that every test the
catalogue names exists.

Rows already covered elsewhere (test_bad_input.py: non-real dtypes, bad out arrays, partial
overlap, unknown algorithm/isa; test_edge_cases.py: bool, special values, integers,
float16, empty and 0-d input, axis errors, layouts; test_dispatch.py: FASTSOFTMAX_ISA;
test_parallel.py: threads=; test_memory.py: MemoryError) are referenced from the doc table.
"""

from __future__ import annotations

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
        with pytest.raises(ValueError, match="zero stride"):
            FUNCS[op](x, axis=axis, out=out)
        assert_untouched(base)
    base = np.arange(3.0)
    xo = as_strided(base, shape=(2, 3), strides=(0, 8))
    with pytest.raises(ValueError, match="zero stride"):
        FUNCS[op](xo, axis=1, out=xo)
    assert np.array_equal(base, np.arange(3.0))
    # A zero stride on a length-1 axis (np.newaxis makes those) is an ordinary out.
    y = np.zeros((2, 3))
    out = y[:, np.newaxis, :]
    assert 0 in out.strides or out.strides[1] == 24
    assert FUNCS[op](x[:, np.newaxis, :], axis=-1, out=out) is out
    assert np.array_equal(y, FUNCS[op](x, axis=1))


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
