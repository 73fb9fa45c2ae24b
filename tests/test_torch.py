"""PyTorch and DLPack: tensors in, tensors out (fastsoftmax.softmax & co.), and the
fastsoftmax.torch operators: values against torch, autograd (gradcheck / gradgradcheck),
torch.compile, torch.library.opcheck, zero copy, DLPack-only objects, device errors.
Skipped as a whole where torch is not installed."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

import fastsoftmax as fs  # noqa: E402
import fastsoftmax.torch as fst  # noqa: E402
from fastsoftmax import _core  # noqa: E402

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Unit roundoff of each dtype's storage.
U = {torch.float32: 2.0**-24, torch.float64: 2.0**-53, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


class DLPackOnly:
    """An array that only speaks DLPack (no __array__, no buffer protocol)."""

    def __init__(self, a, device=(1, 0)):
        self._a, self._device = a, device

    def __dlpack__(self, **kw):
        return self._a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._device


def _close(ours, ref, dtype, rel=8.0):
    """ours within rel units of `dtype`'s roundoff of ref (relative), plus the same of the
    largest |ref| for elements near 0."""
    ours, ref = ours.double(), ref.double()
    tol = rel * U[dtype] * (ref.abs() + ref.abs().max())
    assert bool(((ours - ref).abs() <= tol).all()), float((ours - ref).abs().max())


def test_torch_is_not_imported_unless_asked():
    code = ("import sys, numpy as np, fastsoftmax as fs\n"
            "fs.softmax(np.ones(3)); fs.log_softmax([1.0, 2.0]); fs.logsumexp(np.ones((2, 2)), axis=1)\n"
            "fs.softmax_backward(np.ones(3) / 3, np.ones(3)); fs.softmax(np.ones(3), out=np.empty(3))\n"
            "assert 'torch' not in sys.modules\n"
            "import fastsoftmax.torch\n"
            "assert 'torch' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- DLPack in, same type out (fastsoftmax.softmax / log_softmax / logsumexp) ----------------

@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_tensor_in_tensor_out(op, dtype):
    x = torch.randn(6, 37, dtype=torch.float64).to(dtype)
    ref = getattr(torch, op)(x.double(), dim=-1)
    for kw in ({"axis": -1}, {"axis": 0}, {"axis": None}, {"axis": (0, 1)}):
        y = getattr(fs, op)(x, **kw)
        assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == x.shape
        axis = kw["axis"]
        want = getattr(torch, op)(x.double().reshape(-1), 0).reshape(x.shape) if axis in (None, (0, 1)) else \
            getattr(torch, op)(x.double(), dim=axis)
        _close(y, want, dtype)
    # The same numbers as the NumPy call on the same memory.
    xn = np.from_dlpack(x.view(torch.int16)).view(ml_dtypes.bfloat16) if dtype == torch.bfloat16 else x.numpy()
    yn = getattr(fs, op)(xn, axis=-1)
    y = getattr(fs, op)(x, axis=-1)
    assert np.array_equal(np.asarray(yn).view(np.uint8),
                          (y.view(torch.int16) if dtype == torch.bfloat16 else y).numpy().view(np.uint8))
    _close(y, ref, dtype)


def test_16_bit_tensors_reach_the_16_bit_kernels_without_a_copy(monkeypatch):
    seen = []
    real = _core.run

    def spy(op, algorithm, x, out, isa, threads):
        seen.append((x.dtype, x.__array_interface__["data"][0], out.__array_interface__["data"][0]))
        return real(op, algorithm, x, out, isa, threads)

    monkeypatch.setattr(_core, "run", spy)
    for dtype, np_dtype in ((torch.bfloat16, np.dtype(ml_dtypes.bfloat16)), (torch.float16, np.dtype(np.float16))):
        x = torch.randn(3, 40).to(dtype)
        out = torch.empty_like(x)
        seen.clear()
        assert fs.softmax(x, axis=1, out=out) is out
        assert seen == [(np_dtype, x.data_ptr(), out.data_ptr())]


def test_out_tensor_is_written_in_place():
    x = torch.randn(5, 300)
    out = torch.empty(5, 300)
    ptr = out.data_ptr()
    assert fs.softmax(x, axis=-1, out=out) is out
    assert out.data_ptr() == ptr
    _close(out, torch.softmax(x.double(), -1), torch.float32)
    # out= a tensor with x a NumPy array; out=x in place
    xn = np.random.default_rng(0).standard_normal((5, 300)).astype(np.float32)
    assert fs.log_softmax(xn, axis=-1, out=out) is out
    assert np.array_equal(out.numpy(), fs.log_softmax(xn, axis=-1))
    ref = fs.softmax(x.numpy(), axis=0)
    assert fs.softmax(x, axis=0, out=x) is x and np.array_equal(x.numpy(), ref)
    # logsumexp's out= a tensor
    lse = fs.logsumexp(torch.zeros(3, 4), axis=1, out=torch.empty(3))
    assert torch.allclose(lse, torch.full((3,), float(np.log(4))))
    with pytest.raises(ValueError, match="out has shape"):
        fs.softmax(x, axis=-1, out=torch.empty(5, 299))


def test_logsumexp_tensors():
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    for axis, keep in ((None, False), (1, True), ((0, 2), False)):
        r = fs.logsumexp(x, axis=axis, keepdims=keep)
        want = torch.logsumexp(x, dim=tuple(range(3)) if axis is None else axis, keepdim=keep)
        assert isinstance(r, torch.Tensor) and r.shape == want.shape
        _close(r, want, torch.float64)
    lse, sign = fs.logsumexp(x, axis=1, b=torch.ones(6, 5, dtype=torch.float64), return_sign=True)
    assert isinstance(lse, torch.Tensor) and isinstance(sign, torch.Tensor) and bool((sign == 1).all())
    _close(lse, torch.logsumexp(x, 1), torch.float64)


def test_dlpack_only_objects():
    a = np.random.default_rng(1).standard_normal((3, 9)).astype(np.float32)
    for op in ("softmax", "log_softmax"):
        r = getattr(fs, op)(DLPackOnly(a), axis=1)
        assert type(r) is np.ndarray and np.array_equal(r, getattr(fs, op)(a, axis=1))
    assert np.array_equal(fs.logsumexp(DLPackOnly(a), axis=0), fs.logsumexp(a, axis=0))
    out = np.empty_like(a)
    fs.softmax(a, axis=1, out=DLPackOnly(out))  # written through its DLPack view
    assert np.array_equal(out, fs.softmax(a, axis=1))


def test_non_cpu_devices_are_refused_by_name():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="device 'cuda:0'"):
        fs.softmax(DLPackOnly(a, device=(2, 0)), axis=1)
    with pytest.raises(ValueError, match="device 'rocm:1'"):
        fs.log_softmax(DLPackOnly(a, device=(10, 1)))
    with pytest.raises(ValueError, match="device 'cuda:0'"):
        fs.logsumexp(DLPackOnly(a, device=(2, 0)))
    out = np.full((2, 3), 5.0, np.float32)
    with pytest.raises(ValueError, match="out is on device 'cuda:0'"):
        fs.softmax(a, axis=1, out=DLPackOnly(out, device=(2, 0)))
    with pytest.raises(ValueError, match="device 'meta'"):
        fs.softmax(torch.empty(2, 3, device="meta"), axis=1)
    for fn in (fst.softmax, fst.log_softmax, fst.logsumexp):
        with pytest.raises(ValueError, match="input is on device 'cuda:0'"):
            fn(_OnGpu(), 1)
    assert np.all(out == 5.0)


class _FakeDevice:
    type = "cuda"

    def __str__(self):
        return "cuda:0"


class _OnGpu(torch.Tensor):
    """A tensor that reports a CUDA device (no GPU needed to test the check)."""

    @staticmethod
    def __new__(cls):
        return torch.Tensor._make_subclass(cls, torch.empty(2, 3))

    @property
    def device(self):
        return _FakeDevice()

    is_cpu = False  # as a CUDA tensor's


def test_requires_grad_through_the_numpy_style_api():
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 8, dtype=torch.float64)
    for op, axis in (("softmax", -1), ("log_softmax", 0), ("softmax", None), ("log_softmax", (0, 1))):
        x.grad = None
        (getattr(fs, op)(x, axis=axis) * w).sum().backward()
        ours = x.grad.clone()
        x.grad = None
        if axis is None or axis == (0, 1):
            ref = getattr(torch, op)(x.reshape(-1), 0).reshape(x.shape)
        else:
            ref = getattr(torch, op)(x, axis)
        (ref * w).sum().backward()
        _close(ours, x.grad, torch.float64, rel=64)
    x.grad = None
    (fs.logsumexp(x, axis=1) * w[:, 0]).sum().backward()
    _close(x.grad, torch.softmax(x, 1).detach() * w[:, :1], torch.float64, rel=64)
    with pytest.raises(TypeError, match="out= does not support automatic differentiation"):
        fs.softmax(x, axis=1, out=torch.empty(3, 8, dtype=torch.float64))
    with torch.no_grad():  # no graph wanted: the plain path
        assert fs.softmax(x, axis=1).grad_fn is None


# ---- fastsoftmax.torch ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_operators_match_torch(op, dtype):
    x = (torch.randn(4, 7, 33, dtype=torch.float64) * 4).to(dtype)
    for dim in (0, 1, 2, -1):
        y = getattr(fst, op)(x, dim)
        assert y.dtype == dtype and y.shape == x.shape and y.stride() == getattr(torch, op)(x, dim).stride()
        _close(y, getattr(torch, op)(x.double(), dim), dtype)
    xt = x.transpose(0, 2)  # non-contiguous
    _close(getattr(fst, op)(xt, 1), getattr(torch, op)(xt.double(), 1), dtype)
    # dtype= casts first, as torch
    y = getattr(fst, op)(x, -1, dtype=torch.float64)
    assert y.dtype == torch.float64
    _close(y, getattr(torch, op)(x.double(), -1), torch.float64)
    s = torch.tensor(3.0, dtype=dtype)  # 0-d
    assert getattr(fst, op)(s, 0).item() == getattr(torch, op)(s, 0).item()
    e = torch.empty(3, 0, dtype=dtype)
    assert getattr(fst, op)(e, 1).shape == (3, 0)


def test_logsumexp_operator_matches_torch():
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    for dim, keep in ((0, False), (2, True), ((0, 2), False), ([-1, 1], True)):
        _close(fst.logsumexp(x, dim, keep), torch.logsumexp(x, dim, keep), torch.float64)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xd = x.to(dtype)
        r = fst.logsumexp(xd, 1)
        assert r.dtype == dtype
        _close(r, torch.logsumexp(xd.double(), 1), dtype)
    xi = torch.arange(12).reshape(3, 4)
    r = fst.logsumexp(xi, 1)
    assert r.dtype == torch.get_default_dtype()
    _close(r, torch.logsumexp(xi.double(), 1), torch.float32)
    assert fst.logsumexp(torch.tensor(2.0), 0).item() == pytest.approx(2.0)


def test_operator_argument_errors():
    x = torch.randn(2, 3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fst.softmax(x, 2)
    with pytest.raises(TypeError, match="dim must be an int"):
        fst.log_softmax(x, None)
    with pytest.raises(TypeError, match="must be float32"):
        fst.softmax(torch.arange(3), 0)
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        fst.softmax(np.zeros(3), 0)
    with pytest.raises(ValueError, match="at least one dimension"):
        fst.logsumexp(x, [])
    with pytest.raises(ValueError, match="twice"):
        fst.logsumexp(x, (1, -1))


GRAD_CASES = [((5,), 0), ((3, 7), 1), ((3, 7), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((), 0)]


@pytest.mark.parametrize("shape,dim", GRAD_CASES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_gradcheck_and_gradgradcheck(op, shape, dim):
    fn = getattr(fst, op)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fn(t, dim), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fn(t, dim), (x,))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_gradcheck_non_contiguous(op):
    fn = getattr(fst, op)
    base = torch.randn(6, 5, 8, dtype=torch.float64)
    x = base.transpose(0, 2)[:, ::2].detach().requires_grad_()  # strided, transposed
    assert not x.is_contiguous()
    for dim in (0, 1, 2):
        assert torch.autograd.gradcheck(lambda t: fn(t, dim), (x,))
        assert torch.autograd.gradgradcheck(lambda t: fn(t, dim), (x,))


def test_logsumexp_gradcheck():
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    for dim, keep in ((1, False), ((0, 2), True), (-1, True)):
        assert torch.autograd.gradcheck(lambda t: fst.logsumexp(t, dim, keep), (x,))
        assert torch.autograd.gradgradcheck(lambda t: fst.logsumexp(t, dim, keep), (x,))


# float32: our gradient and torch's both within a few float32 roundoffs of the exact one (the
# row sums add ~log2(n) roundings): 8 u of (|element| + largest |element| of the tensor).
# bfloat16: each side rounds y and dx to bfloat16 (and torch its row sum too): 8 u_bf16.
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("seed", range(8))
def test_gradients_against_torch(op, dtype, seed):
    """Against torch's float64 gradient of the same (rounded) inputs, within 16 units of
    roundoff: the forward's own bound (6e-7, about 10 units of 2^-24) carried through the
    backward, plus the backward's few roundings. (torch's own float32 gradient is up to ~8
    units from the float64 one, so two float32 results are not compared with each other.)"""
    gen = torch.Generator().manual_seed(seed)
    x0 = (torch.randn(16, 1000, dtype=torch.float64, generator=gen) * 3).to(dtype)
    w = torch.randn(16, 1000, dtype=torch.float64, generator=gen).to(dtype)
    grads = []
    for f, dt in ((getattr(fst, op), dtype), (getattr(torch, op), torch.float64)):
        x = x0.detach().clone().to(dt).requires_grad_()
        (f(x, 1) * w.to(dt)).sum().backward()
        grads.append(x.grad)
    assert grads[0].dtype == dtype
    _close(grads[0], grads[1], dtype, rel=16.0)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_torch_compile_fullgraph(op):
    def f(x, w):
        return (getattr(fst, op)(x * 2, 1) * w).sum() + fst.logsumexp(x, 0).sum()

    def ref(x, w):
        return (getattr(torch, op)(x * 2, 1) * w).sum() + torch.logsumexp(x, 0).sum()

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    x0 = torch.randn(8, 50, dtype=torch.float64)
    w = torch.randn(8, 50, dtype=torch.float64)
    x1, x2 = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    v1, v2 = compiled(x1, w), ref(x2, w)
    v1.backward()
    v2.backward()
    a, b = float(v1.detach()), float(v2.detach())
    assert abs(a - b) <= 1e-12 * max(1.0, abs(b))
    _close(x1.grad, x2.grad, torch.float64, rel=64)
    eager = x0.clone().requires_grad_()
    f(eager, w).backward()
    assert torch.equal(x1.grad, eager.grad)  # compiled and eager run the same kernels


def test_opcheck():
    x = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 9, dtype=torch.float64)
    y = torch.softmax(x.detach(), 1)
    for op, args in ((torch.ops.fastsoftmax.softmax.default, (x, 1)),
                     (torch.ops.fastsoftmax.log_softmax.default, (x, 0)),
                     (torch.ops.fastsoftmax.logsumexp.default, (x, [1], False)),
                     (torch.ops.fastsoftmax.softmax_backward.default, (g, y, 1)),
                     (torch.ops.fastsoftmax.log_softmax_backward.default, (g, torch.log(y), 1))):
        torch.library.opcheck(op, args)


def test_torch_export():
    class M(torch.nn.Module):
        def forward(self, x):
            return fst.log_softmax(x, -1) + fst.softmax(x, 0)

    x = torch.randn(4, 6)
    ep = torch.export.export(M(), (x,))
    assert torch.equal(ep.module()(x), M()(x))


def test_operator_forward_is_zero_copy(monkeypatch):
    seen = []
    real, real_fast = _core.run, fs._api._fast_softmax

    def spy(op, algorithm, x, out, isa, threads):
        seen.append((x.__array_interface__["data"][0], out.__array_interface__["data"][0]))
        return real(op, algorithm, x, out, isa, threads)

    def spy_fast(x, axis, out, *rest):  # the C small-call path (bfloat16 included)
        y = real_fast(x, axis, out, *rest)
        if y is not NotImplemented:
            seen.append((x.__array_interface__["data"][0], y.__array_interface__["data"][0]))
        return y

    monkeypatch.setattr(_core, "run", spy)
    monkeypatch.setattr(fs._api, "_fast_softmax", spy_fast)
    x = torch.randn(4, 100).to(torch.bfloat16)
    y = fst.softmax(x, 1)
    assert seen == [(x.data_ptr(), y.data_ptr())]


def test_docstring_examples():
    import doctest

    import fastsoftmax._backward as bw

    for mod in (fst, bw):
        assert doctest.testmod(mod, raise_on_error=False).failed == 0


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_large_results_allocated_by_numpy_behave_as_tensors(dtype):
    # Results of 1 MiB and more come from NumPy's allocator through DLPack (fastsoftmax/torch.py).
    x = torch.randn(4, 2**18, dtype=torch.float64).to(dtype).requires_grad_()
    y = fst.softmax(x, 1)
    assert y.dtype == dtype and y.shape == x.shape and y.stride() == x.stride() and y.is_contiguous()
    # torch's own float64 softmax of a 2^18-element row (the reference here) is off by up to
    # about n u in its sum: 1024 u leaves room for it.
    rel = 1024 if dtype == torch.float64 else 8
    _close(y.detach(), torch.softmax(x.detach().double(), 1), dtype, rel=rel)
    w = torch.randn(4, 2**18, dtype=torch.float64).to(dtype)
    (y * w).sum().backward()
    assert x.grad.dtype == dtype and x.grad.shape == x.shape
    ref = x.detach().double().requires_grad_()
    (torch.softmax(ref, 1) * w.double()).sum().backward()
    _close(x.grad, ref.grad, dtype, rel=max(rel, 64))
    y.add_(1)  # an ordinary, writable tensor
    y2 = fst.log_softmax(x.detach(), 0)
    y2.resize_(0)  # torch may even resize it


# ---- the eager fast path (fastsoftmax/torch.py _plain_eager) ----------------------------------

def _op_results(x, dim):
    return (torch.ops.fastsoftmax.softmax(x, dim), torch.ops.fastsoftmax.log_softmax(x, dim),
            torch.ops.fastsoftmax.logsumexp(x, [dim], False))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_eager_calls_give_the_operators_results(dtype):
    # A plain tensor skips the operator's dispatch: the same bits, dtype, shape and strides.
    for shape, dim in (((5, 40), 1), ((3, 4, 9), 0), ((2, 3, 70000), -1), ((), 0), ((3, 0), 1)):
        x = (torch.randn(shape, dtype=torch.float64) * 5).to(dtype)
        if x.dim() == 3:
            x = x.transpose(0, 1)  # non-contiguous
        got = (fst.softmax(x, dim), fst.log_softmax(x, dim), fst.logsumexp(x, dim))
        for a, b in zip(got, _op_results(x, dim % max(x.dim(), 1))):
            assert type(a) is torch.Tensor and a.dtype == b.dtype and a.shape == b.shape
            assert a.stride() == b.stride()
            assert torch.equal(a, b) or (a.numel() and torch.equal(a.isnan(), b.isnan()))
    assert fst.logsumexp(torch.zeros(2, 3, 4), [0, 2], keepdim=True).shape == (1, 3, 1)


def test_eager_path_is_taken_only_for_plain_untraced_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    import torch.autograd.forward_ad as fwAD

    x = torch.randn(3, 5)
    assert fst._plain_eager(x)
    assert not fst._plain_eager(x.clone().requires_grad_())
    with torch.no_grad():
        assert fst._plain_eager(x.clone().requires_grad_())  # nothing to record
    assert not fst._plain_eager(torch.nn.Parameter(x.clone()))  # a subclass: the operator decides
    with torch.device("meta"):
        assert not fst._plain_eager(torch.empty(3, 5))

    class Noop(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Noop():
        assert not fst._plain_eager(x)
    with Seen() as seen:
        y = fst.softmax(x, 1)  # a dispatch mode sees the custom operator, as before
    assert any("fastsoftmax.softmax" in op for op in seen.ops)
    assert torch.equal(y, fst.softmax(x, 1))
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(x)
        assert not fst._plain_eager(fake)
        assert fst.softmax(fake, 1).shape == (3, 5)
    with fwAD.dual_level():
        assert not fst._plain_eager(x)
    flags = []
    torch.vmap(lambda t: flags.append(fst._plain_eager(t)) or t)(x)
    assert flags == [False]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace is deprecated in 2.13
        traced = torch.jit.trace(lambda t: fst.softmax(t, 1), (x,), check_trace=False)
    assert "fastsoftmax::softmax" in str(traced.graph)
    assert torch.equal(traced(x * 2), fst.softmax(x * 2, 1))


def test_eager_results_of_a_requires_grad_input_under_no_grad():
    x = torch.randn(4, 9, requires_grad=True)
    with torch.no_grad():
        y = fst.softmax(x, 1)
    assert not y.requires_grad and y.grad_fn is None
    assert torch.equal(y, fst.softmax(x.detach(), 1))
    z = fst.log_softmax(x, 1)  # grad mode on: the operator, with autograd
    assert z.requires_grad and z.grad_fn is not None
