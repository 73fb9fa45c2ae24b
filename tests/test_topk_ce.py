"""topk_softmax and cross_entropy against float64 references (and torch when importable)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp as lse64

import fastsoftmax as fs

ml_dtypes = pytest.importorskip("ml_dtypes")


def ref_topk(row, k):
    r = np.asarray(row, np.float64)
    # stable sort of -x, with +0 above -0 (the ranking of sample's docs)
    key = np.where(r == 0, np.where(np.signbit(r), -0.0, 0.0), r)
    order = np.lexsort((np.arange(r.size), np.signbit(key) & (key == 0), -key))
    idx = order[:k]
    p = np.exp(r[idx] - lse64(r))
    return idx, p


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16"])
@pytest.mark.parametrize("n,k", [(10, 1), (10, 10), (1000, 7), (4099, 300), (128256, 50), (128256, 2500),
                                 (128256, 1)])
def test_topk_softmax_against_float64(dtype, n, k):
    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    rng = np.random.default_rng(n + k)
    rows = 3
    x = (rng.standard_normal((rows, n)) * 3).astype(np.float32)
    x[:, ::4] = np.round(x[:, ::4])  # many ties
    x[1, ::3] = -np.inf
    x = x.astype(dt)
    v, i, p = fs.topk_softmax(x, k)
    assert v.shape == i.shape == p.shape == (rows, k)
    assert v.dtype == x.dtype and i.dtype == np.int64
    assert p.dtype == (np.float64 if dtype == np.float64 else np.float32)
    for r in range(rows):
        idx, pr = ref_topk(x[r].astype(np.float64), k)
        np.testing.assert_array_equal(i[r], idx)
        np.testing.assert_array_equal(v[r], x[r][idx])
        # exp(v - lse): the logsumexp's rounding in the compute dtype, times |lse|
        lse = abs(lse64(x[r].astype(np.float64)))
        eps = 2.0 ** -52 if dtype == np.float64 else 2.0 ** -23
        tol = 4 * eps * (1 + lse) + 2 * (2.0 ** -24 if dtype != np.float64 else 2.0 ** -53)
        np.testing.assert_allclose(p[r], pr, rtol=tol, atol=0)


def test_topk_softmax_axis_ties_and_errors():
    x = np.array([[0.0, 2.0, -0.0, 2.0, 1.0]], np.float32)
    v, i, p = fs.topk_softmax(x, 5)
    assert i.tolist() == [[1, 3, 4, 0, 2]]  # ties by index; +0 above -0
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    y = np.random.default_rng(0).standard_normal((4, 30, 5)).astype(np.float32)
    v, i, p = fs.topk_softmax(y, 3, axis=1)
    v2, i2, p2 = fs.topk_softmax(np.moveaxis(y, 1, -1), 3)
    np.testing.assert_array_equal(i, np.moveaxis(i2, -1, 1))
    np.testing.assert_array_equal(p, np.moveaxis(p2, -1, 1))
    assert v.shape == (4, 3, 5)
    v, i, p = fs.topk_softmax(np.arange(5.0), 2)
    assert i.tolist() == [4, 3]
    for bad_k in (0, 6, -1):
        with pytest.raises(ValueError, match="k must be in"):
            fs.topk_softmax(np.zeros((2, 5), np.float32), bad_k)
    with pytest.raises(TypeError):
        fs.topk_softmax(np.zeros((2, 5), np.float32), 2.0)
    z = np.zeros((3, 6), np.float32)
    z[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2 contains NaN"):
        fs.topk_softmax(z, 2)
    z[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"row 2 contains \+inf"):
        fs.topk_softmax(z, 2)
    z[2, :] = -np.inf
    with pytest.raises(ValueError, match="row 2 is all -inf"):
        fs.topk_softmax(z, 2)
    with pytest.raises(TypeError):
        fs.topk_softmax(np.arange(4), 2)


def test_topk_softmax_threads_and_tiers_agree():
    x = (np.random.default_rng(2).standard_normal((33, 5000)) * 2).astype(np.float32)
    base = fs.topk_softmax(x, 40, threads=1)
    for th in (2, 5):
        got = fs.topk_softmax(x, 40, threads=th)
        for a, b in zip(base, got):
            np.testing.assert_array_equal(a, b)


# --- cross_entropy -----------------------------------------------------------------------

def ref_ce(x, t, reduction, ignore_index=-100):
    x = np.asarray(x, np.float64)
    t = np.asarray(t)
    ign = t == ignore_index
    tt = np.where(ign, 0, t)
    loss = lse64(x, axis=-1) - np.take_along_axis(x, tt[..., None], -1)[..., 0]
    loss = np.where(ign, 0.0, loss)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / np.count_nonzero(~ign) if np.count_nonzero(~ign) else np.nan


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_against_float64(dtype, reduction):
    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    rng = np.random.default_rng(4)
    rows, n = 37, 3001
    x = (rng.standard_normal((rows, n)) * 4).astype(np.float32).astype(dt)
    t = rng.integers(0, n, rows)
    t[[3, 9, 20]] = -100
    got = fs.cross_entropy(x, t, reduction=reduction)
    want = ref_ce(x.astype(np.float64), t, reduction)
    rdt = np.float64 if dtype == np.float64 else np.float32
    assert np.asarray(got).dtype == rdt
    lse = np.abs(lse64(x.astype(np.float64), axis=-1)).max()
    eps = 2.0 ** -52 if dtype == np.float64 else 2.0 ** -23
    tol = 4 * eps * (1 + lse) * (rows if reduction == "sum" else 1)
    np.testing.assert_allclose(got, want, rtol=2 * eps, atol=tol)
    if reduction == "none":
        assert got[3] == 0 and got[9] == 0 and got[20] == 0


def test_cross_entropy_semantics():
    x = np.zeros((2, 4), np.float32)
    np.testing.assert_allclose(fs.cross_entropy(x, [1, 3]), np.log(4), rtol=1e-7)
    # all ignored: mean is nan, sum is 0, none is zeros
    assert np.isnan(fs.cross_entropy(x, [-100, -100]))
    assert fs.cross_entropy(x, [-100, -100], reduction="sum") == 0
    np.testing.assert_array_equal(fs.cross_entropy(x, [-100, -100], reduction="none"), [0, 0])
    # a custom ignore_index, out of range targets name the row, axis
    assert fs.cross_entropy(x, [7, 0], ignore_index=7, reduction="sum") == pytest.approx(np.log(4))
    with pytest.raises(ValueError, match=r"target 4 \(row 1\) is outside \[0, 4\)"):
        fs.cross_entropy(x, [0, 4])
    with pytest.raises(ValueError, match=r"target -1 \(row 0\)"):
        fs.cross_entropy(x, [-1, 0])
    y = np.random.default_rng(1).standard_normal((3, 5, 2))
    t = np.array([[0, 4], [2, 2], [1, 3]])
    np.testing.assert_allclose(fs.cross_entropy(y, t, axis=1, reduction="none"),
                               ref_ce(np.moveaxis(y, 1, -1), t, "none"), rtol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        fs.cross_entropy(x, [0, 1, 2])
    with pytest.raises(TypeError):
        fs.cross_entropy(x, [0.0, 1.0])
    with pytest.raises(ValueError, match="reduction"):
        fs.cross_entropy(x, [0, 1], reduction="avg")
    assert fs.cross_entropy(np.zeros(3), 2) == pytest.approx(np.log(3))


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((50, 1000)) * 3).astype(np.float32)
    t = rng.integers(0, 1000, 50)
    t[::7] = -100
    for reduction in ("mean", "sum", "none"):
        want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction=reduction).numpy()
        got = fs.cross_entropy(x, t, reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-5)
    t[:] = -100
    assert np.isnan(fs.cross_entropy(x, t)) and torch.isnan(
        F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)))
    # 3-d: torch's class axis 1 is our axis=1
    y = rng.standard_normal((4, 10, 6)).astype(np.float32)
    ty = rng.integers(0, 10, (4, 6))
    want = F.cross_entropy(torch.from_numpy(y), torch.from_numpy(ty), reduction="none").numpy()
    np.testing.assert_allclose(fs.cross_entropy(y, ty, axis=1, reduction="none"), want, rtol=2e-6, atol=2e-6)


def test_docstring_examples():
    import doctest

    import fastsoftmax._topk as m

    res = doctest.testmod(m, optionflags=doctest.ELLIPSIS)
    assert res.attempted >= 3 and res.failed == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_byte_swapped_logits_like_native(dtype):
    # Non-native byte order is only a memory layout: sample, topk_softmax and cross_entropy
    # give bitwise the results of the native array (the kernels read native numbers).
    native = (3 * np.random.default_rng(8).standard_normal((6, 300))).astype(dtype)
    swapped = native.astype(native.dtype.newbyteorder())
    assert np.array_equal(swapped, native) and not swapped.dtype.isnative
    for kw in (dict(top_p=0.9), dict(top_k=5, temperature=0.7), dict(min_p=0.1), dict()):
        t_n, l_n = fs.sample(native, seed=3, return_logprobs=True, **kw)
        t_s, l_s = fs.sample(swapped, seed=3, return_logprobs=True, **kw)
        assert np.array_equal(t_s, t_n) and np.array_equal(l_s, l_n), kw
    for a, b in zip(fs.topk_softmax(swapped, 7), fs.topk_softmax(native, 7)):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    targets = np.arange(6) * 7
    for reduction in ("mean", "none"):
        got = fs.cross_entropy(swapped, targets, reduction=reduction)
        want = fs.cross_entropy(native, targets, reduction=reduction)
        assert np.array_equal(got, want)
