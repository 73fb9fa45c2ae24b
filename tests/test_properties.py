"""Property-based tests (hypothesis): invariants of softmax that hold for any input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastsoftmax
from fastsoftmax import _core
from conftest import usable_isas
from helpers import LD

OPS = ("softmax", "log_softmax")
FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax}
DTYPES = (np.float32, np.float64)
RUNNABLE_ISAS = list(usable_isas())  # under FASTSOFTMAX_ISA, the tiers up to the cap

SETTINGS = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])


def rel_base(dt):
    return 6e-7 if np.dtype(dt) == np.float32 else 2e-15


def gap_coef(dt):
    return 2.0**-24 if np.dtype(dt) == np.float32 else 2.0**-53


@st.composite
def rows(draw, dtype, lo=-100.0, hi=100.0):
    """A 1-D row: short ones element by element, long ones from a seeded generator."""
    if draw(st.booleans()):
        width = 32 if np.dtype(dtype) == np.float32 else 64
        return draw(arrays(dtype, st.integers(1, 200),
                           elements=st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False)))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 5000))
    scale = draw(st.sampled_from([0.01, 1.0, 10.0, 100.0]))
    shift = draw(st.floats(lo, hi))
    x = np.random.default_rng(seed).standard_normal(n) * scale + shift
    return np.clip(x, lo, hi).astype(dtype)


def softmax_bound(x: np.ndarray):
    """(reference softmax in longdouble, per-element relative bound) of a finite row."""
    xl = x.astype(LD)
    gap = xl.max() - xl
    e = np.exp(-gap)
    ref = e / e.sum()
    return ref, rel_base(x.dtype) + (gap.astype(np.float64) + np.log2(x.size)) * gap_coef(x.dtype)


algorithms = st.sampled_from(fastsoftmax.ALGORITHMS)
isas = st.sampled_from(RUNNABLE_ISAS)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@SETTINGS
@given(data=st.data(), algorithm=algorithms, isa=isas)
def test_rows_sum_to_one(dtype, data, algorithm, isa):
    x = data.draw(rows(dtype, -1000.0, 1000.0))
    y = fastsoftmax.softmax(x, algorithm=algorithm, isa=isa)
    ref, rel = softmax_bound(x)
    acc = LD if np.dtype(dtype) == np.float64 else np.float64
    dev = abs(float(y.astype(acc).sum() - 1))
    tol = float(np.sum(ref.astype(np.float64) * rel)) + x.size * float(np.finfo(dtype).tiny)
    assert dev <= tol, f"sum - 1 = {dev:.3e} > {tol:.3e} (n={x.size})"
    assert np.all(y >= 0) and np.all(y <= 1)


@st.composite
def dyadic_rows(draw):
    """k/8 with |k| <= 800 and an integer shift |c| <= 1000: x + c is exact in float32."""
    k = draw(arrays(np.int64, st.integers(1, 300), elements=st.integers(-800, 800)))
    c = draw(st.integers(-1000, 1000))
    return k / 8.0, float(c)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@SETTINGS
@given(xc=dyadic_rows(), algorithm=algorithms, isa=isas)
def test_adding_a_constant_does_not_change_softmax(dtype, xc, algorithm, isa):
    x64, c = xc
    x = x64.astype(dtype)
    xs = (x64 + c).astype(dtype)
    assert np.array_equal(xs.astype(np.float64) - c, x.astype(np.float64))  # the shift is exact
    y0 = fastsoftmax.softmax(x, algorithm=algorithm, isa=isa)
    y1 = fastsoftmax.softmax(xs, algorithm=algorithm, isa=isa)
    ref, rel = softmax_bound(x)  # the same exact softmax for both rows
    ref = ref.astype(np.float64)
    tol = 2 * rel * ref + 2 * float(np.finfo(dtype).tiny)
    diff = np.abs(y0.astype(np.float64) - y1.astype(np.float64))
    assert np.all(diff <= tol), f"max |diff| {diff.max():.3e} at {np.argmax(diff / tol)}"
    # log_softmax shifts likewise: both are x - logsumexp(x), within 4 eps * scale each.
    l0 = fastsoftmax.log_softmax(x, algorithm=algorithm, isa=isa)
    l1 = fastsoftmax.log_softmax(xs, algorithm=algorithm, isa=isa)
    eps = float(np.finfo(dtype).eps)
    lse = float(np.log(np.sum(np.exp(x.astype(LD) - x.astype(LD).max()))) + x.astype(LD).max())
    scale0 = np.maximum(np.maximum(1.0, np.abs(x64)), abs(lse))
    scale1 = np.maximum(np.maximum(1.0, np.abs(x64 + c)), abs(lse + c))
    assert np.all(np.abs(l0.astype(np.float64) - l1.astype(np.float64)) <= 4 * eps * (scale0 + scale1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@SETTINGS
@given(data=st.data(), algorithm=algorithms, isa=isas)
def test_log_softmax_is_log_of_softmax(dtype, data, algorithm, isa):
    x = data.draw(rows(dtype, -200.0, 200.0))
    s = fastsoftmax.softmax(x, algorithm=algorithm, isa=isa)
    ls = fastsoftmax.log_softmax(x, algorithm=algorithm, isa=isa)
    ok = np.isfinite(s) & (s >= np.finfo(dtype).tiny)
    assert ok.any()  # the largest element's softmax is >= 1/n
    acc = LD if np.dtype(dtype) == np.float64 else np.float64
    log_s = np.log(s[ok].astype(acc)).astype(np.float64)
    _, rel = softmax_bound(x)
    xl = x.astype(LD)
    lse = float(np.log(np.sum(np.exp(xl - xl.max()))) + xl.max())
    eps = float(np.finfo(dtype).eps)
    scale = np.maximum(np.maximum(1.0, np.abs(x[ok].astype(np.float64))), abs(lse))
    # |log(s(1+d)) - log s| <= |d|/(1-|d|); log_softmax is within 4 eps * scale.
    tol = 1.01 * rel[ok] + 4 * eps * scale
    diff = np.abs(ls[ok].astype(np.float64) - log_s)
    assert np.all(diff <= tol), f"max |diff| {diff.max():.3e} (tol {tol[np.argmax(diff / tol)]:.3e})"


@st.composite
def matrices(draw, dtype):
    seed = draw(st.integers(0, 2**32 - 1))
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 300)))
    scale = draw(st.sampled_from([1.0, 30.0, 500.0]))
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
@pytest.mark.parametrize("op", OPS)
@SETTINGS
@given(data=st.data(), isa=isas)
def test_layouts_are_bitwise_identical(op, algorithm, data, isa):
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(matrices(dtype))
    axis = data.draw(st.sampled_from([0, 1, -1, None, (0, 1)]))
    fn = FUNCS[op]
    want = fn(np.ascontiguousarray(x), axis=axis, algorithm=algorithm, isa=isa)
    step = data.draw(st.integers(2, 3))
    big = np.zeros((x.shape[0] * step, x.shape[1] * step), dtype)
    big[::step, ::step] = x
    rev = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    for name, v in [("F", np.asfortranarray(x)), ("strided", big[::step, ::step]), ("negative strides", rev)]:
        assert np.array_equal(v, x)
        got = fn(v, axis=axis, algorithm=algorithm, isa=isa)
        assert np.array_equal(got, want), f"{name} layout differs from C order (axis={axis})"
        out = np.empty_like(v)  # same layout as v (F / C)
        assert fn(v, axis=axis, algorithm=algorithm, isa=isa, out=out) is out
        assert np.array_equal(out, want), f"{name} layout with out= differs (axis={axis})"
