"""The C small-call path (_core.fast_softmax / fast_log_softmax): which calls it takes, and
that it gives bitwise what the general Python path gives for them."""

import numpy as np
import pytest
import scipy.special

import fastsoftmax
from fastsoftmax import _api, _core

FAST = {"softmax": _core.fast_softmax, "log_softmax": _core.fast_log_softmax}


def fast(op, x, axis=None, out=None, algorithm="auto"):
    return FAST[op](x, axis, out, None, algorithm, None, None)


def general(op, x, axis=None, out=None, algorithm="auto"):
    # isa= given: the C path declines, and _compute's own fast path needs axis=-1 or 1-D.
    return _api._compute(op, x, axis, out, algorithm, _core.active_isa(), None, None)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(1, 128), (4, 33), (3, 5, 7), (2, 1, 1000), (1, 1), (70000,), (2, 40000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16"])
def test_axis_none_on_a_c_contiguous_array_runs_in_c_as_one_row(op, shape, dtype):
    """softmax(x) (axis=None: every element) on a C-contiguous array is one contiguous row:
    the C path takes it (it used to hand every axis=None call with ndim > 1 to Python, 10 us
    instead of 0.5 for a (1, 128) array), with the same bits as the general path. bfloat16
    (ml_dtypes) included: it used to go to Python, 5 us for 16 elements."""
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    x = (np.random.default_rng(3).standard_normal(shape) * 4).astype(dtype)
    y = fast(op, x)
    assert y is not NotImplemented
    assert y.shape == x.shape and y.dtype == x.dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, general(op, x))
    ref = getattr(scipy.special, op)(x.astype(np.float64), axis=None)
    half = x.dtype.itemsize == 2  # float16 results below 2^-24 round to 0 or a subnormal
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=1e-2 if half else 1e-5,
                               atol=(1e-2 if op == "log_softmax" else 2.0**-24) if half else 1e-12)
    out = np.full_like(x, -7.0)
    assert fast(op, x, out=out) is out
    np.testing.assert_array_equal(out, y)
    # The public call gives the same, along the last axis too.
    np.testing.assert_array_equal(getattr(fastsoftmax, op)(x), y)
    y_last = fast(op, x, axis=-1)
    assert y_last is not NotImplemented
    np.testing.assert_array_equal(y_last, general(op, x, axis=-1))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_axis_none_other_layouts_go_to_python(op):
    """axis=None on a layout that is not one contiguous row -- Fortran order, a strided view,
    a strided out, zero elements -- is the general path's call; its results are still right."""
    rng = np.random.default_rng(4)
    c = rng.standard_normal((6, 10)).astype(np.float32)
    f = np.asfortranarray(c)
    view = rng.standard_normal((6, 20)).astype(np.float32)[:, ::2]
    for x in (f, view):
        assert fast(op, x) is NotImplemented
        np.testing.assert_array_equal(getattr(fastsoftmax, op)(x), general(op, np.ascontiguousarray(x)))
    strided_out = np.empty((6, 20), np.float32)[:, ::2]
    assert fast(op, c, out=strided_out) is NotImplemented
    assert getattr(fastsoftmax, op)(c, out=strided_out) is strided_out
    np.testing.assert_array_equal(strided_out, general(op, c))
    empty = np.empty((3, 0), np.float32)
    assert fast(op, empty) is NotImplemented
    with pytest.raises(ValueError, match="zero-size"):
        getattr(fastsoftmax, op)(empty)


def test_axis_none_in_place_and_overlap():
    x = np.random.default_rng(5).standard_normal((8, 16)).astype(np.float32)
    expected = general("softmax", x.copy())
    y = x.copy()
    assert fast("softmax", y, out=y) is y  # out=x: in place, in C
    np.testing.assert_array_equal(y, expected)
    buf = np.random.default_rng(6).standard_normal(200).astype(np.float32)
    a, b = buf[:128].reshape(8, 16), buf[8:136].reshape(8, 16)
    assert fast("softmax", a, out=b) is NotImplemented  # partial overlap: Python raises
    with pytest.raises(ValueError, match="overlap"):
        fastsoftmax.softmax(a, out=b)


# ---- logsumexp ------------------------------------------------------------------------------

def fast_lse(x, axis=None, keepdims=False, out=None, dtype=None, b=None, return_sign=False, isa=None, threads=None):
    return _core.fast_logsumexp(x, axis, keepdims, out, dtype, b, return_sign, isa, threads)


def general_lse(x, axis=None, keepdims=False, threads=None):
    # isa= given: the C path declines and the Python path computes it.
    return fastsoftmax.logsumexp(x, axis, keepdims=keepdims, isa=_core.active_isa(), threads=threads)


def lse_rows(shape, dtype, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * 6).astype(dtype)
    flat = x.reshape(-1, shape[-1])
    if flat.shape[0] >= 6 and shape[-1] >= 3:  # rows for the exact path and the specials
        flat[1, 0] = np.nan
        flat[2, 1] = np.inf
        flat[3, :] = -np.inf
        flat[4, 2] = 1e30 if dtype == np.float32 else 1e300  # beyond the fast range
        flat[5, :2] = -np.inf  # -inf inside an ordinary row
    return x


@pytest.mark.parametrize("shape", [(1,), (7,), (4096,), (70000,), (6, 33), (8, 1000), (3, 2, 50), (2, 40000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_runs_in_c_with_the_general_paths_bits(shape, dtype, keepdims):
    """logsumexp(x) over the last axis or over all of a C-contiguous x is computed in C, with
    bitwise the result (values, dtype, shape, NumPy scalar for one row) of the general path;
    NaN, +inf, all -inf and beyond-the-fast-range rows included."""
    x = lse_rows(shape, dtype, 11)
    for axis in (None, -1, len(shape) - 1):
        with np.errstate(invalid="ignore"):
            want = general_lse(x, axis, keepdims)
        got = fast_lse(x, axis, keepdims)
        assert got is not NotImplemented
        assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(fastsoftmax.logsumexp(x, axis, keepdims=keepdims), want)
        for t in (1, 2):
            np.testing.assert_array_equal(fast_lse(x, axis, keepdims, threads=t), want)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = scipy.special.logsumexp(x.astype(np.float64), axis=-1, keepdims=keepdims)
    np.testing.assert_allclose(np.asarray(fast_lse(x, -1, keepdims), np.float64), ref,
                               rtol=2e-7 if dtype == np.float32 else 1e-15, atol=1e-6 if dtype == np.float32 else 1e-13)


def test_logsumexp_other_calls_go_to_python():
    """Everything but the common call is NotImplemented in C, and the public function still
    answers it: weights, out=, dtype=, return_sign, a tier, other axes, layouts that are not
    one row for axis=None, 16-bit and integer input, 0-d and empty arrays, non-ndarrays."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 10))
    assert fast_lse(x, b=np.ones(10)) is NotImplemented
    assert fast_lse(x, -1, out=np.empty(6)) is NotImplemented
    assert fast_lse(x, dtype=np.float32) is NotImplemented
    assert fast_lse(x, return_sign=True) is NotImplemented
    assert fast_lse(x, isa=_core.active_isa()) is NotImplemented
    assert fast_lse(x, 0) is NotImplemented
    assert fast_lse(x, (0, 1)) is NotImplemented
    assert fast_lse(x, -1, keepdims=1) is NotImplemented
    assert fast_lse(x, threads=0) is NotImplemented
    assert fast_lse(np.asfortranarray(x)) is NotImplemented
    assert fast_lse(x[:, ::2]) is NotImplemented
    assert fast_lse(x.astype(np.float16)) is NotImplemented
    assert fast_lse(np.arange(5)) is NotImplemented
    assert fast_lse(np.array(1.0)) is NotImplemented
    assert fast_lse(np.zeros((3, 0))) is NotImplemented
    assert fast_lse(list(x[0])) is NotImplemented
    np.testing.assert_allclose(fastsoftmax.logsumexp(x, axis=0), scipy.special.logsumexp(x, axis=0), rtol=1e-14)
    np.testing.assert_allclose(fastsoftmax.logsumexp(np.asfortranarray(x)), scipy.special.logsumexp(x), rtol=1e-14)
    np.testing.assert_allclose(fastsoftmax.logsumexp(x[:, ::2]), scipy.special.logsumexp(x[:, ::2]), rtol=1e-14)
    with pytest.raises(ValueError):
        fastsoftmax.logsumexp(x, threads=0 - 1)


def test_logsumexp_in_c_on_a_strided_last_axis():
    """A strided last axis (a view) is still the C path's: the rows are read strided, with the
    same bits as a contiguous copy."""
    x = np.random.default_rng(6).standard_normal((5, 300)).astype(np.float32)
    v = x[:, ::3]
    got = fast_lse(v, -1)
    assert got is not NotImplemented
    np.testing.assert_array_equal(got, fast_lse(np.ascontiguousarray(v), -1))
    r = x[0, ::-1]
    np.testing.assert_array_equal(fast_lse(r), fast_lse(np.ascontiguousarray(r)))
