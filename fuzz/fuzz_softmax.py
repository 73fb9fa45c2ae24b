"""Fuzz harness for fastsoftmax's public API (softmax / log_softmax).

Every input (a byte string) is decoded into one call: shape, strides (negative and zero too),
alignment, byte order, dtype, values (±inf, NaN, denormals, ±float max, the kernels' range
boundaries), axis, ``out`` (fresh, strided, in place, aliasing ``x``, wrong), algorithm and
tier. The call must either

* succeed with SciPy's result dtype, shape and NaN/±inf pattern, values within the accuracy
  bounds of README.md against a long-double reference of SciPy's formula (computed on the
  input converted to the result dtype first, as documented), leaving ``x`` and everything
  around ``out`` untouched; or
* raise an exception that docs/bad-input.md lists for that input, leaving ``x`` and ``out``
  untouched.

Anything else (a wrong value, an undocumented exception, a crash) is a failure.

Drivers (the checks are the same):

    python fuzz/fuzz_softmax.py -max_total_time=60            # atheris, coverage-guided
    python fuzz/fuzz_softmax.py --driver random --seconds 60  # no atheris: random inputs
    python fuzz/fuzz_softmax.py CRASH_FILE ...                # replay saved inputs

The decoder is our own (not atheris.FuzzedDataProvider), so an input saved by either
driver replays with either. A failure prints the decoded case; found bugs become
regression tests in tests/ (see tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import sys
import time
import traceback
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np

import fastsoftmax
from fastsoftmax._api import _cast, _compute_dtype, _float_rank

try:  # bfloat16 input and out (optional, as for the package)
    import ml_dtypes

    BF16: Optional[np.dtype] = np.dtype(ml_dtypes.bfloat16)
except ImportError:
    BF16 = None

LD = np.longdouble
MAX_ELEMENTS = 1 << 16  # per array, usually: keeps an execution in the millisecond range
# Now and then a larger one: calls from 2^17 elements use the thread pool, and rows longer
# than 2^16 are split into chunks whose statistics are merged (csrc/softmax.cpp).
MAX_ELEMENTS_LARGE = 3 << 18


# ---- decoding bytes into choices ------------------------------------------------------------

class Draw:
    """Reads choices from a byte string. Past its end every draw reads zeros: the first
    option, the low end of a range, chance() True. So any byte string is a valid case."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> int:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return int.from_bytes(chunk, "little") if chunk else 0

    def int(self, lo: int, hi: int) -> int:
        """An int in [lo, hi]."""
        span = hi - lo
        if span <= 0:
            return lo
        return lo + self._take((span.bit_length() + 7) // 8) % (span + 1)

    def chance(self, p: float) -> bool:
        return self._take(1) < p * 256

    def choice(self, options: Sequence):
        return options[self.int(0, len(options) - 1)]

    def weighted(self, options: Sequence[Tuple[object, int]]):
        total = sum(w for _, w in options)
        r = self.int(0, total - 1)
        for value, w in options:
            if r < w:
                return value
            r -= w
        raise AssertionError("unreachable")


# ---- the case ----------------------------------------------------------------------------------

class Case:
    """One call: fn(x, axis=..., out=..., algorithm=..., isa=...) and how x/out were made."""

    def __init__(self):
        self.op = "softmax"
        self.x = None
        self.kwargs = {}
        self.notes: List[str] = []
        self.holder = None         # out is holder[..., 1]; holder[..., 0] must stay SENTINEL
        self.shared_buffer = None  # x and out are views of one buffer (aliasing cases)

    def describe(self) -> str:
        x = self.x
        lines = [f"op={self.op}"]
        if isinstance(x, np.ndarray):
            lines.append(f"x: dtype={x.dtype.str} shape={x.shape} strides={x.strides} "
                         f"aligned={x.flags.aligned} writeable={x.flags.writeable}")
            if x.dtype.kind in "fiu" and x.size:
                with np.printoptions(threshold=40, edgeitems=6, precision=9):
                    lines.append(f"x values: {x!r}")
        else:
            lines.append(f"x: {type(x).__name__} {x!r:.300}")
        for k, v in self.kwargs.items():
            if isinstance(v, np.ndarray):
                lines.append(f"{k}: ndarray dtype={v.dtype.str} shape={v.shape} strides={v.strides} "
                             f"writeable={v.flags.writeable}")
            else:
                lines.append(f"{k}={v!r}")
        lines += self.notes
        return "\n".join(lines)


SENTINEL = -7.25

FLOAT_TYPES = [np.float32, np.float64, np.float16, np.longdouble]
INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def draw_dtype(d: Draw):
    return d.weighted([
        (np.float32, 12), (np.float64, 12), (np.float16, 2), (np.longdouble, 1),
        (np.int8, 1), (np.uint8, 1), (np.int16, 1), (np.uint16, 1), (np.int32, 1), (np.uint32, 1),
        (np.int64, 1), (np.uint64, 1), ("bfloat16", 2 if BF16 is not None else 0),
        ("bool", 1), ("complex64", 1), ("complex128", 1), ("object", 1), ("str", 1), ("bytes", 1),
        ("datetime64", 1), ("timedelta64", 1), ("structured", 1),
    ])


def draw_shape(d: Draw) -> Tuple[int, ...]:
    ndim = d.weighted([(0, 1), (1, 4), (2, 4), (3, 2), (4, 1)])
    large = ndim and d.chance(0.05)
    shape = []
    for _ in range(ndim):
        lo, hi = d.weighted([((1, 9), 12), ((0, 0), 1), ((10, 130), 4), ((130, 3000), 2), ((3000, 40000), 1),
                             ((1 << 16, 3 << 17), 1 if large else 0)])
        shape.append(d.int(lo, hi))
    # Cap the size by shrinking the largest axes. A zero-length axis counts as 1: an empty
    # array of shape (104, 39909, 92, 0) is cheap, but its tolist() (the "list" layout) or a
    # broadcast view of it is not.
    while math.prod(max(1, n) for n in shape) > (MAX_ELEMENTS_LARGE if large else MAX_ELEMENTS):
        i = int(np.argmax(shape))
        shape[i] = max(1, shape[i] // 2)
    return tuple(shape)


def specials(dtype) -> List[float]:
    fi = np.finfo(dtype if np.dtype(dtype) != LD else np.float64)
    return [
        np.nan, np.inf, -np.inf, 0.0, -0.0,
        float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.tiny), 1e-40,
        float(fi.max), -float(fi.max), float(fi.max) / 2,
        65504.0, 65536.0, 65537.0, -131072.0, -131073.0, 2.0**20, 2.0**20 + 1, -2.0**21, 1e6,  # kernel ranges
        88.72, 89.0, -87.34, -103.98, -104.0, 709.78, 710.0, -745.2, -746.0, 1e30, -1e30,  # exp limits
    ]


def draw_float_values(d: Draw, rng: np.random.Generator, n: int, dtype) -> np.ndarray:
    kind = d.choice(["normal", "uniform", "narrow", "constant", "ramp", "mostly -inf"])
    scale = d.choice([1e-3, 1.0, 3.0, 30.0, 1000.0, 1e5, 1e30])
    if kind == "normal":
        v = rng.standard_normal(n) * scale
    elif kind == "uniform":
        v = rng.uniform(-scale, scale, n)
    elif kind == "narrow":  # the paper's U[90, 100]
        v = rng.uniform(90.0, 100.0, n)
    elif kind == "constant":
        v = np.full(n, d.choice([0.0, 1.0, -50.0, 100.0, 1e4, -1e5]))
    elif kind == "ramp":
        v = np.linspace(-scale, scale, n)
    else:
        v = np.full(n, -np.inf)
        if n:
            v[rng.integers(0, n, size=max(1, n // 50))] = rng.standard_normal(max(1, n // 50))
    if n and d.chance(0.6):
        pool = specials(dtype)
        for _ in range(d.weighted([(1, 4), (2, 2), (5, 1), (max(1, n // 10), 1)])):
            v[d.int(0, n - 1) if d.chance(0.5) else int(rng.integers(0, n))] = d.choice(pool)
    with np.errstate(over="ignore", invalid="ignore"):
        return v.astype(dtype)


def draw_values(d: Draw, shape, dtype) -> np.ndarray:
    """A C-contiguous array of `shape` (dtype may be one of the non-numeric names)."""
    n = math.prod(shape)
    rng = np.random.default_rng(d.int(0, 2**32 - 1))
    if dtype in FLOAT_TYPES:
        return draw_float_values(d, rng, n, dtype).reshape(shape)
    if dtype == "bfloat16":  # float32 values (and specials), rounded to bfloat16
        return draw_float_values(d, rng, n, np.float32).astype(BF16).reshape(shape)
    if dtype in INT_TYPES:
        info = np.iinfo(dtype)
        lo, hi = d.choice([(info.min, info.max), (max(info.min, -5), 5), (max(info.min, -100), 100)])
        v = rng.integers(lo, hi, size=n, dtype=dtype, endpoint=True)
        if n and d.chance(0.3):
            v[d.int(0, n - 1)] = d.choice([info.min, info.max])
        return v.reshape(shape)
    base = rng.standard_normal(n).reshape(shape)
    if dtype == "bool":
        return base > 0
    if dtype in ("complex64", "complex128"):
        return (base + 1j * base).astype(dtype)
    if dtype == "object":
        return base.astype(object)
    if dtype == "str":
        return np.full(shape, "a")
    if dtype == "bytes":
        return np.full(shape, b"a")
    if dtype in ("datetime64", "timedelta64"):
        return np.zeros(shape, dtype + "[s]")
    return np.zeros(shape, dtype=[("a", "f8")])


def draw_layout(d: Draw, case: Case, values: np.ndarray) -> np.ndarray:
    """x with the values of `values` (or a broadcast of part of them) in some memory layout."""
    shape, dtype = values.shape, values.dtype
    kinds = ["C", "F", "strided", "transposed", "broadcast", "unaligned", "byteswapped", "read-only", "list"]
    kind = d.weighted([(k, 6 if k == "C" else 2 if k in ("strided", "transposed", "broadcast") else 1) for k in kinds])
    case.notes.append(f"layout: {kind}")
    if kind == "F":
        return np.asfortranarray(values)
    if kind == "strided" and values.ndim:
        steps = [d.choice((1, 2, 3, -1, -2)) for _ in shape]
        big = np.zeros([n * abs(s) for n, s in zip(shape, steps)], dtype)
        view = big[tuple(slice(None, None, s) for s in steps)]
        view[...] = values
        case.notes.append(f"steps: {steps}")
        return view
    if kind == "transposed" and values.ndim > 1:
        perm = list(range(values.ndim))
        for i in range(len(perm) - 1, 0, -1):
            j = d.int(0, i)
            perm[i], perm[j] = perm[j], perm[i]
        stored = np.ascontiguousarray(np.transpose(values, perm))
        return np.transpose(stored, np.argsort(perm))
    if kind == "broadcast" and values.ndim:
        # Zero strides: each chosen axis repeats one slice (the result is read-only).
        index = tuple(slice(0, 1) if d.chance(0.5) else slice(None) for _ in shape)
        return np.broadcast_to(values[index], shape)
    if kind == "unaligned" and dtype.itemsize > 1 and dtype.kind != "O":
        offset = d.int(1, dtype.itemsize - 1)
        buf = np.zeros(values.nbytes + dtype.itemsize, np.uint8)
        a = np.ndarray(shape, dtype, buf, offset)
        a[...] = values
        case.notes.append(f"byte offset: {offset}")
        return a
    if kind == "byteswapped" and dtype.kind in "fiuc" and dtype.itemsize > 1:
        return values.astype(dtype.newbyteorder())
    if kind == "read-only":
        values = values.copy()
        values.flags.writeable = False
        return values
    if kind == "list" and values.size <= 64:
        return values.tolist()  # Python floats/ints (0-d: a Python scalar)
    return values.copy()


def draw_axis(d: Draw, ndim: int):
    kind = d.weighted([("none", 8), ("int", 8), ("tuple", 4), ("empty tuple", 1), ("bad int", 1),
                       ("duplicate", 1), ("bad type", 1), ("numpy int", 1)])
    if kind == "none":
        return None
    if kind in ("int", "numpy int"):
        a = d.int(-ndim, ndim - 1) if ndim else d.choice([0, -1])
        return np.int64(a) if kind == "numpy int" else a
    if kind == "tuple" and ndim:
        axes = [a for a in range(ndim) if d.chance(0.5)] or [d.int(0, ndim - 1)]
        for i in range(len(axes) - 1, 0, -1):  # any order
            j = d.int(0, i)
            axes[i], axes[j] = axes[j], axes[i]
        return tuple(a - ndim if d.chance(0.3) else a for a in axes)
    if kind == "empty tuple":
        return ()
    if kind == "bad int":
        return d.choice([ndim, -ndim - 1, ndim + 5, 2**40])
    if kind == "duplicate" and ndim:
        a = d.int(0, ndim - 1)
        return (a, a - ndim)
    if kind == "bad type":
        return d.choice([1.0, "0", True, [0], (0.0,), b"1"])
    return None


def result_dtype(x) -> Optional[np.dtype]:
    """SciPy's result dtype (np.exp's), or None where the call must raise TypeError."""
    dt = np.asarray(x).dtype
    if BF16 is not None and dt == BF16:
        return dt
    if dt.kind == "f":
        return np.dtype(dt.char)
    if dt.kind in "iu":
        return np.exp(np.zeros(1, dt)).dtype
    return None


def draw_out(d: Draw, case: Case, x, rdt: Optional[np.dtype]):
    """Sets case.kwargs['out'] (maybe replacing case.x, for aliasing cases)."""
    shape = np.shape(x)
    dt = rdt or np.dtype(np.float64)
    kind = d.weighted([("none", 10), ("fresh", 3), ("strided", 2), ("in place", 3), ("overlap", 2),
                       ("wrong shape", 1), ("other dtype", 2), ("read-only", 1), ("not an array", 1),
                       ("zero stride", 1)])
    case.notes.append(f"out: {kind}")
    if kind == "none":
        return
    if kind == "fresh":
        out = np.full(shape, SENTINEL, dt)
    elif kind == "strided":
        case.holder = np.full(shape + (2,), SENTINEL, dt)
        out = case.holder[..., 1]
        if out.ndim > 1 and d.chance(0.5):  # reversed along an axis too
            out = out[::-1]
    elif kind == "in place":
        if isinstance(x, np.ndarray) and x.dtype == dt and x.flags.writeable:
            out = x
        else:
            out = np.full(shape, SENTINEL, dt)
            case.notes[-1] = "out: fresh (in place impossible)"
    elif kind == "overlap":
        n = math.prod(shape)
        if rdt is None or n < 2 or not isinstance(x, np.ndarray):
            out = np.full(shape, SENTINEL, dt)
            case.notes[-1] = "out: fresh (overlap impossible)"
        else:
            # x and out are two views of one buffer, `shift` elements apart (0 = the same view).
            shift = d.int(0, n - 1)
            buf = np.full(n + shift, SENTINEL, rdt)
            xv = buf[:n].reshape(shape)
            xv[...] = np.asarray(x).astype(rdt)
            case.x = xv
            case.shared_buffer = buf
            out = buf[shift:shift + n].reshape(shape)
            if shift == 0 and out.ndim and d.chance(0.5):
                out = out[::-1]  # the same elements in another order: still not out=x
            case.notes.append(f"shift: {shift}")
    elif kind == "wrong shape":
        out = np.full(shape + (1,) if d.chance(0.5) else (shape[:-1] + (shape[-1] + 1,) if shape else (2,)),
                      SENTINEL, dt)
    elif kind == "other dtype":  # a float: mixed precision; an integer or complex: an error
        others = [np.float16, np.float32, np.float64, np.longdouble, np.int64, np.complex64]
        other = d.choice(others + ([BF16] if BF16 is not None else []))
        out = np.full(shape, SENTINEL, other if np.dtype(other) != dt else np.float32 if dt != np.float32 else np.float64)
    elif kind == "read-only":
        out = np.full(shape, SENTINEL, dt)
        out.flags.writeable = False
    elif kind == "zero stride":
        # A writable as_strided view whose elements overlap along some axes (an error
        # unless those axes have length <= 1).
        base = np.full(max(1, math.prod(shape)), SENTINEL, dt)
        strides, step = [], dt.itemsize
        for n in reversed(shape):  # C order over the axes that keep a stride
            zero = d.chance(0.5)
            strides.insert(0, 0 if zero else step)
            step *= 1 if zero else n
        out = np.lib.stride_tricks.as_strided(base, shape=shape, strides=strides)
    else:
        out = d.choice([[SENTINEL], SENTINEL, "out", (SENTINEL,)])
    case.kwargs["out"] = out


def build_case(data: bytes) -> Case:
    d = Draw(data)
    case = Case()
    case.op = d.choice(["softmax", "log_softmax"])
    dtype = draw_dtype(d)
    shape = draw_shape(d)
    values = np.asarray(draw_values(d, shape, dtype))  # 0-d: an array, not a NumPy scalar
    case.x = draw_layout(d, case, values)
    ndim = np.ndim(case.x)
    axis = draw_axis(d, ndim)
    if axis is not None or d.chance(0.5):
        case.kwargs["axis"] = axis
    draw_out(d, case, case.x, result_dtype(case.x) if dtype not in ("bool",) else None)
    if d.chance(0.5):
        case.kwargs["algorithm"] = d.weighted([(a, 4) for a in fastsoftmax.ALGORITHMS]
                                              + [("fast", 1), ("TWO-PASS", 1), (None, 1), (2, 1)])
    if d.chance(0.4):
        case.kwargs["isa"] = d.weighted([(t, 4) for t in TIERS] + [("sse2", 1), ("", 1), (2, 1), (b"avx2", 1)])
    if d.chance(0.3):
        case.kwargs["threads"] = d.weighted([(None, 2), (1, 2), (2, 4), (3, 2), (0, 1), (-1, 1), (1.5, 1),
                                             (True, 1), ("2", 1), (1025, 1), (2**31, 1)])
    return case


def _runnable_tiers() -> List[str]:
    from fastsoftmax import _core
    return [t for t in _core.compiled_isas() if _core.isa_runnable(t)]


TIERS = _runnable_tiers()


# ---- what must happen ----------------------------------------------------------------------

def normalized_axes(axis, ndim) -> Optional[Tuple[int, ...]]:
    """The reduced axes, or None where the axis argument is bad (the error is in errors())."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            return None
        if ndim == 0 and not isinstance(axis, tuple) and a in (0, -1):
            continue
        if not -ndim <= a < ndim:
            return None
        out.append(int(a) % ndim)
    return tuple(out) if len(set(out)) == len(out) else None


def same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """out=x in effect: the same elements at the same addresses (an in-place call)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape)


def documented_errors(case: Case) -> Tuple[type, ...]:
    """The exceptions docs/bad-input.md gives for this call (empty: it must succeed).

    When an input is bad in several ways, any of the applicable exceptions is accepted.
    """
    errs = []
    kw = case.kwargs
    algorithm = kw.get("algorithm", "auto")
    if not isinstance(algorithm, str) or algorithm not in fastsoftmax.ALGORITHMS:
        errs.append(ValueError)
    isa = kw.get("isa")
    if isa is not None and not isinstance(isa, str):
        errs.append(TypeError)
    elif isa is not None and isa not in TIERS:
        errs.append(ValueError)
    threads = kw.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 0 <= threads <= 1024):  # 0: the default
        errs.append(ValueError)
    x = np.asarray(case.x)
    rdt = result_dtype(x)
    if rdt is None:
        errs.append(TypeError)
    axis = kw.get("axis")
    axes = normalized_axes(axis, x.ndim)
    if axes is None:
        items = axis if isinstance(axis, tuple) else (axis,)
        if any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) for a in items):
            errs.append(TypeError)
        else:
            errs.append(ValueError)  # out of range (AxisError is a ValueError) or duplicate
    out = kw.get("out")
    if out is not None:
        if not isinstance(out, np.ndarray):
            errs.append(TypeError)
        else:
            if out.shape != x.shape:
                errs.append(ValueError)
            if not _float_rank(out.dtype) or not out.dtype.isnative:
                errs.append(TypeError)  # mixed precision takes any native float dtype
            if not out.flags.writeable:
                errs.append(ValueError)
            if out.size and any(st == 0 and n > 1 for st, n in zip(out.strides, out.shape)):
                errs.append(ValueError)  # elements that overlap each other
            if not same_view(out, x) and np.shares_memory(out, x):
                errs.append(ValueError)
    if axes is not None and any(x.shape[a] == 0 for a in axes):
        errs.append(ValueError)  # softmax over an empty axis (SciPy: zero-size reduction)
    return tuple(errs)


def reference(op: str, xc: np.ndarray, axes: Tuple[int, ...]) -> np.ndarray:
    """SciPy's formula, in long double, on the input already converted to the compute dtype."""
    xl = xc.astype(LD)
    with np.errstate(all="ignore"):
        mx = np.amax(xl, axis=axes, keepdims=True)
        if op == "softmax":
            e = np.exp(xl - mx)
            return e / np.sum(e, axis=axes, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0)
        tmp = xl - mx
        return tmp - np.log(np.sum(np.exp(tmp), axis=axes, keepdims=True))


def check_values(op: str, y: np.ndarray, xc: np.ndarray, axes: Tuple[int, ...]) -> Optional[str]:
    """None if y (any float dtype) meets the README bounds for xc (the compute dtype), rounded
    once to y.dtype; else what is wrong."""
    ref = reference(op, xc, axes)
    y = np.asarray(y)
    # Rounded to y's dtype first: log_softmax([max, -max]) is -2*max, -inf in float32.
    ref_rounded = _cast(ref, y.dtype)
    for name, f in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        if not np.array_equal(f(y), f(ref_rounded)):
            bad = np.argwhere(f(y) != f(ref_rounded))[:3].tolist()
            return f"{name} pattern differs from SciPy's at {bad}"
    cdt = xc.dtype
    fi = np.finfo(cdt if cdt != LD else np.float64)
    bits = 24 if cdt == np.float32 else 53
    xl = xc.astype(LD)
    with np.errstate(all="ignore"):
        fin = np.isfinite(xl)
        mx = np.amax(np.where(fin, xl, -np.inf), axis=axes, keepdims=True)
        if op == "softmax":
            gap = np.where(fin & np.isfinite(mx), mx - xl, 0)
            rel = LD(6e-7 if cdt == np.float32 else 2e-15) + gap * LD(2.0**-bits)
            b = np.where(ref == 0, 0, ref * rel) * LD(1 + 1e-12) + LD(fi.tiny)
        else:
            lse = xl - ref
            scale = np.maximum(np.maximum(LD(1), np.where(fin, np.abs(xl), 0)),
                               np.where(np.isfinite(lse), np.abs(lse), 0))
            b = LD(4 * fi.eps) * scale * LD(1 + 1e-12)
        lo = _cast(ref - b, y.dtype).astype(LD)
        hi = _cast(ref + b, y.dtype).astype(LD)
        yl = y.astype(np.float64).astype(LD) if y.dtype.itemsize == 2 else y.astype(LD)
    ok = ~np.isfinite(ref_rounded) | ((yl >= lo) & (yl <= hi))
    if not ok.all():
        idx = np.argwhere(~ok)[:3]
        where = [tuple(int(i) for i in ix) for ix in idx]
        got = [y[w] for w in where]
        want = [ref[w] for w in where]
        return f"{int((~ok).sum())} values outside the bound; at {where}: got {got}, reference {want}"
    return None


class Failure(AssertionError):
    pass


def snapshot(a):
    return None if not isinstance(a, np.ndarray) else (a.copy(), a.dtype.kind in "fc" or a.dtype == BF16)


def unchanged(a, snap) -> bool:
    copy, nan_ok = snap
    if BF16 is not None and a.dtype == BF16:  # bitwise
        return np.array_equal(a.view(np.uint16), copy.view(np.uint16))
    return np.array_equal(a, copy, equal_nan=nan_ok) if a.dtype.kind != "V" else bool((a == copy).all())


def run_case(case: Case) -> None:
    """Runs the call and checks it; raises Failure (with the decoded case) on any violation."""
    fn = getattr(fastsoftmax, case.op)
    x = case.x
    out = case.kwargs.get("out")
    expected = documented_errors(case)
    x_snap = snapshot(x)
    out_snap = snapshot(out)
    holder_snap = case.holder.copy() if case.holder is not None else None
    in_place = isinstance(x, np.ndarray) and isinstance(out, np.ndarray) and same_view(out, x)

    def fail(msg):
        raise Failure(f"{msg}\n--- case ---\n{case.describe()}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fn(x, **case.kwargs)
        except Exception as e:  # noqa: BLE001 - classified below
            if not expected:
                fail(f"raised {type(e).__name__}: {e} where the call must succeed\n{traceback.format_exc()}")
            if not isinstance(e, expected):
                fail(f"raised {type(e).__name__}: {e}; docs/bad-input.md gives {[t.__name__ for t in expected]}")
            if x_snap is not None and not unchanged(x, x_snap):
                fail("a failing call modified x")
            if out_snap is not None and not unchanged(out, out_snap):
                fail("a failing call modified out")
            return
    if expected:
        fail(f"succeeded where docs/bad-input.md gives {[t.__name__ for t in expected]}")

    xa = np.asarray(x_snap[0] if x_snap is not None else x)
    rdt = result_dtype(xa)
    axes = normalized_axes(case.kwargs.get("axis"), xa.ndim)
    # Long double (input, or an out= that makes the call compute in it) may warn as SciPy does.
    native = rdt in (np.float32, np.float64) and (out is None or out.dtype != LD)
    if native and caught:
        fail(f"warned: {[str(w.message) for w in caught]}")

    # Type, dtype, shape: SciPy's (out's dtype with out=: mixed precision).
    if out is not None:
        if res is not out:
            fail("did not return out")
    elif xa.ndim == 0:
        if type(res) is not rdt.type:
            fail(f"0-d input gave {type(res).__name__}, expected a {rdt.type.__name__} scalar")
    elif type(res) is not np.ndarray or res.dtype != rdt or res.shape != xa.shape:
        fail(f"result {type(res).__name__} {getattr(res, 'dtype', None)} {getattr(res, 'shape', None)}, "
             f"expected ndarray {rdt} {xa.shape}")

    # Values: computed in the more precise of the result dtype and out's; 16-bit types in
    # float32; rounded once to the output dtype.
    compute = _compute_dtype(rdt, out.dtype) if out is not None else rdt
    if _float_rank(compute) == 1:
        compute = np.dtype(np.float32)
    xc = xa.astype(rdt).astype(compute)
    msg = check_values(case.op, np.asarray(res), xc, axes)
    if msg:
        fail(msg)

    # Nothing else was written: x (unless in place) and the holder around a strided out.
    if not in_place and x_snap is not None and not unchanged(x, x_snap):
        fail("x was modified")
    if holder_snap is not None and not np.array_equal(case.holder[..., 0], holder_snap[..., 0]):
        fail("wrote outside the strided out")


def test_one_input(data: bytes) -> None:
    run_case(build_case(data))


# ---- drivers -----------------------------------------------------------------------------------

def save_artifact(data: bytes, artifact_dir: str) -> str:
    os.makedirs(artifact_dir, exist_ok=True)
    path = os.path.join(artifact_dir, "crash-" + hashlib.sha1(data).hexdigest())
    with open(path, "wb") as f:
        f.write(data)
    return path


def random_driver(seconds: float, seed: int, artifact_dir: str) -> int:
    """Random byte strings for `seconds`: the same checks, without coverage guidance."""
    rng = random.Random(seed)
    start = time.monotonic()
    runs = 0
    while time.monotonic() - start < seconds:
        data = rng.randbytes(rng.choice((8, 32, 64, 256, 1024)))
        try:
            test_one_input(data)
        except Exception:  # noqa: BLE001 - reported with the input that caused it
            traceback.print_exc()
            print(f"FAILED after {runs} runs; input saved to {save_artifact(data, artifact_dir)}", flush=True)
            return 1
        runs += 1
    print(f"Done {runs} runs in {time.monotonic() - start:.0f} second(s) (random driver, seed {seed})", flush=True)
    return 0


def replay(paths: List[str]) -> int:
    failed = 0
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        try:
            test_one_input(data)
            print(f"{p}: ok")
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            print(f"{p}: FAILED")
            failed += 1
    return 1 if failed else 0


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Other arguments (-max_total_time=N, -runs=N, corpus dirs, "
                                        "files) go to libFuzzer under the atheris driver.")
    ap.add_argument("--driver", choices=("auto", "atheris", "random"), default="auto",
                    help="auto: atheris if it is installed, else random")
    ap.add_argument("--seconds", type=float, default=None,
                    help="time bound (random driver; atheris: sets -max_total_time)")
    ap.add_argument("--seed", type=int, default=None, help="random driver seed (default: from the clock)")
    ap.add_argument("--artifact-dir", default=".", help="where failing inputs are saved")
    args, rest = ap.parse_known_args(argv[1:])

    driver = args.driver
    if driver == "auto":
        try:
            import atheris  # noqa: F401
            driver = "atheris"
        except ImportError:
            driver = "random"
            print("atheris is not installed: using the random driver", flush=True)

    if driver == "random":
        files = [a for a in rest if not a.startswith("-")]
        if files:
            return replay(files)
        seed = args.seed if args.seed is not None else int(time.time())
        return random_driver(args.seconds if args.seconds is not None else 60, seed, args.artifact_dir)

    import atheris

    # Coverage feedback from our own Python (the argument handling in _api.py and this
    # harness's decoding), so libFuzzer steers toward new argument combinations.
    # Not the functions that compare whole arrays (check_values, draw_values,
    # draw_float_values): atheris's comparison hook keeps the array result of an instrumented
    # `a >= b` alive, and over a minute's fuzzing those leaked arrays reached libFuzzer's
    # 2 GiB RSS limit (measured with tracemalloc; replaying the same inputs uninstrumented
    # keeps a flat RSS).
    atheris.instrument_func(test_one_input)
    for f in (build_case, draw_layout, draw_out, draw_axis, documented_errors, normalized_axes, run_case):
        globals()[f.__name__] = atheris.instrument_func(f)
    from fastsoftmax import _api
    for name in ("_compute", "_normalize_axes", "_result_dtype", "_check_out", "_same_view", "_check_isa"):
        if hasattr(_api, name):
            setattr(_api, name, atheris.instrument_func(getattr(_api, name)))

    libfuzzer_args = [argv[0]] + rest
    if args.seconds is not None and not any(a.startswith("-max_total_time") for a in rest):
        libfuzzer_args.append(f"-max_total_time={int(args.seconds)}")
    if not any(a.startswith("-artifact_prefix") for a in rest):
        libfuzzer_args.append(f"-artifact_prefix={os.path.join(args.artifact_dir, '')}")
    atheris.Setup(libfuzzer_args, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
