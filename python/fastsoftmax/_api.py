"""Public softmax/log_softmax: SciPy-compatible argument handling over the native core."""

from __future__ import annotations

from typing import Any, Literal, Optional, Tuple, Union, cast, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _args as args
from . import _core
from . import _dlpack
from ._args import AxisLike
from ._threads import MAX_THREADS, get_num_threads, set_num_threads

__all__ = ["softmax", "log_softmax", "set_num_threads", "get_num_threads", "ALGORITHMS", "AxisLike", "Algorithm",
           "Tier"]

#: The values of ``algorithm=`` (for type checkers: spelled out, as a Literal must be;
#: tests/test_typing.py checks it against the core's list).
Algorithm = Literal["auto", "two-pass", "three-pass-reload", "three-pass-recompute", "online"]
#: The instruction-set tiers ``isa=`` and ``FASTSOFTMAX_ISA`` may name (a build compiles some
#: of them: :func:`kernels`, ``python -m fastsoftmax``).
Tier = Literal["scalar", "avx2", "avx512", "neon"]
#: Accepted values of ``algorithm=``: "auto" and the core's algorithms (csrc/kernels/kernels.inc).
ALGORITHMS: Tuple[Algorithm, ...] = cast(Tuple[Algorithm, ...], ("auto", *_core.algorithms()))

# What a 0-d input may be, for which the result is a NumPy scalar.
_Scalar = Union[float, np.floating[Any], np.integer[Any]]


def _longdouble_reference(op: str, x: np.ndarray, axes: Tuple[int, ...]) -> np.ndarray:
    # Wider than anything the native core computes: SciPy's formula in x's own precision.
    x_max = np.amax(x, axis=axes, keepdims=True)
    if op == "softmax":
        e = np.exp(x - x_max)
        return e / np.sum(e, axis=axes, keepdims=True)
    x_max = np.where(np.isfinite(x_max), x_max, 0)
    tmp = x - x_max
    return tmp - np.log(np.sum(np.exp(tmp), axis=axes, keepdims=True))


_ALGORITHM_SET = frozenset(ALGORITHMS)
_fast_softmax, _fast_log_softmax = _core.fast_softmax, _core.fast_log_softmax
_F16, _F32, _F64, _LD = args.F16, args.F32, args.F64, args.LD


def _compute(op: str, x, axis: AxisLike, out, algorithm: str, isa: Optional[str], threads=None, dtype=None):
    # Fast path for the common call -- a native float array, softmax along its last axis, a
    # new result -- so that small calls cost about one NumPy ufunc call, not several.
    xd = x.dtype if type(x) is np.ndarray else None
    if (xd is not None and (xd is _F32 or xd is _F64 or xd is _F16 or xd.kind == "V" and args.is_bfloat16(xd))
            and dtype is None
            and x.ndim and x.shape[-1]
            and type(algorithm) is str and algorithm in _ALGORITHM_SET and (isa is None or type(isa) is str)
            and (threads is None or type(threads) is int and 0 <= threads <= MAX_THREADS)
            and (axis == -1 or axis == x.ndim - 1 if type(axis) is int else axis is None and x.ndim == 1)):
        if out is None:
            y = np.empty_like(x)  # x's memory order, as the C path and the general path
            _core.run(op, algorithm, x, y, isa, threads or 0)
            return y
        if (type(out) is np.ndarray and out.dtype is x.dtype and out.shape == x.shape and out.flags.writeable
                and _core.overlaps_itself(out) is False and (out is x or not np.may_share_memory(out, x))):
            _core.run(op, algorithm, x, out, isa, threads or 0)
            return out
    if _dlpack.is_foreign(x) or _dlpack.is_foreign(out):  # torch tensors, other DLPack arrays
        return _dlpack.call(op, _compute, x, axis, out, algorithm, isa, threads, dtype)
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    nthreads = args.check_options(isa, threads)
    x = args.as_real_array(x, op)
    input_dtype = args.result_dtype(x.dtype, op)
    result_dtype = input_dtype
    if dtype is not None:
        result_dtype = args.requested_dtype(dtype)
    axes = args.normalize_axes(axis, x.ndim)
    if out is not None:
        args.check_out(out, x.shape, result_dtype if dtype is not None else None)
        result_dtype = out.dtype
        args.check_out_against_x(out, x)
    if any(x.shape[a] == 0 for a in axes):
        raise args.empty_axis_error(op)

    compute_dtype = args.compute_dtype(input_dtype, result_dtype)
    if compute_dtype == _LD:
        # np.longdouble: keep SciPy's precision rather than rounding to float64.
        res = _longdouble_reference(op, x.astype(compute_dtype, copy=False), axes if x.ndim else ())
        if out is None:
            res = args.cast(res, result_dtype) if res.dtype != result_dtype else res
            return res[()] if x.ndim == 0 else res
        out[...] = args.cast(res, out.dtype)
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
            out[...] = args.cast(res, out.dtype)[0]
            return out
        return args.cast(res, result_dtype)[0]

    if x.size == 0:
        return out if out is not None else np.empty_like(x, result_dtype, subok=False)

    if not axes:  # axis=(): every element is its own row (SciPy gives 1, or 0 for log)
        target = out if out is not None and out.dtype == compute_dtype else np.empty_like(xc, subok=False)
        _core.run(op, algorithm, xc[..., np.newaxis], target[..., np.newaxis], isa, nthreads)
        if out is not None and target is not out:
            out[...] = args.cast(target, out.dtype)
            return out
        return target if out is not None or result_dtype == compute_dtype else args.cast(target, result_dtype)

    k = len(axes)
    dest = [x.ndim - k + i for i in range(k)]
    xm = np.moveaxis(xc, axes, dest)
    if k > 1:
        xm = xm.reshape(xm.shape[: x.ndim - k] + (-1,))  # copies only if the axes cannot merge

    direct = out is not None and out.dtype == compute_dtype
    # A new result keeps x's memory order (NumPy's order="K", as np.exp(x)): Fortran in,
    # Fortran out. (xc has x's order too: astype keeps it, and so does args.cast below.)
    target = out if direct else np.empty_like(xc, subok=False)
    tm = np.moveaxis(target, axes, dest)
    if k > 1:
        merged = args.merge_trailing_view(tm, k)
        if merged is None and not direct and not target.flags.c_contiguous:
            # x's order would cost a copy of the result here (its reduced axes do not merge
            # into one): C order, as before, and no copy.
            target = np.empty(x.shape, compute_dtype)
            tm = np.moveaxis(target, axes, dest)
            merged = args.merge_trailing_view(tm, k)
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
        out[...] = args.cast(target, out.dtype)
        return out
    return target if result_dtype == compute_dtype else args.cast(target, result_dtype)


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
    x : array_like, or a CPU tensor / array with ``__dlpack__``
        Real input. A torch tensor (or any CPU array exporting DLPack) is read in place,
        without a copy, and the result comes back as a torch tensor for a torch input (a
        NumPy array for other DLPack producers); a tensor on another device is a
        ``ValueError`` naming it, and one that requires grad goes through
        :mod:`fastsoftmax.torch`'s differentiable operators. float32 and float64 are computed natively; float16 and bfloat16
        (``ml_dtypes.bfloat16``, optional) are read and written in 16 bits and computed
        in float32 in registers, rounded once to nearest even (within 1 ulp of the exact
        softmax; the exponentials only as accurate as a 16-bit result needs, see the
        README's Accuracy section); int8 and uint8 as float16 (NumPy's result type), wider
        integers in float64.
    axis : None, int or tuple of ints
        Axes over which the softmax is taken; ``None`` (the default, as in SciPy) means
        the whole array. As for NumPy's reductions (and SciPy), a list is a ``TypeError``:
        pass a tuple (:data:`AxisLike`).
    out : ndarray or CPU tensor, optional
        Where to write the result (a tensor: into its own memory): ``x``'s shape, writable, any floating dtype (float16,
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
