"""float16 / bfloat16 rows (computed in float32 in registers) and mixed precision.

The accuracy of every 16-bit kernel against a float64 reference is in test_accuracy.py;
here: that a 16-bit kernel is exactly "the float32 kernel, then one rounding", mixed
precision through dtype= and out=, logsumexp and the statistics API, special values, the
C API, and that the package works without ml_dtypes.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.special

import fastsoftmax
from conftest import HALF_DTYPES, KERNELS, kernel_id, require_or_skip, run_kernel, usable_isas
from helpers import EXP16_SOFTMAX_BOUND, round_to, ulp

HALF_KERNELS = [k for k in KERNELS if k["dtype"] in HALF_DTYPES]
LENGTHS = (1, 7, 16, 33, 100, 1000, 4097, (1 << 16) + 3)


def half_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def rows(dtype, n, seed=0, scale=4.0):
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(dtype)


# Softmax with 16-bit results runs its exps with Exp16 (helpers.EXP16_SOFTMAX_BOUND), here
# against the float32 kernel's result, whose own error is below 2^-18 for these rows
# (|x_i - max x| < 40).
EXP16_VS_FLOAT32 = EXP16_SOFTMAX_BOUND + 2.0**-18


@pytest.mark.parametrize("k", [k for k in HALF_KERNELS if k["op"] == "log_softmax"], ids=kernel_id)
def test_half_log_softmax_kernel_is_the_float32_kernel_rounded_once(k):
    """Conversion in registers changes nothing but the final rounding: the 16-bit kernel
    gives bitwise the float32 kernel's result (same algorithm, same tier) rounded to
    nearest even -- NumPy's float32 -> float16 cast; for bfloat16 our own float64 rounding."""
    require_or_skip(k["isa"])
    dt = half_dtype(k["dtype"])
    for n in LENGTHS:
        x = rows(dt, n, seed=n)
        y = run_kernel(k, x)
        y32 = run_kernel(k, x.astype(np.float32))
        want = round_to(y32.astype(np.float64), dt)
        got = y.astype(np.float64)
        assert y.dtype == dt
        assert np.array_equal(got, want, equal_nan=True), f"n={n}: {kernel_id(k)} differs from float32 + rounding"


@pytest.mark.parametrize("k", [k for k in HALF_KERNELS if k["op"] == "softmax"], ids=kernel_id)
def test_half_softmax_kernel_is_the_float32_kernel_within_the_exp16_bound(k):
    """16-bit softmax computes its exps to what a 16-bit result keeps (Exp16): the result is
    the rounding of a value within EXP16_VS_FLOAT32 (relative) of the float32 kernel's, and
    so within 1 ulp of the float32 kernel's result rounded."""
    require_or_skip(k["isa"])
    dt = half_dtype(k["dtype"])
    for n in LENGTHS:
        x = rows(dt, n, seed=n)
        y = run_kernel(k, x).astype(np.float64)
        y32 = run_kernel(k, x.astype(np.float32)).astype(np.float64)
        lo = round_to(y32 * (1 - EXP16_VS_FLOAT32), dt)
        hi = round_to(y32 * (1 + EXP16_VS_FLOAT32), dt)
        assert np.all((y >= lo) & (y <= hi)), f"n={n}: {kernel_id(k)} outside the Exp16 bound of the float32 kernel"
        want = round_to(y32, dt)
        assert np.all(np.abs(y - want) <= ulp(want, dt)), f"n={n}: {kernel_id(k)} more than 1 ulp from float32"


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_half_results_are_within_one_ulp_of_the_exact_result(op, dtype):
    """The default call: softmax within 1 ulp of the output type of the exact result; a 2-D
    batch of rows along axis 0 (non-last axis) gives the same bits as along axis 1."""
    dt = half_dtype(dtype)
    fn = getattr(fastsoftmax, op)
    x = rows(dt, (64, 300), seed=5)
    y = fn(x, axis=1)
    x64 = x.astype(np.float64)
    sh = x64 - x64.max(axis=1, keepdims=True)
    ref = np.exp(sh) / np.exp(sh).sum(axis=1, keepdims=True) if op == "softmax" else \
        sh - np.log(np.exp(sh).sum(axis=1, keepdims=True))
    r16 = round_to(ref, dt)
    err = np.abs(y.astype(np.float64) - r16) / ulp(r16, dt)
    if op == "softmax":
        assert err.max() <= 1.0, err.max()
    else:  # log_softmax near 0: float32's absolute error, 4 eps32 * scale, can exceed an ulp there
        scale = np.maximum(1.0, np.maximum(np.abs(x64), np.abs(ref - x64)))
        assert np.all(np.abs(y.astype(np.float64) - r16) <= ulp(r16, dt) + 4 * 2.0**-23 * scale)
    assert np.array_equal(fn(np.ascontiguousarray(x.T), axis=0), y.T)


MIXED = [("float16", "float32"), ("float16", "float64"), ("float32", "float16"), ("float64", "float16"),
         ("float16", "bfloat16"), ("bfloat16", "float16"), ("bfloat16", "float32"), ("float32", "bfloat16"),
         ("float64", "bfloat16"), ("bfloat16", "float64")]


def available(*names):
    return all(n in HALF_DTYPES or n in ("float32", "float64") for n in names)


@pytest.mark.parametrize("src, dst", [m for m in MIXED if available(*m)], ids=lambda v: str(v))
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_mixed_precision_dtype_and_out(op, src, dst):
    """dtype= and out= of another float dtype: computed in the more precise of the two
    (16-bit <-> 16-bit in float32) and rounded once, as a NumPy ufunc's loop selection."""
    sdt, ddt = half_dtype(src), half_dtype(dst)
    fn = getattr(fastsoftmax, op)
    x = rows(sdt, (3, 777), seed=9)
    rank = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}
    compute = src if rank[src] >= rank[dst] else dst
    compute = "float32" if rank[compute] == 1 and src != dst else compute
    want = round_to(fn(x.astype(half_dtype(compute)), axis=1).astype(np.float64), ddt)

    y = fn(x, axis=1, dtype=ddt)
    assert y.dtype == ddt and np.array_equal(y.astype(np.float64), want)
    out = np.full(x.shape, 7, ddt)
    assert fn(x, axis=1, out=out) is out
    assert np.array_equal(out.astype(np.float64), want)
    out2 = np.full(x.shape, 7, ddt)
    assert fn(x, axis=1, out=out2, dtype=ddt) is out2 and np.array_equal(out2, out)
    # A non-last axis and a strided out take the same path.
    outT = np.full(x.T.shape, 7, ddt)
    fn(x.T, axis=0, out=outT)
    assert np.array_equal(outT.T.astype(np.float64), want)


def test_mixed_precision_longdouble():
    x = rows(np.float16, 50, seed=3)
    y = fastsoftmax.softmax(x, dtype=np.longdouble)
    assert y.dtype == np.longdouble
    ref = np.exp(x.astype(np.longdouble) - x.max())
    assert np.allclose(y, ref / ref.sum(), rtol=1e-15, atol=0)
    out = np.empty(50, np.float16)
    fastsoftmax.softmax(x.astype(np.longdouble), out=out)
    assert np.array_equal(out, y.astype(np.float16))


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_special_values(dtype):
    """NaN, +-inf, all -inf rows, float16 subnormal inputs, the largest finite values:
    SciPy's semantics, computed exactly."""
    dt = half_dtype(dtype)
    big = 65504.0 if dtype == "float16" else 3.3895313892515355e38
    cases = {
        "nan": [1.0, np.nan, 2.0],
        "+inf": [1.0, np.inf, 2.0],
        "-inf": [0.0, -np.inf, 0.0],
        "all -inf": [-np.inf] * 3,
        "big": [big, big],
        "big and -big": [big, -big],
        "subnormal inputs": [2.0**-24, 0.0, -(2.0**-24)],
    }
    for name, x in cases.items():
        xa = np.array(x, np.float64).astype(dt)
        for op in ("softmax", "log_softmax"):
            with np.errstate(all="ignore"):  # SciPy on the float64 values is the reference
                ref64 = getattr(scipy.special, op)(xa.astype(np.float64))
                want16 = round_to(ref64, dt)
                # log_softmax of huge values: float32's absolute error 4 eps32 max|x| (DESIGN §4)
                tol = np.where(np.isfinite(ref64), 4 * 2.0**-23 * np.max(np.abs(xa.astype(np.float64)))
                               if op == "log_softmax" and name.startswith("big") else 0.0, 0.0)
                for isa in ("scalar", "avx2", "avx512"):
                    if isa not in usable_isas():
                        continue
                    for alg in fastsoftmax.ALGORITHMS:
                        got = getattr(fastsoftmax, op)(xa, algorithm=alg, isa=isa).astype(np.float64)
                        same = np.isnan(got) == np.isnan(want16)
                        same &= np.isnan(got) | (got == want16) | (np.abs(got - want16) <= ulp(want16, dt) + tol)
                        assert same.all(), (name, op, isa, alg, got, want16)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_logsumexp_and_stats(dtype):
    """logsumexp reads 16-bit input natively (result in the input dtype, one rounding of the
    float64 log-sum-exp); the statistics of 16-bit rows are those of their float32 values."""
    dt = half_dtype(dtype)
    x = rows(dt, (5, 3000), seed=2)
    lse = fastsoftmax.logsumexp(x, axis=1)
    assert lse.dtype == dt
    want = fastsoftmax.logsumexp(x.astype(np.float64), axis=1)
    r16 = round_to(want, dt)
    assert np.all(np.abs(lse.astype(np.float64) - r16) <= ulp(r16, dt))
    a = fastsoftmax.softmax_stats(x, axis=1)
    b = fastsoftmax.softmax_stats(x.astype(np.float32), axis=1)
    assert np.array_equal(a.m, b.m) and np.array_equal(a.e, b.e)
    # The statistics API keeps float32's exp (so that merged statistics and logsumexp stay
    # float32-accurate): pass 2 from them is the float32 two-pass rounded once, and within
    # 1 ulp of the one-shot 16-bit softmax (which uses Exp16).
    y = fastsoftmax.softmax_from_stats(x, a)
    want = round_to(fastsoftmax.softmax(x.astype(np.float32), axis=1, algorithm="two-pass").astype(np.float64), dt)
    assert y.dtype == dt and np.array_equal(y.astype(np.float64), want)
    one_shot = fastsoftmax.softmax(x, axis=1, algorithm="two-pass").astype(np.float64)
    assert np.all(np.abs(one_shot - want) <= ulp(want, dt))


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_long_rows_do_not_depend_on_threads(dtype):
    dt = half_dtype(dtype)
    x = rows(dt, (1 << 18) + 5, seed=4)
    for alg in fastsoftmax.ALGORITHMS:
        ys = [fastsoftmax.softmax(x, algorithm=alg, threads=t) for t in (1, 2, 3)]
        assert all(np.array_equal(ys[0], y) for y in ys[1:]), alg


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_c_api_half(dtype):
    """fastsoftmax_softmax_f16 / _bf16 over uint16 bit patterns give the Python results."""
    lib = ctypes.CDLL(fastsoftmax.get_library())
    dt = half_dtype(dtype)
    suffix = "f16" if dtype == "float16" else "bf16"
    x = rows(dt, (4, 1000), seed=8)
    for op in ("softmax", "log_softmax"):
        fn = getattr(lib, f"fastsoftmax_{op}_{suffix}")
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t,
                       ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int]
        y = np.zeros_like(x)
        status = fn(x.ctypes.data, y.ctypes.data, 4, 1000, 1000, 1000, 0, 1)
        assert status == 0
        assert np.array_equal(y.view(np.uint16), getattr(fastsoftmax, op)(x, axis=1).view(np.uint16))


def test_package_works_without_ml_dtypes():
    """ml_dtypes is optional: importing fastsoftmax does not import it, and float16 (and
    everything else) works when it cannot be imported at all."""
    script = textwrap.dedent("""
        import sys
        sys.modules["ml_dtypes"] = None  # import ml_dtypes -> ImportError
        import numpy as np
        import fastsoftmax
        y = fastsoftmax.softmax(np.array([1, 2, 3], np.float16))
        assert y.dtype == np.float16, y.dtype
        assert fastsoftmax.logsumexp(np.zeros(4, np.float16)).dtype == np.float16
        assert any(k["dtype"] == "bfloat16" for k in fastsoftmax.kernels())
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import sys, fastsoftmax; print('ml_dtypes' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stdout + proc.stderr
