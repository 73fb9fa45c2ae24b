"""fastsoftmax.torch's cross_entropy, sample and topk_softmax: values and gradients against
torch.nn.functional.cross_entropy (and an exact float64 reference), the same tokens / top-k
as the NumPy functions on the same memory, torch.compile(fullgraph=True), torch.library.opcheck,
errors. Skipped as a whole where torch is not installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

import torch.nn.functional as F  # noqa: E402

import fastsoftmax as fs  # noqa: E402
import fastsoftmax.torch as fst  # noqa: E402
from fastsoftmax import _core  # noqa: E402

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Unit roundoff of each dtype's storage.
U = {torch.float32: 2.0**-24, torch.float64: 2.0**-53, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


def _numpy_view(t):
    """The NumPy view of a tensor's memory, as the NumPy API takes it (bfloat16: ml_dtypes)."""
    if t.dtype == torch.bfloat16:
        return np.from_dlpack(t.view(torch.int16)).view(ml_dtypes.bfloat16)
    return np.from_dlpack(t)


def _loss_bound(ref, x, cdim, dtype):
    """The bound on |ours - exact| for cross-entropy losses of the (exactly represented) input
    x: 2 roundoffs of the result's dtype of |loss| (16-bit: one rounding of a float32/float64
    value; float32/64: the rounding of the result), plus 8 roundoffs of the computing dtype
    (float32 for 16-bit input) of the terms the loss is the difference of, logsumexp(row) and
    the target's logit (bounded by max |x| + log C): where they cancel, the loss keeps their
    absolute error."""
    compute_u = U[torch.float64] if dtype == torch.float64 else U[torch.float32]
    scale = float(x.double().abs().max()) + math.log(max(x.shape[cdim], 2)) if x.numel() else 0.0
    return 2 * U[dtype] * ref.abs() + 8 * compute_u * scale


def _check_loss(ours, theirs, ref, x, cdim, dtype):
    assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape == ref.shape
    assert torch.equal(ours.isnan(), ref.isnan()) and torch.equal(theirs.isnan(), ref.isnan())  # every row ignored
    ours, theirs, ref = ours.nan_to_num(), theirs.nan_to_num(), ref.nan_to_num()
    bound = _loss_bound(ref, x, cdim, dtype)
    ok = (ours.double() - ref).abs() <= bound
    assert bool(ok.all()), float((ours.double() - ref).abs().max())
    # torch's own low-precision result is as close to the exact one: ours is within twice the bound of it
    # (torch rounds its log-softmax to the input's dtype before the reduction: 4 roundoffs for 16-bit).
    slack = 4 * U[dtype] * ref.abs() if dtype in (torch.float16, torch.bfloat16) else 0
    assert bool(((ours.double() - theirs.double()).abs() <= 2 * bound + slack).all())


# float64 gradients: ours against torch's float64 gradient within 8 float64 roundoffs of (|g| +
# the largest |g|); lower precisions against the float64 gradient of the same (rounded) input
# within 4 roundoffs of the dtype (both sides round softmax and the product to the dtype).
def _check_grad(ours, ref, dtype, rel=None):
    rel = rel if rel is not None else (8 if dtype == torch.float64 else 4)
    ours, ref = ours.double(), ref.double()
    tol = rel * U[dtype] * (ref.abs() + ref.abs().max())
    assert bool(((ours - ref).abs() <= tol).all()), float((ours - ref).abs().max())


SHAPES = [((37,), ()), ((6, 37), (6,)), ((4, 9, 5), (4, 5)), ((2, 7, 3, 4), (2, 3, 4)), ((1, 11), (1,))]


def _targets(shape, c, ignore_every=3, ignore_index=-100):
    t = torch.randint(0, c, shape, dtype=torch.int64)
    flat = t.view(-1)
    flat[::ignore_every] = ignore_index
    return t


# ---- cross_entropy: values ----------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_cross_entropy_matches_torch(shapes, dtype, reduction):
    xshape, tshape = shapes
    torch.manual_seed(1)
    cdim = 0 if len(xshape) == 1 else 1
    x = (torch.randn(xshape, dtype=torch.float64) * 4).to(dtype)
    t = _targets(tshape, xshape[cdim]) if tshape else torch.tensor(3)
    ours = fst.cross_entropy(x, t, reduction=reduction)
    theirs = F.cross_entropy(x, t, reduction=reduction)
    ref = F.cross_entropy(x.double(), t, reduction=reduction)
    _check_loss(ours, theirs, ref, x, cdim, dtype)


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_cross_entropy_large_rows_and_ignore_index(dtype):
    torch.manual_seed(2)
    x = (torch.randn(32, 5000, dtype=torch.float64) * 3).to(dtype)
    for ignore in (-100, 7, 0):
        t = torch.randint(0, 5000, (32,))
        t[::4] = ignore
        for reduction in ("mean", "sum", "none"):
            ours = fst.cross_entropy(x, t, reduction=reduction, ignore_index=ignore)
            ref = F.cross_entropy(x.double(), t, reduction=reduction, ignore_index=ignore)
            _check_loss(ours, F.cross_entropy(x, t, reduction=reduction, ignore_index=ignore), ref, x, 1, dtype)
        none = fst.cross_entropy(x, t, reduction="none", ignore_index=ignore)
        assert bool((none[t == ignore] == 0).all()) and bool((none[t != ignore] > 0).all())


def test_cross_entropy_non_contiguous_input_is_read_in_place(monkeypatch):
    torch.manual_seed(3)
    base = torch.randn(9, 40, 6, dtype=torch.float64)
    x = base.permute(2, 1, 0)[:, ::2]  # (6, 20, 9): classes along dim 1 with stride 6*... (not contiguous)
    assert not x.is_contiguous()
    t = torch.randint(0, 20, (6, 9))
    seen = []
    real = _core.row_stats

    def spy(a, *args, **kw):
        seen.append((a.__array_interface__["data"][0], a.dtype.itemsize))
        return real(a, *args, **kw)

    monkeypatch.setattr(_core, "row_stats", spy)
    for reduction in ("mean", "sum", "none"):
        ours = fst.cross_entropy(x, t, reduction=reduction)
        ref = F.cross_entropy(x, t, reduction=reduction)
        _check_loss(ours, ref, ref, x, 1, torch.float64)
    xb = torch.randn(8, 300).to(torch.bfloat16)
    fst.cross_entropy(xb, torch.randint(0, 300, (8,)))
    fst.topk_softmax(xb, 3)
    assert seen == [(x.data_ptr(), 8)] * 3 + [(xb.data_ptr(), 2)] * 2  # no copy, 16-bit read as is


def test_cross_entropy_edge_cases_as_torch():
    x = torch.randn(3, 5, dtype=torch.float64)
    every = torch.full((3,), -100)
    for reduction in ("mean", "sum", "none"):
        a, b = fst.cross_entropy(x, every, reduction=reduction), F.cross_entropy(x, every, reduction=reduction)
        assert a.shape == b.shape and torch.equal(a.isnan(), b.isnan())
        assert torch.equal(a.nan_to_num(), b.nan_to_num())  # mean: NaN; sum 0; none zeros
    empty = torch.empty(0, 5)
    for reduction in ("mean", "sum", "none"):
        a, b = fst.cross_entropy(empty, torch.empty(0, dtype=torch.long), reduction=reduction), \
            F.cross_entropy(empty, torch.empty(0, dtype=torch.long), reduction=reduction)
        assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan())
    # (C,) input with a (1,) target: one row of a batch, as torch; uint8 targets as torch
    v = torch.randn(6)
    assert fst.cross_entropy(v, torch.tensor([2]), reduction="none").shape == (1,)
    assert torch.allclose(fst.cross_entropy(v, torch.tensor(2)), F.cross_entropy(v, torch.tensor(2)))
    t8 = torch.tensor([4, 0, 1], dtype=torch.uint8)
    assert torch.allclose(fst.cross_entropy(x, t8), F.cross_entropy(x, t8), rtol=1e-14)
    # NaN / inf logits propagate as in torch
    xn = x.clone()
    xn[1, 2] = float("nan")
    a = fst.cross_entropy(xn, torch.tensor([0, 1, 2]), reduction="none")
    assert torch.equal(a.isnan(), F.cross_entropy(xn, torch.tensor([0, 1, 2]), reduction="none").isnan())


# ---- cross_entropy: errors (the same exception types as torch's) --------------------------

def _raises_like_torch(call_ours, call_torch, match):
    with pytest.raises(Exception) as theirs:
        call_torch()
    with pytest.raises(theirs.type, match=match):
        call_ours()


def test_cross_entropy_errors():
    x = torch.randn(3, 5)
    for bad in (5, -2, 100):
        t = torch.tensor([0, bad, 1])
        _raises_like_torch(lambda: fst.cross_entropy(x, t), lambda: F.cross_entropy(x, t),
                           rf"Target {bad} is out of bounds \(row \(1,\)\)")
    t = torch.tensor([0, 7, 1])  # 7 is ignore_index: fine
    assert torch.allclose(fst.cross_entropy(x, t, ignore_index=7), F.cross_entropy(x, t, ignore_index=7))
    t3 = torch.tensor([[0, 1, 9, 2]])
    _raises_like_torch(lambda: fst.cross_entropy(torch.randn(1, 5, 4), t3),
                       lambda: F.cross_entropy(torch.randn(1, 5, 4), t3), r"Target 9 is out of bounds \(row \(0, 2\)\)")
    _raises_like_torch(lambda: fst.cross_entropy(x, torch.tensor([0, 1])),
                       lambda: F.cross_entropy(x, torch.tensor([0, 1])), "batch_size")
    _raises_like_torch(lambda: fst.cross_entropy(torch.randn(2, 3, 4), torch.zeros(1, 3, dtype=torch.long)),
                       lambda: F.cross_entropy(torch.randn(2, 3, 4), torch.zeros(1, 3, dtype=torch.long)), "batch_size")
    _raises_like_torch(lambda: fst.cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, 5, dtype=torch.long)),
                       lambda: F.cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, 5, dtype=torch.long)),
                       r"Expected target size \[2, 4\], got \[2, 5\]")
    for dt in (torch.int32, torch.bool):
        t = torch.tensor([0, 1, 1], dtype=dt)
        _raises_like_torch(lambda: fst.cross_entropy(x, t), lambda: F.cross_entropy(x, t), "Long or Byte")
    _raises_like_torch(lambda: fst.cross_entropy(x, torch.tensor([0, 1, 1]), reduction="avg"),
                       lambda: F.cross_entropy(x, torch.tensor([0, 1, 1]), reduction="avg"), "not a valid value")
    with pytest.raises(TypeError, match="class probabilities"):  # torch computes soft targets; we do not
        fst.cross_entropy(x, torch.softmax(x, 1))
    for kw in ({"weight": torch.ones(5)}, {"label_smoothing": 0.1}):
        with pytest.raises(TypeError, match="unexpected keyword"):
            fst.cross_entropy(x, torch.tensor([0, 1, 1]), **kw)
    with pytest.raises(TypeError, match="must be float32"):
        fst.cross_entropy(torch.arange(6).reshape(2, 3), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        fst.cross_entropy(x, [0, 1, 1])
    with pytest.raises(ValueError, match="at least one dimension"):
        fst.cross_entropy(torch.tensor(1.0), torch.tensor(0))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        fst.cross_entropy(x, torch.tensor([0, 1, 1]), ignore_index=1.5)


# ---- cross_entropy: gradients --------------------------------------------------------------

GRAD_SHAPES = [((7,), ()), ((5, 7), (5,)), ((3, 6, 4), (3, 4)), ((2, 5, 3, 2), (2, 3, 2))]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shapes", GRAD_SHAPES, ids=str)
def test_cross_entropy_gradcheck(shapes, reduction):
    xshape, tshape = shapes
    torch.manual_seed(4)
    x = torch.randn(xshape, dtype=torch.float64, requires_grad=True)
    cdim = 0 if len(xshape) == 1 else 1
    t = _targets(tshape, xshape[cdim], ignore_every=2) if tshape else torch.tensor(2)
    fn = lambda z: fst.cross_entropy(z, t, reduction=reduction)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))  # softmax by fastsoftmax's differentiable operator
    base = torch.randn((5,) + xshape, dtype=torch.float64)  # a strided view of a larger tensor
    xs = base.movedim(0, -1)[..., 2].detach().requires_grad_()
    assert torch.autograd.gradcheck(fn, (xs,))


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "permuted"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_cross_entropy_gradients_against_torch(dtype, reduction, contiguous):
    torch.manual_seed(5)
    if contiguous:
        x0 = (torch.randn(16, 300, 3, dtype=torch.float64) * 3).to(dtype)
    else:  # dense but permuted: the classes are the last dim in memory (clone keeps the layout)
        x0 = (torch.randn(16, 3, 300, dtype=torch.float64) * 3).to(dtype).permute(0, 2, 1)
        assert not x0.is_contiguous() and not x0.clone().is_contiguous()
    t = _targets((16, 3), 300, ignore_every=5)
    w = torch.randn(16, 3, dtype=torch.float64)
    grads = {}
    for name, f, xin in (("ours", fst.cross_entropy, x0), ("torch", F.cross_entropy, x0),
                         ("exact", F.cross_entropy, x0.double())):
        x = xin.clone().requires_grad_()
        loss = f(x, t, reduction=reduction)
        (loss * w.to(loss.dtype)).sum().backward() if reduction == "none" else (loss * 3).backward()
        grads[name] = x.grad
    assert grads["ours"].dtype == dtype
    # torch's semantics through its float64 gradient; its float32 gradient carries its own
    # rounding error (beyond 8 u against ours on the scalar tier), so it is no reference.
    _check_grad(grads["ours"], grads["exact"], dtype)
    assert bool((grads["ours"].movedim(1, -1)[t == -100] == 0).all())  # ignored rows: no gradient
    assert bool((grads["torch"].movedim(1, -1)[t == -100] == 0).all())


def test_cross_entropy_every_row_ignored_has_zero_gradient_as_torch():
    for reduction in ("mean", "sum", "none"):
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        fst.cross_entropy(x, torch.full((3,), -100), reduction=reduction).sum().backward()
        y = x.detach().clone().requires_grad_()
        F.cross_entropy(y, torch.full((3,), -100), reduction=reduction).sum().backward()
        assert torch.equal(x.grad, y.grad) and not bool(x.grad.any())


# ---- sample -------------------------------------------------------------------------------

SAMPLE_CASES = [dict(), dict(top_p=0.9), dict(top_k=20, temperature=0.7), dict(min_p=0.05),
                dict(top_k=50, top_p=0.8, min_p=0.02, temperature=1.3), dict(temperature=0)]

@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_sample_tokens_are_those_of_the_numpy_function(dtype):
    torch.manual_seed(6)
    x = (torch.randn(8, 1000, dtype=torch.float64) * 2.5).to(dtype)
    xn = _numpy_view(x)
    for kw in SAMPLE_CASES:
        for seed in (0, 12345, 2**64 - 1):
            tok = fst.sample(x, seed=seed, **kw)
            assert tok.dtype == torch.int64 and tok.shape == (8,)
            assert np.array_equal(tok.numpy(), fs.sample(xn, seed=seed, **kw)), (kw, seed)
    # per-row parameters as tensors, lists and arrays; per-row seeds
    per_row = dict(temperature=torch.linspace(0.5, 1.5, 8), top_k=[5, 10, 20, 50, 100, 1000, 3, 1],
                   top_p=np.linspace(0.3, 1.0, 8), min_p=torch.tensor([0.0, 0.1] * 4, dtype=torch.float32))
    seeds = list(range(100, 108))
    want = fs.sample(xn, seed=np.array(seeds, np.uint64), temperature=per_row["temperature"].double().numpy(),
                     top_k=per_row["top_k"], top_p=per_row["top_p"], min_p=per_row["min_p"].double().numpy())
    assert np.array_equal(fst.sample(x, seed=seeds, **per_row).numpy(), want)
    assert np.array_equal(fst.sample(x, seed=torch.tensor(seeds), **per_row).numpy(), want)
    # another dim, non-contiguous
    xt = x.t()
    assert np.array_equal(fst.sample(xt, dim=0, seed=9, top_p=0.9).numpy(),
                          fs.sample(_numpy_view(x).T, axis=0, seed=9, top_p=0.9))
    # 1-d logits: a 0-d tensor; 3-d: the batch shape
    t1 = fst.sample(x[0], seed=3)
    assert t1.shape == () and int(t1) == int(fs.sample(xn[0], seed=3))
    x3 = x.reshape(2, 4, 1000)
    assert torch.equal(fst.sample(x3, seed=4, top_k=7), fst.sample(x, seed=4, top_k=7).reshape(2, 4))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_sample_logprobs_are_those_of_the_numpy_function(dtype):
    torch.manual_seed(16)
    x = (torch.randn(8, 1000, dtype=torch.float64) * 2.5).to(dtype)
    xn = _numpy_view(x)
    for kw in SAMPLE_CASES:
        for seed in (0, 12345, 2**64 - 1):
            tok, lp = fst.sample(x, seed=seed, return_logprobs=True, **kw)
            assert tok.dtype == torch.int64 and lp.dtype == torch.float64 and tok.shape == lp.shape == (8,)
            want_tok, want_lp = fs.sample(xn, seed=seed, return_logprobs=True, **kw)
            assert np.array_equal(tok.numpy(), want_tok), (kw, seed)
            assert lp.numpy().tobytes() == want_lp.tobytes(), (kw, seed)
            assert torch.equal(fst.sample(x, seed=seed, **kw), tok)  # the same tokens without them
            assert bool((lp <= 0).all()) and (kw.get("temperature") != 0 or not bool(lp.any()))
    # per-row parameters and seeds as tensors
    temp, seeds = torch.linspace(0.5, 1.5, 8), torch.arange(100, 108)
    tok, lp = fst.sample(x, seed=seeds, temperature=temp, top_p=0.9, return_logprobs=True)
    want_tok, want_lp = fs.sample(xn, seed=seeds.numpy().astype(np.uint64), temperature=temp.double().numpy(),
                                  top_p=0.9, return_logprobs=True)
    assert np.array_equal(tok.numpy(), want_tok) and lp.numpy().tobytes() == want_lp.tobytes()
    # 1-d logits: 0-d tensors; 3-d and another dim: the batch shape
    t1, l1 = fst.sample(x[3], seed=3, top_k=40, return_logprobs=True)
    w1 = fs.sample(xn[3], seed=3, top_k=40, return_logprobs=True)
    assert t1.shape == l1.shape == () and int(t1) == int(w1[0]) and float(l1) == float(w1[1])
    t3, l3 = fst.sample(x.reshape(2, 4, 1000), seed=4, top_p=0.7, return_logprobs=True)
    t2, l2 = fst.sample(x, seed=4, top_p=0.7, return_logprobs=True)
    assert t3.shape == l3.shape == (2, 4) and torch.equal(t3, t2.reshape(2, 4)) and torch.equal(l3, l2.reshape(2, 4))
    td, ld = fst.sample(x.t(), dim=0, seed=9, min_p=0.1, return_logprobs=True)
    wd = fs.sample(xn.T, axis=0, seed=9, min_p=0.1, return_logprobs=True)
    assert np.array_equal(td.numpy(), wd[0]) and ld.numpy().tobytes() == wd[1].tobytes()
    # seed=None: the same draw of the seed from torch's generator as without logprobs
    torch.manual_seed(21)
    tn, ln = fst.sample(x, top_p=0.9, return_logprobs=True)
    torch.manual_seed(21)
    assert torch.equal(fst.sample(x, top_p=0.9), tn)
    with pytest.raises(TypeError, match="return_logprobs must be a bool"):
        fst.sample(x, seed=1, return_logprobs="yes")


def test_sample_seed_none_uses_torchs_generator():
    x = torch.randn(16, 500)
    torch.manual_seed(11)
    a = fst.sample(x)
    torch.manual_seed(11)
    b = fst.sample(x)
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(fst.sample(x, generator=g1), fst.sample(x, generator=g2))
    draws = {tuple(fst.sample(x, generator=g1).tolist()) for _ in range(4)}
    assert len(draws) == 4  # a new seed each call (16 rows of 500 tokens: a repeat is ~impossible)


def test_sample_greedy_and_distribution():
    x = torch.tensor([[0.0, 5.0, 1.0, 5.0], [3.0, -math.inf, 2.0, 1.0]])
    assert fst.sample(x, temperature=0).tolist() == [1, 0]
    # top_k=2 on a known row: each kept token's frequency within the binomial 1e-6 bounds
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64))
    n = 4000
    tok = fst.sample(logits.expand(n, 4).contiguous(), top_k=2, seed=list(range(n)))
    assert set(tok.tolist()) <= {0, 1}
    p0 = 0.5 / 0.8
    half = 5.0 * math.sqrt(n * p0 * (1 - p0))  # 5 sigma ~ 6e-7 two-sided
    assert abs(int((tok == 0).sum()) - n * p0) <= half


def test_sample_errors():
    x = torch.randn(3, 10)
    bad = [(dict(top_k=0), ValueError, "top_k must be >= 1"), (dict(top_k=2.5), ValueError, "top_k must be an integer"),
           (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"), (dict(top_p=1.5), ValueError, "top_p"),
           (dict(min_p=-0.1), ValueError, r"min_p must be in \[0, 1\]"),
           (dict(temperature=-1.0), ValueError, "temperature must be finite and >= 0"),
           (dict(temperature=float("nan")), ValueError, "temperature"),
           (dict(temperature=None), TypeError, "temperature"),
           (dict(seed=-1), ValueError, r"seed must be in \[0, 2\*\*64\)"), (dict(seed=2**64), ValueError, "seed"),
           (dict(seed=True), TypeError, "seed"), (dict(seed=1.5), TypeError, "seed"),
           (dict(seed=[1, -1, 2]), ValueError, "seed"), (dict(seed=torch.tensor([1.0])), TypeError, "seed"),
           (dict(top_p=torch.tensor([True, False, True])), TypeError, "top_p must hold real numbers"),
           (dict(top_k=["a"]), TypeError, "top_k"), (dict(dim=2), IndexError, "Dimension out of range"),
           (dict(seed=1, generator=torch.Generator()), ValueError, "not both"),
           (dict(generator=5), TypeError, "generator"),
           # values of tensors and sequences: checked when the operator runs, naming the row
           (dict(top_p=torch.tensor([0.5, 1.5, 0.9])), ValueError, r"top_p must be in \(0, 1\].*row"),
           (dict(top_k=[1, 0, 2]), ValueError, "top_k must be >= 1"),
           (dict(temperature=torch.tensor([1.0, float("nan"), 1.0])), ValueError, "temperature"),
           (dict(seed=torch.tensor([1, -5, 2])), ValueError, r"seed must be in \[0, 2\*\*64\)"),
           (dict(top_p=[0.5, 0.9]), ValueError, "one value per row")]
    for kw, exc, match in bad:
        with pytest.raises(exc, match=match):
            fst.sample(x, **kw)
    with pytest.raises(TypeError, match="must be float32"):
        fst.sample(torch.arange(10), seed=1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        fst.sample(np.zeros((2, 3)), seed=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fst.sample(x, axis=0)
    xn = x.clone()
    xn[2, 4] = float("nan")
    with pytest.raises(ValueError, match="row 2 contains NaN"):
        fst.sample(xn, seed=1)
    with pytest.raises(ValueError, match="all -inf"):
        fst.sample(torch.full((2, 3), -math.inf), seed=1)
    with pytest.raises(ValueError, match="non-empty"):
        fst.sample(torch.empty(2, 0), seed=1)


# ---- topk_softmax -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_topk_softmax_is_the_numpy_function(dtype):
    torch.manual_seed(7)
    x = (torch.randn(5, 300, dtype=torch.float64) * 3).to(dtype)
    for xx, dim, k in ((x, -1, 10), (x, 1, 300), (x.t(), 0, 4), (x[0], 0, 1), (x.reshape(5, 3, 100), 1, 2)):
        v, i, p = fst.topk_softmax(xx, k, dim)
        nv, ni, np_ = fs.topk_softmax(_numpy_view(xx), k, axis=dim)
        assert v.dtype == dtype and i.dtype == torch.int64
        assert p.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert v.shape == i.shape == p.shape == nv.shape and v.is_contiguous()
        assert np.array_equal(_numpy_view(v).view(np.uint8), np.ascontiguousarray(nv).view(np.uint8))
        assert np.array_equal(i.numpy(), ni) and np.array_equal(p.numpy(), np_)
        tv, ti = torch.topk(xx.double(), k, dim, sorted=True)
        assert torch.equal(v.double(), tv)  # values as torch's (indices may order ties otherwise)
        _check_grad(p, torch.softmax(xx.double(), dim).gather(dim, i), torch.float32, rel=8)


def test_topk_softmax_gradients():
    torch.manual_seed(10)
    x = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    for dim, k in ((1, 4), (0, 2), (-1, 12)):
        for pick in ((0,), (2,), (0, 2)):  # values, probabilities, both
            fn = lambda t: tuple(fst.topk_softmax(t, k, dim)[j] for j in pick)  # noqa: E731
            assert torch.autograd.gradcheck(fn, (x,))
    # against torch: values as torch.topk's (no ties here), probabilities as softmax().gather()
    x32 = (torch.randn(4, 500) * 2).requires_grad_()
    wv, wp = torch.randn(4, 5), torch.randn(4, 5)
    v, i, p = fst.topk_softmax(x32, 5)
    ((v * wv).sum() + (p * wp).sum()).backward()
    ref = x32.detach().double().requires_grad_()
    tv, ti = torch.topk(ref, 5, 1)
    assert torch.equal(ti, i)
    ((tv * wv.double()).sum() + (torch.softmax(ref, 1).gather(1, ti) * wp.double()).sum()).backward()
    _check_grad(x32.grad, ref.grad, torch.float32)


def test_topk_softmax_errors():
    x = torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
        fst.topk_softmax(x, 0)
    with pytest.raises(ValueError, match=r"k must be in \[1, 2\]"):
        fst.topk_softmax(x, 3, dim=0)
    with pytest.raises(TypeError, match="k must be an int"):
        fst.topk_softmax(x, True)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fst.topk_softmax(x, 1, dim=-3)
    xi = x.clone()
    xi[1, 1] = math.inf
    with pytest.raises(ValueError, match=r"row 1 contains \+inf"):
        fst.topk_softmax(xi, 2)


# ---- torch.compile, opcheck ---------------------------------------------------------------

def test_torch_compile_cross_entropy_values_and_gradients():
    def f(x, w, t):
        return fst.cross_entropy(x * w, t) + 0.5 * fst.cross_entropy(x, t, reduction="none").sum()

    def ref(x, w, t):
        return F.cross_entropy(x * w, t) + 0.5 * F.cross_entropy(x, t, reduction="none").sum()

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.manual_seed(8)
    x0 = torch.randn(6, 40, 3, dtype=torch.float64)
    w = torch.randn(6, 40, 3, dtype=torch.float64)
    t = _targets((6, 3), 40, ignore_every=4)
    x1, x2, x3 = (x0.clone().requires_grad_() for _ in range(3))
    v1, v2, v3 = compiled(x1, w, t), f(x2, w, t), ref(x3, w, t)
    for v in (v1, v2, v3):
        v.backward()
    assert torch.equal(v1.detach(), v2.detach()) and torch.equal(x1.grad, x2.grad)  # compiled = eager, bitwise
    assert abs(float(v1.detach()) - float(v3.detach())) <= 1e-13 * abs(float(v3.detach()))
    _check_grad(x1.grad, x3.grad, torch.float64, rel=16)
    with pytest.raises(IndexError, match="out of bounds"):  # value checks still run, compiled
        compiled(x0, w, torch.full((6, 3), 40))


def test_torch_compile_sample_and_topk():
    def f(x, temperature):
        tok = fst.sample(x, seed=1234, top_p=0.9, temperature=temperature)
        tok2 = fst.sample(x, seed=[1, 2, 3, 4], top_k=[1, 5, 10, 20], min_p=0.01)
        tok3, lp3 = fst.sample(x, seed=77, top_k=50, top_p=0.8, temperature=temperature, return_logprobs=True)
        t1, l1 = fst.sample(x[0], seed=5, return_logprobs=True)
        v, i, p = fst.topk_softmax(x, 3)
        return tok, tok2, tok3, lp3 * 2, t1, l1, v, i, p

    def g(x):
        return fst.sample(x, top_k=40)  # seed=None: a traced torch.randint

    def h(x):
        return fst.sample(x, top_k=40, return_logprobs=True)

    torch._dynamo.reset()
    x = torch.randn(4, 2000) * 2
    temp = torch.tensor([0.5, 1.0, 1.5, 2.0])
    eager, compiled = f(x, temp), torch.compile(f, fullgraph=True, backend="aot_eager")(x, temp)
    assert len(compiled) == 9
    for a, b in zip(eager, compiled):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    assert np.array_equal(eager[0].numpy(), fs.sample(x.numpy(), seed=1234, top_p=0.9,
                                                      temperature=temp.double().numpy()))
    want_tok, want_lp = fs.sample(x.numpy(), seed=77, top_k=50, top_p=0.8, temperature=temp.double().numpy(),
                                  return_logprobs=True)
    assert np.array_equal(compiled[2].numpy(), want_tok) and torch.equal(compiled[3], torch.from_numpy(want_lp) * 2)
    assert compiled[4].shape == compiled[5].shape == () and compiled[5].dtype == torch.float64
    ch = torch.compile(h, fullgraph=True, backend="aot_eager")
    torch.manual_seed(4)
    a_tok, a_lp = ch(x)
    torch.manual_seed(4)
    b_tok, b_lp = h(x)
    assert torch.equal(a_tok, b_tok) and torch.equal(a_lp, b_lp)
    cg = torch.compile(g, fullgraph=True, backend="aot_eager")
    torch.manual_seed(3)
    a = cg(x)
    torch.manual_seed(3)
    assert torch.equal(a, g(x))  # the same draw of the seed as eager
    assert len({tuple(cg(x).tolist()) for _ in range(3)}) == 3  # and a new one each call


def test_opcheck():
    torch.manual_seed(9)
    x = torch.randn(3, 9, 2, dtype=torch.float64, requires_grad=True)
    t = _targets((3, 2), 9)
    logits = torch.randn(4, 50)
    one = torch.tensor(1.0, dtype=torch.float64)
    for op, args in ((torch.ops.fastsoftmax.cross_entropy.default, (x, t, 1, -100, "mean")),
                     (torch.ops.fastsoftmax.cross_entropy.default, (x, t, 1, -100, "none")),
                     (torch.ops.fastsoftmax.cross_entropy.default,
                      (x[:, :, 0].detach().requires_grad_(), t[:, 0], 1, -100, "sum")),
                     (torch.ops.fastsoftmax.topk_softmax.default, (logits, 3, 1)),
                     (torch.ops.fastsoftmax.topk_softmax.default, (x.detach().requires_grad_(), 2, 1)),
                     (torch.ops.fastsoftmax.topk_softmax.default, (logits.bfloat16(), 2, 0)),
                     (torch.ops.fastsoftmax.sample.default,
                      (logits, 1, one, None, torch.tensor(0.9, dtype=torch.float64), None, torch.tensor(5), True)),
                     (torch.ops.fastsoftmax.sample.default,
                      (torch.randn(30, 2), 0, one, torch.tensor([2, 3]), None, None, torch.tensor([1, 2]), False)),
                     (torch.ops.fastsoftmax.sample_with_logprobs.default,
                      (logits, 1, one, None, torch.tensor(0.9, dtype=torch.float64), None, torch.tensor(5), True)),
                     (torch.ops.fastsoftmax.sample_with_logprobs.default,
                      (logits[0], 0, one, torch.tensor(7), None, torch.tensor(0.01, dtype=torch.float64),
                       torch.tensor(3), True))):
        torch.library.opcheck(op, args)


def test_torch_export():
    class M(torch.nn.Module):
        def forward(self, x, t):
            v, i, p = fst.topk_softmax(x, 2)
            tok, lp = fst.sample(x, seed=6, top_p=0.9, return_logprobs=True)
            return fst.cross_entropy(x, t, reduction="none") + p.sum(1), fst.sample(x, seed=5, top_k=3), tok, lp

    x, t = torch.randn(4, 6), torch.tensor([0, 5, -100, 2])
    ep = torch.export.export(M(), (x, t))
    for a, b in zip(ep.module()(x, t), M()(x, t)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_eager_calls_give_the_operators_results(dtype):
    # Plain tensors skip the custom operators' dispatch (fastsoftmax/torch.py _plain_eager):
    # the same tokens, log-probabilities, top-k and losses as the operators themselves.
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(6, 300, generator=g, dtype=torch.float64) * 3).to(dtype)
    k = torch.tensor([1, 5, 50, 300, 7, 2])
    for kw in ({"top_p": 0.9, "seed": 11}, {"top_k": k, "min_p": 0.05, "seed": [1, 2, 3, 4, 5, 6]},
               {"temperature": 0.7, "top_p": 0.5, "top_k": 40, "seed": 2**64 - 1}):
        tokens, logprobs = fst.sample(logits, return_logprobs=True, **kw)
        t, kk, p, mp = (fst._param(n, kw.get(n, d), lambda v: True, "")
                        for n, d in (("temperature", 1.0), ("top_k", None), ("top_p", None), ("min_p", None)))
        s, bits = fst._seed(kw["seed"], None)
        op_tokens, op_logprobs = torch.ops.fastsoftmax.sample_with_logprobs(logits, 1, t, kk, p, mp, s, bits)
        assert torch.equal(tokens, op_tokens) and torch.equal(logprobs, op_logprobs)
        assert torch.equal(fst.sample(logits, **kw), torch.ops.fastsoftmax.sample(logits, 1, t, kk, p, mp, s, bits))
    torch.manual_seed(3)
    a = fst.sample(logits)
    torch.manual_seed(3)
    s, bits = fst._seed(None, None)
    one = fst._param("temperature", 1.0, lambda v: True, "")
    assert torch.equal(a, torch.ops.fastsoftmax.sample(logits, 1, one, None, None, None, s, bits))
    for got, want in zip(fst.topk_softmax(logits, 4, 1), torch.ops.fastsoftmax.topk_softmax(logits, 4, 1)):
        assert got.dtype == want.dtype and torch.equal(got, want)
    target = torch.tensor([0, 299, -100, 5, 6, 7])
    for reduction in ("mean", "sum", "none"):
        got = fst.cross_entropy(logits, target, reduction=reduction)
        want = torch.ops.fastsoftmax.cross_entropy(logits, target, 1, -100, reduction)
        assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)
