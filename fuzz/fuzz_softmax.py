"""Fuzz harness for fastsoftmax's public API (softmax / log_softmax) and its C API.

Every input (a byte string) is decoded into one call: shape, strides (negative and zero too),
alignment, byte order, dtype, values (±inf, NaN, denormals, ±float max, the kernels' range
boundaries), axis, ``out`` (fresh, strided, in place, aliasing ``x``, wrong, an ``as_strided``
view whose elements may overlap each other), algorithm and tier. The call must either

* succeed with SciPy's result dtype, shape and NaN/±inf pattern, values within the accuracy
  bounds of README.md against a long-double reference of SciPy's formula (computed on the
  input converted to the result dtype first, as documented), leaving ``x`` and everything
  around ``out`` untouched; or
* raise an exception that docs/bad-input.md lists for that input, leaving ``x`` and ``out``
  untouched.

Anything else (a wrong value, an undocumented exception, a crash) is a failure.

An input whose first byte is below CAPI_SHARE (about one in five) is instead a call of the C
API through ctypes (fastsoftmax_<op>_<dtype> of include/fastsoftmax/fastsoftmax.h): rows, n
and strides from small to beyond the address space (SIZE_MAX, 2^62, PTRDIFF_MIN), algorithm
codes and thread counts valid or not, x and y apart, the same, shifted into each other, interleaved, NULL or at
the ends of the address space. The call must return FASTSOFTMAX_ERROR_INVALID_ARGUMENT
exactly where the header's "Arguments" say (restated here on exact integers: capi_valid),
touching no byte, and otherwise compute every row -- bitwise the Python API's result, within
the accuracy bounds -- writing nothing outside y's rows. A call that would be valid but
needs more memory than the harness backs it with is skipped.

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
import bisect
import ctypes
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
from fastsoftmax._args import cast as _cast, compute_dtype as _compute_dtype, float_rank as _float_rank

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
        self.out_bytes = None      # out is a view into these bytes ("as_strided"): none but its own may change
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
                       ("as_strided", 3)])
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
    elif kind == "as_strided":
        # A writable view with strides of our choosing, axis by axis from the last: the block
        # so far stepped over exactly ("c"), with gaps ("spread"), or not ("zero", "short":
        # elements overlap unless they happen to interleave; "odd": any byte count, also
        # misaligned); any of them reversed. Refused exactly when two elements share a byte.
        item = dt.itemsize
        strides, extent, notes = [], item, []
        for n in reversed(shape):
            how = d.weighted([("c", 4), ("spread", 2), ("zero", 1), ("short", 2), ("odd", 1)])
            st = {"c": extent, "spread": extent + item * d.int(1, 3), "zero": 0,
                  "short": item * d.int(1, max(1, extent // item - 1)), "odd": d.int(1, 2 * extent)}[how]
            st = -st if d.chance(0.25) else st
            strides.insert(0, st)
            notes.insert(0, how)
            extent += abs(st) * max(0, n - 1)
        origin = sum(-st * (n - 1) for st, n in zip(strides, shape) if st < 0 and n)
        case.out_bytes = np.frombuffer(np.full(extent // item + 2, SENTINEL, dt).tobytes(), np.uint8).copy()
        out = np.ndarray(shape, dt, case.out_bytes, origin, strides)
        case.notes.append(f"strides: {tuple(strides)} ({', '.join(notes)}), origin {origin}")
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
    """The tiers isa= can run: runnable here and not above a FASTSOFTMAX_ISA cap (a cap binds)."""
    from fastsoftmax import _core
    tiers, cap = _core.compiled_isas(), _core.isa_cap()
    return [t for t in tiers if _core.isa_runnable(t) and not (cap in tiers and tiers.index(t) < tiers.index(cap))]


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


def element_offsets(a: np.ndarray) -> np.ndarray:
    """The byte offset of every element of `a` from its data pointer."""
    offsets = np.zeros((), np.int64)
    for n, st in zip(a.shape, a.strides):
        offsets = offsets[..., np.newaxis] + np.arange(n, dtype=np.int64) * st
    return offsets.ravel()


def elements_overlap(a: np.ndarray) -> bool:
    """Two elements of `a` share a byte: every element's offset listed and sorted (exact; not
    the library's check, which this verifies)."""
    if a.size <= 1 or a.flags.c_contiguous or a.flags.f_contiguous:
        return False
    return bool((np.diff(np.sort(element_offsets(a))) < a.itemsize).any())


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
            if elements_overlap(out):
                errs.append(ValueError)  # elements that overlap each other
            elif out.size and fastsoftmax._core.overlaps_itself(out) is None:
                errs.append(ValueError)  # too irregular for the check to decide: refused too
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
            if y.dtype.itemsize == 2:  # Exp16 (README, Accuracy): two exps of 2^-13.25, ln2's factor 2^-20
                rel = rel + LD(2 * 2.0**-13.25 + 2.0**-20)
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
    bytes_snap = case.out_bytes.copy() if case.out_bytes is not None else None
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
            if bytes_snap is not None and not np.array_equal(case.out_bytes, bytes_snap):
                fail("a failing call wrote into the buffer under out")
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
    if bytes_snap is not None:
        mine = np.zeros(len(bytes_snap), bool)
        start = out.__array_interface__["data"][0] - case.out_bytes.__array_interface__["data"][0]
        for k in range(out.itemsize):
            mine[start + element_offsets(out) + k] = True
        if not np.array_equal(case.out_bytes[~mine], bytes_snap[~mine]):
            fail("wrote between the elements of an as_strided out")


# ---- the C API (fastsoftmax.h) through ctypes ----------------------------------------------------

CAPI_SHARE = 48  # inputs whose first byte is below this (about 1 in 5) are C API calls
SIZE_MAX = UINTPTR_MAX = 2**64 - 1
PTRDIFF_MAX, PTRDIFF_MIN = 2**63 - 1, -(2**63)
CAPI_BUDGET = 1 << 22  # bytes of memory behind a call that is to be computed
CAPI_GUARD = 64        # bytes around x and y that no call may touch
CAPI_DTYPES = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64), "f16": np.dtype(np.float16),
               "bf16": BF16}
FAR_AWAY = 1 << 44     # where a call that must be refused points when its rows are too large to back
MAX_THREADS = fastsoftmax._core.MAX_THREADS  # FASTSOFTMAX_MAX_THREADS


def _load_capi():
    try:
        lib = ctypes.CDLL(fastsoftmax.get_library())
    except (OSError, FileNotFoundError):  # a build without the shared library: Python cases only
        return None
    for dt in CAPI_DTYPES:
        for op in ("softmax", "log_softmax"):
            fn = getattr(lib, f"fastsoftmax_{op}_{dt}")
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t,
                           ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int]
    return lib


CAPI = _load_capi()


class CapiCase:
    """One C API call: fastsoftmax_<op>_<dt>(x, y, rows, n, xs, ys, algorithm, threads), with x
    and y as byte offsets into `buf` (None: NULL) or, where the call must be refused anyway,
    absolute addresses (`absolute`)."""

    def __init__(self):
        self.op, self.dt = "softmax", "f32"
        self.rows = self.n = self.xs = self.ys = self.alg = self.threads = 0
        self.x_at: Optional[int] = None
        self.y_at: Optional[int] = None
        self.absolute = False
        self.buf: Optional[np.ndarray] = None
        self.valid: Optional[bool] = False  # the header: computed (True) or INVALID_ARGUMENT (None: skipped)
        self.notes: List[str] = []

    @property
    def item(self) -> int:
        return CAPI_DTYPES[self.dt].itemsize

    def address(self, at: Optional[int]) -> Optional[int]:
        if at is None:
            return None
        return at if self.absolute else self.buf.ctypes.data + at

    def describe(self) -> str:
        return "\n".join([f"C API: fastsoftmax_{self.op}_{self.dt}(x, y, rows={self.rows}, n={self.n}, "
                          f"x_row_stride={self.xs}, y_row_stride={self.ys}, algorithm={self.alg}, "
                          f"threads={self.threads})",
                          f"x at {self.x_at}, y at {self.y_at} ({'absolute' if self.absolute else 'offsets'})",
                          f"the header says: {({True: 'computed', False: 'INVALID_ARGUMENT'}).get(self.valid, '(undecided)')}"] + self.notes)


def rows_span(rows: int, n: int, stride: int, item: int) -> Tuple[int, int]:
    """[lo, hi) of the bytes of `rows` rows, relative to the pointer (exact integers)."""
    travel = (rows - 1) * abs(stride) * item if rows > 1 else 0
    return (-travel, n * item) if stride < 0 else (0, travel + n * item)


def capi_valid(c: CapiCase) -> Optional[bool]:
    """The header's "Arguments", restated on exact integers: True where the call must compute,
    False where it must be refused, None where this oracle would list too many rows to tell
    (x and y with different strides interleaving over many rows; the case is skipped)."""
    if not 0 <= c.alg <= 4 or not 0 <= c.threads <= MAX_THREADS:
        return False
    if c.rows == 0 or c.n == 0:
        return True  # nothing read or written
    if c.x_at is None or c.y_at is None:
        return False
    item, rows, row_bytes = c.item, c.rows, c.n * c.item
    if row_bytes > PTRDIFF_MAX:
        return False
    x, y = c.address(c.x_at), c.address(c.y_at)
    spans = []
    for at, stride in ((x, c.xs), (y, c.ys)):
        lo, hi = rows_span(rows, c.n, stride, item)
        if hi - lo > PTRDIFF_MAX or at + lo < 0 or at + hi > UINTPTR_MAX:
            return False
        spans.append((at + lo, at + hi))
    if rows > 1 and abs(c.ys) * item < row_bytes:
        return False  # output rows overlap
    if x == y and (rows == 1 or c.xs == c.ys):
        return True  # in place
    (xlo, xhi), (ylo, yhi) = spans
    if xhi <= ylo or yhi <= xlo:
        return True
    if rows == 1:
        return False  # one row each, and they meet
    # As sets, the rows start at lo + i * step, i < rows. Two rows meet iff their starts are
    # less than row_bytes apart.
    xstep, ystep = abs(c.xs) * item, abs(c.ys) * item
    if xstep == ystep:  # starts differ by d + k * step, |k| < rows
        d = xlo - ylo
        k_lo, k_hi = (-row_bytes - d) // xstep + 1, -((d - row_bytes) // xstep) - 1
        return max(k_lo, -(rows - 1)) > min(k_hi, rows - 1)

    def near(lo, step, other_lo, other_hi):  # indices of rows starting in (other_lo - row_bytes, other_hi)
        if step == 0:
            return range(1 if other_lo - row_bytes < lo < other_hi else 0)
        first = max(0, (other_lo - row_bytes - lo) // step + 1)
        return range(first, min(rows - 1, -((lo - other_hi) // step) - 1) + 1)

    xs_near, ys_near = near(xlo, xstep, ylo, yhi), near(ylo, ystep, xlo, xhi)
    (a_lo, a_step, a_near), (b_lo, b_step) = (((xlo, xstep, xs_near), (ylo, ystep)) if len(xs_near) <= len(ys_near)
                                             else ((ylo, ystep, ys_near), (xlo, xstep)))
    if len(a_near) > 1 << 16:
        return None
    for i in a_near:
        a = a_lo + i * a_step
        if b_step == 0:
            if abs(a - b_lo) < row_bytes:
                return False
            continue
        j_lo = max(0, (a - row_bytes - b_lo) // b_step + 1)          # b rows starting after a - row_bytes
        j_hi = min(rows - 1, -((b_lo - a - row_bytes) // b_step) - 1)  # ... and before a + row_bytes
        if j_lo <= j_hi:
            return False
    return True


def build_capi_case(data: bytes) -> CapiCase:
    d = Draw(data)
    c = CapiCase()
    c.op = d.choice(["softmax", "log_softmax"])
    c.dt = d.choice(["f32", "f64", "f16", "bf16"] if BF16 is not None else ["f32", "f64", "f16"])
    item = c.item
    kind = d.weighted([("small", 8), ("medium", 3), ("huge", 2)])
    c.rows = {"small": lambda: d.int(0, 6), "medium": lambda: d.int(7, 100),
              "huge": lambda: d.choice([2**31, 2**32 + 1, 2**61, 2**62, 2**63, SIZE_MAX])}[kind]()
    kind = d.weighted([("small", 8), ("medium", 3), ("chunks", 1), ("huge", 2)])
    c.n = {"small": lambda: d.int(0, 40), "medium": lambda: d.int(41, 3000), "chunks": lambda: d.int(65537, 70000),
           "huge": lambda: d.choice([2**60 + 1, 2**61, 2**62, PTRDIFF_MAX, 2**63, SIZE_MAX])}[kind]()
    if kind == "chunks":
        c.rows = min(c.rows, 3)  # rows over 2^16 elements (split into chunks): a few, to keep calls short

    def clamp(s: int) -> int:
        return max(PTRDIFF_MIN, min(PTRDIFF_MAX, s))

    def stride() -> int:
        how = d.weighted([("n", 6), ("padded", 2), ("double", 2), ("zero", 1), ("short", 2), ("extreme", 2)])
        s = {"n": c.n, "padded": c.n + d.int(1, 5), "double": 2 * c.n + d.int(0, 2), "zero": 0,
             "short": d.int(1, max(1, min(c.n, 1 << 20) - 1)),
             "extreme": d.choice([PTRDIFF_MIN, PTRDIFF_MAX, -PTRDIFF_MAX, 2**61, -(2**61), 2**40,
                                  2**62 // item])}[how]
        return clamp(-s if how != "extreme" and d.chance(0.3) else s)

    c.xs = stride()
    c.ys = c.xs if d.chance(0.3) else stride()
    c.alg = d.weighted([(0, 4), (1, 2), (2, 2), (3, 2), (4, 2), (5, 1), (99, 1), (-1, 1), (2**31 - 1, 1)])
    c.threads = d.weighted([(1, 6), (2, 3), (0, 3), (MAX_THREADS, 1), (-1, 1), (MAX_THREADS + 1, 1), (-(2**31), 1)])
    placement = d.weighted([("apart", 6), ("same", 2), ("shifted", 2), ("null x", 1), ("null y", 1),
                            ("top of memory", 1), ("bottom of memory", 1)])
    c.notes.append(f"placement: {placement}")
    shift = d.int(-2 * min(c.n, 64) - 2, 2 * min(c.n, 64) + 2)
    seed = d.int(0, 2**32 - 1)

    if placement in ("top of memory", "bottom of memory"):
        # Rows that would wrap around an end of the address space: refused whatever else.
        c.absolute = True
        c.x_at = FAR_AWAY
        if placement == "top of memory":
            c.y_at = UINTPTR_MAX + 1 - max(item, min(c.n * item // 2, 1 << 40) // item * item)
        else:
            c.rows, c.y_at = max(c.rows, 2), 4096
            c.ys = clamp(-max(abs(c.ys), 4096 // item + 1, c.n))
        c.valid = capi_valid(c)
        return c

    # Byte offsets relative to x's pointer: x's rows span [x_lo, x_hi), y's start y_rel away.
    x_lo, x_hi = rows_span(c.rows, c.n, c.xs, item)
    y_lo, y_hi = rows_span(c.rows, c.n, c.ys, item)
    empty = c.rows == 0 or c.n == 0
    if empty:  # nothing is addressed: a small buffer
        x_lo, x_hi, y_lo, y_hi = 0, item, 0, item
    y_rel = {"same": 0, "shifted": shift * item}.get(placement, x_hi + CAPI_GUARD - y_lo)
    lo, hi = min(x_lo, y_rel + y_lo), max(x_hi, y_rel + y_hi)
    total = hi - lo + 2 * CAPI_GUARD
    if total <= CAPI_BUDGET:  # backed by a buffer with guards around the rows
        c.buf = np.zeros(total, np.uint8)
        c.x_at, c.y_at = CAPI_GUARD - lo, CAPI_GUARD - lo + y_rel
        values = draw_float_values(d, np.random.default_rng(seed), total // item, np.float32)
        with np.errstate(over="ignore"):  # huge values become inf in 16 bits
            c.buf[: total // item * item] = values.astype(CAPI_DTYPES[c.dt]).view(np.uint8)
    else:  # too large to back with memory: far away (the call must then be refused, or is skipped)
        c.absolute = True
        c.x_at, c.y_at = FAR_AWAY, FAR_AWAY + max(-(1 << 43), min(1 << 43, y_rel))
    if placement == "null x":
        c.x_at = None
    if placement == "null y":
        c.y_at = None
    c.valid = capi_valid(c)
    if c.valid and c.absolute and not empty:
        c.notes.append("skipped: valid, but too large to back with memory")
    return c


def run_capi_case(c: CapiCase) -> str:
    """Makes the call and checks it against the header; returns what happened."""
    def fail(msg):
        raise Failure(f"{msg}\n--- case ---\n{c.describe()}")

    if CAPI is None or c.valid is None or (c.valid and c.absolute and c.rows and c.n):
        return "skipped"  # undecided by the oracle, or valid with memory that is not there
    fn = getattr(CAPI, f"fastsoftmax_{c.op}_{c.dt}")
    before = c.buf.copy() if c.buf is not None else None
    status = fn(c.address(c.x_at), c.address(c.y_at), c.rows, c.n, c.xs, c.ys, c.alg, c.threads)
    if not c.valid:
        if status != 1:
            fail(f"status {status}, expected FASTSOFTMAX_ERROR_INVALID_ARGUMENT (1)")
        if before is not None and not np.array_equal(c.buf, before):
            fail("a refused call wrote into the buffer")
        return "refused"
    if status != 0:
        fail(f"status {status}, expected FASTSOFTMAX_OK")
    if c.rows == 0 or c.n == 0:
        if before is not None and not np.array_equal(c.buf, before):
            fail("an empty call wrote into the buffer")
        return "empty"
    dt, item = CAPI_DTYPES[c.dt], c.item
    x = np.ndarray((c.rows, c.n), dt, before, c.x_at, (c.xs * item if c.rows > 1 else 0, item))
    y = np.ndarray((c.rows, c.n), dt, c.buf, c.y_at, (c.ys * item if c.rows > 1 else 0, item))
    want = getattr(fastsoftmax, c.op)(x, axis=-1, algorithm=fastsoftmax.ALGORITHMS[c.alg])
    if not np.array_equal(y.view(f"u{item}"), want.view(f"u{item}")):
        fail("not bitwise the Python API's result for the same rows")
    msg = check_values(c.op, y, x.astype(np.float32) if item == 2 else x, (1,))
    if msg:
        fail(msg)
    mine = np.zeros(len(c.buf), bool)
    for r in range(c.rows):
        start = c.y_at + (r * c.ys * item if c.rows > 1 else 0)
        mine[start:start + c.n * item] = True
    if not np.array_equal(c.buf[~mine], before[~mine]):
        fail("wrote outside y's rows")
    return "computed"


def test_one_input(data: bytes) -> None:
    """Inputs whose first byte is below CAPI_SHARE are C API calls (decoded from the rest);
    the others are Python calls (decoded from all of it)."""
    if data[:1] and data[0] < CAPI_SHARE:
        run_capi_case(build_capi_case(data[1:]))
    else:
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
    for f in (build_case, draw_layout, draw_out, draw_axis, documented_errors, normalized_axes, run_case,
              build_capi_case, capi_valid, run_capi_case):
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
