"""fastsoftmax on Dask arrays: softmax, log_softmax and logsumexp of arrays larger than one machine.

Needs the optional ``dask`` extra (``pip install "fastsoftmax[dask]"``); ``import fastsoftmax``
alone never imports Dask.

When the softmax axes lie in one chunk each, every block is an independent
:func:`fastsoftmax.softmax` call (``map_blocks``). When they span several chunks, pass 1 is a
tree reduction of the per-block statistics (:func:`fastsoftmax.softmax_stats`, merged exactly
with the rule of :func:`fastsoftmax.merge_stats`; ``da.reduction``), and pass 2 runs on every
block from the merged statistics of its rows (``map_blocks`` with
:func:`fastsoftmax.softmax_from_stats`): the input is read twice and the result written once,
and no block ever needs another block's data.

>>> import numpy as np, dask.array as da, fastsoftmax, fastsoftmax.dask
>>> x = da.from_array(np.arange(8.0).reshape(2, 4), chunks=(1, 2))   # the axis spans 2 chunks
>>> y = fastsoftmax.dask.softmax(x, axis=1).compute(scheduler="sync")
>>> np.allclose(y, fastsoftmax.softmax(np.arange(8.0).reshape(2, 4), axis=1))
True
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Tuple

import numpy as np

try:
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastsoftmax.dask needs Dask: pip install \"fastsoftmax[dask]\" "
                      "(or: pip install \"dask[array]\")") from exc

from . import _api, _core, _stats
from . import _args as args
from ._args import AxisLike

__all__ = ["softmax", "log_softmax", "logsumexp"]

#: One record per row: (m, e, shift) with sum(exp(row)) = m * 2**e * exp(shift) (see SoftmaxStats).
STATS_DTYPE = np.dtype([("m", "<f8"), ("e", "<f8"), ("shift", "<f8")])


# ---- block functions (module level, so that worker processes can unpickle them) -----------

def _pack(m: np.ndarray, e: np.ndarray, shift: np.ndarray) -> np.ndarray:
    r = np.empty(np.shape(m), STATS_DTYPE)
    r["m"] = m
    r["e"] = e
    r["shift"] = shift
    return r


def _chunk_stats(xb, axis, keepdims, compute, threads):
    """da.reduction chunk: the statistics of this block's pieces of the rows."""
    axis = tuple(axis)
    xb = np.asarray(xb).astype(compute, copy=False)
    r = _pack(*_stats.raw_stats(xb, axis, None, args.check_threads(threads)))
    return np.expand_dims(r, axis) if keepdims else r


def _combine_stats(s, axis, keepdims):
    """da.reduction combine/aggregate: merge the statistics along the reduced axes."""
    axis = tuple(axis)
    s = np.asarray(s)
    return _pack(*_stats.reduce_stats(s["m"], s["e"], s["shift"], axis, keepdims=keepdims))


def _stats_to_lse(sb, axes, keepdims, result):
    """map_blocks over the merged statistics: log(m) + e ln 2 + shift, in the result dtype."""
    sb = np.asarray(sb)
    lse = args.cast(_stats.stats_logsumexp(sb["m"], sb["e"], sb["shift"]), result)
    return lse if keepdims else np.squeeze(lse, axes)


def _block_from_stats(xb, sb, op, axes, threads):
    """map_blocks: pass 2 of this block from the merged statistics of its rows."""
    sb = np.asarray(sb)
    st = _stats.SoftmaxStats(np.squeeze(sb["m"], axes), np.squeeze(sb["e"], axes), axes, xb.ndim,
                             np.squeeze(sb["shift"], axes))
    return _stats.from_stats(op, xb, st, None, None, threads)


def _block_softmax(xb, op, axes, threads, algorithm):
    fn = _api.softmax if op == "softmax" else _api.log_softmax
    return fn(xb, axis=axes, threads=threads, algorithm=algorithm)


def _block_lse_longdouble(xb, axis, keepdims):
    return _stats.logsumexp(xb, axis=tuple(axis), keepdims=keepdims)


# ---- public functions ---------------------------------------------------------------------

def _axes_of(x, axis: AxisLike) -> Tuple[int, ...]:
    return tuple(sorted(args.normalize_axes(axis, x.ndim)))


def _meta(ndim: int, dtype) -> np.ndarray:
    return np.empty((0,) * ndim, dtype)


def _stats_array(x, axes, compute, threads, split_every):
    """Pass 1: the merged statistics of x's rows along axes (keepdims; one chunk along axes)."""
    return da.reduction(x, functools.partial(_chunk_stats, compute=compute, threads=threads),
                        _combine_stats, combine=_combine_stats, axis=axes, keepdims=True, dtype=STATS_DTYPE,
                        split_every=split_every, concatenate=True, meta=_meta(x.ndim, STATS_DTYPE),
                        name="fastsoftmax-stats")


def _softmax(op: str, x, axis: AxisLike, threads, split_every):
    x = da.asarray(x)
    if args.not_real(x.dtype):  # as the NumPy functions: bfloat16 is real
        raise TypeError(f"{op} needs real numbers, got an array of dtype {x.dtype!r}")
    result = args.result_dtype(x.dtype, op)
    args.check_threads(threads)
    axes = _axes_of(x, axis)
    if any(x.shape[a] == 0 for a in axes):
        raise args.empty_axis_error(op)
    meta = _meta(x.ndim, result)
    if all(len(x.chunks[a]) == 1 for a in axes):  # every row inside one block
        # auto's choice for the whole array's rows (it can depend on their number), so that
        # every block gets the bits of the one NumPy call; chunks of unknown size leave it
        # to each block.
        name, algorithm = np.dtype(result).name, "auto"
        if name in _core.dtype_names() and not any(np.isnan(d) for d in x.shape):
            n = int(np.prod([x.shape[a] for a in axes]))
            algorithm = _core.auto_algorithm(name, n, int(x.size) // n)
        return x.map_blocks(_block_softmax, op=op, axes=axes, threads=threads, algorithm=algorithm, dtype=result,
                            meta=meta, token=f"fastsoftmax-{op.replace('_', '-')}")
    compute = args.stats_dtype(x.dtype, f"fastsoftmax.dask.{op} over several chunks")
    stats = _stats_array(x, axes, compute, threads, split_every)
    return da.map_blocks(_block_from_stats, x, stats, op=op, axes=axes, threads=threads, dtype=result, meta=meta,
                         token=f"fastsoftmax-{op.replace('_', '-')}-from-stats")


def softmax(x, axis: AxisLike = None, *, threads: Optional[int] = None, split_every=None):
    """Softmax of a Dask array along ``axis``, lazily; the axes may span any number of chunks.

    The same arguments, results (within the documented accuracy bounds), dtypes and
    special-value handling as :func:`fastsoftmax.softmax` (so ``axis=None``, the default,
    is the whole array, as in SciPy). ``threads`` is passed to every block's call (with
    one-thread workers, ``threads=1`` avoids oversubscribing the cores); ``split_every`` to
    the tree reduction of the statistics. Returns a Dask array chunked like ``x``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsoftmax.dask
    >>> x = da.zeros((2, 6), chunks=(1, 2))
    >>> fastsoftmax.dask.softmax(x, axis=-1).compute(scheduler="sync")[0]
    array([0.16666667, 0.16666667, 0.16666667, 0.16666667, 0.16666667,
           0.16666667])
    """
    return _softmax("softmax", x, axis, threads, split_every)


def log_softmax(x, axis: AxisLike = None, *, threads: Optional[int] = None, split_every=None):
    """Log-softmax of a Dask array along ``axis``; the arguments are those of :func:`softmax`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsoftmax.dask
    >>> x = da.zeros((2, 4), chunks=(2, 1))
    >>> fastsoftmax.dask.log_softmax(x, axis=1).compute(scheduler="sync")[0]  # log(1/4)
    array([-1.38629436, -1.38629436, -1.38629436, -1.38629436])
    """
    return _softmax("log_softmax", x, axis, threads, split_every)


def logsumexp(x, axis: AxisLike = None, *, keepdims: bool = False, b: Any = None, threads: Optional[int] = None,
              split_every=None):
    """``log(sum(exp(x), axis))`` of a Dask array: a tree reduction of exact per-block statistics.

    The same axis, keepdims, dtype and special-value rules as :func:`fastsoftmax.logsumexp`
    (and so :func:`scipy.special.logsumexp` for real, unweighted input). One read of ``x``.
    Weights (``b=``) are not supported here: ``NotImplementedError``. For positive weights,
    ``logsumexp(x + da.log(b))`` is the same sum; zero and negative weights need SciPy's
    sign handling, which :func:`fastsoftmax.logsumexp` has on NumPy arrays.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastsoftmax.dask
    >>> x = da.full((3, 8), 1000.0, chunks=(3, 2))
    >>> fastsoftmax.dask.logsumexp(x, axis=1).compute(scheduler="sync")  # 1000 + log 8
    array([1002.07944154, 1002.07944154, 1002.07944154])
    """
    if b is not None:
        raise NotImplementedError("fastsoftmax.dask.logsumexp does not take weights (b=); for positive weights, "
                                  "logsumexp(x + da.log(b)) is the same sum; otherwise use fastsoftmax.logsumexp "
                                  "(or scipy.special.logsumexp) on NumPy arrays")
    x = da.asarray(x)
    if args.not_real(x.dtype):
        raise TypeError(f"logsumexp needs real numbers, got an array of dtype {x.dtype!r}")
    result = compute = args.logsumexp_dtype(x.dtype)
    args.check_threads(threads)
    if x.ndim == 0:
        x = x.reshape(1)  # as SciPy: 0-d input is reduced as a 1-element 1-d array
    axes = _axes_of(x, axis)
    if not axes:
        return x.astype(result)  # each element is its own sum: log(exp(x)) == x
    out_ndim = x.ndim if keepdims else x.ndim - len(axes)
    if result == args.LD:  # long double: merge the blocks' long double results, not float64 stats
        f = _block_lse_longdouble
        return da.reduction(x, f, f, combine=f, axis=axes, keepdims=keepdims, dtype=result,
                            split_every=split_every, meta=_meta(out_ndim, result), name="fastsoftmax-logsumexp")
    stats = _stats_array(x, axes, compute, threads, split_every)
    return stats.map_blocks(_stats_to_lse, axes=axes, keepdims=keepdims, result=result, dtype=result,
                            drop_axis=() if keepdims else axes, meta=_meta(out_ndim, result),
                            token="fastsoftmax-logsumexp")
