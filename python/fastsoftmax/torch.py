"""fastsoftmax.torch: softmax, log_softmax and logsumexp as PyTorch operators.

``softmax(input, dim, dtype=None)``, ``log_softmax(input, dim, dtype=None)`` and
``logsumexp(input, dim, keepdim=False)`` take torch's arguments and give torch's results
(dtype, shape, memory layout), computed by fastsoftmax's kernels on the tensors' own memory
(DLPack, no copy; float16 and bfloat16 natively). They are custom operators
(``torch.ops.fastsoftmax.*``, registered with ``torch.library``) with fake implementations,
so they trace under ``torch.compile(fullgraph=True)`` and ``torch.export``, and with
autograd: the backward of softmax and log-softmax runs fastsoftmax's backward kernels
(``dx = y * (g - sum(g * y))`` and ``dx = g - exp(y) * sum(g)``), themselves
differentiable (double backward). CPU tensors only: any other device is a ``ValueError``
naming it.

Importing this module imports torch (``pip install fastsoftmax[torch]``); nothing else in
fastsoftmax does.

>>> import torch, fastsoftmax.torch as fst
>>> fst.softmax(torch.zeros(2, 2), dim=1)
tensor([[0.5000, 0.5000],
        [0.5000, 0.5000]])
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import _api, _core, _dlpack
from ._stats import logsumexp as _np_logsumexp

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "sample", "topk_softmax"]

_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _np(t: torch.Tensor, what: str = "input") -> np.ndarray:
    return _dlpack.to_numpy(t, "fastsoftmax.torch", what)


def _check(input: Any, op: str) -> None:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{op}(): input must be a torch.Tensor, got {type(input).__name__}")
    if input.device.type not in ("cpu", "meta"):
        raise _dlpack.device_error(f"fastsoftmax.torch.{op}", "input", str(input.device))


def _check_float(input: torch.Tensor, op: str) -> None:
    if input.dtype not in _FLOATS:
        raise TypeError(f"fastsoftmax.torch.{op}: input must be float32, float64, float16 or bfloat16, got "
                        f"{input.dtype} (pass dtype= to convert)")


def _dim(dim: Any, ndim: int, op: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"fastsoftmax.torch.{op}: dim must be an int, got {dim!r}")
    n = max(ndim, 1)  # a 0-d tensor has dims 0 and -1, as in torch
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


# ---- forward operators ------------------------------------------------------------------------

_NP_OF = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.bfloat16: np.int16}
# Results of at least this many bytes are allocated by NumPy (and handed to torch through
# DLPack): NumPy asks the kernel for huge pages for large arrays, torch's CPU allocator does
# not, and faulting in a fresh result in 4 KiB pages cost more than the softmax itself
# (a 2^24-element float32 forward took 3x the NumPy call's time; docs/results.md).
_NUMPY_ALLOC_BYTES = 1 << 20


def _empty_like(x: torch.Tensor) -> torch.Tensor:
    """torch.empty_like(x) (the fake implementations' result: x's layout when it is dense)."""
    if (x.device.type != "cpu" or not x.is_contiguous() or x.dtype not in _NP_OF
            or x.numel() * x.element_size() < _NUMPY_ALLOC_BYTES):
        return torch.empty_like(x)
    t = torch.from_dlpack(np.empty(tuple(x.shape), _NP_OF[x.dtype]))
    return t.view(torch.bfloat16) if x.dtype == torch.bfloat16 else t


def _forward(fn, x: torch.Tensor, dim: int) -> torch.Tensor:
    y = _empty_like(x)
    if x.numel():
        if x.dim() == 0:
            fn(_np(x).reshape(1), axis=0, out=_np(y, "out").reshape(1))
        else:
            fn(_np(x), axis=dim, out=_np(y, "out"))
    return y


@torch.library.custom_op("fastsoftmax::softmax", mutates_args=())
def _softmax_op(x: torch.Tensor, dim: int) -> torch.Tensor:
    return _forward(_api.softmax, x, dim)


@torch.library.custom_op("fastsoftmax::log_softmax", mutates_args=())
def _log_softmax_op(x: torch.Tensor, dim: int) -> torch.Tensor:
    return _forward(_api.log_softmax, x, dim)


@_softmax_op.register_fake
def _(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.empty_like(x)


@_log_softmax_op.register_fake
def _(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.empty_like(x)


def _reduced_shape(shape: Sequence[int], dims: Sequence[int], keepdim: bool) -> List[int]:
    return [1 if i in dims else n for i, n in enumerate(shape) if keepdim or i not in dims]


@torch.library.custom_op("fastsoftmax::logsumexp", mutates_args=())
def _logsumexp_op(x: torch.Tensor, dim: List[int], keepdim: bool) -> torch.Tensor:
    out = torch.empty(_reduced_shape(x.shape, dim, keepdim), dtype=x.dtype, device=x.device)
    flat = out.reshape(_reduced_shape(x.shape, dim, False))  # a view: out is contiguous
    if out.numel():
        xn = _np(x).reshape(1) if x.dim() == 0 else _np(x)
        _np_logsumexp(xn, axis=tuple(dim) if x.dim() else 0, out=_np(flat, "out"))
    return out


@_logsumexp_op.register_fake
def _(x: torch.Tensor, dim: List[int], keepdim: bool) -> torch.Tensor:
    return x.new_empty(_reduced_shape(x.shape, dim, keepdim))


# ---- backward operators (fastsoftmax's backward kernels) ------------------------------------

def _backward(kernel, grad: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    dx = _empty_like(y)
    if y.numel() == 0:
        return dx
    if grad.dtype != y.dtype:
        grad = grad.to(y.dtype)
    if y.dim() == 0:
        ym, gm, dm = y.reshape(1), grad.reshape(1), dx.reshape(1)
    else:
        ym, gm, dm = y.movedim(dim, -1), grad.movedim(dim, -1), dx.movedim(dim, -1)
    if not dm.is_contiguous():  # rows are the last axis, contiguous: else compute apart and copy
        tmp = torch.empty(ym.shape, dtype=y.dtype)
        kernel(_np(ym.contiguous()), _np(gm.contiguous()), _np(tmp, "out"))
        dm.copy_(tmp)
        return dx
    kernel(_np(ym.contiguous()), _np(gm.contiguous()), _np(dm, "out"))
    return dx


@torch.library.custom_op("fastsoftmax::softmax_backward", mutates_args=())
def _softmax_backward_op(grad: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    return _backward(_core.softmax_backward, grad, y, dim)


@torch.library.custom_op("fastsoftmax::log_softmax_backward", mutates_args=())
def _log_softmax_backward_op(grad: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    return _backward(_core.log_softmax_backward, grad, y, dim)


@_softmax_backward_op.register_fake
def _(grad: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.empty_like(y)


@_log_softmax_backward_op.register_fake
def _(grad: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.empty_like(y)


# ---- autograd ---------------------------------------------------------------------------------

def _save_output(ctx, inputs, output) -> None:
    ctx.dim = inputs[1]
    ctx.save_for_backward(output)


def _softmax_grad(ctx, grad):
    (y,) = ctx.saved_tensors
    return torch.ops.fastsoftmax.softmax_backward(grad, y, ctx.dim), None


def _log_softmax_grad(ctx, grad):
    (y,) = ctx.saved_tensors
    return torch.ops.fastsoftmax.log_softmax_backward(grad, y, ctx.dim), None


_softmax_op.register_autograd(_softmax_grad, setup_context=_save_output)
_log_softmax_op.register_autograd(_log_softmax_grad, setup_context=_save_output)


def _save_backward_inputs(ctx, inputs, output) -> None:
    grad, y, dim = inputs
    ctx.dim = dim
    ctx.save_for_backward(grad, y)


def _sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.sum(dim, keepdim=True) if t.dim() else t


def _softmax_backward_grad(ctx, v):
    # out = y * (g - s), s = sum(g * y): d out / d g is softmax's (symmetric) Jacobian, so
    # dg = softmax_backward(v, y); dy_j = v_j (g_j - s) - g_j sum(v * y).
    grad, y = ctx.saved_tensors
    dim = ctx.dim
    d_grad = torch.ops.fastsoftmax.softmax_backward(v, y, dim)
    d_y = v * (grad - _sum(grad * y, dim)) - grad * _sum(v * y, dim)
    return d_grad, d_y, None


def _log_softmax_backward_grad(ctx, v):
    # out = g - e^y s, s = sum(g): dg_j = v_j - sum(v * e^y); dy = -v e^y s.
    grad, y = ctx.saved_tensors
    dim = ctx.dim
    e = torch.exp(y)
    d_grad = v - _sum(v * e, dim)
    d_y = -v * e * _sum(grad, dim)
    return d_grad, d_y, None


_softmax_backward_op.register_autograd(_softmax_backward_grad, setup_context=_save_backward_inputs)
_log_softmax_backward_op.register_autograd(_log_softmax_backward_grad, setup_context=_save_backward_inputs)


def _save_logsumexp(ctx, inputs, output) -> None:
    x, dim, keepdim = inputs
    ctx.dim, ctx.keepdim = dim, keepdim
    ctx.save_for_backward(x, output)


def _logsumexp_grad(ctx, grad):
    # d lse / d x = e^(x - lse) (the softmax over the reduced dims).
    x, out = ctx.saved_tensors
    if not ctx.keepdim and x.dim():
        for d in sorted(ctx.dim):
            out, grad = out.unsqueeze(d), grad.unsqueeze(d)
    return grad * torch.exp(x - out), None, None


_logsumexp_op.register_autograd(_logsumexp_grad, setup_context=_save_logsumexp)


# ---- the public functions ---------------------------------------------------------------------

def softmax(input: torch.Tensor, dim: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``torch.softmax(input, dim, dtype)`` by fastsoftmax: ``exp(x) / sum(exp(x), dim)``.

    ``dtype``: cast ``input`` to it first (as torch). float32, float64, float16 and
    bfloat16; differentiable (fastsoftmax's backward kernel), traceable by torch.compile.

    >>> import torch, fastsoftmax.torch as fst
    >>> fst.softmax(torch.tensor([0.0, 0.0]), dim=0)
    tensor([0.5000, 0.5000])
    """
    _check(input, "softmax")
    if dtype is not None:
        input = input.to(dtype)
    _check_float(input, "softmax")
    return torch.ops.fastsoftmax.softmax(input, _dim(dim, input.dim(), "softmax"))


def log_softmax(input: torch.Tensor, dim: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``torch.log_softmax(input, dim, dtype)`` by fastsoftmax: ``x - logsumexp(x, dim)``.

    >>> import torch, fastsoftmax.torch as fst
    >>> fst.log_softmax(torch.tensor([0.0, 0.0]), dim=0)
    tensor([-0.6931, -0.6931])
    """
    _check(input, "log_softmax")
    if dtype is not None:
        input = input.to(dtype)
    _check_float(input, "log_softmax")
    return torch.ops.fastsoftmax.log_softmax(input, _dim(dim, input.dim(), "log_softmax"))


def logsumexp(input: torch.Tensor, dim: Union[int, Sequence[int]], keepdim: bool = False) -> torch.Tensor:
    """``torch.logsumexp(input, dim, keepdim)`` by fastsoftmax: ``log(sum(exp(x), dim))`` in one read.

    ``dim``: an int or a sequence of ints (not empty). Integer and boolean input is
    converted to the default floating dtype first, as torch does.

    >>> import torch, fastsoftmax.torch as fst
    >>> fst.logsumexp(torch.zeros(2, 4), dim=1)
    tensor([1.3863, 1.3863])
    """
    _check(input, "logsumexp")
    if not input.is_floating_point():
        if input.is_complex():
            raise TypeError("fastsoftmax.torch.logsumexp: complex input is not supported")
        input = input.to(torch.get_default_dtype())
    _check_float(input, "logsumexp")
    dims = [dim] if isinstance(dim, int) and not isinstance(dim, bool) else list(dim)
    if not dims:
        raise ValueError("fastsoftmax.torch.logsumexp: dim must name at least one dimension")
    norm = sorted(_dim(d, input.dim(), "logsumexp") for d in dims)
    if len(set(norm)) != len(norm):
        raise ValueError(f"fastsoftmax.torch.logsumexp: dim {dim!r} names a dimension twice")
    return torch.ops.fastsoftmax.logsumexp(input, norm, bool(keepdim))


# cross_entropy (differentiable), sample and topk_softmax: _torch_sampling.py (uses the helpers above).
from ._torch_sampling import cross_entropy, sample, topk_softmax  # noqa: E402
