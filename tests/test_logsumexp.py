"""fastsoftmax.logsumexp: scipy.special.logsumexp's contract for real input, one read pass.

Same results (within a few ulp), result type and dtype, shape (axis None / int / tuple,
keepdims, 0-d, empty), ±inf/NaN handling and exception types as SciPy; accuracy against a
long double reference; bitwise identical for any memory layout and thread count; weights
(b=) with SciPy's values and signs; out=/dtype= mixed precision as softmax.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastsoftmax
from conftest import require_or_skip
from fastsoftmax import _core
from helpers import assert_same_as_scipy, expected_exception

LD = np.longdouble
DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64,
          np.float16, np.float32, np.float64, np.longdouble]


def scipy_lse(x, **kw):
    """SciPy's result or exception, its overflow/invalid warnings silenced."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scipy.special.logsumexp(x, **kw), None
    except Exception as e:  # noqa: BLE001 - the type is compared
        return None, e


def check_like_scipy(x, what="", **kw):
    theirs, err = scipy_lse(x, **kw)
    if err is not None:
        with pytest.raises(expected_exception(err)):
            fastsoftmax.logsumexp(x, **kw)
        return
    ours = fastsoftmax.logsumexp(x, **kw)
    if kw.get("return_sign"):
        assert isinstance(ours, tuple) and len(ours) == 2, what
        assert_same_as_scipy("log_softmax", ours[0], theirs[0], x, what=f"{what} value")
        assert_same_as_scipy("log_softmax", ours[1], theirs[1], what=f"{what} sign", rtol=0, atol=0)
    else:
        assert_same_as_scipy("log_softmax", ours, theirs, x, what=what)


def sample(shape, dtype, rng):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(max(info.min, -100), min(info.max, 100), shape, endpoint=True).astype(dt)
    return (rng.standard_normal(shape) * 5).astype(dt)


AXES_BY_NDIM = {
    0: [None, 0, -1, (), (0,)],
    1: [None, 0, -1, (), (0,)],
    2: [None, 0, 1, -1, -2, (), (0,), (1, 0), (0, 1)],
    3: [None, 0, 1, 2, (0, 2), (2, 0), (1, 2), (0, 1, 2), (-1, -3), ()],
}
SHAPES = [(), (7,), (3, 5), (2, 3, 4)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_same_as_scipy_every_dtype_axis_keepdims(dtype):
    rng = np.random.default_rng(np.dtype(dtype).num)
    for shape in SHAPES:
        x = sample(shape, dtype, rng)
        for axis, keepdims in itertools.product(AXES_BY_NDIM[len(shape)], (False, True)):
            check_like_scipy(x, what=f"{np.dtype(dtype)} {shape} axis={axis} keepdims={keepdims}",
                             axis=axis, keepdims=keepdims)


def test_python_scalars_and_lists():
    for x in (3, 2.5, -np.inf, [1, 2, 3], [[1.0, 2.0], [3.0, 4.0]], [True, False]):
        for axis in (None, 0, -1):
            check_like_scipy(x, what=f"{x!r} axis={axis}", axis=axis)


SPECIAL_ROWS = [
    [1.0, np.nan, 2.0],
    [np.nan, np.inf],
    [np.nan, -np.inf],
    [1.0, np.inf],
    [np.inf, np.inf],
    [np.inf, -np.inf],
    [-np.inf, -np.inf],
    [-np.inf, 0.0, -np.inf],
    [1e30, 1e30],
    [-1e30, -1e30],
    [1e5, 1e5 + 1],       # beyond the float32 fast range: exact long double path
    [-1e5, -1e5 - 1],
    [3e38, 3e38],         # e**x and the sum overflow float32; the log does not
    [1e308, 1e308],
    [-745.0, -745.0],     # exp underflows float64 to a subnormal
    [88.0, 89.0],
]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("row", SPECIAL_ROWS, ids=repr)
def test_special_values_like_scipy(row, dtype):
    with np.errstate(over="ignore"):
        x = np.array(row, dtype=dtype)
    for kw in ({}, {"return_sign": True}):
        check_like_scipy(x, what=f"{row} {np.dtype(dtype)}", **kw)
    # the same row in a batch, along either axis
    xb = np.stack([x, np.zeros_like(x), x])
    check_like_scipy(xb, what=f"batch {row}", axis=1)
    check_like_scipy(np.ascontiguousarray(xb.T), what=f"batch.T {row}", axis=0)


F64_MAX = float(np.finfo(np.float64).max)
F32_MAX = float(np.finfo(np.float32).max)
#: Rows whose log-sum-exp needs a power-of-two exponent beyond 2^63 -- or beyond float64
#: itself (|max| > ~1.2457e308 = float max ln 2) -- which (m, e) pairs alone cannot hold.
ASTRONOMICAL_ROWS = [[1e300, 0.0], [-1e300, -1e300], [1e300], [1.25e308, 0.0], [-1.25e308, -1.25e308],
                     [F64_MAX, F64_MAX], [-F64_MAX, -F64_MAX], [F64_MAX, 0.0], [1e30, 0.0], [-1e30, -1e30 - 2**50],
                     [5e18, 5e18], [-5e18, -5e18]]


@pytest.mark.parametrize("row", ASTRONOMICAL_ROWS, ids=repr)
def test_astronomical_values_like_scipy(row):
    check_like_scipy(np.array(row), what=repr(row))


@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_astronomical_values_every_isa(dtype, isa):
    """The rows above (float32: those it can hold, and +-float32 max) on every tier, in a
    batch along either axis, against the long double reference and as softmax_stats."""
    require_or_skip(isa)
    fmax = F32_MAX if dtype == np.float32 else F64_MAX
    rows = [r for r in ASTRONOMICAL_ROWS if len(r) == 2 and max(abs(v) for v in r) <= fmax]
    rows += [[fmax, fmax], [-fmax, -fmax], [fmax, 0.0], [1e30, 1e30], [-1e30, 3.0]]
    x = np.array(rows, dtype)
    for xb, axis in ((x, 1), (np.ascontiguousarray(x.T), 0)):
        y = fastsoftmax.logsumexp(xb, axis=axis, isa=isa)
        assert y.dtype == dtype
        assert_lse_accurate(y, xb, axis, f"{isa} axis={axis}")
    np.testing.assert_array_equal(fastsoftmax.logsumexp(x, axis=1, isa=isa),
                                  fastsoftmax.softmax_stats(x, isa=isa).logsumexp().astype(dtype))


def test_return_sign_like_scipy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    x[0, :] = -np.inf
    x[1, 2] = np.nan
    for axis in (None, 0, 1, (), (0, 1)):
        for keepdims in (False, True):
            check_like_scipy(x, what=f"axis={axis}", axis=axis, keepdims=keepdims, return_sign=True)
    check_like_scipy(np.float32(2.0), return_sign=True)
    check_like_scipy(np.zeros(0), return_sign=True)  # SciPy: sign -1 for empty input
    check_like_scipy(np.zeros((2, 0)), axis=1, return_sign=True)


@pytest.mark.parametrize("shape,axis", [((0,), None), ((0,), 0), ((2, 0), 1), ((2, 0), 0), ((0, 3), 0),
                                        ((0, 3), 1), ((2, 0, 3), 1), ((2, 0, 3), (0, 2)), ((2, 0, 3), (1, 2)),
                                        ((2, 0), None), ((0, 3), None), ((2, 0, 3), None)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16], ids=lambda d: np.dtype(d).name)
def test_empty_like_scipy(shape, axis, dtype):
    x = np.zeros(shape, dtype)
    for keepdims in (False, True):
        theirs, err = scipy_lse(x, axis=axis, keepdims=keepdims)
        if isinstance(err, IndexError):
            # SciPy 1.17 fails here (its empty-input path indexes a shape with a tuple axis);
            # the sum over no elements is 0, so the result is -inf, as for its other empty cases.
            ours = fastsoftmax.logsumexp(x, axis=axis, keepdims=keepdims)
            want_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
            assert np.shape(ours) == want_shape and np.asarray(ours).dtype == fastsoftmax.logsumexp(x[..., :0]).dtype
            assert np.all(np.isneginf(ours))
            if not want_shape:
                assert isinstance(ours, np.generic)
        else:
            check_like_scipy(x, what=f"{shape} axis={axis}", axis=axis, keepdims=keepdims)


def test_bad_arguments_raise_like_scipy():
    x = np.zeros((2, 3))
    for axis in (2, -3, (0, 0), (0, 2), [0, 1], 1.0, "0"):
        check_like_scipy(x, what=f"axis={axis!r}", axis=axis)
    check_like_scipy(np.float64(1.0), axis=1)


def test_unsupported_input_and_options():
    with pytest.raises(TypeError, match="complex"):
        fastsoftmax.logsumexp(np.zeros(3, np.complex128))
    with pytest.raises(TypeError, match="real numbers"):
        fastsoftmax.logsumexp(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="real numbers"):
        fastsoftmax.logsumexp(np.array([1, None], dtype=object))
    with pytest.raises(ValueError, match="unknown isa"):
        fastsoftmax.logsumexp(np.zeros(3), isa="sse9")
    with pytest.raises(ValueError, match="threads"):
        fastsoftmax.logsumexp(np.zeros(3), threads=-1)


def test_out():
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    out = np.empty(4, np.float32)
    r = fastsoftmax.logsumexp(x, axis=1, out=out)
    assert r is out
    np.testing.assert_array_equal(out, fastsoftmax.logsumexp(x, axis=1))
    outk = np.empty((4, 1), np.float32)
    assert fastsoftmax.logsumexp(x, axis=1, keepdims=True, out=outk) is outk
    np.testing.assert_array_equal(outk[:, 0], out)
    out0 = np.empty((), np.float32)
    assert fastsoftmax.logsumexp(x, out=out0) is out0
    assert out0 == fastsoftmax.logsumexp(x)
    strided = np.empty((4, 2), np.float32)[:, 0]  # a strided out is fine
    fastsoftmax.logsumexp(x, axis=1, out=strided)
    np.testing.assert_array_equal(strided, out)
    v, s = fastsoftmax.logsumexp(x, axis=1, out=out, return_sign=True)
    assert v is out and s.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        fastsoftmax.logsumexp(x, axis=1, out=np.empty(5, np.float32))
    # (out= of another float dtype than the input's used to be a TypeError: it is mixed
    # precision now, as for softmax -- test_out_and_dtype_mixed_precision.)
    for bad in (np.int64, np.complex128, bool):
        with pytest.raises(TypeError, match="floating dtype"):
            fastsoftmax.logsumexp(x, axis=1, out=np.empty(4, bad))
    with pytest.raises(TypeError):
        fastsoftmax.logsumexp(x, axis=1, out=[0.0] * 4)
    ro = np.empty(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastsoftmax.logsumexp(x, axis=1, out=ro)


# ---- accuracy ------------------------------------------------------------------------------

def reference(x: np.ndarray, axis: int) -> np.ndarray:
    xl = x.astype(LD)
    mx = np.max(xl, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(xl - mx), axis=axis, keepdims=True)) + mx, axis=axis)


def assert_lse_accurate(y, x, axis, what=""):
    """DESIGN section 4's log bound for a log-sum-exp: |y - r| <= 4 eps max(1, |r|)."""
    r = reference(x, axis)
    eps = float(np.finfo(x.dtype).eps)
    err = np.abs((y.astype(LD) - r).astype(np.float64))
    bound = 4 * eps * np.maximum(1.0, np.abs(r.astype(np.float64)))
    assert np.all(err <= bound), f"{what}: worst error {np.max(err / bound):.3f} x the bound"


DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.standard_normal(n),
    "uniform-1000-1000": lambda rng, n: rng.uniform(-1000.0, 1000.0, n),
    "uniform-90-100": lambda rng, n: rng.uniform(90.0, 100.0, n),
}


@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_accuracy_against_long_double(dist, dtype, isa):
    require_or_skip(isa)
    rng = np.random.default_rng([list(DISTRIBUTIONS).index(dist), np.dtype(dtype).itemsize])
    for n in (1, 2, 3, 15, 16, 17, 255, 1024, 1025, 4097, 65537):
        rows = max(1, 8192 // n)
        x = DISTRIBUTIONS[dist](rng, rows * n).astype(dtype).reshape(rows, n)
        assert_lse_accurate(fastsoftmax.logsumexp(x, axis=1, isa=isa), x, 1, f"{dist} n={n} {isa}")
    x = DISTRIBUTIONS[dist](rng, 1 << 20).astype(dtype)
    assert_lse_accurate(np.asarray(fastsoftmax.logsumexp(x, isa=isa)), x, 0, f"{dist} n=2^20 {isa}")


def test_float16_rounded_once():
    x = np.array([1.0, 2.0, 3.0, 60000.0, 60001.0], np.float16)
    r = fastsoftmax.logsumexp(x[:3])
    assert r.dtype == np.float16 and r == np.float16(reference(x[:3].astype(np.float32), 0))
    assert fastsoftmax.logsumexp(x[3:]) == np.float16(reference(x[3:].astype(np.float64), 0))
    big = np.array([65504.0, 65504.0], np.float16)  # the sum overflows float16, the log does not
    assert fastsoftmax.logsumexp(big) == np.float16(65504.0)


# ---- layouts, threads, the statistics it is made of --------------------------------------

@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=9),
                    elements=st.floats(-1e4, 1e4, width=32)),
       data=st.data())
@settings(max_examples=60, deadline=None)
def test_same_bits_for_any_layout(x, data):
    axis = data.draw(st.integers(0, x.ndim - 1))
    want = fastsoftmax.logsumexp(np.ascontiguousarray(np.moveaxis(x, axis, -1)), axis=-1)
    strided = np.repeat(x, 2, axis=0)[::2]  # same values, other strides
    for variant in (x, np.asfortranarray(x), strided):
        np.testing.assert_array_equal(fastsoftmax.logsumexp(variant, axis=axis), want)


def test_same_bits_for_any_thread_count():
    x = np.random.default_rng(3).standard_normal(1 << 19).astype(np.float32)
    want = fastsoftmax.logsumexp(x, threads=1)
    for t in (2, 3, 8):
        assert fastsoftmax.logsumexp(x, threads=t) == want
    xb = x.reshape(64, -1)
    np.testing.assert_array_equal(fastsoftmax.logsumexp(xb, axis=1, threads=4), fastsoftmax.logsumexp(xb, axis=1,
                                                                                                      threads=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_equals_log_softmax_shift_and_stats(dtype):
    x = np.random.default_rng(4).uniform(-50, 50, (16, 300)).astype(dtype)
    lse = fastsoftmax.logsumexp(x, axis=1)
    # the same statistics as softmax_stats, rounded once to the result dtype
    np.testing.assert_array_equal(lse, fastsoftmax.softmax_stats(x, axis=1).logsumexp().astype(dtype))
    # and log_softmax(x) = x - logsumexp(x), within the log-softmax bound
    eps = float(np.finfo(dtype).eps)
    ls = fastsoftmax.log_softmax(x, axis=1, algorithm="two-pass")
    scale = np.maximum(1.0, np.maximum(np.abs(x), np.abs(lse[:, None])))
    assert np.all(np.abs((x - lse[:, None]).astype(np.float64) - ls) <= 4 * eps * scale)


def test_multi_axis_equals_flattened():
    x = np.random.default_rng(6).standard_normal((3, 4, 5))
    np.testing.assert_array_equal(fastsoftmax.logsumexp(x, axis=(0, 2)),
                                  fastsoftmax.logsumexp(np.moveaxis(x, 1, 0).reshape(4, -1), axis=1))
    assert fastsoftmax.logsumexp(x) == fastsoftmax.logsumexp(x.reshape(-1))


@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=lambda d: np.dtype(d).name)
def test_long_strided_rows_same_bits_as_contiguous(dtype, isa):
    """Rows longer than a chunk, strided, reversed, broadcast or in outer axes, read in
    place chunk by chunk: the statistics (and so logsumexp) of a contiguous copy, bit for
    bit, on 1 and 3 threads (few rows: chunks over the threads; many: rows), with rows on
    the exact path too (NaN, +inf, a max beyond the fast range)."""
    require_or_skip(isa)
    rng = np.random.default_rng(7)
    n = 2 * (1 << 16) + 5
    base = (rng.standard_normal((4, 2 * n)) * 4).astype(dtype)
    base[1, 10] = np.nan
    base[2, 2 * n - 2] = np.inf
    base[3, 4] = 65504.0 if dtype == np.float16 else 1e7  # float16 max: beyond the float32 fast range
    views = {
        "step 2": base[:, ::2],
        "reversed": base[:, ::-2],
        "one row": base[3, ::2],
        "broadcast": np.broadcast_to(base[0, :1], (n,)),
        "outer axes": base.reshape(2, 2, 2 * n)[:, :, 1::2],
        "misaligned": np.frombuffer(b"\0" + base[0, :n].tobytes(), dtype, n, offset=1),
        "many rows": np.broadcast_to(base[:1, ::2], (7, n)),  # >= 2 x 3 threads: rows over the threads
    }
    for name, v in views.items():
        c = np.ascontiguousarray(v)
        for threads in (1, 3):
            got, want = (fastsoftmax.softmax_stats(a, threads=threads, isa=isa) for a in (v, c))
            for f in ("m", "e", "shift"):
                np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f"{name} {f} threads={threads}")
            np.testing.assert_array_equal(fastsoftmax.logsumexp(v, axis=-1, threads=threads, isa=isa),
                                          fastsoftmax.logsumexp(c, axis=-1, threads=1, isa=isa), err_msg=name)
    assert fastsoftmax.softmax_stats(views["one row"], isa=isa).shift != 0  # the exact path, strided


# ---- out= and dtype=: mixed precision, as softmax ---------------------------------------------

def test_out_and_dtype_mixed_precision():
    """out= may have any floating dtype and dtype= names the result dtype: computed in the
    more precise of the input's and the result's dtype, rounded once."""
    rng = np.random.default_rng(11)
    x64 = rng.uniform(-20, 20, (5, 300))
    x32, x16 = x64.astype(np.float32), x64.astype(np.float16)
    lse = fastsoftmax.logsumexp
    # a wider result: the input's values computed in the wider dtype
    np.testing.assert_array_equal(lse(x16, axis=1, dtype=np.float32), lse(x16.astype(np.float32), axis=1))
    np.testing.assert_array_equal(lse(x32, axis=1, dtype=np.float64), lse(x32.astype(np.float64), axis=1))
    out = np.full(5, -7.0)
    assert lse(x32, axis=1, out=out) is out
    np.testing.assert_array_equal(out, lse(x32.astype(np.float64), axis=1))
    # a narrower result: computed in the input's dtype, rounded once (float64 -> float16 directly)
    r16 = lse(x64, axis=1, dtype=np.float16)
    assert r16.dtype == np.float16
    np.testing.assert_array_equal(r16, lse(x64, axis=1).astype(np.float16))
    out16 = np.empty(5, np.float16)
    assert lse(x64, axis=1, out=out16) is out16
    np.testing.assert_array_equal(out16, r16)
    # integers (SciPy: float64) to float32: rounded once from float64
    xi = rng.integers(-50, 50, (4, 7))
    np.testing.assert_array_equal(lse(xi, axis=0, dtype="float32"), lse(xi, axis=0).astype(np.float32))
    # long double either way
    rl = lse(x64, axis=1, dtype=np.longdouble)
    assert rl.dtype == np.longdouble
    np.testing.assert_array_equal(rl, lse(x64.astype(np.longdouble), axis=1))
    # 0-d results, keepdims, return_sign (the sign takes the result dtype), axis=()
    s = lse(x32, dtype=np.float64)
    assert type(s) is np.float64 and s == lse(x64.astype(np.float32).astype(np.float64))
    v, sg = lse(x32, axis=1, keepdims=True, dtype=np.float64, return_sign=True)
    assert v.shape == (5, 1) and v.dtype == sg.dtype == np.float64 and np.all(sg == 1)
    np.testing.assert_array_equal(lse(x64, axis=(), dtype=np.float32), x64.astype(np.float32))
    # dtype= and out= must agree; dtype= must be a float type
    with pytest.raises(TypeError, match="out has dtype float64, expected float32"):
        lse(x32, axis=1, out=np.empty(5), dtype=np.float32)
    for bad in ("int32", bool, np.complex64, "S3"):
        with pytest.raises(TypeError, match="dtype must be a floating dtype"):
            lse(x32, axis=1, dtype=bad)


def test_bfloat16_result_rounded_once():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    from helpers import round_to

    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = np.random.default_rng(12).uniform(-30, 30, (64, 100)).astype(np.float32)
    r = fastsoftmax.logsumexp(x, axis=1, dtype=bf16)
    assert r.dtype == bf16
    want = round_to(fastsoftmax.softmax_stats(x, axis=1).logsumexp(), bf16)  # float64, rounded once
    np.testing.assert_array_equal(r.astype(np.float64), want)


# ---- b=: weights, as scipy.special.logsumexp ----------------------------------------------------

def scipy_weighted(x, b, **kw):
    """SciPy's result or exception, and the RuntimeWarnings it gave."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            res, err = scipy.special.logsumexp(x, b=b, **kw), None
        except Exception as e:  # noqa: BLE001 - the type is compared
            res, err = None, e
    return res, err, [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]


def check_weighted_like_scipy(x, b, what="", **kw):
    """Our result against SciPy's: SciPy's type, dtype and shape; its values, signs, NaNs and
    infinities as SciPy computes them in float64 (we compute in float64 and round once; for
    float64 input that is SciPy itself); and a RuntimeWarning exactly where SciPy gives one."""
    theirs, err, _ = scipy_weighted(x, b, **kw)
    if isinstance(err, IndexError):
        return  # SciPy 1.17's empty-input bug with a tuple axis (test_empty_like_scipy)
    if err is None and kw.get("axis") == () and np.size(theirs[0] if kw.get("return_sign") else theirs) != np.size(
            np.broadcast_arrays(np.asarray(x), np.asarray(b))[0]):
        return  # empty input with axis=(): SciPy's shape[()] = 1 makes every axis 1 (an empty result here)
    if err is not None:
        with pytest.raises(expected_exception(err)):
            fastsoftmax.logsumexp(x, b=b, **kw)
        return
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ours = fastsoftmax.logsumexp(x, b=b, **kw)
    our_warnings = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    ref, _, ref_warnings = scipy_weighted(np.asarray(x, np.float64), np.asarray(b, np.float64), **kw)
    assert bool(our_warnings) == bool(ref_warnings), f"{what}: warnings {our_warnings} vs SciPy's {ref_warnings}"
    pairs = [(ours, theirs, ref)]
    if kw.get("return_sign"):
        assert isinstance(ours, tuple) and len(ours) == 2, what
        pairs = [(ours[0], theirs[0], ref[0]), (ours[1], theirs[1], ref[1])]
    for i, (o, t, r) in enumerate(pairs):
        name = f"{what} {'sign' if i else 'value'}"
        assert type(o) is type(t), f"{name}: result type {type(o)} != SciPy's {type(t)}"
        a, dt = np.asarray(o), np.asarray(t).dtype
        assert a.dtype == dt and a.shape == np.shape(t), f"{name}: {a.dtype} {a.shape} vs SciPy {dt} {np.shape(t)}"
        with np.errstate(over="ignore"):
            want = np.asarray(r).astype(dt)
        if i:  # signs: exactly
            assert np.array_equal(a, want, equal_nan=True), f"{name}: {a} vs SciPy {want}"
        else:
            assert_same_as_scipy("log_softmax", a, want, np.asarray(x, np.float64), what=name)


@st.composite
def weighted_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    xdt = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(hnp.arrays(xdt, shape, elements=st.floats(-50, 50, width=32)))
    for _ in range(draw(st.integers(0, 2)) if x.size else 0):  # ±inf and NaN here and there
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([-np.inf, -np.inf, np.inf, np.nan]))
    bshape = draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=len(shape) + 1, max_side=4))
    bdt = draw(st.sampled_from([np.float32, np.float64, np.int8]))
    kind = draw(st.sampled_from(["positive", "signed", "signed", "ones"]))
    if kind == "ones":
        b = np.ones(bshape, bdt)
    elif bdt == np.int8:
        b = draw(hnp.arrays(bdt, bshape, elements=st.integers(1 if kind == "positive" else -3, 3)))
    elif kind == "positive":
        b = draw(hnp.arrays(bdt, bshape, elements=st.floats(2.0**-10, 1e3, width=32)))
    else:  # zeros, negatives, exact cancellations, the odd inf or NaN weight
        b = draw(hnp.arrays(bdt, bshape, elements=st.one_of(
            st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0]), st.floats(-1e3, 1e3, width=32))))
        if b.size and draw(st.integers(0, 9)) == 0:
            b.flat[draw(st.integers(0, b.size - 1))] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    nd = max(len(shape), len(bshape), 1)
    axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1),
                          st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).map(tuple)))
    return x, b, {"axis": axis, "keepdims": draw(st.booleans()), "return_sign": draw(st.booleans())}


@given(case=weighted_cases())
@settings(max_examples=400, deadline=None)
def test_weights_like_scipy_property(case):
    """Shapes 0-d to 3-d (empty too), axes None / int / tuple, b broadcast either way (also
    to a larger result), zero, negative, cancelling, inf and NaN weights, ±inf and NaN in x,
    keepdims and return_sign; float32/float64 x, float32/float64/int8 b (SciPy's promotion)."""
    x, b, kw = case
    check_weighted_like_scipy(x, b, what=f"x={x!r} b={b!r} {kw}", **kw)


WEIGHTED_CASES = [
    # (x, b, kw): SciPy's own examples, and the edges of its algorithm
    (np.arange(10.0), np.arange(10, 0, -1), {}),
    ([1.0, 2.0], [1, -1], {"return_sign": True}),
    ([1.0, 2.0], [1, -1], {}),                                 # a negative sum: NaN
    ([np.log(2), 2.0, np.log(3)], [1, 0, 1], {}),              # a zero weight masks its term: log 5
    ([0.0, np.inf, 1.0], [1, 0, 1], {"return_sign": True}),    # ... even an inf
    ([0.0, np.nan, 1.0], [1, 0, 1], {}),                       # ... or a NaN
    ([3.0, 3.0], [0, 0], {"return_sign": True}),               # all zero: -inf, sign 0
    ([5.0, 5.0], [1, -1], {"return_sign": True}),              # exact cancellation: -inf, sign 0
    ([100.0, 100.0, 0.0], [1, -1, 1], {"return_sign": True}),  # cancellation of the largest terms
    ([-np.inf, -np.inf], [1, -1], {"return_sign": True}),
    ([np.inf, 1.0], [-1, 1], {"return_sign": True}),           # -inf weight x inf: log inf, sign -1
    ([np.inf, np.inf], [1, -1], {"return_sign": True}),        # inf - inf: NaN
    ([1.0, 2.0], [np.inf, 1], {}),
    ([1.0, 2.0], [1, np.nan], {"return_sign": True}),
    (np.zeros((2, 3)), [1.0, 2.0, 3.0], {"axis": 1}),          # b broadcast along rows
    (np.zeros((2, 3)), [[1.0], [-1.0]], {"axis": 0, "return_sign": True}),
    (np.zeros(3), np.ones((2, 3)), {"axis": -1}),              # b enlarges the result
    (2.0, [1.0, 3.0], {}),                                     # 0-d x, 1-d b
    (2.0, 3.0, {}),
    (np.zeros((2, 0)), np.ones(0), {"axis": 1, "return_sign": True}),  # empty rows: -inf, sign -1
    (np.zeros((2, 3)), np.ones(2), {"axis": 1}),               # not broadcastable: ValueError
    ([1e300, 0.0], [2.0, 1.0], {}),                            # huge x, positive weights
    ([-1e300, -1e300], [0.5, 0.25], {}),
    ([1e300, 1e300], [1.0, -0.5], {"return_sign": True}),
]


@pytest.mark.parametrize("x,b,kw", WEIGHTED_CASES, ids=lambda v: repr(v)[:40])
def test_weights_edge_cases_like_scipy(x, b, kw):
    check_weighted_like_scipy(x, b, what=f"x={x!r} b={b!r} {kw}", **kw)
    for axis in (None, 0, -1):
        check_weighted_like_scipy(x, b, what=f"x={x!r} b={b!r} axis={axis}", **dict(kw, axis=axis))


def test_weights_result_dtype_is_scipys():
    """NumPy's promotion of x, b and a Python float, Python scalars weak (as SciPy passes them)."""
    cases = [
        (np.zeros(3, np.float32), 2.0), (np.zeros(3, np.float32), np.float64(2.0)),
        (np.zeros(3, np.float32), np.ones(3)), (np.zeros(3, np.float32), np.ones(3, np.int8)),
        (np.zeros(3, np.float32), np.ones(3, np.int64)), (np.zeros(3, np.float16), np.ones(3, np.float16)),
        (np.zeros(3, np.int32), np.ones(3, np.int32)), (np.zeros(3, bool), 1), ([0, 1, 2], [1.0, 2.0, 3.0]),
        (np.zeros(3, np.float16), 2), (np.zeros(3, np.longdouble), np.ones(3)),
    ]
    for x, b in cases:
        theirs, err, _ = scipy_weighted(x, b)
        assert err is None
        ours = fastsoftmax.logsumexp(x, b=b)
        assert type(ours) is type(theirs) and ours.dtype == theirs.dtype, (x, b, ours, theirs)
        assert np.isclose(np.float64(ours), np.float64(theirs), rtol=2e-3), (x, b, ours, theirs)


def test_unit_weights_give_the_unweighted_sum():
    x = np.random.default_rng(13).uniform(-100, 100, (6, 500))
    for b in (1, np.ones(500), np.ones((6, 1))):
        np.testing.assert_allclose(fastsoftmax.logsumexp(x, axis=1, b=b), fastsoftmax.logsumexp(x, axis=1),
                                   rtol=0, atol=4 * np.finfo(np.float64).eps * 100)
    # positive weights: log(b) shifts x, within the accuracy bound of the long double reference
    b = np.random.default_rng(14).uniform(0.01, 100, x.shape)
    ref = reference(x.astype(LD) + np.log(b.astype(LD)), 1)
    got = fastsoftmax.logsumexp(x, axis=1, b=b)
    assert np.all(np.abs(got.astype(LD) - ref) <= 4 * np.finfo(np.float64).eps * np.maximum(1, np.abs(ref)))


def test_weights_bad_arguments():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="broadcast"):
        fastsoftmax.logsumexp(x, b=np.ones(2))
    with pytest.raises(TypeError, match="^logsumexp: b .*real numbers"):
        fastsoftmax.logsumexp(x, b=np.array(["a", "b", "c"]))
    with pytest.raises(TypeError, match="^logsumexp: b .*real numbers"):
        fastsoftmax.logsumexp(x, b=np.ones(3, complex))
    out = np.full(2, -3.5)
    with pytest.raises(ValueError, match="shape"):  # the result has the broadcast shape
        fastsoftmax.logsumexp(np.zeros(3), b=np.ones((2, 3)), axis=-1, out=np.empty(3))
    with pytest.raises(ValueError, match="broadcast"):
        fastsoftmax.logsumexp(x, b=np.ones(2), axis=1, out=out)
    assert np.all(out == -3.5)


def test_weights_huge_sums_warn_as_scipy():
    """Where SciPy's float64 arithmetic overflows (negative weights: its algorithm is ours),
    both give inf with an overflow RuntimeWarning; positive weights never overflow here:
    exp(x + log b) is summed as exact pairs, so log(3e308) is finite (SciPy: inf)."""
    x, b = np.zeros(3), np.array([1e308, 1e308, -1.0])
    with pytest.warns(RuntimeWarning, match="overflow"):
        theirs = scipy.special.logsumexp(x, b=b)
    with pytest.warns(RuntimeWarning, match="overflow"):
        ours = fastsoftmax.logsumexp(x, b=b)
    assert ours == theirs == np.inf
    ours = fastsoftmax.logsumexp(x, b=np.full(3, 1e308))
    assert np.isclose(ours, np.log(3.0) + np.log(1e308), rtol=1e-15)


def test_weights_with_mixed_precision_and_out():
    rng = np.random.default_rng(15)
    x, b = rng.uniform(-5, 5, (4, 50)).astype(np.float32), rng.uniform(-1, 1, (4, 50)).astype(np.float32)
    for bb in (b, np.abs(b) + 0.1):  # SciPy's algorithm, and the kernels
        want = fastsoftmax.logsumexp(x.astype(np.float64), axis=1, b=bb.astype(np.float64), return_sign=True)
        got = fastsoftmax.logsumexp(x, axis=1, b=bb, dtype=np.float64, return_sign=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        out = np.empty(4, np.float16)
        assert fastsoftmax.logsumexp(x, axis=1, b=bb, out=out) is out
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(out, want[0].astype(np.float16) * np.where(want[1] < 0, np.nan, 1))
