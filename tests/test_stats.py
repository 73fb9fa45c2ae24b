"""Mergeable softmax statistics: softmax_stats, merge_stats, softmax_from_stats, log_softmax_from_stats.

The pair sum (m, e) of the two-pass algorithm is an exact, associative summary of a row:
pieces of a row (vocabulary shards, chunks of a stream) computed apart and merged give
the softmax of the whole row, within DESIGN section 4's bounds, for any split (hypothesis
picks the splits and the merge order).
"""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsoftmax
from conftest import require_or_skip
from fastsoftmax import SoftmaxStats, log_softmax_from_stats, merge_stats, softmax_from_stats, softmax_stats
from fastsoftmax import _core

LD = np.longdouble


# ---- DESIGN section 4 bounds (rows along the last axis) ------------------------------------

def assert_within_design_bounds(op: str, y: np.ndarray, x: np.ndarray, what: str = "") -> None:
    """y = op(x) along the last axis, against a long double reference, with DESIGN section 4's bounds.

    float32 softmax: relative error <= 6e-7 + (|x_i - max x| + log2 n) 2^-24;
    float64: <= 2e-15 + (|x_i - max x| + log2 n) 2^-53; over outputs >= tiny (below: |y - r| <= tiny).
    log_softmax: |y - r| <= 4 eps max(1, |x_i|, |logsumexp(row)|).
    """
    dt = x.dtype
    assert y.dtype == dt and y.shape == x.shape, what
    fi = np.finfo(dt)
    xl = x.astype(LD)
    mx = np.max(xl, axis=-1, keepdims=True)
    shifted = xl - mx
    ex = np.exp(shifted)
    s = np.sum(ex, axis=-1, keepdims=True)
    if op == "softmax":
        r = ex / s
        normal = r >= LD(fi.tiny)
        base = 6e-7 if dt == np.float32 else 2e-15
        gap_coef = 2.0**-24 if dt == np.float32 else 2.0**-53
        bound = base + ((-shifted).astype(np.float64) + np.log2(max(x.shape[-1], 1))) * gap_coef
        err = np.abs((y.astype(LD) - r) / np.where(normal, r, 1)).astype(np.float64)
        ok = np.where(normal, err <= bound, (y >= 0) & (y.astype(LD) <= r + LD(fi.tiny)))
        ratio = np.where(normal, err / bound, 0.0)
    else:
        r = shifted - np.log(s)
        lse = (mx + np.log(s)).astype(np.float64)
        bound = 4 * float(fi.eps) * np.maximum(np.maximum(1.0, np.abs(x.astype(np.float64))), np.abs(lse))
        err = np.abs((y.astype(LD) - r).astype(np.float64))
        ok = err <= bound
        ratio = err / bound
    if not ok.all():
        i = np.unravel_index(np.argmax(np.where(ok, 0, ratio + 1)), x.shape)
        pytest.fail(f"{what}: {op} outside the DESIGN section 4 bound at {i}: x={x[i]!r} y={y[i]!r} "
                    f"ref={r[i]!r}, worst error/bound {np.max(ratio):.3g}")


def split_points(n: int, cuts) -> list:
    b = sorted({0, n, *[c for c in cuts if 0 <= c <= n]})
    return list(zip(b[:-1], b[1:]))


def pieces_softmax(op: str, x: np.ndarray, bounds, order=None, isa=None):
    """Stats per piece along the last axis, merged (in `order`), pass 2 per piece; side by side."""
    stats = [softmax_stats(x[..., a:b], isa=isa) for a, b in bounds]
    order = list(range(len(stats))) if order is None else order
    merged = stats[order[0]]
    for k in order[1:]:
        merged = merge_stats(merged, stats[k])
    fn = softmax_from_stats if op == "softmax" else log_softmax_from_stats
    return np.concatenate([fn(x[..., a:b], merged, isa=isa) for a, b in bounds], axis=-1), merged


DISTRIBUTIONS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform-1000-1000": lambda rng, shape: rng.uniform(-1000.0, 1000.0, shape),
    "uniform-90-100": lambda rng, shape: rng.uniform(90.0, 100.0, shape),
}


# ---- the use cases -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_sharded_vocabulary(op, dtype):
    """Tensor-parallel logits: 4 vocabulary shards, stats per shard, merged, pass 2 per shard."""
    rng = np.random.default_rng(10)
    logits = (rng.standard_normal((8, 50_257)) * 4).astype(dtype)
    bounds = split_points(logits.shape[1], [12_000, 25_000, 37_500])
    y, merged = pieces_softmax(op, logits, bounds)
    assert_within_design_bounds(op, y, logits, "4 shards")
    one_shot = (fastsoftmax.softmax if op == "softmax" else fastsoftmax.log_softmax)(logits, axis=-1)
    np.testing.assert_allclose(y, one_shot, rtol=4e-6 if dtype == np.float32 else 1e-14,
                               atol=1e-5 if op == "log_softmax" and dtype == np.float32 else 1e-13)
    eps = float(np.finfo(dtype).eps)
    lse = fastsoftmax.logsumexp(logits, axis=-1)
    assert np.all(np.abs(merged.logsumexp() - lse) <= 4 * eps * np.maximum(1, np.abs(lse)))


def test_streamed_row_running_merge():
    """A row arriving in pieces: a running merge, then pass 2 over the stored pieces."""
    rng = np.random.default_rng(11)
    pieces = [rng.uniform(-30, 30, n).astype(np.float32) for n in (1, 1000, 17, 65_536, 3, 70_000)]
    running = softmax_stats(np.empty(0, np.float32))  # the identity
    for p in pieces:
        running = merge_stats(running, softmax_stats(p))
    y = np.concatenate([softmax_from_stats(p, running) for p in pieces])
    whole = np.concatenate(pieces)
    assert_within_design_bounds("softmax", y, whole, "streamed")
    assert abs(float(np.sum(y, dtype=np.float64)) - 1) < 1e-5


@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_split_and_merge_order_within_design_bounds(data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    dist = data.draw(st.sampled_from(list(DISTRIBUTIONS)), label="dist")
    op = data.draw(st.sampled_from(["softmax", "log_softmax"]), label="op")
    rows = data.draw(st.integers(1, 4), label="rows")
    n = data.draw(st.integers(1, 3000), label="n")
    cuts = data.draw(st.lists(st.integers(0, n), max_size=12), label="cuts")
    bounds = split_points(n, cuts)
    order = data.draw(st.permutations(range(len(bounds))), label="merge order")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    x = DISTRIBUTIONS[dist](np.random.default_rng(seed), (rows, n)).astype(dtype)
    y, _ = pieces_softmax(op, x, bounds, order)
    assert_within_design_bounds(op, y, x, f"splits {bounds}, merge order {order}")


@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_pieces_within_bounds_every_isa(dist, dtype, isa):
    require_or_skip(isa)
    rng = np.random.default_rng([list(DISTRIBUTIONS).index(dist), np.dtype(dtype).itemsize])
    for n, cuts in ((7, [3]), (1025, [1, 512, 1000]), (65_537, [4096, 4097, 30_000])):
        x = DISTRIBUTIONS[dist](rng, (2, n)).astype(dtype)
        for op in ("softmax", "log_softmax"):
            y, _ = pieces_softmax(op, x, split_points(n, cuts), isa=isa)
            assert_within_design_bounds(op, y, x, f"{isa} n={n}")


def test_long_rows_within_bounds():
    rng = np.random.default_rng(20)
    x = rng.uniform(-1000, 1000, (1, 1 << 20)).astype(np.float32)
    for op in ("softmax", "log_softmax"):
        y, _ = pieces_softmax(op, x, split_points(x.shape[1], [1, 1 << 18, (1 << 19) + 3]))
        assert_within_design_bounds(op, y, x, "n=2^20")


# ---- exactness of the statistics and of the merge -------------------------------------------

@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_own_stats_give_the_two_pass_bits(dtype, isa):
    require_or_skip(isa)
    rng = np.random.default_rng(12)
    for shape, axis in (((3, 1), -1), ((4, 1000), 1), ((2, 70_000), -1), ((300, 5), 0), ((3, 4, 5), (0, 2)),
                        ((3, 4, 5), None), ((5,), 0), ((2, 3), ())):
        x = (rng.standard_normal(shape) * 10).astype(dtype)
        x.flat[0] = -np.inf  # masked entries stay on the fast path
        s = softmax_stats(x, axis=axis, isa=isa)
        for op, fn in (("softmax", softmax_from_stats), ("log_softmax", log_softmax_from_stats)):
            one_shot = getattr(fastsoftmax, op)(x, axis=axis, algorithm="two-pass", isa=isa)
            np.testing.assert_array_equal(fn(x, s, isa=isa), one_shot, err_msg=f"{op} {shape} axis={axis}")


def test_merge_is_the_exact_sum_rounded_once():
    rng = np.random.default_rng(13)
    for _ in range(50):
        a = softmax_stats(rng.uniform(-50, 50, (1, int(rng.integers(1, 100)))))
        b = softmax_stats(rng.uniform(-50, 50, (1, int(rng.integers(1, 100)))))
        m = merge_stats(a, b)
        ea, eb, em = int(a.e[0]), int(b.e[0]), int(m.e[0])
        assert em == max(ea, eb)
        exact = (Fraction(a.m[0]) * Fraction(2) ** (ea - em) + Fraction(b.m[0]) * Fraction(2) ** (eb - em))
        assert m.m[0] == float(exact)  # float(Fraction) rounds correctly
        np.testing.assert_array_equal(merge_stats(b, a).m, m.m)  # commutative, bit for bit


def test_empty_piece_is_the_identity():
    x = np.random.default_rng(14).standard_normal((3, 50)).astype(np.float32)
    s = softmax_stats(x)
    empty = softmax_stats(x[:, :0])
    np.testing.assert_array_equal(empty.m, 0.0)
    np.testing.assert_array_equal(empty.e, -np.inf)
    for merged in (merge_stats(s, empty), merge_stats(empty, s), merge_stats(empty, s, empty)):
        np.testing.assert_array_equal(merged.m, s.m)
        np.testing.assert_array_equal(merged.e, s.e)
    both = merge_stats(empty, empty)
    np.testing.assert_array_equal(both.m, 0.0)
    np.testing.assert_array_equal(both.e, -np.inf)
    assert np.all(np.isneginf(both.logsumexp()))


SPECIAL_PIECES = {
    "nan": [1.0, np.nan],
    "+inf": [np.inf, 2.0],
    "+inf and -inf": [np.inf, -np.inf],
    "nan and +inf": [np.nan, np.inf],
    "all -inf": [-np.inf, -np.inf],
    "huge": [1e5, 2e5],          # beyond the float32 fast range: exact statistics
    "tiny": [-1e5, -3e5],
    "astronomical": [1e30, 5.0],  # sum(exp) beyond any float64 power of two: the shift form
    "astronomically small": [-1e30, -3e30],
    "beyond 2^20": [-1.1e6, -1.1e6 - 3.0],
    "ordinary": [0.5, -0.25],
    "empty": [],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("a", list(SPECIAL_PIECES))
@pytest.mark.parametrize("b", list(SPECIAL_PIECES))
def test_special_pieces_merge_like_the_whole_row(a, b, dtype):
    pa, pb = (np.array(SPECIAL_PIECES[k], dtype).reshape(1, -1) for k in (a, b))
    whole = np.concatenate([pa, pb], axis=1)
    merged = merge_stats(softmax_stats(pa), softmax_stats(pb))
    full = softmax_stats(whole)
    lse_m, lse_f = merged.logsumexp(), full.logsumexp()
    assert np.isnan(lse_m) == np.isnan(lse_f) and np.isinf(lse_m) == np.isinf(lse_f), (lse_m, lse_f)
    if not np.isfinite(lse_f):
        # NaN, +inf and empty rows: the very statistics the whole row has
        np.testing.assert_array_equal(merged.m, full.m)
        np.testing.assert_array_equal(merged.e, full.e)
    else:
        assert abs(lse_m - lse_f) <= 4 * np.finfo(dtype).eps * max(1, abs(lse_f))
    if whole.size == 0:
        return
    for op, fn in (("softmax", softmax_from_stats), ("log_softmax", log_softmax_from_stats)):
        y = np.concatenate([fn(p, merged) for p in (pa, pb)], axis=1)
        want = getattr(fastsoftmax, op)(whole, axis=1)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(want), err_msg=f"{op} NaN pattern")
        np.testing.assert_array_equal(np.isinf(y) & (y > 0), np.isinf(want) & (want > 0))
        np.testing.assert_array_equal(np.isinf(y) & (y < 0), np.isinf(want) & (want < 0))
        fin = np.isfinite(want)
        if op == "softmax":
            np.testing.assert_allclose(y[fin], want[fin], rtol=4e-6 if dtype == np.float32 else 1e-14, atol=1e-30)
        else:  # both within the log-softmax bound 4 eps max(1, |x_i|, |lse|)
            scale = max(1.0, float(np.max(np.abs(whole[np.isfinite(whole)]), initial=0)), abs(float(lse_f[0])))
            np.testing.assert_allclose(y[fin], want[fin], rtol=0, atol=8 * np.finfo(dtype).eps * scale)


# ---- shapes, dtypes, axes, out= ---------------------------------------------------------------

def test_stats_object():
    x = np.random.default_rng(15).standard_normal((2, 3, 4))
    s = softmax_stats(x, axis=1)
    assert isinstance(s, SoftmaxStats)
    assert s.shape == (2, 4) and s.axes == (1,) and s.ndim == 3
    assert s.m.dtype == s.e.dtype == s.shift.dtype == np.float64 and s.m.flags.c_contiguous
    assert not s.m.flags.writeable and not s.e.flags.writeable and not s.shift.flags.writeable
    np.testing.assert_array_equal(s.shift, 0.0)  # ordinary rows: the pair of pass 1
    np.testing.assert_array_equal(SoftmaxStats(s.m, s.e, s.axes, s.ndim).shift, 0.0)  # shift left out
    assert "shape=(2, 4)" in repr(s)
    with pytest.raises(AttributeError):
        s.m = s.e  # frozen
    t = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(t.m, s.m)
    assert (t.axes, t.ndim) == (s.axes, s.ndim)
    assert softmax_stats(x, axis=(2, 0)).axes == (0, 2)
    assert softmax_stats(x, axis=None).shape == ()
    assert s.merge(s).shape == s.shape
    np.testing.assert_allclose(s.logsumexp(), np.log(np.sum(np.exp(x), axis=1)), rtol=1e-14)
    assert isinstance(softmax_stats(x, axis=None).logsumexp(), np.float64)


def test_axes_none_tuple_and_zero_d():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    for axis in (None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2), ()):
        want = fastsoftmax.softmax(x, axis=axis)
        y = softmax_from_stats(x, softmax_stats(x, axis=axis))
        np.testing.assert_allclose(y, want, rtol=2e-6, err_msg=f"axis={axis}")
    z = np.float32(3.0)
    s = softmax_stats(z)
    assert s.shape == () and s.axes == ()
    assert softmax_from_stats(z, s) == fastsoftmax.softmax(z) == np.float32(1.0)
    assert type(softmax_from_stats(z, s)) is np.float32
    assert log_softmax_from_stats(z, s) == 0.0


def test_pieces_along_a_middle_axis_and_strided_layouts():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((4, 100, 3))
    bounds = [(0, 10), (10, 11), (11, 100)]
    stats = [softmax_stats(x[:, a:b], axis=1) for a, b in bounds]
    merged = merge_stats(*stats)
    y = np.concatenate([softmax_from_stats(x[:, a:b], merged) for a, b in bounds], axis=1)
    np.testing.assert_allclose(y, fastsoftmax.softmax(x, axis=1), rtol=1e-14)
    xf = np.asfortranarray(x)  # same values, other layout: same bits
    np.testing.assert_array_equal(softmax_from_stats(xf, softmax_stats(xf, axis=1)),
                                  softmax_from_stats(x, softmax_stats(x, axis=1)))


def test_same_bits_for_any_thread_count():
    x = np.random.default_rng(18).standard_normal((4, 1 << 18)).astype(np.float32)
    s1 = softmax_stats(x, threads=1)
    s4 = softmax_stats(x, threads=4)
    np.testing.assert_array_equal(s1.m, s4.m)
    np.testing.assert_array_equal(s1.e, s4.e)
    np.testing.assert_array_equal(softmax_from_stats(x, s1, threads=1), softmax_from_stats(x, s1, threads=3))


@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.uint8, np.int16, np.int32, np.int64],
                         ids=lambda d: np.dtype(d).name)
def test_result_dtype_as_softmax(dtype):
    x = np.arange(-6, 6).reshape(3, 4).astype(dtype)
    for op, fn in (("softmax", softmax_from_stats), ("log_softmax", log_softmax_from_stats)):
        want = getattr(fastsoftmax, op)(x, axis=1)
        y = fn(x, softmax_stats(x, axis=1))
        assert y.dtype == want.dtype
        np.testing.assert_allclose(y.astype(np.float64), want.astype(np.float64),
                                   rtol=1e-3 if want.dtype == np.float16 else 2e-6, atol=1e-6)


def test_out():
    x = np.random.default_rng(19).standard_normal((3, 8)).astype(np.float32)
    s = softmax_stats(x)
    want = softmax_from_stats(x, s)
    out = np.empty_like(x)
    assert softmax_from_stats(x, s, out=out) is out
    np.testing.assert_array_equal(out, want)
    xx = x.copy()
    assert softmax_from_stats(xx, s, out=xx) is xx  # in place
    np.testing.assert_array_equal(xx, want)
    out_t = np.empty((8, 3), np.float32).T  # a strided out
    softmax_from_stats(x, s, out=out_t)
    np.testing.assert_array_equal(out_t, want)
    h = x.astype(np.float16)
    out16 = np.empty(h.shape, np.float16)
    assert log_softmax_from_stats(h, softmax_stats(h), out=out16) is out16
    np.testing.assert_array_equal(out16, log_softmax_from_stats(h, softmax_stats(h)))
    with pytest.raises(ValueError, match="shape"):
        softmax_from_stats(x, s, out=np.empty((3, 7), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        softmax_from_stats(x, s, out=np.empty((3, 8), np.float64))
    big = np.empty((3, 9), np.float32)
    big[:, :8] = x
    with pytest.raises(ValueError, match="overlaps"):
        softmax_from_stats(big[:, :8], s, out=big[:, 1:])


def test_empty_input():
    s = softmax_stats(np.zeros((0, 4)))
    assert s.shape == (0,)
    assert softmax_from_stats(np.zeros((0, 4)), s).shape == (0, 4)
    s2 = softmax_stats(np.zeros((3, 0)))
    assert softmax_from_stats(np.zeros((3, 0)), s2).shape == (3, 0)


def test_docstring_examples():
    import doctest

    import fastsoftmax._stats as mod

    assert doctest.testmod(mod, raise_on_error=False).failed == 0
    for name in mod.__all__:
        assert ">>>" in (getattr(fastsoftmax, name).__doc__ or ""), f"fastsoftmax.{name} has no example"
        assert name in fastsoftmax.__all__


def doc_blocks(path: str):
    """The ```python blocks of a docs page."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parent.parent / path).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_examples_run():
    blocks = [b for b in doc_blocks("docs/stats.md") if "dask" not in b and "distributed" not in b]
    assert len(blocks) >= 2
    for b in blocks:
        exec(compile(b, "docs/stats.md", "exec"), {})


def test_byte_swapped_input_like_native():
    native = np.random.default_rng(21).standard_normal((3, 40)).astype(np.float32)
    swapped = native.astype(native.dtype.newbyteorder())
    s_n, s_s = softmax_stats(native), softmax_stats(swapped)
    np.testing.assert_array_equal(s_s.m, s_n.m)
    np.testing.assert_array_equal(s_s.e, s_n.e)
    y = softmax_from_stats(swapped, s_n)
    assert y.dtype == np.float32 and y.dtype.isnative
    np.testing.assert_array_equal(y, softmax_from_stats(native, s_n))
    r = fastsoftmax.logsumexp(swapped, axis=1)
    assert r.dtype.isnative
    np.testing.assert_array_equal(r, fastsoftmax.logsumexp(native, axis=1))


def test_invalid_input_is_a_clear_error():
    x = np.zeros((2, 3))
    s = softmax_stats(x)
    with pytest.raises(TypeError, match="SoftmaxStats"):
        softmax_from_stats(x, (s.m, s.e))
    with pytest.raises(ValueError, match="2-d array, x is 3-d"):
        softmax_from_stats(np.zeros((2, 3, 1)), s)
    with pytest.raises(ValueError, match=r"rows of shape \(2,\)"):
        softmax_from_stats(np.zeros((3, 3)), s)
    with pytest.raises(TypeError, match="SoftmaxStats"):
        merge_stats(s, s.m)
    with pytest.raises(ValueError, match="different axes"):
        merge_stats(s, softmax_stats(np.zeros((2, 2)), axis=0))
    with pytest.raises(ValueError, match="row shapes"):
        merge_stats(s, softmax_stats(np.zeros((4, 3))))
    with pytest.raises(TypeError, match="long double|longdouble|float128|float96"):
        softmax_stats(np.zeros(3, np.longdouble))
    with pytest.raises(TypeError, match="boolean"):
        softmax_stats(np.zeros(3, bool))
    with pytest.raises(TypeError, match="complex"):
        softmax_stats(np.zeros(3, complex))
    with pytest.raises(TypeError, match="real numbers"):
        softmax_stats(np.array(["a"]))
    with pytest.raises(np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError):
        softmax_stats(x, axis=2)
    with pytest.raises(ValueError, match="unknown isa"):
        softmax_stats(x, isa="mmx")
    with pytest.raises(ValueError, match="threads"):
        softmax_from_stats(x, s, threads=-1)
    with pytest.raises(ValueError, match="same shape"):
        SoftmaxStats(np.zeros(2), np.zeros(3), (1,), 2)
    with pytest.raises(ValueError, match="axes"):
        SoftmaxStats(np.zeros(2), np.zeros(2), (1, 1), 2)
    with pytest.raises(ValueError, match="describe"):
        SoftmaxStats(np.zeros(2), np.zeros(2), (0, 1), 2)
    with pytest.raises(ValueError, match="shift must have the shape"):
        SoftmaxStats(np.ones(2), np.zeros(2), (1,), 2, np.zeros(3))
    with pytest.raises(ValueError, match="e must be 0 wherever shift is not"):
        SoftmaxStats(np.ones(2), np.ones(2), (1,), 2, np.array([0.0, 1e30]))
    with pytest.raises(ValueError, match="finite"):
        SoftmaxStats(np.ones(2), np.zeros(2), (1,), 2, np.array([0.0, np.nan]))


# ---- rows far outside the fast range ----------------------------------------------------------
# sum(exp(row)) of a row whose max is beyond the fast range (|max| > 2^20 in float64, 65536
# in float32) up to the largest finite float: its log is the max to within log(n), but its
# power-of-two exponent alone needs more than a float64 once |max| > 2^62 (and more than
# float64 can hold above ~1.2457e308), and a residual mu - e ln2 needs ln2 to ~110 bits.
# The statistics path must stay as accurate there as the max-based exact path.

#: float64 magnitudes: just past 2^20, where e ln2 needs a 3-part ln2 (1e9 ... 1e18), where e
#: is no longer every integer (> 2^53 ln2), around the shift form's 2^62, and up to float max.
EXTREME_MAGNITUDES = {
    np.float64: [1.06e6, 1e9, 1e12, 1e15, 1e16, 1e18, 2.0**62, 4.7e18, 1e19, 1e30, 1e100, 1e300, 1.25e308,
                 float(np.finfo(np.float64).max)],
    np.float32: [7e4, 1e6, 1e9, 1e12, 1e15, 1e18, 2.0**62, 4.7e18, 1e19, 1e30, float(np.finfo(np.float32).max)],
}


def extreme_rows(dtype, rng, n=9):
    """One row per magnitude and sign: its max mu, mu minus offsets in [0, 30) (distinct
    values where the spacing of floats allows, mu itself beyond), mu minus 3 spacings, and
    a last element 0 (mu > 0: [1e30, 0] is the issue's row) or 2 mu (mu < 0; -inf for
    -float max)."""
    rows = []
    for mag in EXTREME_MAGNITUDES[dtype]:
        for sign in (1.0, -1.0):
            mu = dtype(sign * mag)
            with np.errstate(over="ignore"):
                r = np.empty(n, dtype)
                r[0] = mu
                r[1:n - 2] = (np.float64(mu) - rng.uniform(0, 30, n - 3)).astype(dtype)
                r[n - 2] = mu - 3 * np.spacing(mu) if sign > 0 else mu + 3 * np.spacing(mu)
                r[n - 2] = min(r[n - 2], mu)
                r[n - 1] = 0.0 if sign > 0 else dtype(2 * np.float64(mu))
            rows.append(rng.permutation(r))
    return np.stack(rows)


def reference_log_softmax(x: np.ndarray) -> np.ndarray:
    xl = x.astype(LD)
    mx = np.max(xl, axis=-1, keepdims=True)
    return (xl - mx) - np.log(np.sum(np.exp(xl - mx), axis=-1, keepdims=True))


def assert_log_softmax_as_exact_path(y: np.ndarray, x: np.ndarray, what: str = "") -> None:
    """|y - r| <= 4 eps max(1, |r|): the accuracy of the max-based exact path ((x - max) -
    log sum, in long double). DESIGN section 4's bound 4 eps max(1, |x_i|, |lse|) is no
    check at all for such rows (4 eps 1e30 ~ 1e15): the issue's [7.8e13, -1e30] met it."""
    r = reference_log_softmax(x)
    eps = float(np.finfo(x.dtype).eps)
    fin = np.isfinite(r)
    np.testing.assert_array_equal(y[~fin], r[~fin].astype(x.dtype), err_msg=what)
    err = np.abs((y[fin].astype(LD) - r[fin]).astype(np.float64))
    bound = 4 * eps * np.maximum(1.0, np.abs(r[fin].astype(np.float64)))
    assert np.all(err <= bound), f"{what}: log_softmax off by {np.max(err / bound):.3g} x 4 eps max(1, |r|)"


@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_extreme_rows_through_their_own_statistics(dtype, isa):
    """softmax_from_stats(x, softmax_stats(x)) at every magnitude up to float max, both signs:
    within DESIGN section 4's softmax bound, log_softmax as accurate as the exact path, the
    log-sum-exp within 4 eps, and bitwise what softmax(x, algorithm="two-pass") writes."""
    require_or_skip(isa)
    x = extreme_rows(dtype, np.random.default_rng(30))
    s = softmax_stats(x, isa=isa)
    y = softmax_from_stats(x, s, isa=isa)
    assert_within_design_bounds("softmax", y, x, f"{isa} extreme rows")
    ly = log_softmax_from_stats(x, s, isa=isa)
    assert_log_softmax_as_exact_path(ly, x, f"{isa} extreme rows")
    xl = x.astype(LD)
    mx = np.max(xl, axis=-1)
    ref_lse = mx + np.log(np.sum(np.exp(xl - mx[:, None]), axis=-1))
    lse = s.logsumexp()
    assert np.all(np.abs((lse.astype(LD) - ref_lse).astype(np.float64))
                  <= 4 * np.finfo(np.float64).eps * np.maximum(1, np.abs(ref_lse.astype(np.float64)))), lse
    for op, got in (("softmax", y), ("log_softmax", ly)):
        np.testing.assert_array_equal(got, getattr(fastsoftmax, op)(x, axis=-1, algorithm="two-pass", isa=isa),
                                      err_msg=f"{op}: not the two-pass bits")


def test_issue_rows_exactly():
    """The rows the issue names, against SciPy: [1e30, 0] gives [1, 0] and [0, -1e30]."""
    for dtype in (np.float32, np.float64):
        x = np.array([1e30, 0.0], dtype)
        s = softmax_stats(x)
        np.testing.assert_array_equal(softmax_from_stats(x, s), np.array([1.0, 0.0], dtype))
        np.testing.assert_array_equal(log_softmax_from_stats(x, s), np.array([0.0, -1e30], dtype))
        assert s.logsumexp() == np.float64(dtype(1e30))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_extreme_rows_in_pieces_within_bounds(dtype):
    """Pieces of extreme rows (each piece its own regime: some pieces hold only the small
    values, some only the huge ones) merged in every order give the whole row's softmax."""
    rng = np.random.default_rng(31)
    x = extreme_rows(dtype, rng, n=12)
    for cuts in ([1], [3, 7], [1, 2, 11], [6]):
        bounds = split_points(x.shape[1], cuts)
        for order in (None, list(range(len(bounds)))[::-1]):
            y, merged = pieces_softmax("softmax", x, bounds, order)
            assert_within_design_bounds("softmax", y, x, f"cuts {cuts}")
            ly, _ = pieces_softmax("log_softmax", x, bounds, order)
            assert_log_softmax_as_exact_path(ly, x, f"cuts {cuts}")
            whole = softmax_stats(x).logsumexp()
            assert np.all(np.abs(merged.logsumexp() - whole) <= 2 * np.finfo(np.float64).eps * np.abs(whole))


@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_mixed_magnitudes_any_split_within_bounds(data):
    """Rows mixing a huge (or hugely negative) part with ordinary values, split anywhere."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    mags = EXTREME_MAGNITUDES[dtype]
    mu = data.draw(st.sampled_from(mags), label="magnitude") * data.draw(st.sampled_from([1.0, -1.0]), label="sign")
    n = data.draw(st.integers(2, 300), label="n")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = np.where(rng.random(n) < 0.5, mu - rng.uniform(0, 40, n), rng.standard_normal(n) * 10).astype(dtype)
    x = x.reshape(1, n)
    cuts = data.draw(st.lists(st.integers(0, n), max_size=6), label="cuts")
    bounds = split_points(n, cuts)
    order = data.draw(st.permutations(range(len(bounds))), label="merge order")
    y, _ = pieces_softmax("softmax", x, bounds, order)
    assert_within_design_bounds("softmax", y, x, f"splits {bounds}")
    ly, _ = pieces_softmax("log_softmax", x, bounds, order)
    if abs(float(np.max(x))) > (65536 if dtype == np.float32 else 2**20):  # beyond the fast range
        assert_log_softmax_as_exact_path(ly, x, f"splits {bounds}")
    else:  # the ordinary values dominate: a fast-range row
        assert_within_design_bounds("log_softmax", ly, x, f"splits {bounds}")


@pytest.mark.parametrize("isa", _core.compiled_isas())
@pytest.mark.parametrize("mu", [-1.06e6, -1e9, -1e12, -1e15, 1.06e6, 1e9, 1e12, 1e15])
def test_float64_rows_beyond_2_20_keep_full_accuracy(mu, isa):
    """float64 rows whose max is beyond 2^20 (the issue: below -2^20 the statistics lost
    5e-14 at -1.06e6, 1.4e-11 at -1e9, 1.5e-8 at -1e12): within DESIGN section 4's 2e-15
    + |x_i - max| 2^-53, as softmax itself."""
    require_or_skip(isa)
    x = (mu - np.random.default_rng(32).uniform(0, 30, (3, 1000))).astype(np.float64)
    s = softmax_stats(x, isa=isa)
    assert_within_design_bounds("softmax", softmax_from_stats(x, s, isa=isa), x, f"mu={mu}")
    assert_log_softmax_as_exact_path(log_softmax_from_stats(x, s, isa=isa), x, f"mu={mu}")
    assert_within_design_bounds("softmax", fastsoftmax.softmax(x, axis=-1, isa=isa, algorithm="two-pass"), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pieces_across_the_fast_range_edge(dtype, sign):
    """Rows around the edge of the fast range (|max| ~ 65156 in float32, ~1.0397e6 in float64),
    cut so that some pieces keep the pair of pass 1 and others take the shift form, with
    log-sums close enough that merging the two forms is no mere choice of the larger."""
    edge = 94000 * np.log(2) if dtype == np.float32 else 1.5e6 * np.log(2)
    rng = np.random.default_rng(34)
    kinds = []
    for _ in range(20):
        x = (sign * edge + rng.uniform(-12, 12, (2, 64))).astype(dtype)
        cuts = sorted(rng.integers(0, 64, 3).tolist())
        bounds = split_points(64, cuts)
        stats = [softmax_stats(x[:, a:b]) for a, b in bounds]
        kinds.append({bool(k) for s in stats for k in (s.shift != 0)})
        for op in ("softmax", "log_softmax"):
            for order in (None, list(range(len(bounds)))[::-1]):
                y, merged = pieces_softmax(op, x, bounds, order)
                assert_within_design_bounds(op, y, x, f"cuts {cuts}")
            whole = softmax_stats(x).logsumexp()  # float32 pairs: float32 arithmetic
            assert np.all(np.abs(merged.logsumexp() - whole) <= 4 * np.finfo(dtype).eps * np.abs(whole))
    assert any(k == {True, False} for k in kinds), "no row mixed the two forms"


def test_default_axis_is_the_last_on_purpose():
    """softmax_stats keeps axis=-1 by default (not None, as softmax/logsumexp): decided and
    explained in the README, docs/stats.md and the docstring, which must keep saying so."""
    import inspect
    import pathlib

    x = np.arange(6.0).reshape(2, 3)
    s = softmax_stats(x)
    assert s.axes == (1,) and s.shape == (2,)
    np.testing.assert_array_equal(s.logsumexp(), fastsoftmax.logsumexp(x, axis=-1))
    assert softmax_stats(x, axis=None).axes == (0, 1)
    assert softmax_stats(x, axis=None).logsumexp() == fastsoftmax.logsumexp(x)
    assert inspect.signature(softmax_stats).parameters["axis"].default == -1
    assert inspect.signature(fastsoftmax.logsumexp).parameters["axis"].default is None
    root = pathlib.Path(__file__).resolve().parent.parent
    assert "**`softmax_stats` defaults to the last axis**" in (root / "README.md").read_text()
    assert "## The default axis of `softmax_stats`" in (root / "docs" / "stats.md").read_text()
    assert "unlike" in softmax_stats.__doc__ and "on purpose" in softmax_stats.__doc__
