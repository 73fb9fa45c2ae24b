"""Comparison helpers shared by the test modules (SciPy and longdouble references)."""

from __future__ import annotations

import tracemalloc
import warnings
from typing import Callable, Optional, Tuple

import numpy as np
import scipy.special

AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError
LD = np.longdouble


def scipy_fn(op: str) -> Callable:
    return scipy.special.softmax if op == "softmax" else scipy.special.log_softmax


def run_scipy(op: str, x, **kw) -> Tuple[Optional[object], Optional[BaseException]]:
    """SciPy's result (or exception), with its overflow/invalid warnings silenced."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scipy_fn(op)(x, **kw), None
    except Exception as e:  # noqa: BLE001 - we compare the type
        return None, e


def expected_exception(e: BaseException) -> type:
    """The exception type our function must raise where SciPy raises `e`.

    NumPy's AxisError is kept as is; NumPy-internal subclasses of TypeError/ValueError
    (UFuncTypeError, ...) map to the builtin base, which is what the contract is about.
    """
    if isinstance(e, AxisError):
        return AxisError
    for base in (TypeError, ValueError, IndexError):
        if isinstance(e, base):
            return base
    return type(e)


def is_bfloat16(dtype) -> bool:
    return np.dtype(dtype).name == "bfloat16"


def finfo(dtype):
    """np.finfo, or ml_dtypes.finfo for bfloat16 (which NumPy's finfo rejects)."""
    if is_bfloat16(dtype):
        import ml_dtypes

        return ml_dtypes.finfo(ml_dtypes.bfloat16)
    return np.finfo(dtype)


def round_to(a, dtype) -> np.ndarray:
    """float64 (or longdouble) a rounded once, to nearest even, to dtype; returned as
    float64 values. (ml_dtypes rounds float64 to bfloat16 through float32: twice.)"""
    a = np.asarray(a, dtype=np.float64)
    if not is_bfloat16(dtype):
        with np.errstate(over="ignore"):
            return a.astype(dtype).astype(np.float64)
    mant, emin, emax = 7, -126, 127
    with np.errstate(all="ignore"):
        e = np.floor(np.log2(np.maximum(np.abs(a), 2.0**emin)))  # binade (subnormals: emin)
        step = np.exp2(e - mant)
        q = np.rint(a / step) * step  # exact: a / step has at most 53 bits
        big = np.abs(q) > (2.0 - 2.0**-mant) * 2.0**emax
        return np.where(~np.isfinite(a), a, np.where(big, np.copysign(np.inf, a), q))


def ulp(r, dtype) -> np.ndarray:
    """The spacing of a 16-bit float type at |r| (r already in that type), as float64."""
    mant, emin = (7, -126) if is_bfloat16(dtype) else (10, -14)
    return np.exp2(np.floor(np.log2(np.maximum(np.abs(np.asarray(r, np.float64)), 2.0**emin))) - mant)


def tolerances(op: str, dtype, x=None) -> Tuple[float, float]:
    """(rtol, atol) for comparing with SciPy: both are within a few ulp of the truth."""
    dt = np.dtype(dtype)
    if dt == np.float16:
        rtol = 4e-3
    elif is_bfloat16(dt):
        rtol = 3e-2
    elif dt == np.float32:
        rtol = 2e-6
    else:
        rtol = 1e-13 if dt == np.float64 else 1e-15
    fi = finfo(dt)
    if op == "softmax":
        return rtol, 2 * float(fi.tiny)
    scale = 1.0
    if x is not None:
        xa = np.asarray(x, dtype=np.float64)
        finite = xa[np.isfinite(xa)]
        if finite.size:
            scale = max(1.0, float(np.max(np.abs(finite))))
    return rtol, 8 * float(fi.eps) * scale


def assert_same_as_scipy(op: str, ours, theirs, x=None, rtol=None, atol=None, what: str = "") -> None:
    """Same type, dtype, shape, NaN/±inf pattern, and close finite values."""
    assert type(ours) is type(theirs), f"{what}: result type {type(ours)} != SciPy's {type(theirs)}"
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != SciPy's {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != SciPy's {b.shape}"
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN pattern {a} vs SciPy {b}"
    assert np.array_equal(np.isposinf(a), np.isposinf(b)), f"{what}: +inf pattern {a} vs SciPy {b}"
    assert np.array_equal(np.isneginf(a), np.isneginf(b)), f"{what}: -inf pattern {a} vs SciPy {b}"
    r, t = tolerances(op, a.dtype, x)
    rtol = r if rtol is None else rtol
    atol = t if atol is None else atol
    fin = np.isfinite(b)
    ok = np.isclose(a[fin].astype(np.float64 if a.dtype != LD else LD),
                    b[fin].astype(np.float64 if b.dtype != LD else LD), rtol=rtol, atol=atol)
    assert ok.all(), f"{what}: values differ from SciPy beyond rtol={rtol}, atol={atol}:\n{a}\n{b}"


def compare_with_scipy(fn: Callable, op: str, x, what: str = "", allow_warnings: bool = False, **kw):
    """Call fn(x, **kw) and SciPy; same exception type, or the same result.

    With allow_warnings, RuntimeWarnings from our call are ignored (SciPy emits the same
    overflow/invalid warnings for those inputs); otherwise they fail the test.
    """
    import pytest

    theirs, exc = run_scipy(op, x, **kw)
    with warnings.catch_warnings():
        if allow_warnings:
            warnings.simplefilter("ignore", RuntimeWarning)
        if exc is not None:
            with pytest.raises(expected_exception(exc)):
                fn(x, **kw)
            return None
        ours = fn(x, **kw)
    assert_same_as_scipy(op, ours, theirs, x=x, what=what)
    return ours


def exact(op: str, x, axis=-1) -> np.ndarray:
    """Longdouble softmax/log_softmax of finite x along one axis (the unrounded truth)."""
    xl = np.asarray(x).astype(LD)
    mx = np.max(xl, axis=axis, keepdims=True)
    sh = xl - mx
    s = np.sum(np.exp(sh), axis=axis, keepdims=True)
    return sh - np.log(s) if op == "log_softmax" else np.exp(sh) / s


# Softmax with a 16-bit result computes its exps with Exp16 (passes.h): relative error
# <= 2^-13.25 each (tools/derive_exp_16.py), two per result (the element and the sum), and
# the single ln2 constant's factor between elements of a row (<= 2^-20).
EXP16_SOFTMAX_BOUND = 2 * 2.0**-13.25 + 2.0**-20


def assert_correctly_rounded_within(op: str, y: np.ndarray, x_compute: np.ndarray, axis=-1) -> None:
    """y (any float dtype) is what rounding a result of x_compute's dtype that meets the
    DESIGN section 4 bound, once, to y.dtype can give (for softmax into a 16-bit result,
    the bound widened by EXP16_SOFTMAX_BOUND).

    The compute-dtype result lies in [ref - b, ref + b]; rounding is monotonic, so y must lie
    in [round(ref - b), round(ref + b)]. For y.dtype == compute dtype this is the bound itself.
    """
    cdt = x_compute.dtype
    fi = finfo(cdt)
    ref = exact(op, x_compute, axis)
    xl = x_compute.astype(LD)
    if op == "softmax":
        gap = np.max(xl, axis=axis, keepdims=True) - xl
        log2n = LD(np.log2(max(x_compute.shape[axis], 1)))
        rel = (6e-7 if cdt == np.float32 else 2e-15) + (gap + log2n) * LD(2.0**-24 if cdt == np.float32 else 2.0**-53)
        if np.dtype(y.dtype).itemsize == 2:
            rel = rel + LD(EXP16_SOFTMAX_BOUND)
        rel = rel + LD(1e-12) * rel  # the bracket's own rounding
        b = ref * rel + LD(fi.tiny)
    else:
        lse = np.max(xl, axis=axis, keepdims=True) + np.log(
            np.sum(np.exp(xl - np.max(xl, axis=axis, keepdims=True)), axis=axis, keepdims=True))
        scale = np.maximum(np.maximum(LD(1), np.abs(xl)), np.abs(lse))
        b = LD(4 * fi.eps) * scale * LD(1 + 1e-12)
    lo = round_to(ref - b, y.dtype)
    hi = round_to(ref + b, y.dtype)
    y64 = np.asarray(y).astype(np.float64)
    ok = (y64 >= lo) & (y64 <= hi)
    assert ok.all(), (f"{op}: {int((~ok).sum())} elements outside the rounded bound; first: "
                      f"y={y[~ok][:5]} allowed [{lo[~ok][:5]}, {hi[~ok][:5]}]")


def peak_traced(call):
    """Peak memory NumPy and Python allocate during call(), beyond what was live before;
    returns (bytes, call's result)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res = call()
        return tracemalloc.get_traced_memory()[1] - base, res
    finally:
        tracemalloc.stop()
