"""fastsoftmax.sample: temperature, top-k, top-p and min-p sampling without sorting.

The exact semantics are written down in docs/sampling.md.
"""

from __future__ import annotations

import math
import operator
import os
from typing import Any, Optional

import numpy as np

from . import _core
from ._args import check_threads, class_axis, float_logits

__all__ = ["sample"]

_ERRORS = {1: "contains NaN", 2: "is all -inf (no token can be drawn)", 3: "contains +inf"}


def _per_row(name: str, value, batch: tuple, dtype) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}")
    if a.dtype.kind == "b":
        raise TypeError(f"{name} must be a number, not a boolean")
    try:
        a = np.broadcast_to(a, batch)
    except ValueError:
        raise ValueError(f"{name} must be a scalar or one value per row (shape {batch}), got shape {a.shape}") from None
    return a


def _is_real_scalar(value) -> bool:
    tp = type(value)
    if tp is float or tp is int:  # the common case, before the slower isinstance tests
        return True
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _temperature_ok(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _top_p_ok(v: float) -> bool:
    return 0 < v <= 1


def _min_p_ok(v: float) -> bool:
    return 0 <= v <= 1


def _scalar_param(name: str, value, ok, rule: str) -> Optional[float]:
    """A Python or NumPy real scalar, checked, as a float; None for anything else (arrays take
    the per-row path)."""
    if not _is_real_scalar(value):
        return None
    v = float(value)
    if not ok(v):  # NaN fails every rule
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return v


def _check_values(name: str, a: np.ndarray, ok: np.ndarray, rule: str) -> None:
    if not ok.all():
        bad = np.argwhere(~ok)[0]
        where = f" (row {tuple(int(i) for i in bad)})" if a.ndim else ""
        raise ValueError(f"{name} must be {rule}, got {a[tuple(bad)]!r}{where}")


def _seed_scalar(seed) -> Optional[int]:
    """One seed for every row: None or a Generator draws one, an int is checked; None for
    anything else (per-row seeds, _seed_array)."""
    if seed is None:  # fresh entropy from the OS, as numpy.random.default_rng() takes it, at 1/15 the cost
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64, endpoint=False))
    if type(seed) is int or (isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))):
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
        return int(seed)
    return None


def _seed_array(seed, batch: tuple) -> np.ndarray:
    """Per-row seeds (an array or a sequence of ints) broadcast to the batch shape."""
    a = np.asarray(seed)
    if a.dtype == object:
        try:
            a = np.asarray([operator.index(v) for v in a.ravel()], dtype=object).reshape(a.shape)
        except TypeError:
            raise TypeError(f"seed must be None, a numpy.random.Generator, or integers in [0, 2**64), got {seed!r}") from None
    elif a.dtype.kind not in "iu":
        raise TypeError(f"seed must be None, a numpy.random.Generator, or integers in [0, 2**64), got {seed!r}")
    ints = np.vectorize(int, otypes=[object])(a) if a.size else a.astype(object)
    if a.size and (min(ints.ravel()) < 0 or max(ints.ravel()) >= 2**64):
        raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
    try:
        b = np.broadcast_to(np.asarray(ints, dtype=object), batch)
    except ValueError:
        raise ValueError(f"seed must be a scalar or one value per row (shape {batch}), got shape {a.shape}") from None
    return np.array(b, dtype=np.uint64)


def sample(logits, *, temperature=1.0, top_k=None, top_p=None, min_p=None, seed=None, axis: int = -1,
           out: Optional[np.ndarray] = None, return_logprobs: bool = False, row_offset: int = 0, threads=None):
    """Draw one token index per row of ``logits`` (along ``axis``).

    The filters apply in this order: ``temperature`` (logits / T; 0 is greedy), ``top_k``
    (the k largest), ``top_p`` (the shortest most-probable prefix of the top-k
    distribution whose mass reaches p), ``min_p`` (p_i >= min_p * p_max). Each parameter is a
    scalar or one value per row (an array broadcastable to the batch shape, ``logits.shape``
    without ``axis``). ``None`` (and ``top_k >= V``, ``top_p == 1``, ``min_p == 0``) disables
    a filter. Ties: tokens are ordered by logit, descending, then by index, ascending.

    The draw is reproducible: row ``r`` (in C order over the batch) uses Philox4x32-10 with
    key ``seed`` (scalar or per row) and counter ``row_offset + r``, whatever the thread
    count or machine. ``seed=None`` takes a fresh 64-bit seed from the operating system's
    entropy (``os.urandom``); a ``numpy.random.Generator`` is drawn from (one 64-bit seed per
    call).

    Returns int64 token indices of the batch shape (written to ``out`` if given), or
    ``(tokens, logprobs)`` with ``return_logprobs=True``: the float64 log-probability of each
    drawn token under the filtered, renormalized distribution it was drawn from.
    See docs/sampling.md.
    """
    x = float_logits(logits, "sample")
    ax = class_axis(axis, x.ndim, "sample", "the vocabulary axis")
    n = x.shape[ax]
    batch = x.shape[:ax] + x.shape[ax + 1:]
    if n == 0:
        raise ValueError("sample needs a non-empty vocabulary axis")
    nthreads = check_threads(threads)
    if type(row_offset) is not int:
        if isinstance(row_offset, (bool, np.bool_)):
            raise TypeError("row_offset must be an int")
        row_offset = operator.index(row_offset)
    if not 0 <= row_offset < 2**64:
        raise ValueError(f"row_offset must be in [0, 2**64), got {row_offset}")

    rows = math.prod(batch)
    if rows and row_offset > 2**64 - rows:  # the last row's Philox counter must fit 64 bits
        raise ValueError(f"row_offset + the number of rows must be at most 2**64 (row r draws with counter "
                         f"row_offset + r), got {row_offset} + {rows}")
    # Each parameter is a checked Python scalar (one value for every row) or a per-row array.
    t: Any
    k: Any
    p: Any
    mp: Any
    seeds: Any
    t = _scalar_param("temperature", temperature, _temperature_ok, "finite and >= 0")
    if t is None:
        t = _per_row("temperature", temperature, batch, np.float64).astype(np.float64)
        _check_values("temperature", t, np.isfinite(t) & (t >= 0), "finite and >= 0")
    if top_k is None:
        k = n
    elif _is_real_scalar(top_k):
        if isinstance(top_k, (float, np.floating)) and not (math.isfinite(top_k) and top_k == math.floor(top_k)):
            raise ValueError(f"top_k must be an integer, got {top_k!r}")
        if not top_k >= 1:
            raise ValueError(f"top_k must be >= 1 (None disables top-k), got {top_k!r}")
        k = min(int(top_k), n)
    else:
        k0 = _per_row("top_k", top_k, batch, np.int64)
        if k0.dtype.kind == "f":
            _check_values("top_k", k0, np.isfinite(k0) & (k0 == np.floor(k0)), "an integer")
        _check_values("top_k", k0, k0 >= 1, ">= 1 (None disables top-k)")
        k = np.minimum(k0, n).astype(np.int64)
    if top_p is None:
        p = 1.0
    else:
        p = _scalar_param("top_p", top_p, _top_p_ok, "in (0, 1] (None disables top-p)")
        if p is None:
            p = _per_row("top_p", top_p, batch, np.float64).astype(np.float64)
            _check_values("top_p", p, (p > 0) & (p <= 1), "in (0, 1] (None disables top-p)")
    if min_p is None:
        mp = 0.0
    else:
        mp = _scalar_param("min_p", min_p, _min_p_ok, "in [0, 1] (None disables min-p)")
        if mp is None:
            mp = _per_row("min_p", min_p, batch, np.float64).astype(np.float64)
            _check_values("min_p", mp, (mp >= 0) & (mp <= 1), "in [0, 1] (None disables min-p)")
    seeds = _seed_scalar(seed)
    if seeds is None:
        seeds = _seed_array(seed, batch)
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
        if out.dtype != np.int64:
            raise TypeError(f"out must have dtype int64, got {out.dtype}")
        if out.shape != batch:
            raise ValueError(f"out has shape {out.shape}, expected {batch}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")

    if rows == 0:
        tokens = np.empty(batch, dtype=np.int64)
        logp = np.empty(batch, dtype=np.float64)
    else:
        if ax == x.ndim - 1 and x.flags.c_contiguous:
            xm = x.reshape(rows, n)
        else:
            xm = np.ascontiguousarray(np.moveaxis(x, ax, -1)).reshape(rows, n)
        if type(t) is float and type(k) is int and type(p) is float and type(mp) is float and type(seeds) is int:
            # Scalars all: the core repeats them for every row (the values the arrays would hold).
            tok, lp, bad, err = _core.sample_rows_scalar(xm, t, k, p, mp, seeds, row_offset, bool(return_logprobs),
                                                         nthreads)
        else:
            flat = lambda a, d: np.ascontiguousarray(np.broadcast_to(a, batch), dtype=d).reshape(rows)  # noqa: E731
            tok, lp, bad, err = _core.sample_rows(xm, flat(t, np.float64), flat(k, np.int64), flat(p, np.float64),
                                                  flat(mp, np.float64), flat(seeds, np.uint64), row_offset,
                                                  bool(return_logprobs), nthreads)
        if bad >= 0:
            where = tuple(int(i) for i in np.unravel_index(bad, batch)) if batch else ()
            where = where[0] if len(where) == 1 else where
            raise ValueError(f"logits row {where} {_ERRORS[err]}" if batch else f"logits {_ERRORS[err]}")
        tokens = tok.reshape(batch) if len(batch) != 1 else tok
        logp = lp.reshape(batch) if lp is not None and len(batch) != 1 else lp
    if out is not None:
        out[...] = tokens
        tokens = out
    elif tokens.ndim == 0:
        tokens = tokens[()]
        if return_logprobs:
            logp = logp[()]
    return (tokens, logp) if return_logprobs else tokens
