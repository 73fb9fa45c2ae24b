"""Argument normalisation shared by every public function (softmax, the statistics API,
logsumexp, fastsoftmax.dask): dtypes, out=, axes, isa=/threads=, casting.

One place for each rule, so that the functions agree on it. Every check takes `op`, the name
of the function called, and names it in its message.
"""

from __future__ import annotations

import operator
from typing import Any, Optional, SupportsIndex, Tuple, Union

import numpy as np

from . import _core
from ._threads import check_threads

__all__ = ["AxisError", "AxisLike", "class_axis", "F16", "F32", "F64", "LD", "FLOAT_NAMES", "normalize_axes", "rows_view",
           "merge_trailing_view", "row_shape", "is_bfloat16", "not_real", "as_real_array", "result_dtype",
           "logsumexp_dtype", "stats_dtype", "float_rank", "requested_dtype", "compute_dtype", "output_dtype",
           "cast", "check_out", "check_out_against_x", "same_view", "check_isa", "check_options",
           "check_threads", "empty_axis_error"]

AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError

#: ``axis=``: None (every axis), an int, or a tuple of ints -- as NumPy's reductions (and so
#: SciPy) take it: no list, no bool. Anything with ``__index__`` counts as an int.
AxisLike = Union[None, SupportsIndex, Tuple[SupportsIndex, ...]]

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
LD = np.dtype(np.longdouble)
FLOAT_NAMES = "float16, bfloat16, float32, float64 or longdouble"


# ---- axes ------------------------------------------------------------------------------------

def _axis_index(a: Any, message: str) -> int:
    """a as an int, as NumPy takes an axis (operator.index, and no bools); else TypeError(message)."""
    if isinstance(a, (bool, np.bool_)):
        raise TypeError(message)
    try:
        return operator.index(a)
    except TypeError:
        raise TypeError(message) from None


def normalize_axes(axis: AxisLike, ndim: int) -> Tuple[int, ...]:
    """axis= as non-negative ints, in the order given (None: every axis), or NumPy's errors."""
    if axis is None:
        return tuple(range(ndim))
    # As NumPy's reductions (and so SciPy): an int or a tuple of ints; no lists, no bools.
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for item in items:
        a = _axis_index(item, f"axis must be None, an int or a tuple of ints, got {axis!r}")
        if ndim == 0 and a in (0, -1) and not isinstance(axis, tuple):
            continue  # NumPy reductions accept a plain axis=0 / -1 on 0-d input
        if not -ndim <= a < ndim:
            raise AxisError(a, ndim)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in 'axis': {axis!r}")
    return tuple(out)


def rows_view(a: np.ndarray, axes: Tuple[int, ...]) -> np.ndarray:
    """`a` with `axes` moved to the end and merged into one (a copy only if they cannot merge);
    no axes: every element its own row of one."""
    if not axes:
        return a[..., np.newaxis]
    k = len(axes)
    am = np.moveaxis(a, axes, [a.ndim - k + i for i in range(k)])
    if k > 1:
        am = am.reshape(am.shape[: a.ndim - k] + (-1,))
    return am


def merge_trailing_view(a: np.ndarray, k: int) -> Optional[np.ndarray]:
    """A view of `a` with its last k axes merged into one, or None if that needs a copy."""
    shape = a.shape[: a.ndim - k] + (int(np.prod(a.shape[a.ndim - k :])),)
    try:
        return np.reshape(a, shape, copy=False)
    except TypeError:  # NumPy < 2.1: no copy= keyword
        v = a.view()
        try:
            v.shape = shape
        except AttributeError:
            return None
        return v
    except ValueError:
        return None


def row_shape(shape: Tuple[int, ...], axes: Tuple[int, ...]) -> Tuple[int, ...]:
    """The shape of a reduction's result: `shape` without `axes`."""
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def empty_axis_error(op: str) -> ValueError:
    """NumPy's (and SciPy's) error for a softmax over an empty axis, naming op."""
    return ValueError("zero-size array to reduction operation maximum which has no identity "
                      f"({op} over an empty axis is undefined, as in SciPy)")


# ---- dtypes ----------------------------------------------------------------------------------

_known_bfloat16: Optional[np.dtype] = None  # the instance seen last: its .name costs a microsecond


def is_bfloat16(dtype: np.dtype) -> bool:
    """ml_dtypes.bfloat16 (an optional dependency), recognised without importing ml_dtypes."""
    global _known_bfloat16
    if dtype is _known_bfloat16:
        return True
    if dtype.kind == "V" and dtype.itemsize == 2 and dtype.names is None and dtype.name == "bfloat16":
        _known_bfloat16 = dtype
        return True
    return False


def native_float(a: np.ndarray) -> Optional[np.ndarray]:
    """a as an array the kernels read in place: float16, float32 or float64 in native byte
    order (a byte-swapped array converted, as the kernels read native numbers) or bfloat16;
    None for any other dtype."""
    dt = a.dtype
    if dt.char in ("e", "f", "d"):  # float16, float32, float64 in either byte order
        return a if dt.isnative else a.astype(dt.newbyteorder("="))
    return a if is_bfloat16(dt) else None


def float_logits(logits, what: str) -> np.ndarray:
    """Logits as native_float gives them; a TypeError naming `what` for any other dtype."""
    x = np.asarray(logits)
    native = native_float(x)
    if native is None:
        raise TypeError(f"{what} needs float logits (float32, float64, float16 or bfloat16), got dtype {x.dtype}")
    return native


def not_real(dtype: np.dtype) -> bool:
    """Objects, strings, bytes, datetimes, structured types: never numbers (bfloat16 is)."""
    return dtype.hasobject or (dtype.kind in ("O", "S", "U", "V", "M", "m") and not is_bfloat16(dtype))


def as_real_array(x: Any, op: str) -> np.ndarray:
    """np.asarray(x), or a TypeError naming op if its dtype is not one of numbers."""
    x = np.asarray(x)
    if not_real(x.dtype):
        raise TypeError(f"{op} needs real numbers, got an array of dtype {x.dtype!r}")
    return x


def result_dtype(dtype: np.dtype, op: str) -> np.dtype:
    """SciPy's softmax result dtype (that of np.exp on the input), or a TypeError naming op."""
    if is_bfloat16(dtype):
        return dtype
    if dtype.kind == "b":
        raise TypeError(f"{op} of a boolean array is not supported (as in SciPy); convert it to a float dtype first")
    if dtype.kind == "c":
        raise TypeError(f"{op} of complex input ({dtype}) is not supported: fastsoftmax computes real {op} only")
    if dtype.kind not in "iuf":
        raise TypeError(f"{op} needs real numbers, got an array of dtype {dtype!r}")
    if dtype.kind == "f":
        return np.dtype(dtype.char)  # native byte order, as NumPy's results
    return np.exp(np.zeros(1, dtype)).dtype  # int8/uint8 -> float16, int16 -> float32, wider -> float64


def logsumexp_dtype(dtype: np.dtype, op: str = "logsumexp") -> np.dtype:
    """scipy.special.logsumexp's result dtype for real input: floats keep theirs, booleans
    and every integer give float64."""
    if dtype.kind == "c":
        raise TypeError(f"{op} of complex input ({dtype}) is not supported: fastsoftmax computes the real "
                        "log-sum-exp only (scipy.special.logsumexp takes complex input)")
    if dtype.kind in "biu":  # SciPy promotes booleans and every integer to the default float
        return F64
    if is_bfloat16(dtype):
        return dtype
    if dtype.kind != "f":
        raise TypeError(f"{op} needs real numbers, got an array of dtype {dtype!r}")
    return np.dtype(dtype.char)


def stats_dtype(dtype: np.dtype, op: str) -> np.dtype:
    """The softmax result dtype for the statistics API, which has no long double kernels:
    float16/bfloat16 run natively (float32 arithmetic in registers)."""
    result = result_dtype(dtype, op)
    if result not in (F16, F32, F64) and not is_bfloat16(result):
        raise TypeError(f"{op} computes in float32/float64 and does not take {dtype} input; "
                        "convert it first, e.g. x.astype(np.float64)")
    return result


def float_rank(dtype: np.dtype) -> int:
    """Precision rank of a result dtype: 1 (16-bit), 2, 3, 4 (long double); 0: not a float."""
    if is_bfloat16(dtype):
        return 1
    if dtype.kind != "f":
        return 0
    return {2: 1, 4: 2, 8: 3}.get(dtype.itemsize, 4)


def requested_dtype(dtype: Any) -> np.dtype:
    """The dtype= argument as a NumPy dtype: a float type, else TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a floating dtype ({FLOAT_NAMES}), got {dtype!r}") from None
    if not float_rank(dt):
        raise TypeError(f"dtype must be a floating dtype ({FLOAT_NAMES}), got {dt}")
    return np.dtype(dt.char) if dt.kind == "f" else dt  # native byte order


def compute_dtype(input_dtype: np.dtype, result: np.dtype) -> np.dtype:
    """The dtype the kernel runs in for mixed precision: the more precise of the input's
    result dtype and the requested one (as a NumPy ufunc with dtype=/out= picks its loop);
    float16 <-> bfloat16 goes through float32. The result is rounded once to `result`."""
    if input_dtype == result:
        return result
    hi = input_dtype if float_rank(input_dtype) >= float_rank(result) else result
    return F32 if float_rank(hi) == 1 else hi


def output_dtype(input_result: np.dtype, dtype: Any, out: Any, shape: Tuple[int, ...]) -> np.dtype:
    """The result dtype of a call with mixed precision: dtype= if given, else out's dtype,
    else the input's own; out= is checked (any floating dtype, or exactly dtype= if both are given)."""
    result = input_result if dtype is None else requested_dtype(dtype)
    if out is not None:
        check_out(out, shape, result if dtype is not None else None)
        result = out.dtype
    return result


def cast(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """a converted to dtype with one rounding to nearest even. (ml_dtypes converts float64
    to bfloat16 through float32, rounding twice; here float64 is first rounded to the
    bfloat16 grid, exactly. Long double goes to 16 bits through float64.)"""
    if a.dtype == LD and dtype.itemsize == 2:
        a = a.astype(np.float64)  # NumPy rounds long double to float16 through float32
    if is_bfloat16(dtype) and a.dtype.itemsize > 4:
        b = np.asarray(a, dtype=np.float64)
        with np.errstate(all="ignore"):
            step = np.exp2(np.floor(np.log2(np.maximum(np.abs(b), 2.0**-126))) - 7)  # bfloat16's spacing
            on_grid = np.rint(b / step) * step  # exact; huge values round up to 2^128 -> inf below
            a = np.where(np.isfinite(b), on_grid, b)
    with np.errstate(over="ignore"):
        return a.astype(dtype)


# ---- out= ------------------------------------------------------------------------------------

def check_out(out: Any, shape: Tuple[int, ...], dtype: Optional[np.dtype]) -> np.ndarray:
    """out= for a result of `shape`; dtype: the required dtype, or None: any floating dtype
    (mixed precision)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if dtype is not None and out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {dtype} (the result dtype for this input)")
    if dtype is None and not float_rank(out.dtype):
        raise TypeError(f"out has dtype {out.dtype}; it must be a floating dtype ({FLOAT_NAMES})")
    if not out.dtype.isnative:
        raise TypeError(f"out has dtype {out.dtype.str}, in non-native byte order; pass a native-order array")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    # A writable view whose elements share memory (a zero stride, or rows closer than their
    # length: np.lib.stride_tricks.as_strided makes both): several results would land on the
    # same bytes and only the last would survive. (np.shares_memory(out, out) cannot tell:
    # it is True for every non-empty array.) Decided exactly, except where the bounded
    # search gives up (None): refused too -- no ordinary layout gets there.
    overlap = _core.overlaps_itself(out)
    if overlap:
        raise ValueError(f"out overlaps itself (shape {out.shape}, strides {out.strides}, itemsize "
                         f"{out.itemsize}): two of its elements share memory, so it cannot hold the result")
    if overlap is None:
        raise ValueError(f"out has strides {out.strides} (shape {out.shape}) too irregular to tell whether "
                         "its elements overlap each other; pass an ordinary array")
    return out


def same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """The same elements in the same places: the same address, strides and shape."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def check_out_against_x(out: np.ndarray, x: np.ndarray) -> None:
    """out=x (or the same view) computes in place; any other shared element is an error."""
    if np.may_share_memory(out, x) and not same_view(out, x) and np.shares_memory(out, x):
        raise ValueError("out partially overlaps x; pass out=x for an in-place call, or a separate array")


# ---- isa=, threads= --------------------------------------------------------------------------

def check_isa(isa: Any) -> None:
    """isa= names a tier this build has, this CPU runs, and the FASTSOFTMAX_ISA cap allows."""
    # The native core checks the tier only when it runs a kernel; empty input and long double
    # never reach it, so check here too: an unknown tier is an error, never silently ignored.
    if not isinstance(isa, str):
        raise TypeError(f"isa must be None or a tier name, got {type(isa).__name__}")
    compiled = _core.compiled_isas()
    if isa not in compiled:
        raise ValueError(f"unknown isa {isa!r} (this build has: {', '.join(compiled)})")
    if not _core.isa_runnable(isa):
        raise ValueError(f"isa {isa!r} is compiled in but this CPU (or OS) cannot run it")
    cap = _core.isa_cap()  # the operator's cap binds isa= too
    if cap in compiled and compiled.index(isa) < compiled.index(cap):
        raise ValueError(f"isa {isa!r} is above the cap FASTSOFTMAX_ISA={cap!r} set for this process")


def check_options(isa: Any, threads: Any) -> int:
    """isa= and threads= checked; the thread count as the core takes it (0: the default)."""
    if isa is not None:
        check_isa(isa)
    return check_threads(threads)


def class_axis(axis, ndim: int, what: str, role: str) -> int:
    """The one axis (an int, as NumPy takes it) that `what` works along, normalized to
    [0, ndim); role names it in the error for a 0-d input ("the vocabulary axis")."""
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, checked in full below
        return axis % ndim
    ax = _axis_index(axis, f"axis must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{what} needs at least one dimension ({role})")
    if not -ndim <= ax < ndim:
        raise AxisError(ax, ndim)
    return ax % ndim
