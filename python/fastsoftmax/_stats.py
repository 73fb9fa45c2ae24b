"""Mergeable softmax statistics, logsumexp, and softmax from (merged) statistics.

Pass 1 of the two-pass algorithm reduces a row to a pair (m, e) with
``sum(exp(row)) == m * 2**e`` (rows outside its fast range: ``m * exp(shift)``, shift their
max). The pair sum is associative: pieces of a row (chunks, shards, machines) can each
compute theirs, merge them, and run pass 2 on their own piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Tuple, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _args as args
from . import _core
from . import _dlpack
from ._api import Tier
from ._args import AxisLike

__all__ = ["SoftmaxStats", "softmax_stats", "merge_stats", "softmax_from_stats", "log_softmax_from_stats",
           "logsumexp"]


# ln 2 split as fdlibm's log: e * _LN2_HI is exact for |e| < 2^21 (every fast-range row).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: Exponent differences below this scale a mantissa (at most ~2^64) to exactly 0.
_MIN_SHIFT = -2000


# ---- the statistics object -------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SoftmaxStats:
    """Per-row softmax statistics: ``sum(exp(row)) == m * 2**e * exp(shift)`` for every row.

    ``m``, ``e`` and ``shift`` are float64 arrays of the row shape (the input's shape without
    ``axes``), ``axes`` the (non-negative, sorted) axes the rows run along and ``ndim`` the
    number of dimensions of the input. Made by :func:`softmax_stats`, combined by
    :func:`merge_stats`, consumed by :func:`softmax_from_stats` /
    :func:`log_softmax_from_stats`. Two forms: rows in the fast range of pass 1 (max within
    about +-2^20 in float64, +-65000 in float32) have the pair of pass 1 -- ``e`` an
    integer-valued exponent, ``shift = 0``; other finite rows have ``shift = max(row)``,
    ``e = 0`` and ``m = sum(exp(row - max))``, which no pair can stand for exactly (their
    log-sum can exceed float64 as a power of two; and ``x - max`` is exact where ``x - e ln 2``
    cancels). ``shift`` may be left out (zeros); where it is not 0, ``e`` must be 0.
    Special rows: one with a NaN has ``m = nan, e = 0``; one whose maximum is +inf
    ``m = inf, e = 0``; an empty or all -inf one ``m = 0, e = -inf`` (the identity of the
    merge); ``shift = 0``.

    >>> import numpy as np, fastsoftmax
    >>> s = fastsoftmax.softmax_stats(np.array([[0.0, 0.0], [1.0, 1.0]]))
    >>> s.shape, s.axes
    ((2,), (1,))
    >>> s.logsumexp()
    array([0.69314718, 1.69314718])
    """

    m: np.ndarray
    e: np.ndarray
    axes: Tuple[int, ...]
    ndim: int
    shift: Optional[np.ndarray] = None

    def __post_init__(self):
        m = np.asarray(self.m, dtype=np.float64, order="C")
        e = np.asarray(self.e, dtype=np.float64, order="C")
        if m.shape != e.shape:
            raise ValueError(f"m and e must have the same shape, got {m.shape} and {e.shape}")
        if self.shift is None:
            shift, shifted = np.zeros(m.shape), False
            shift.setflags(write=False)
        else:
            shift = np.asarray(self.shift, dtype=np.float64, order="C")
            if shift.shape != m.shape:
                raise ValueError(f"shift must have the shape of m and e, {m.shape}, got {shift.shape}")
            shifted = bool(shift.any())
            if shifted and (not np.isfinite(shift).all() or (e[shift != 0] != 0).any()):
                raise ValueError("shift must be finite, and e must be 0 wherever shift is not")
        ndim = self.ndim
        if isinstance(ndim, (bool, np.bool_)) or not isinstance(ndim, (int, np.integer)) or ndim < 0:
            raise TypeError(f"ndim must be a non-negative int, got {ndim!r}")
        axes = tuple(int(a) for a in self.axes)
        if list(axes) != sorted(set(axes)) or any(not 0 <= a < ndim for a in axes):
            raise ValueError(f"axes must be distinct, sorted axes of a {ndim}-d array, got {self.axes!r}")
        if m.ndim + len(axes) != ndim:
            raise ValueError(f"statistics of shape {m.shape} over axes {axes} do not describe a {ndim}-d array")
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "e", e)
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "_shifted", shifted)  # any row in the shift form (merge_stats' shortcut)
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "ndim", int(ndim))

    @property
    def shape(self) -> Tuple[int, ...]:
        """The row shape: the input's shape without ``axes``."""
        return self.m.shape

    def logsumexp(self):
        """``log(sum(exp(row)))`` of every row, in float64 (a NumPy scalar for a single row).

        >>> import numpy as np, fastsoftmax
        >>> float(fastsoftmax.softmax_stats(np.zeros(4)).logsumexp())  # log 4
        1.3862943611198906
        """
        r = stats_logsumexp(self.m, self.e, self.shift)
        return r[()] if r.ndim == 0 else r

    def merge(self, *others: "SoftmaxStats") -> "SoftmaxStats":
        """The same as ``merge_stats(self, *others)``."""
        return merge_stats(self, *others)

    def __repr__(self) -> str:
        return f"SoftmaxStats(shape={self.shape}, axes={self.axes}, ndim={self.ndim})"


def _make(m: np.ndarray, e: np.ndarray, shift: np.ndarray, axes, ndim) -> SoftmaxStats:
    for a in (m, e, shift):
        a.setflags(write=False)  # fresh arrays: the frozen object owns them
    return SoftmaxStats(m, e, axes, ndim, shift)


def stats_logsumexp(m: np.ndarray, e: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """log(m) + e*ln2 + shift in float64; m = 0, e = -inf gives -inf, m = inf gives inf, NaN NaN.

    Nothing overflows: pairs have |e| < 2^21, and the shift form is its max plus log(m) <= log(n).
    """
    return np.asarray(_core.stats_logsumexp(m, e, shift), dtype=np.float64)


def reduce_stats(m: np.ndarray, e: np.ndarray, shift: Optional[np.ndarray], axis, keepdims: bool = False):
    """Merge the statistics (m, e, shift) along `axis` (an int or a tuple); shift None: all 0.

    Pairs (shift 0): E = max e, M = sum m * 2^(e - E); the scaling by powers of two is exact
    (ldexp), so the only rounding is that of the sum. Shift-form pieces: C = max shift,
    M = sum m * exp(shift - C) (shift - C is exact: Sterbenz). When both kinds are there,
    the one with the larger log-sum keeps its form and takes the other's sum scaled by
    exp(C - E ln 2) or its inverse (E ln 2 in two parts, the first exact: |E| < 2^21).
    Special pieces: (0, -inf, 0) is the identity; a NaN anywhere gives (nan, 0, 0);
    otherwise an inf gives (inf, 0, 0) -- what row_stats gives for the whole row.
    """
    def red(fn, a):
        return fn(a, axis=axis, keepdims=True)

    with np.errstate(all="ignore"):
        if shift is None or not shift.any():  # pairs only (the common case)
            E = red(np.max, e)
            d = e - E  # <= 0; NaN where both are -inf (then m is 0) or where E is inf
            d = np.where(e == E, 0.0, d)
            d = np.where(d >= _MIN_SHIFT, d, _MIN_SHIFT)  # also maps NaN to _MIN_SHIFT
            M = red(np.sum, np.ldexp(m, d.astype(np.intc)))
            M = np.where(np.isnan(E), np.nan, M)  # a NaN exponent (never made by the core) poisons too
            special = ~np.isfinite(M)  # NaN or inf: (M, 0), as the core writes them
            if special.any():
                E = np.where(special, 0.0, E)
            C = np.zeros_like(M)
        else:
            live = m > 0  # not the identity (nor NaN)
            pair, shifted = live & (shift == 0), live & (shift != 0)
            E = red(np.max, np.where(pair, e, -np.inf))
            d = np.where(pair, e - E, 0.0)
            d = np.where(d >= _MIN_SHIFT, d, _MIN_SHIFT)
            M = red(np.sum, np.where(pair, np.ldexp(m, d.astype(np.intc)), 0.0))
            C = red(np.max, np.where(shifted, shift, -np.inf))
            Mc = red(np.sum, np.where(shifted, m * np.exp(shift - C), 0.0))
            both = (M > 0) & (Mc > 0)
            g = np.where(both, (C - E * _LN2_HI) - E * _LN2_LO, 0.0)  # log(2^-E e^C) where both
            keep_pair = (M > 0) & (np.log(M) >= np.log(Mc) + g)
            M, E, C = (np.where(keep_pair, M + np.where(both, Mc * np.exp(g), 0.0),
                                Mc + np.where(both, M * np.exp(-g), 0.0)),
                       np.where(keep_pair, E, 0.0), np.where(keep_pair, 0.0, C))
            nan = red(np.any, np.isnan(m) | np.isnan(e))
            inf = red(np.any, m == np.inf)
            M = np.where(nan, np.nan, np.where(inf, np.inf, M))
            E, C = np.where(nan | inf, 0.0, E), np.where(nan | inf, 0.0, C)
            E, C = np.where(M == 0, -np.inf, E), np.where(M == 0, 0.0, C)  # identities only
        if not keepdims:
            M, E, C = np.squeeze(M, axis=axis), np.squeeze(E, axis=axis), np.squeeze(C, axis=axis)
    return (np.asarray(M, dtype=np.float64, order="C"), np.asarray(E, dtype=np.float64, order="C"),
            np.asarray(C, dtype=np.float64, order="C"))


# ---- the native statistics ---------------------------------------------------------------

def raw_stats(xc: np.ndarray, axes: Tuple[int, ...], isa, nthreads: int):
    """(m, e, shift) of the rows of xc (float32/float64) along axes: C-contiguous, the row shape."""
    rows = args.row_shape(xc.shape, axes)
    if xc.size == 0:  # empty rows are the identity of the merge (and no rows is no rows)
        return np.zeros(rows), np.full(rows, -np.inf), np.zeros(rows)
    m, e, shift = _core.row_stats(args.rows_view(xc, axes), isa, nthreads)
    return np.asarray(m), np.asarray(e), np.asarray(shift)


# ---- public functions --------------------------------------------------------------------

def softmax_stats(x, axis: AxisLike = -1, *, isa: Optional[str] = None,
                  threads: Optional[int] = None) -> SoftmaxStats:
    """Statistics of the softmax of ``x`` along ``axis``: pass 1 of the two-pass algorithm.

    One read of ``x``. Statistics of pieces of the same rows -- shards of a vocabulary,
    chunks of a stream -- merge exactly with :func:`merge_stats`, and
    :func:`softmax_from_stats` / :func:`log_softmax_from_stats` then compute each piece's
    part of the softmax of the whole row. An empty piece gives the identity of the merge.

    Parameters
    ----------
    x : array_like
        Real input: float32, float64, float16 and bfloat16 natively (the 16-bit types in
        float32 arithmetic); int8 and uint8 as float16; wider integers in float64 (as
        :func:`fastsoftmax.softmax`). Long double is not taken.
    axis : int, tuple of ints or None
        The axis (or axes) the rows run along; default the last, ``-1`` -- unlike
        :func:`fastsoftmax.softmax` and :func:`logsumexp` (``None``), on purpose: the
        statistics are of rows whose pieces are merged, and a whole-array default would make
        ``softmax_stats(shard)`` of a batch one row (README, "logsumexp, mergeable
        statistics, Dask"). ``None``: the whole array.
    isa, threads
        As for :func:`fastsoftmax.softmax`.

    Returns
    -------
    SoftmaxStats
        float64 ``m``, ``e``, ``shift`` of shape ``x.shape`` without ``axis``, with
        ``sum(exp(row)) == m * 2**e * exp(shift)`` (``shift`` is 0 but for finite rows
        outside the fast range, which take a second read: see :class:`SoftmaxStats`).

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> a = fastsoftmax.softmax_stats(x[:, :2]); b = fastsoftmax.softmax_stats(x[:, 2:])
    >>> s = fastsoftmax.merge_stats(a, b)
    >>> np.allclose(s.logsumexp(), np.log(np.exp(x).sum(axis=-1)))
    True
    """
    nthreads = args.check_options(isa, threads)
    x = args.as_real_array(x, "softmax_stats")
    compute = args.stats_dtype(x.dtype, "softmax_stats")
    axes = tuple(sorted(args.normalize_axes(axis, x.ndim)))
    m, e, shift = raw_stats(x.astype(compute, copy=False), axes, isa, nthreads)
    return _make(m, e, shift, axes, x.ndim)


def merge_stats(a: SoftmaxStats, b: SoftmaxStats, *more: SoftmaxStats) -> SoftmaxStats:
    """Merge statistics of pieces of the same rows: the statistics of the pieces together.

    Row by row, ``E = max(e_a, e_b)``, ``M = m_a 2^(e_a - E) + m_b 2^(e_b - E)``: the scaling
    is exact (powers of two), so merging rounds once per merge, in float64, and the order of
    merges changes results by float64 ulps only. Pieces in the shift form (rows outside the
    fast range; see :class:`SoftmaxStats`) merge by ``C = max(shift)``,
    ``M = sum(m exp(shift - C))``, and with pairs by scaling the smaller log-sum's ``M`` to
    the other's form by a real ``exp`` (one more rounding). Empty / all -inf pieces are the
    identity, a NaN piece makes the row NaN, a +inf piece makes it +inf (as SciPy's
    logsumexp). Takes two or more statistics with the same ``axes``, ``ndim`` and row shape.

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> parts = [fastsoftmax.softmax_stats(x[:, i:i + 1]) for i in range(3)]
    >>> np.allclose(fastsoftmax.merge_stats(*parts).logsumexp(),
    ...             fastsoftmax.softmax_stats(x).logsumexp())
    True
    """
    items = (a, b) + more
    for i, s in enumerate(items):
        if not isinstance(s, SoftmaxStats):
            raise TypeError(f"merge_stats takes SoftmaxStats objects (from softmax_stats); "
                            f"argument {i} is a {type(s).__name__}")
    for i, s in enumerate(items[1:], 1):
        if s.axes != a.axes or s.ndim != a.ndim:
            raise ValueError(f"cannot merge statistics over different axes: argument 0 is over axes {a.axes} of a "
                             f"{a.ndim}-d array, argument {i} over axes {s.axes} of a {s.ndim}-d array")
        if s.shape != a.shape:
            raise ValueError(f"cannot merge statistics of different row shapes: argument 0 has {a.shape}, "
                             f"argument {i} has {s.shape}")
    shifts = np.stack([s.shift for s in items]) if any(getattr(s, "_shifted", True) for s in items) else None
    m, e, shift = reduce_stats(np.stack([s.m for s in items]), np.stack([s.e for s in items]), shifts, axis=0)
    return _make(m, e, shift, a.axes, a.ndim)


def from_stats(op: str, x, stats, out, isa, threads):
    """softmax_from_stats / log_softmax_from_stats (op: "softmax" or "log_softmax")."""
    what = f"{op}_from_stats"
    if not isinstance(stats, SoftmaxStats):
        raise TypeError(f"{what}: stats must be a SoftmaxStats (from softmax_stats/merge_stats), "
                        f"got {type(stats).__name__}")
    nthreads = args.check_options(isa, threads)
    x = args.as_real_array(x, what)
    result_dtype = compute = args.stats_dtype(x.dtype, what)  # float16/bfloat16: native kernels
    if x.ndim != stats.ndim:
        raise ValueError(f"{what}: the statistics are of a {stats.ndim}-d array, x is {x.ndim}-d")
    axes = stats.axes
    rows = args.row_shape(x.shape, axes)
    if rows != stats.shape:
        raise ValueError(f"{what}: the statistics are for rows of shape {stats.shape} (over axes {axes}), "
                         f"but x of shape {x.shape} has rows of shape {rows} over those axes")
    if out is not None:
        args.check_out(out, x.shape, result_dtype)
        args.check_out_against_x(out, x)
    if x.size == 0:
        return out if out is not None else np.empty(x.shape, result_dtype)

    xc = x.astype(compute, copy=False)
    m, e, shift = stats.m.reshape(-1), stats.e.reshape(-1), stats.shift.reshape(-1)
    direct = out is not None and out.dtype == compute
    target = out if direct else np.empty(x.shape, compute)
    xm = args.rows_view(xc, axes)
    k = len(axes)
    if k > 1:
        tmv = np.moveaxis(target, axes, [x.ndim - k + i for i in range(k)])
        tm = args.merge_trailing_view(tmv, k)
        if tm is None:  # the axes of `target` cannot be viewed as one: compute aside, then copy
            tmp = np.empty(xm.shape, compute)
            _core.from_stats(op, xm, tmp, m, e, shift, isa, nthreads)
            tmv[...] = tmp.reshape(tmv.shape)
        else:
            _core.from_stats(op, xm, tm, m, e, shift, isa, nthreads)
    else:
        _core.from_stats(op, xm, args.rows_view(target, axes), m, e, shift, isa, nthreads)

    if out is not None:
        if not direct:  # float16 result: round the float32 result once
            out[...] = target
        return out
    res = target if result_dtype == compute else target.astype(result_dtype)
    return res[()] if x.ndim == 0 else res


def softmax_from_stats(x, stats: SoftmaxStats, *, out: Optional[np.ndarray] = None, isa: Optional[str] = None,
                       threads: Optional[int] = None):
    """Pass 2 of the softmax: ``exp(x) / (m 2^e e^shift)`` for each row, from (merged) statistics.

    ``x`` is a piece of the rows ``stats`` describe: the same number of dimensions and,
    without ``stats.axes``, the same shape; its length along those axes is free. The result
    of each piece is that piece's part of the softmax of the whole row, so the pieces'
    results side by side equal ``softmax(whole, axis)`` (within the documented accuracy
    bounds; with the statistics of ``x`` itself, bitwise ``softmax(x, axis,
    algorithm="two-pass")`` -- also for rows outside the fast range, which two-pass
    computes through these very statistics). Result dtype, ``out=`` and non-finite rows as
    :func:`fastsoftmax.softmax` (a row whose statistics are NaN or +inf is all NaN).

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> left, right = x[:, :2], x[:, 2:]
    >>> s = fastsoftmax.merge_stats(fastsoftmax.softmax_stats(left), fastsoftmax.softmax_stats(right))
    >>> y = np.concatenate([fastsoftmax.softmax_from_stats(left, s),
    ...                     fastsoftmax.softmax_from_stats(right, s)], axis=1)
    >>> np.allclose(y, fastsoftmax.softmax(x, axis=1))
    True
    """
    return from_stats("softmax", x, stats, out, isa, threads)


def log_softmax_from_stats(x, stats: SoftmaxStats, *, out: Optional[np.ndarray] = None, isa: Optional[str] = None,
                           threads: Optional[int] = None):
    """Pass 2 of the log-softmax: ``x - log(m 2^e e^shift)`` for each row, from (merged) statistics.

    The arguments are those of :func:`softmax_from_stats`.

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> x = np.array([0.0, 0.0, 0.0, 0.0])
    >>> s = fastsoftmax.merge_stats(fastsoftmax.softmax_stats(x[:1]), fastsoftmax.softmax_stats(x[1:]))
    >>> fastsoftmax.log_softmax_from_stats(x[:1], s)  # log(1/4)
    array([-1.38629436])
    """
    return from_stats("log_softmax", x, stats, out, isa, threads)


# ---- logsumexp ---------------------------------------------------------------------------

def _longdouble_lse(x: np.ndarray, axes: Tuple[int, ...]) -> np.ndarray:
    with np.errstate(all="ignore"):
        mx = np.amax(x, axis=axes, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0)
        return np.squeeze(np.log(np.sum(np.exp(x - mx), axis=axes, keepdims=True)) + mx, axis=axes)


def _weights(x: Any, xa: np.ndarray, b: Any) -> Tuple[np.ndarray, np.dtype]:
    """b as an array, and scipy.special.logsumexp's dtype for x with weights b (which SciPy
    converts both to first; complex: a TypeError from logsumexp_dtype): NumPy's
    promotion of x, b and a Python float, where x and b count as SciPy passes them (a
    Python scalar is weak, anything iterable an array)."""
    w = np.asarray(b)
    if args.not_real(w.dtype) or w.dtype.kind == "c":
        raise TypeError(f"logsumexp: b (the weights) must be real numbers, got an array of dtype {w.dtype!r}")
    items = [v if not np.iterable(v) else a for v, a in ((x, xa), (b, w))]
    try:
        promoted = np.result_type(*items, 1.0)
    except TypeError:  # no promotion defined (bfloat16 with some types): SciPy's rule, floats and float64
        promoted = np.result_type(*[a.dtype for a in (xa, w) if args.float_rank(a.dtype)], np.float64)
    return w, promoted


def _weighted_lse(a: np.ndarray, w: np.ndarray, axes: Tuple[int, ...], return_sign: bool):
    """(log|sum(w exp(a))|, its sign) over axes, keepdims, by scipy.special.logsumexp's
    algorithm for real input, so that zero and negative weights give its values, signs, NaNs
    and infinities: a zero weight drops its term (even an infinite or NaN one); the largest
    term is taken out of the sum and its weight m multiplies the rest, s; the sum is then
    m (1 + s), negative where s < -1 or m < 0 (NaN unless return_sign); rows whose result
    is not finite take log of the direct sum instead."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        total = np.sum(w * np.exp(a), axis=axes, keepdims=True)
        direct_sign = np.sign(total)
        direct = np.log(np.abs(total) if return_sign else total)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(w == 0, -np.inf, a)
        a_max = np.amax(a, axis=axes, keepdims=True)
        at_max = a == a_max
        m = np.sum(w * at_max, axis=axes, keepdims=True)  # inf or NaN weights off the max poison it, as SciPy's
        s = np.sum(w * np.exp(np.where(at_max, -np.inf, a) - a_max), axis=axes, keepdims=True)
        s = np.where(s == 0, s, s / m)
        sign = np.sign(s + 1) * np.sign(m)
        s = np.where(s < -1, -s - 2, s)
        lse = np.log1p(s) + np.log(np.abs(m)) + a_max
        if not return_sign:
            lse = np.where(sign < 0, np.nan, lse)
    finite = np.isfinite(lse)
    return np.where(finite, lse, direct), np.where(finite, sign, direct_sign)


@overload
def logsumexp(x: ArrayLike, axis: AxisLike = None, *, keepdims: bool = False, out: Optional[NDArray[Any]] = None,
              dtype: DTypeLike = None, b: Optional[ArrayLike] = None, return_sign: Literal[False] = False,
              isa: Optional[Tier] = None, threads: Optional[int] = None) -> Any: ...
@overload
def logsumexp(x: ArrayLike, axis: AxisLike = None, *, keepdims: bool = False, out: Optional[NDArray[Any]] = None,
              dtype: DTypeLike = None, b: Optional[ArrayLike] = None, return_sign: Literal[True],
              isa: Optional[Tier] = None, threads: Optional[int] = None) -> Tuple[Any, Any]: ...
@overload
def logsumexp(x: ArrayLike, axis: AxisLike = None, *, keepdims: bool = False, out: Optional[NDArray[Any]] = None,
              dtype: DTypeLike = None, b: Optional[ArrayLike] = None, return_sign: bool = False,
              isa: Optional[Tier] = None, threads: Optional[int] = None) -> Any: ...


def logsumexp(x: ArrayLike, axis: AxisLike = None, *, keepdims: bool = False, out: Optional[NDArray[Any]] = None,
              dtype: DTypeLike = None, b: Optional[ArrayLike] = None, return_sign: bool = False,
              isa: Optional[Tier] = None, threads: Optional[int] = None) -> Any:
    """``log(sum(b * exp(x), axis))`` without overflow, in one read of ``x``.

    Compatible with :func:`scipy.special.logsumexp` for real input: the same ``axis``
    (None = all, int or tuple), ``b``, ``keepdims`` and ``return_sign``, result dtype
    (float inputs keep theirs, booleans and integers give float64; with ``b``, NumPy's
    promotion of ``x`` and ``b``), and handling of ±inf, NaN, empty and 0-d input (a row
    with a NaN gives NaN, with +inf gives +inf, all -inf or empty gives -inf). Without
    ``b`` it is pass 1 of the two-pass softmax (:func:`softmax_stats`): the row's sum as
    an exact (mantissa, power of two) pair, no max pass, so it runs at about the speed of
    reading ``x``. Rows outside the fast range (max beyond about +-2^20 in float64, +-65000
    in float32) take a second read: their max plus the log of the sum of ``exp(x - max)``,
    in long double, which holds up to the float maximum.

    Parameters
    ----------
    x : array_like
        Real input.
    axis : None, int or tuple of ints
        Axes to reduce; ``None`` (the default) is the whole array.
    keepdims : bool
        Keep the reduced axes with length one.
    out : ndarray, optional
        Where to write the result: the result's shape, writable, any floating dtype
        (float16, bfloat16, float32, float64, longdouble), as for
        :func:`fastsoftmax.softmax`.
    dtype : dtype, optional
        The result dtype (a floating dtype); with ``out=`` too, they must agree. With
        ``dtype=`` or an ``out`` of another dtype (mixed precision), the sum is computed in
        the more precise of that and the input's result dtype (16-bit types: in float32)
        and rounded once: e.g. float16 in, float32 out is the float32 log-sum-exp of the
        float16 values.
    b : array_like, optional
        Weights, broadcast against ``x`` (the result has the broadcast shape without
        ``axis``): ``log(sum(b * exp(x)))``, as SciPy. Positive weights: the kernels' sum
        of ``exp(x + log(b))``, computed in float64 (long double for long double input) and
        rounded once. A zero weight drops its term (even where ``x`` is inf or NaN);
        negative weights subtract: a negative sum gives NaN, or with ``return_sign`` the
        log of its absolute value and sign -1; weights with a zero, a negative, an
        infinite or a NaN entry anywhere are computed with SciPy's algorithm (in float64),
        to give its values, signs, NaNs and infinities.
    return_sign : bool
        Also return the sign of the sum, as SciPy: 1, -1 for a negative weighted sum, 0 for
        a sum of 0 (all -inf), NaN for NaN, and -1 where ``x`` is empty.
    isa, threads
        As for :func:`fastsoftmax.softmax`.

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> fastsoftmax.logsumexp(np.array([1000.0, 1000.0]))  # 1000 + log 2, no overflow
    np.float64(1000.6931471805599)
    >>> fastsoftmax.logsumexp(np.zeros((2, 3), np.float32), axis=1)
    array([1.0986123, 1.0986123], dtype=float32)
    >>> fastsoftmax.logsumexp(np.zeros(2), b=[3.0, 1.0])  # log 4
    np.float64(1.3862943611198906)
    >>> fastsoftmax.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)  # log(e^2 - e), -1
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    # The common call is decided and run in C (NotImplemented: anything else, or an error to report).
    r = _core.fast_logsumexp(x, axis, keepdims, out, dtype, b, return_sign, isa, threads)
    if r is not NotImplemented:
        return r
    if _dlpack.is_foreign(x) or _dlpack.is_foreign(out) or _dlpack.is_foreign(b):  # torch tensors, DLPack arrays
        return _dlpack.logsumexp_call(logsumexp, x, axis, keepdims, out, dtype, b, return_sign, isa, threads)
    nthreads = args.check_options(isa, threads)
    xa = args.as_real_array(x, "logsumexp")
    input_result = args.logsumexp_dtype(xa.dtype)
    w = None
    if b is not None:
        w, promoted = _weights(x, xa, b)
        input_result = args.logsumexp_dtype(promoted)
        xa, w = xa.astype(promoted, copy=False), w.astype(promoted, copy=False)  # as SciPy, before all else
        try:
            xa, w = np.broadcast_arrays(xa, w)
        except ValueError:
            raise ValueError(f"logsumexp: x of shape {xa.shape} and b of shape {w.shape} do not broadcast "
                             "together") from None
    if xa.ndim == 0:  # as SciPy: 0-d input is reduced as a 1-element 1-d array
        xa = xa.reshape(1)
        w = w.reshape(1) if w is not None else None
    axes = tuple(sorted(args.normalize_axes(axis, xa.ndim)))
    rows = args.row_shape(xa.shape, axes)
    kept = tuple(1 if i in axes else n for i, n in enumerate(xa.shape))
    res_shape = kept if keepdims else rows
    result = args.output_dtype(input_result, dtype, out, res_shape)
    compute = args.compute_dtype(input_result, result)

    sign = None
    if xa.size == 0:  # the sum over no elements is 0 (SciPy: sign -1)
        lse = np.full(res_shape, -np.inf, result)
        sign = np.full(res_shape, -1.0, result) if return_sign else None
    elif w is None:
        if not axes:  # each element is its own sum: log(exp(x)) == x exactly
            lse = args.cast(xa.astype(compute, copy=False), result)
        elif compute == args.LD:
            lse = args.cast(_longdouble_lse(xa.astype(compute, copy=False), axes), result)
        else:
            m, e, shift = _core.row_stats(args.rows_view(xa.astype(compute, copy=False), axes), isa, nthreads)
            lse = args.cast(stats_logsumexp(m, e, shift), result)
    else:
        wide = args.LD if compute == args.LD else args.F64
        xw, ww = xa.astype(wide), w.astype(wide)
        if wide == args.F64 and bool(np.all((ww > 0) & (ww < np.inf))):  # also False for NaN
            with np.errstate(over="ignore"):
                z = xw + np.log(ww)
            if axes:
                m, e, shift = _core.row_stats(args.rows_view(z, axes), isa, nthreads)
                z = stats_logsumexp(m, e, shift)
            lse = args.cast(z, result)
        else:
            lse, sgn = _weighted_lse(xw, ww, axes, return_sign)
            lse = args.cast(lse, result)
            sign = sgn.astype(result).reshape(res_shape) if return_sign else None
    lse = np.asarray(lse).reshape(res_shape)

    if return_sign and sign is None:  # a sum of positive terms: 1; 0 where it is 0 (all -inf); NaN for NaN
        sign = np.where(np.isnan(lse), np.nan, np.where(lse == -np.inf, 0.0, 1.0)).astype(result)

    if out is not None:
        out[...] = lse
        lse = out
    elif lse.ndim == 0:
        lse = lse[()]
    if return_sign:
        return lse, (sign[()] if sign.ndim == 0 else sign)
    return lse
