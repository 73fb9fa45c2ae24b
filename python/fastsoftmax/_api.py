"""Public softmax/log_softmax: SciPy-compatible argument handling over the native core."""

from __future__ import annotations

import operator
from typing import Any, Literal, Optional, SupportsIndex, Tuple, Union, get_args, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._threads import MAX_THREADS, check_threads, get_num_threads, set_num_threads

__all__ = ["softmax", "log_softmax", "set_num_threads", "get_num_threads", "ALGORITHMS", "AxisLike", "Algorithm",
           "Tier"]

#: The values of ``algorithm=`` (for type checkers).
Algorithm = Literal["auto", "two-pass", "three-pass-reload", "three-pass-recompute", "online"]
#: The instruction-set tiers ``isa=`` and ``FASTSOFTMAX_ISA`` may name (a build compiles some
#: of them: :func:`kernels`, ``python -m fastsoftmax``).
Tier = Literal["scalar", "avx2", "avx512", "neon"]
#: Accepted values of ``algorithm=``.
ALGORITHMS: Tuple[Algorithm, ...] = get_args(Algorithm)

#: ``axis=``: None (every axis), an int, or a tuple of ints -- as NumPy's reductions (and so
#: SciPy) take it: no list, no bool. Anything with ``__index__`` counts as an int.
AxisLike = Union[None, SupportsIndex, Tuple[SupportsIndex, ...]]

# What a 0-d input may be, for which the result is a NumPy scalar.
_Scalar = Union[float, np.floating[Any], np.integer[Any]]

_AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError


def _normalize_axes(axis: AxisLike, ndim: int) -> Tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    # As NumPy's reductions (and so SciPy): an int or a tuple of ints; no lists, no bools.
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)):
            raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}") from None
        if ndim == 0 and a in (0, -1) and not isinstance(axis, tuple):
            continue  # NumPy reductions accept a plain axis=0 / -1 on 0-d input
        if not -ndim <= a < ndim:
            raise _AxisError(a, ndim)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in 'axis': {axis!r}")
    return tuple(out)


def _is_bfloat16(dtype: np.dtype) -> bool:
    """ml_dtypes.bfloat16 (an optional dependency), recognised without importing ml_dtypes."""
    global _BF16
    if dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16" and dtype.names is None:
        _BF16 = dtype  # from now on the fast path takes it too
        return True
    return False


def _result_dtype(dtype: np.dtype, op: str = "softmax") -> np.dtype:
    """SciPy's result dtype (that of np.exp on the input), or a TypeError naming op (the
    function called)."""
    if _is_bfloat16(dtype):
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


_FLOAT_NAMES = "float16, bfloat16, float32, float64 or longdouble"


def _float_rank(dtype: np.dtype) -> int:
    """Precision rank of a result dtype: 1 (16-bit), 2, 3, 4 (long double); 0: not a float."""
    if _is_bfloat16(dtype):
        return 1
    if dtype.kind != "f":
        return 0
    return {2: 1, 4: 2, 8: 3}.get(dtype.itemsize, 4)


def _requested_dtype(dtype) -> np.dtype:
    """The dtype= argument as a NumPy dtype: a float type, else TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a floating dtype ({_FLOAT_NAMES}), got {dtype!r}") from None
    if not _float_rank(dt):
        raise TypeError(f"dtype must be a floating dtype ({_FLOAT_NAMES}), got {dt}")
    return np.dtype(dt.char) if dt.kind == "f" else dt  # native byte order


def _cast(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """a converted to dtype with one rounding to nearest even. (ml_dtypes converts float64
    to bfloat16 through float32, rounding twice; here float64 is first rounded to the
    bfloat16 grid, exactly. Long double goes to 16 bits through float64.)"""
    if a.dtype == _LD and dtype.itemsize == 2:
        a = a.astype(np.float64)  # NumPy rounds long double to float16 through float32
    if _is_bfloat16(dtype) and a.dtype.itemsize > 4:
        b = np.asarray(a, dtype=np.float64)
        with np.errstate(all="ignore"):
            step = np.exp2(np.floor(np.log2(np.maximum(np.abs(b), 2.0**-126))) - 7)  # bfloat16's spacing
            on_grid = np.rint(b / step) * step  # exact; huge values round up to 2^128 -> inf below
            a = np.where(np.isfinite(b), on_grid, b)
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def _compute_dtype(input_dtype: np.dtype, result_dtype: np.dtype) -> np.dtype:
    """The dtype the kernel runs in for mixed precision: the more precise of the input's
    result dtype and the requested one (as a NumPy ufunc with dtype=/out= picks its loop);
    float16 <-> bfloat16 goes through float32. The result is rounded once to result_dtype."""
    if input_dtype == result_dtype:
        return result_dtype
    hi = input_dtype if _float_rank(input_dtype) >= _float_rank(result_dtype) else result_dtype
    return _F32 if _float_rank(hi) == 1 else hi


def _check_out(out, shape, dtype: Optional[np.dtype]) -> np.ndarray:
    """dtype: the required dtype, or None: any floating dtype (mixed precision)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if dtype is not None and out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {dtype} (the result dtype for this input)")
    if dtype is None and not _float_rank(out.dtype):
        raise TypeError(f"out has dtype {out.dtype}; it must be a floating dtype ({_FLOAT_NAMES})")
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


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def _longdouble_reference(op: str, x: np.ndarray, axes: Tuple[int, ...]) -> np.ndarray:
    # Wider than anything the native core computes: SciPy's formula in x's own precision.
    x_max = np.amax(x, axis=axes, keepdims=True)
    if op == "softmax":
        e = np.exp(x - x_max)
        return e / np.sum(e, axis=axes, keepdims=True)
    x_max = np.where(np.isfinite(x_max), x_max, 0)
    tmp = x - x_max
    return tmp - np.log(np.sum(np.exp(tmp), axis=axes, keepdims=True))


def _check_isa(isa) -> None:
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


_ALGORITHM_SET = frozenset(ALGORITHMS)
_fast_softmax, _fast_log_softmax = _core.fast_softmax, _core.fast_log_softmax
_F16, _F32, _F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
_LD = np.dtype(np.longdouble)
_BF16 = None  # ml_dtypes.bfloat16's dtype, once an array of it has been seen
_check_threads = check_threads  # the name _stats and dask import


def _compute(op: str, x, axis: AxisLike, out, algorithm: str, isa: Optional[str], threads=None, dtype=None):
    # Fast path for the common call -- a native float array, softmax along its last axis, a
    # new result -- so that small calls cost about one NumPy ufunc call, not several.
    xd = x.dtype if type(x) is np.ndarray else None
    if (xd is not None and (xd is _F32 or xd is _F64 or xd is _F16 or xd is _BF16) and dtype is None
            and x.ndim and x.shape[-1]
            and type(algorithm) is str and algorithm in _ALGORITHM_SET and (isa is None or type(isa) is str)
            and (threads is None or type(threads) is int and 0 <= threads <= MAX_THREADS)
            and (axis == -1 or axis == x.ndim - 1 if type(axis) is int else axis is None and x.ndim == 1)):
        if out is None:
            y = np.empty(x.shape, x.dtype)
            _core.run(op, algorithm, x, y, isa, threads or 0)
            return y
        if (type(out) is np.ndarray and out.dtype is x.dtype and out.shape == x.shape and out.flags.writeable
                and _core.overlaps_itself(out) is False and (out is x or not np.may_share_memory(out, x))):
            _core.run(op, algorithm, x, out, isa, threads or 0)
            return out
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if isa is not None:
        _check_isa(isa)
    nthreads = check_threads(threads)
    x = np.asarray(x)
    if x.dtype.hasobject or (x.dtype.kind in ("O", "S", "U", "V", "M", "m") and not _is_bfloat16(x.dtype)):
        raise TypeError(f"{op} needs real numbers, got an array of dtype {x.dtype!r}")
    input_dtype = _result_dtype(x.dtype, op)
    result_dtype = input_dtype
    if dtype is not None:
        result_dtype = _requested_dtype(dtype)
    axes = _normalize_axes(axis, x.ndim)
    if out is not None:
        _check_out(out, x.shape, result_dtype if dtype is not None else None)
        result_dtype = out.dtype
        if np.may_share_memory(out, x) and not _same_view(out, x) and np.shares_memory(out, x):
            raise ValueError("out partially overlaps x; pass out=x for an in-place call, or a separate array")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError("zero-size array to reduction operation maximum which has no identity "
                         f"({op} over an empty axis is undefined, as in SciPy)")

    compute_dtype = _compute_dtype(input_dtype, result_dtype)
    if compute_dtype == _LD:
        # np.longdouble: keep SciPy's precision rather than rounding to float64.
        res = _longdouble_reference(op, x.astype(compute_dtype, copy=False), axes if x.ndim else ())
        if out is None:
            res = _cast(res, result_dtype) if res.dtype != result_dtype else res
            return res[()] if x.ndim == 0 else res
        out[...] = _cast(res, out.dtype)
        return out

    # float16/bfloat16 run natively (float32 arithmetic in registers, rounded once); int8
    # and uint8 as float16. Mixed precision: the kernel runs in compute_dtype and the
    # result is rounded once to the result dtype.
    xc = x.astype(compute_dtype, copy=False)

    if x.ndim == 0:
        xm = xc.reshape(1)
        res = np.empty(1, compute_dtype)
        if x.size:
            _core.run(op, algorithm, xm, res, isa, nthreads)
        if out is not None:
            out[...] = _cast(res, out.dtype)[0]
            return out
        return _cast(res, result_dtype)[0]

    if x.size == 0:
        return out if out is not None else np.empty_like(x, result_dtype, subok=False)

    if not axes:  # axis=(): every element is its own row (SciPy gives 1, or 0 for log)
        target = out if out is not None and out.dtype == compute_dtype else np.empty_like(xc, subok=False)
        _core.run(op, algorithm, xc[..., np.newaxis], target[..., np.newaxis], isa, nthreads)
        if out is not None and target is not out:
            out[...] = _cast(target, out.dtype)
            return out
        return target if out is not None or result_dtype == compute_dtype else _cast(target, result_dtype)

    k = len(axes)
    dest = [x.ndim - k + i for i in range(k)]
    xm = np.moveaxis(xc, axes, dest)
    if k > 1:
        xm = xm.reshape(xm.shape[: x.ndim - k] + (-1,))  # copies only if the axes cannot merge

    direct = out is not None and out.dtype == compute_dtype
    # A new result keeps x's memory order (NumPy's order="K", as np.exp(x)): Fortran in,
    # Fortran out. (xc has x's order too: astype keeps it, and so does _cast below.)
    target = out if direct else np.empty_like(xc, subok=False)
    tm = np.moveaxis(target, axes, dest)
    if k > 1:
        merged = _merge_trailing_view(tm, k)
        if merged is None and not direct and not target.flags.c_contiguous:
            # x's order would cost a copy of the result here (its reduced axes do not merge
            # into one): C order, as before, and no copy.
            target = np.empty(x.shape, compute_dtype)
            tm = np.moveaxis(target, axes, dest)
            merged = _merge_trailing_view(tm, k)
        if merged is None:  # the reduced axes of `target` cannot be viewed as one axis
            tmp = np.empty(xm.shape, compute_dtype)
            _core.run(op, algorithm, xm, tmp, isa, nthreads)
            tm[...] = tmp.reshape(tm.shape)
        else:
            _core.run(op, algorithm, xm, merged, isa, nthreads)
    else:
        _core.run(op, algorithm, xm, tm, isa, nthreads)

    if direct:
        return out
    if out is not None:  # mixed precision: round the result once
        out[...] = _cast(target, out.dtype)
        return out
    return target if result_dtype == compute_dtype else _cast(target, result_dtype)


def _merge_trailing_view(a: np.ndarray, k: int):
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


@overload
def softmax(x: _Scalar, axis: AxisLike = None, *, out: None = None,  # type: ignore[overload-overlap]
            dtype: DTypeLike = None, algorithm: Algorithm = "auto", isa: Optional[Tier] = None,
            threads: Optional[int] = None) -> np.floating[Any]: ...
@overload
def softmax(x: ArrayLike, axis: AxisLike = None, *, out: Optional[NDArray[Any]] = None, dtype: DTypeLike = None,
            algorithm: Algorithm = "auto", isa: Optional[Tier] = None,
            threads: Optional[int] = None) -> NDArray[np.floating[Any]]: ...


def softmax(x: ArrayLike, axis: AxisLike = None, *, out: Optional[NDArray[Any]] = None, dtype: DTypeLike = None,
            algorithm: Algorithm = "auto", isa: Optional[Tier] = None, threads: Optional[int] = None) -> Any:
    """Softmax of ``x`` along ``axis``: ``exp(x) / sum(exp(x), axis)``, without overflow.

    A drop-in replacement for :func:`scipy.special.softmax`: same results (within the
    documented accuracy bounds), dtype, shape, and handling of ``axis``, ±inf and NaN.

    Parameters
    ----------
    x : array_like
        Real input. float32 and float64 are computed natively; float16 and bfloat16
        (``ml_dtypes.bfloat16``, optional) are read and written in 16 bits and computed
        in float32 in registers, rounded once to nearest even; int8 and uint8 as float16
        (NumPy's result type), wider integers in float64.
    axis : None, int or tuple of ints
        Axes over which the softmax is taken; ``None`` (the default, as in SciPy) means
        the whole array. As for NumPy's reductions (and SciPy), a list is a ``TypeError``:
        pass a tuple (:data:`AxisLike`).
    out : ndarray, optional
        Where to write the result: ``x``'s shape, writable, any floating dtype (float16,
        bfloat16, float32, float64, longdouble). ``out=x`` computes in place; any other
        overlap with ``x`` is an error.
    dtype : dtype, optional
        The result dtype (a floating dtype), as for a NumPy ufunc. With ``dtype=`` or an
        ``out`` of another dtype than the input's result dtype (mixed precision), the
        kernel runs in the more precise of the two (float16 <-> bfloat16 in float32) and
        the result is rounded once: e.g. float16 in, float32 out is the float32 softmax
        of the float16 values.
    algorithm : {"auto", "two-pass", "three-pass-reload", "three-pass-recompute", "online"}
        The algorithm; ``"auto"`` picks by row length against the cache sizes.
    isa : {None, "scalar", "avx2", "avx512"}
        Force an instruction-set tier (default: the best this CPU runs, capped by
        ``FASTSOFTMAX_ISA``). A tier above that cap is a ``ValueError``: the operator's
        cap binds.
    threads : int, optional
        At most this many threads for this call, from 1 to :data:`MAX_THREADS` (None or
        0: :func:`get_num_threads`). Rows are spread over threads, and a long row is
        split into chunks whose statistics merge exactly; the result is bitwise the same
        for any thread count. A call uses only as many threads as its work pays for
        (README, Threads).

    Returns
    -------
    ndarray (a NumPy floating scalar for a Python or NumPy scalar, or any 0-d input)
        ``out`` if given; else a new array in ``x``'s memory order where NumPy's
        ``order="K"`` keeps it (Fortran in, Fortran out; over several axes that do not
        merge into one row in that order, C order).

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> fastsoftmax.softmax(np.array([1.0, 2.0, 3.0]))
    array([0.09003057, 0.24472847, 0.66524096])
    >>> fastsoftmax.softmax(np.zeros((2, 2), np.float32), axis=1)
    array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
    """
    # The common call is decided and run in C (NotImplemented: anything else, or an error to report).
    r = _fast_softmax(x, axis, out, dtype, algorithm, isa, threads)
    return r if r is not NotImplemented else _compute("softmax", x, axis, out, algorithm, isa, threads, dtype)


@overload
def log_softmax(x: _Scalar, axis: AxisLike = None, *, out: None = None,  # type: ignore[overload-overlap]
                dtype: DTypeLike = None, algorithm: Algorithm = "auto", isa: Optional[Tier] = None,
                threads: Optional[int] = None) -> np.floating[Any]: ...
@overload
def log_softmax(x: ArrayLike, axis: AxisLike = None, *, out: Optional[NDArray[Any]] = None, dtype: DTypeLike = None,
                algorithm: Algorithm = "auto", isa: Optional[Tier] = None,
                threads: Optional[int] = None) -> NDArray[np.floating[Any]]: ...


def log_softmax(x: ArrayLike, axis: AxisLike = None, *, out: Optional[NDArray[Any]] = None, dtype: DTypeLike = None,
                algorithm: Algorithm = "auto", isa: Optional[Tier] = None, threads: Optional[int] = None) -> Any:
    """Logarithm of the softmax, ``x - logsumexp(x, axis)``, computed without forming the softmax.

    A drop-in replacement for :func:`scipy.special.log_softmax`; the arguments are those
    of :func:`softmax`.

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> fastsoftmax.log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    """
    r = _fast_log_softmax(x, axis, out, dtype, algorithm, isa, threads)
    return r if r is not NotImplemented else _compute("log_softmax", x, axis, out, algorithm, isa, threads, dtype)
