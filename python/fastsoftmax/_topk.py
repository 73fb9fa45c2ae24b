"""topk_softmax and cross_entropy: the sampler's selection and the logsumexp pass, reused.

Exact definitions: docs/sampling.md ("topk_softmax", "cross_entropy").
"""

from __future__ import annotations

import math
import operator
from typing import Optional

import numpy as np

from . import _core
from ._args import check_threads, class_axis, float_logits, rows_view
from ._stats import stats_logsumexp

__all__ = ["topk_softmax", "cross_entropy"]

_ROW_ERRORS = {1: "contains NaN", 2: "is all -inf", 3: "contains +inf"}
_REDUCTIONS = ("mean", "sum", "none")


def _rows(x: np.ndarray, ax: int) -> np.ndarray:
    n = x.shape[ax]
    rows = math.prod(x.shape[:ax] + x.shape[ax + 1:])
    if ax == x.ndim - 1 and x.flags.c_contiguous:
        return x.reshape(rows, n)
    return np.ascontiguousarray(np.moveaxis(x, ax, -1)).reshape(rows, n)


def _result_dtype(x: np.ndarray):
    return np.float64 if x.dtype == np.float64 else np.float32


def _row_logsumexp(x: np.ndarray, ax: int, nthreads: int) -> np.ndarray:
    """float64 logsumexp along `ax` (the batch shape): fastsoftmax.logsumexp's one read of the
    rows in x's own dtype (float16 / bfloat16 natively, float32 arithmetic in registers: no
    float32 copy), its statistics combined in float64 and not rounded to the logits' type."""
    m, e, shift = _core.row_stats(rows_view(x, (ax,)), None, nthreads)
    return stats_logsumexp(m, e, shift).reshape(x.shape[:ax] + x.shape[ax + 1:])


def _where(flat_index: int, batch: tuple):
    where = tuple(int(i) for i in np.unravel_index(flat_index, batch)) if batch else ()
    return where[0] if len(where) == 1 else where


def topk_softmax(logits, k: int, axis: int = -1, *, threads: Optional[int] = None):
    """The k most probable classes of every row: ``(values, indices, probabilities)``.

    Along ``axis``: ``values`` are the k largest logits (the input's dtype), sorted
    descending, ties by index ascending (a stable sort of ``-x``; ``+0.0`` above ``-0.0``);
    ``indices`` (int64) where they are; ``probabilities`` their softmax over the *whole* row
    (``softmax(x)`` taken at ``indices``, so they sum to at most 1), float64 for float64
    logits, float32 otherwise, evaluated as ``exp(value - logsumexp(row))`` in float64 (the
    logsumexp one read of the row in its own dtype, not rounded to it). The results
    have the logits' shape with ``axis`` of length k. Rows holding NaN or ``+inf``, or all
    ``-inf``, are errors naming the row. No full sort: see docs/sampling.md.

    >>> import numpy as np, fastsoftmax
    >>> v, i, p = fastsoftmax.topk_softmax(np.array([1.0, 3.0, 2.0, 3.0]), 2)
    >>> i.tolist(), v.tolist()
    ([1, 3], [3.0, 3.0])
    """
    x = float_logits(logits, "topk_softmax")
    ax = class_axis(axis, x.ndim, "topk_softmax", "the class axis")
    n = x.shape[ax]
    if isinstance(k, (bool, np.bool_)):
        raise TypeError("k must be an int")
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"k must be an int, got {k!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the length of axis {ax}), got {k}")
    nthreads = check_threads(threads)
    batch = x.shape[:ax] + x.shape[ax + 1:]
    rows = math.prod(batch)
    rdt = _result_dtype(x)
    if rows == 0:
        shape = batch + (k,)
        vals, idx, prob = np.empty(shape, x.dtype), np.empty(shape, np.int64), np.empty(shape, rdt)
    else:
        xm = _rows(x, ax)
        idx, bad, err = _core.topk_rows(xm, k, nthreads)
        if bad >= 0:
            where = _where(bad, batch)
            raise ValueError(f"logits row {where} {_ROW_ERRORS[err]}" if batch else f"logits {_ROW_ERRORS[err]}")
        vals = np.take_along_axis(xm, idx, axis=1)
        lse = _row_logsumexp(xm, 1, nthreads)
        prob = np.exp(vals.astype(np.float64) - lse[:, None]).astype(rdt)
        shape = batch + (k,)
        vals, idx, prob = vals.reshape(shape), idx.reshape(shape), prob.reshape(shape)
    if ax != x.ndim - 1:
        vals, idx, prob = (np.moveaxis(a, -1, ax) for a in (vals, idx, prob))
    return vals, idx, prob


def cross_entropy(logits, targets, axis: int = -1, reduction: str = "mean", ignore_index: int = -100, *,
                  threads: Optional[int] = None):
    """``logsumexp(row) - row[target]`` for every row along ``axis``, reduced like PyTorch.

    ``targets`` (integers) has the logits' shape without ``axis`` (PyTorch's class axis is
    1; here it is ``axis``, -1 by default). A target equal to ``ignore_index`` contributes
    nothing: its loss is 0 with ``reduction="none"``, and it is left out of ``"sum"`` and of
    both the sum and the count of ``"mean"`` (mean over the rows not ignored; NaN when every
    row is ignored, as PyTorch). Any other target outside ``[0, V)`` is a ``ValueError``
    naming the row, raised before anything is computed. The result is float64 for float64
    logits and float32 otherwise (a scalar for "mean"/"sum"); the logsumexp is one read of
    the logits in their own dtype (fastsoftmax.logsumexp's kernels; 16-bit without a float32
    copy), kept in float64, and the difference and the reduction run in float64.

    >>> import numpy as np, fastsoftmax
    >>> float(fastsoftmax.cross_entropy(np.zeros((2, 4), np.float32), [1, 3]))  # log 4
    1.3862943...
    """
    x = float_logits(logits, "cross_entropy")
    ax = class_axis(axis, x.ndim, "cross_entropy", "the class axis")
    n = x.shape[ax]
    if n == 0:
        raise ValueError("cross_entropy needs a non-empty class axis")
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError("ignore_index must be an int")
    try:
        ignore_index = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}") from None
    nthreads = check_threads(threads)
    batch = x.shape[:ax] + x.shape[ax + 1:]
    t = np.asarray(targets)
    if t.dtype == np.bool_ or t.dtype.kind not in "iu":
        raise TypeError(f"targets must be integers, got dtype {t.dtype}")
    if t.shape != batch:
        raise ValueError(f"targets must have the logits' shape without axis {ax}: {batch}, got {t.shape}")
    ignored = t == ignore_index
    if t.dtype.kind == "u":
        out_of_range = ~ignored & (t >= n)
    else:
        out_of_range = ~ignored & ((t < 0) | (t >= n))
    if out_of_range.any():
        bad = int(np.flatnonzero(out_of_range.ravel())[0])
        where = f" (row {_where(bad, batch)})" if batch else ""
        raise ValueError(f"target {int(t.ravel()[bad])}{where} is outside [0, {n}) and is not "
                         f"ignore_index ({ignore_index})")
    rdt = _result_dtype(x)
    tt = np.where(ignored, 0, t).astype(np.intp)
    if math.prod(batch) == 0:
        loss = np.zeros(batch, np.float64)
    else:
        lse = _row_logsumexp(x, ax, nthreads)
        picked = np.take_along_axis(x, np.expand_dims(tt, ax), axis=ax).squeeze(ax)
        loss = lse - np.asarray(picked, np.float64)
        loss = np.where(ignored, 0.0, loss)
    if reduction == "none":
        return loss.astype(rdt)
    total = float(loss.sum())
    if reduction == "sum":
        return rdt(total)
    count = int(np.count_nonzero(~ignored))
    return rdt(total / count) if count else rdt(np.nan)
