"""The backward passes (csrc/kernels/backward.h): softmax_backward and log_softmax_backward
on every tier against a long-double reference with explicit bounds, bitwise identity across
thread counts, in place, and bad input (Python and the C API)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import _core

from conftest import require_or_skip

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
ISAS = [i for i in ("scalar", "avx2", "avx512", "neon") if i in _core.compiled_isas()]
LD = np.longdouble

# Unit roundoff of the compute type (float32 for the 16-bit types) and of the storage type.
U_COMPUTE = {4: 2.0**-24, 8: 2.0**-53, 2: 2.0**-24}
U_STORE = {"float32": 2.0**-24, "float64": 2.0**-53, "float16": 2.0**-11, "bfloat16": 2.0**-8}
# Below these magnitudes results are flushed (FTZ) or rounded to a subnormal of the storage type.
ABS_FLOOR = {"float32": 2.0**-125, "float64": 2.0**-1021, "float16": 2.0**-24, "bfloat16": 2.0**-125}
# Depth of the sums' additions (backward.h: <= 16 + A per accumulator lane in a block,
# log2 A in the tree, <= 11 cascade levels in a 2^16 chunk, <= 4 lane levels), the
# fma and the rounding to the compute type: each term's relative error is at most
# K * u. exp (exp.h): <= 2 ULP (float32) and <= 0.89 ULP (float64) relative, i.e. 4u, 2u.
K_SUM = 40
EXP_U = {4: 4, 8: 2, 2: 4}


def _data(rng, shape, dtype, log):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    y = (fs.log_softmax if log else fs.softmax)(x.astype(dtype), axis=-1)
    g = rng.standard_normal(shape).astype(dtype)
    return y, g


def _check(log, y, g, dx):
    name = "bfloat16" if y.dtype == BF16 else y.dtype.name
    uc, us = U_COMPUTE[y.dtype.itemsize], U_STORE[name]
    yl, gl = y.astype(np.float64).astype(LD), g.astype(np.float64).astype(LD)
    if log:
        e = np.exp(yl)
        s = gl.sum(-1, keepdims=True)
        ref = gl - e * s
        sum_err = K_SUM * uc * np.abs(gl).sum(-1, keepdims=True) + uc * np.abs(s)
        bound = e * sum_err + EXP_U[y.dtype.itemsize] * uc * e * np.abs(s) + uc * np.abs(ref)
    else:
        s = (gl * yl).sum(-1, keepdims=True)
        ref = yl * (gl - s)
        sum_err = K_SUM * uc * np.abs(gl * yl).sum(-1, keepdims=True) + uc * np.abs(s)
        bound = np.abs(yl) * sum_err + 2.01 * uc * np.abs(yl) * np.abs(gl - s)
    bound = bound * 1.01 + (us if us > uc else 0) * np.abs(ref) * 1.01 + ABS_FLOOR[name]
    err = np.abs(dx.astype(np.float64).astype(LD) - ref)
    worst = float(np.max(err / bound))
    assert worst <= 1.0, f"error {float(np.max(err))} exceeds its bound by {worst:.3g}x"
    return worst


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: "bfloat16" if d == BF16 else d.name)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 33), (4, 1000), (2, 4097), (1, 70001), (1, 200003)])
def test_accuracy_against_long_double(isa, dtype, log, shape):
    require_or_skip(isa)
    rng = np.random.default_rng(hash((isa, dtype.str, log, shape)) % 2**32)
    y, g = _data(rng, shape, dtype, log)
    fn = fs.log_softmax_backward if log else fs.softmax_backward
    dx = fn(y, g, isa=isa)
    assert dx.dtype == y.dtype and dx.shape == y.shape
    _check(log, y, g, dx)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_special_values(isa, log):
    require_or_skip(isa)
    # y from rows with -inf logits: softmax 0 / log-softmax -inf there, and a gradient of 0
    # must come out (e^-inf = 0), not NaN; NaN in g reaches every element of its row.
    x = np.array([[0.0, -np.inf, 1.0, -np.inf] * 5, [0.0] * 20], np.float32)
    y = (fs.log_softmax if log else fs.softmax)(x, axis=-1)
    g = np.ones_like(y)
    g[1, 3] = np.nan
    dx = (fs.log_softmax_backward if log else fs.softmax_backward)(y, g, isa=isa)
    assert np.all(np.isfinite(dx[0]))
    assert np.all(dx[0][np.isinf(x[0])] == (1.0 if log else 0.0))
    assert np.all(np.isnan(dx[1]))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: "bfloat16" if d == BF16 else d.name)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_bitwise_identical_across_thread_counts(isa, dtype, log):
    require_or_skip(isa)
    rng = np.random.default_rng(7)
    fn = fs.log_softmax_backward if log else fs.softmax_backward
    shapes = [(1, 3 * 2**16 + 5), (3, 2**17 + 1), (64, 1000)]
    for shape in shapes:
        y, g = _data(rng, shape, dtype, log)
        one = fn(y, g, isa=isa, threads=1)
        for t in (2, 3, 4, 8):
            assert np.array_equal(fn(y, g, isa=isa, threads=t).view(np.uint8), one.view(np.uint8)), (shape, t)


def test_tiers_agree_within_bounds_and_chunked_rows_match_whole():
    # One row of 2^16 + 1 elements: two chunks; its first chunk's sum alone must differ.
    rng = np.random.default_rng(3)
    y, g = _data(rng, (1, 2**16 + 1), np.dtype(np.float32), False)
    dx = fs.softmax_backward(y, g)
    assert _check(False, y, g, dx) <= 1.0
    assert not np.array_equal(dx[:, : 2**16], fs.softmax_backward(y[:, : 2**16], g[:, : 2**16]))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_axis_out_and_in_place(log):
    rng = np.random.default_rng(11)
    fn = fs.log_softmax_backward if log else fs.softmax_backward
    x = rng.standard_normal((6, 5, 7))
    for axis in (0, 1, 2, -1):
        y = (fs.log_softmax if log else fs.softmax)(x, axis=axis)
        g = rng.standard_normal(x.shape)
        ref = np.moveaxis(fn(np.moveaxis(y, axis, -1).copy(), np.moveaxis(g, axis, -1).copy()), -1, axis)
        assert np.array_equal(fn(y, g, axis=axis), ref)
        out = np.empty_like(y)
        assert fn(y, g, axis=axis, out=out) is out and np.array_equal(out, ref)
        g2 = g.copy()
        assert fn(y, g2, axis=axis, out=g2) is g2 and np.array_equal(g2, ref)  # in place over grad
        y2 = y.copy()
        assert fn(y2, g, axis=axis, out=y2) is y2 and np.array_equal(y2, ref)  # in place over y
    # Fortran order and a strided view go through the same kernel.
    y = fs.softmax(x, axis=-1) if not log else fs.log_softmax(x, axis=-1)
    g = rng.standard_normal(x.shape)
    ref = fn(y, g)
    assert np.array_equal(fn(np.asfortranarray(y), np.asfortranarray(g)), ref)
    big_y, big_g = np.zeros((6, 5, 14)), np.zeros((6, 5, 14))
    big_y[..., ::2], big_g[..., ::2] = y, g
    assert np.array_equal(fn(big_y[..., ::2], big_g[..., ::2]), ref)


def test_bad_input_is_refused_with_nothing_written():
    y = fs.softmax(np.zeros((2, 4), np.float32), axis=-1)
    g = np.ones((2, 4), np.float32)
    out = np.full((2, 4), 7.0, np.float32)
    with pytest.raises(TypeError, match="same dtype"):
        fs.softmax_backward(y, g.astype(np.float64), out=out)
    with pytest.raises(ValueError, match="same shape"):
        fs.softmax_backward(y, g[:, :3], out=out)
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        fs.softmax_backward(y.astype(np.int32), g.astype(np.int32))
    with pytest.raises(ValueError, match="out has shape"):
        fs.softmax_backward(y, g, out=np.empty((4, 2), np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        fs.softmax_backward(y, g, out=np.empty((2, 4), np.float64))
    with pytest.raises(ValueError, match="partially overlaps"):
        buf = np.ones(9, np.float32)
        fs.softmax_backward(buf[:8].reshape(2, 4), g, out=buf[1:].reshape(2, 4))
    with pytest.raises(ValueError, match="unknown isa"):
        fs.softmax_backward(y, g, isa="sse9")
    with pytest.raises(ValueError):
        fs.softmax_backward(y, g, threads=-1)
    with pytest.raises(ValueError, match="at least one dimension"):
        fs.softmax_backward(np.float32(1), np.float32(1))
    # the binding's own checks
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.softmax_backward(y, g, np.empty((4, 2), np.float32).T)
    ro = np.empty((2, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.softmax_backward(y, g, ro)
    buf = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="out must be y, g"):
        _core.softmax_backward(buf[:8].reshape(2, 4), g, buf[4:].reshape(2, 4))
    assert np.all(out == 7.0)


def test_empty_and_one_element_rows():
    y = np.empty((3, 0), np.float32)
    assert fs.softmax_backward(y, y).shape == (3, 0)
    y1 = np.ones((4, 1), np.float32)  # softmax of one element is 1; its gradient is 0
    assert np.all(fs.softmax_backward(y1, np.arange(4, dtype=np.float32).reshape(4, 1)) == 0)


# ---- the C API ----------------------------------------------------------------------------

LIB = ctypes.CDLL(fs.get_library())
STATUS_OK, STATUS_INVALID = 0, 1
C_TYPES = {"f32": (np.float32, ctypes.c_float), "f64": (np.float64, ctypes.c_double),
           "f16": (np.float16, ctypes.c_uint16), "bf16": (BF16, ctypes.c_uint16)}


def _cfn(op, dt):
    f = getattr(LIB, f"fastsoftmax_{op}_backward_{dt}")
    p = ctypes.POINTER(C_TYPES[dt][1])
    f.argtypes = [p, p, p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
    f.restype = ctypes.c_int
    return f, p


def _ptr(a, p):
    return a.ctypes.data_as(p)


@pytest.mark.parametrize("dt", list(C_TYPES))
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_capi_matches_python(op, dt):
    f, p = _cfn(op, dt)
    rng = np.random.default_rng(5)
    y, g = _data(rng, (3, 1001), np.dtype(C_TYPES[dt][0]), op == "log_softmax")
    dx = np.empty_like(y)
    assert f(_ptr(y, p), _ptr(g, p), _ptr(dx, p), 3, 1001, 0) == STATUS_OK
    ref = getattr(fs, f"{op}_backward")(y, g)
    assert np.array_equal(dx.view(np.uint8), ref.view(np.uint8))
    g2 = g.copy()
    assert f(_ptr(y, p), _ptr(g2, p), _ptr(g2, p), 3, 1001, 2) == STATUS_OK  # in place
    assert np.array_equal(g2.view(np.uint8), ref.view(np.uint8))


def test_capi_bad_arguments_touch_nothing():
    f, p = _cfn("softmax", "f32")
    y = np.full((2, 8), 0.125, np.float32)
    g = np.ones((2, 8), np.float32)
    out = np.full((2, 8), 3.0, np.float32)
    null = ctypes.cast(None, p)
    assert f(_ptr(y, p), _ptr(g, p), _ptr(out, p), 2, 8, -1) == STATUS_INVALID
    assert f(_ptr(y, p), _ptr(g, p), _ptr(out, p), 2, 8, 1025) == STATUS_INVALID
    assert f(null, _ptr(g, p), _ptr(out, p), 2, 8, 0) == STATUS_INVALID
    assert f(_ptr(y, p), null, _ptr(out, p), 2, 8, 0) == STATUS_INVALID
    assert f(_ptr(y, p), _ptr(g, p), null, 2, 8, 0) == STATUS_INVALID
    assert f(_ptr(y, p), _ptr(g, p), _ptr(out, p), 2**62, 2**62, 0) == STATUS_INVALID
    # dx partially over y or g
    assert f(_ptr(y, p), _ptr(g, p), ctypes.cast(y.ctypes.data + 4, p), 1, 8, 0) == STATUS_INVALID
    assert f(_ptr(y, p), _ptr(g, p), ctypes.cast(g.ctypes.data + 4, p), 1, 8, 0) == STATUS_INVALID
    assert np.all(out == 3.0) and np.all(y == 0.125) and np.all(g == 1.0)
    assert f(null, null, null, 0, 8, 0) == STATUS_OK  # empty: pointers unused
    assert f(_ptr(y, p), _ptr(g, p), _ptr(out, p), 2, 8, 0) == STATUS_OK
    assert np.all(out == 0.0)  # uniform y, uniform g: zero gradient


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_byte_swapped_inputs_like_native(dtype):
    # Non-native byte order is only a memory layout: bitwise the native arrays' gradients, in
    # the native dtype (as softmax returns for swapped input); a native out= is accepted.
    rng = np.random.default_rng(12)
    y = fs.softmax(rng.standard_normal((4, 70)).astype(dtype), axis=-1)
    g = rng.standard_normal((4, 70)).astype(dtype)
    ys, gs = y.astype(y.dtype.newbyteorder()), g.astype(g.dtype.newbyteorder())
    for fn in (fs.softmax_backward, fs.log_softmax_backward):
        want = fn(y, g)
        for a, b in ((ys, gs), (ys, g), (y, gs)):
            got = fn(a, b)
            assert got.dtype == want.dtype and np.array_equal(got, want), fn.__name__
        out = np.empty_like(want)
        assert fn(ys, gs, axis=0, out=out) is out and np.array_equal(out, fn(y, g, axis=0))
