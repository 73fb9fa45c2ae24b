"""fastsoftmax.torch: softmax, log_softmax, logsumexp, cross_entropy, sample and topk_softmax as PyTorch operators.

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

``cross_entropy(input, target, *, ignore_index=-100, reduction="mean")`` is
``torch.nn.functional.cross_entropy`` for class-index targets (differentiable; the row
logsumexp read in place), and ``sample(logits, ...)`` / ``topk_softmax(logits, k, dim)`` give
``fastsoftmax.sample`` / ``topk_softmax``'s results as tensors; custom operators as well
(docs/sampling.md, "PyTorch").

Importing this module imports torch (``pip install fastsoftmax[torch]``); nothing else in
fastsoftmax does.

>>> import torch, fastsoftmax.torch as fst
>>> fst.softmax(torch.zeros(2, 2), dim=1)
tensor([[0.5000, 0.5000],
        [0.5000, 0.5000]])
"""

from __future__ import annotations

import math
from typing import Any, List, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
import torch

from . import _api, _core, _dlpack
from ._sampling import sample as _np_sample
from ._stats import logsumexp as _np_logsumexp
from ._topk import cross_entropy as _np_cross_entropy, topk_softmax as _np_topk_softmax

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "sample", "topk_softmax"]

_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _np(t: torch.Tensor, what: str = "input") -> np.ndarray:
    return _dlpack.to_numpy(t, "fastsoftmax.torch", what)


def _view(t: torch.Tensor) -> np.ndarray:
    """_np(t) for the CPU tensors the operators and the eager path hold (device already checked)."""
    return _dlpack.tensor_view(t, "fastsoftmax.torch")


def _check(input: Any, op: str) -> None:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{op}(): input must be a torch.Tensor, got {type(input).__name__}")
    if not (input.is_cpu or input.is_meta):
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

def _plain_eager(x: torch.Tensor) -> bool:
    """Whether the call can run the kernels at once, without the custom operator's dispatch:
    a plain CPU tensor (no subclass: not fake, functional or batched), no gradient to record,
    and nothing tracing, compiling or transforming the call (torch.compile / export, jit
    tracing, torch function or dispatch modes, functorch transforms, forward-mode AD). The
    operator's dispatch costs tens of microseconds a call; the result is the same either way."""
    return (type(x) is torch.Tensor and x.is_cpu
            and not (x.requires_grad and torch.is_grad_enabled())
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and torch._C._len_torch_function_stack() == 0 and torch._C._len_torch_dispatch_stack() == 0
            and torch._C._functorch.peek_interpreter_stack() is None
            and torch.autograd.forward_ad._current_level < 0)


_NP_OF = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.bfloat16: np.int16}
# Results of at least this many bytes are allocated by NumPy (and handed to torch through
# DLPack): NumPy asks the kernel for huge pages for large arrays, torch's CPU allocator does
# not, and faulting in a fresh result in 4 KiB pages cost more than the softmax itself
# (a 2^24-element float32 forward took 3x the NumPy call's time; docs/results.md).
_NUMPY_ALLOC_BYTES = 1 << 20


def _empty_like(x: torch.Tensor) -> torch.Tensor:
    """torch.empty_like(x) (the fake implementations' result: x's layout when it is dense)."""
    if not x.is_cpu or x.nbytes < _NUMPY_ALLOC_BYTES or not x.is_contiguous() or x.dtype not in _NP_OF:
        return torch.empty_like(x)
    t = torch.from_numpy(np.empty(tuple(x.shape), _NP_OF[x.dtype]))
    return t.view(torch.bfloat16) if x.dtype == torch.bfloat16 else t


def _forward(fn, x: torch.Tensor, dim: int) -> torch.Tensor:
    y = _empty_like(x)
    if x.numel():
        if x.dim() == 0:
            fn(_view(x).reshape(1), axis=0, out=_view(y).reshape(1))
        else:
            fn(_view(x), axis=dim, out=_view(y))
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


def _logsumexp(x: torch.Tensor, dim: List[int], keepdim: bool) -> torch.Tensor:
    out = torch.empty(_reduced_shape(x.shape, dim, keepdim), dtype=x.dtype, device=x.device)
    flat = out.reshape(_reduced_shape(x.shape, dim, False))  # a view: out is contiguous
    if out.numel():
        xn = _view(x).reshape(1) if x.dim() == 0 else _view(x)
        _np_logsumexp(xn, axis=tuple(dim) if x.dim() else 0, out=_view(flat))
    return out


@torch.library.custom_op("fastsoftmax::logsumexp", mutates_args=())
def _logsumexp_op(x: torch.Tensor, dim: List[int], keepdim: bool) -> torch.Tensor:
    return _logsumexp(x, dim, keepdim)


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
    d = _dim(dim, input.dim(), "softmax")
    if _plain_eager(input):
        return _forward(_api.softmax, input, d)
    return torch.ops.fastsoftmax.softmax(input, d)


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
    d = _dim(dim, input.dim(), "log_softmax")
    if _plain_eager(input):
        return _forward(_api.log_softmax, input, d)
    return torch.ops.fastsoftmax.log_softmax(input, d)


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
    if _plain_eager(input):
        return _logsumexp(input, norm, bool(keepdim))
    return torch.ops.fastsoftmax.logsumexp(input, norm, bool(keepdim))


# ---- cross_entropy, sample, topk_softmax ------------------------------------------------------
# Custom operators over the NumPy-style functions (_topk.py, _sampling.py) on the tensors' own
# memory. The wrappers check what shapes and dtypes decide (errors before anything runs, also
# under torch.compile); what depends on values (targets out of range, per-row parameters, NaN
# logits) is checked by the operators when they run.

_REDUCTIONS = ("mean", "sum", "none")


def _result_float(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _to_torch(a: np.ndarray, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A NumPy result as a tensor (contiguous, as the fake implementations say), in `dtype`."""
    a = np.asarray(a)
    t = torch.from_numpy(a if a.flags.c_contiguous else a.copy())  # (np.ascontiguousarray makes 0-d 1-d)
    return t if dtype is None or t.dtype == dtype else t.to(dtype)


# ---- cross_entropy ------------------------------------------------------------------------

def _cross_entropy(input: torch.Tensor, target: torch.Tensor, cdim: int, ignore_index: int,
                   reduction: str) -> torch.Tensor:
    t = target.to(torch.int64).numpy() if target.dtype != torch.int64 else target.numpy()
    n = input.shape[cdim]
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= n))
    if bad.any():  # torch's error (IndexError), with the row
        i = int(np.flatnonzero(bad.ravel())[0])
        where = f" (row {tuple(int(j) for j in np.unravel_index(i, t.shape))})" if t.ndim else ""
        raise IndexError(f"Target {int(t.ravel()[i])} is out of bounds{where}: classes are [0, {n}) and "
                         f"ignore_index is {ignore_index}")
    if n == 0 or t.size == 0:  # every row ignored (or none at all): the losses are 0
        loss = np.zeros(t.shape)
        if reduction == "sum":
            loss = np.float64(0.0)
        elif reduction == "mean":
            loss = np.float64(np.nan)
    else:
        loss = _np_cross_entropy(_view(input), t, axis=cdim, reduction=reduction, ignore_index=ignore_index)
    return _to_torch(np.asarray(loss), input.dtype)


@torch.library.custom_op("fastsoftmax::cross_entropy", mutates_args=())
def _cross_entropy_op(input: torch.Tensor, target: torch.Tensor, cdim: int, ignore_index: int,
                      reduction: str) -> torch.Tensor:
    return _cross_entropy(input, target, cdim, ignore_index, reduction)


@_cross_entropy_op.register_fake
def _(input: torch.Tensor, target: torch.Tensor, cdim: int, ignore_index: int, reduction: str) -> torch.Tensor:
    return input.new_empty(target.shape if reduction == "none" else ())


def _save_cross_entropy(ctx, inputs, output) -> None:
    input, target, cdim, ignore_index, reduction = inputs
    ctx.cdim, ctx.ignore_index, ctx.reduction = cdim, ignore_index, reduction
    ctx.save_for_backward(input, target)


def _cross_entropy_grad(ctx, grad):
    # d loss_r / d x_r = softmax(x_r) - onehot(target_r), times the row's weight: the upstream
    # gradient (per row for "none"), divided by the count of rows not ignored for "mean";
    # ignored rows get 0. softmax runs fastsoftmax's kernel (and is differentiable again).
    x, target = ctx.saved_tensors
    cdim = ctx.cdim
    keep = target != ctx.ignore_index
    if ctx.reduction == "none":
        w = grad
    elif ctx.reduction == "sum":
        w = grad.expand(target.shape)
    else:
        w = (grad / keep.sum()).expand(target.shape)
    w = torch.where(keep, w, torch.zeros((), dtype=w.dtype))
    p = torch.ops.fastsoftmax.softmax(x, cdim)
    # p[row, target] -= 1 for the rows kept, by index_put over (batch indices, target): torch
    # 2.13's scatter / scatter_add on a 16-bit tensor copy all of it to float32 and back (3x the
    # softmax's time). The batch indices are aranges that broadcast to the target's shape.
    nd = target.dim()
    batch_index = [torch.arange(n).view([-1 if j == i else 1 for j in range(nd)])
                   for i, n in enumerate(target.shape)]
    classes = torch.where(keep, target, torch.zeros((), dtype=target.dtype)).long()
    index = tuple(batch_index[:cdim]) + (classes,) + tuple(batch_index[cdim:])
    values = p[index] - keep.to(p.dtype)
    scale = w.to(p.dtype).unsqueeze(cdim)
    if torch.is_grad_enabled():  # create_graph: p stays as softmax's backward saved it
        return p.index_put(index, values) * scale, None, None, None, None
    return p.index_put_(index, values).mul_(scale), None, None, None, None  # p is ours: in place


_cross_entropy_op.register_autograd(_cross_entropy_grad, setup_context=_save_cross_entropy)


def cross_entropy(input: torch.Tensor, target: torch.Tensor, *, ignore_index: int = -100,
                  reduction: str = "mean") -> torch.Tensor:
    """``torch.nn.functional.cross_entropy(input, target)`` with class-index targets, by fastsoftmax.

    PyTorch's shapes: ``input`` is (C,), (N, C) or (N, C, d1, ...) -- the classes along dim 1
    (dim 0 for 1-d input) -- and ``target`` (int64 or uint8 class indices) is (), (N,) or
    (N, d1, ...). ``ignore_index`` rows contribute nothing (loss 0 with "none"; left out of
    the sum and of the count of "mean", which is NaN when every row is ignored). The result
    has ``input``'s dtype: a 0-d tensor for "mean" / "sum", ``target``'s shape for "none".
    Per row ``logsumexp(row) - row[target]``: the logsumexp is one read of the tensor's own
    memory by fastsoftmax's kernels (float16 / bfloat16 natively, in float32; any strides,
    no copy), the difference and the reduction in float64, rounded at the end (for 16-bit
    input through float32, the NumPy function's result dtype). Differentiable
    in ``input`` (``(softmax(x) - onehot(target)) * upstream``, softmax by fastsoftmax, itself
    differentiable); a custom operator, traceable by ``torch.compile(fullgraph=True)``.

    Errors as PyTorch's: a target outside ``[0, C)`` that is not ``ignore_index`` is an
    ``IndexError`` naming it and its row; mismatched shapes a ``ValueError`` (batch size) or
    ``RuntimeError`` (the other dims); a target dtype other than int64 / uint8 a
    ``RuntimeError``. ``weight``, ``label_smoothing`` and probability (float) targets are not
    supported: ``weight=`` / ``label_smoothing=`` are not parameters (a ``TypeError``), a float
    target is a ``TypeError``.

    >>> import torch, fastsoftmax.torch as fst
    >>> fst.cross_entropy(torch.zeros(2, 4), torch.tensor([1, 3]))  # log 4
    tensor(1.3863)
    """
    _check(input, "cross_entropy")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"cross_entropy(): target must be a torch.Tensor, got {type(target).__name__}")
    if target.device.type not in ("cpu", "meta"):
        raise ValueError(f"fastsoftmax.torch.cross_entropy: target is on device {str(target.device)!r}; "
                         "fastsoftmax computes on the CPU only (move it first, e.g. tensor.cpu())")
    _check_float(input, "cross_entropy")
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction (use 'mean', 'sum' or 'none')")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"fastsoftmax.torch.cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    if target.is_floating_point() or target.is_complex():
        raise TypeError(f"fastsoftmax.torch.cross_entropy: target must hold class indices (int64); class "
                        f"probabilities (a {target.dtype} target) are not supported")
    if target.dtype not in (torch.int64, torch.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {target.dtype}")
    if input.dim() == 0:
        raise ValueError("fastsoftmax.torch.cross_entropy: input must have at least one dimension (the classes)")
    if input.dim() == 1 and target.dim() == 1:  # (C,) with (1,): one row of a batch, as torch
        input = input.unsqueeze(0)
    cdim = 0 if input.dim() == 1 else 1
    want = tuple(input.shape[:cdim]) + tuple(input.shape[cdim + 1:])
    if tuple(target.shape) != want:
        nb = input.shape[0] if input.dim() > 1 else 1
        tb = target.shape[0] if target.dim() else 1
        if input.dim() == 1 or target.dim() == 0 or nb != tb:
            raise ValueError(f"Expected input batch_size ({nb}) to match target batch_size ({tb}).")
        raise RuntimeError(f"Expected target size {list(want)}, got {list(target.shape)}")
    if _plain_eager(input) and type(target) is torch.Tensor:
        return _cross_entropy(input, target, cdim, ignore_index, reduction)
    return torch.ops.fastsoftmax.cross_entropy(input, target, cdim, ignore_index, reduction)


# ---- sample -------------------------------------------------------------------------------

def _run_sample(logits: torch.Tensor, dim: int, temperature: torch.Tensor, top_k: Optional[torch.Tensor],
                top_p: Optional[torch.Tensor], min_p: Optional[torch.Tensor], seed: torch.Tensor, seed_bits: bool,
                return_logprobs: bool) -> Any:
    """The NumPy function on the operators' arguments: tokens, or (tokens, logprobs)."""
    def param(t: Optional[torch.Tensor]) -> Any:
        if t is None:
            return None
        if t.dim() == 0:  # a Python float / int (exact): the NumPy function's scalar path
            return t.item()
        t = t.detach()
        return t.to(torch.float64).numpy() if t.is_floating_point() else t.to(torch.int64).numpy()

    s = seed.numpy()
    if seed_bits:  # the wrapper's own seeds: 64-bit patterns
        s = s.view(np.uint64)
    elif s.size and int(s.min()) < 0:
        raise ValueError(f"seed must be in [0, 2**64), got {int(s.min())} in the seed tensor")
    return _np_sample(_view(logits), temperature=param(temperature), top_k=param(top_k),
                      top_p=param(top_p), min_p=param(min_p),
                      seed=int(s) if s.ndim == 0 else s.astype(np.uint64), axis=dim,
                      return_logprobs=return_logprobs)


def _batch_shape(logits: torch.Tensor, dim: int) -> List[int]:
    return [n for i, n in enumerate(logits.shape) if i != dim]


def _sample_tensors(*args: Any) -> Any:
    """_run_sample's results as tensors: tokens, or (tokens, logprobs)."""
    r = _run_sample(*args)
    if args[-1]:
        return _to_torch(np.asarray(r[0], dtype=np.int64)), _to_torch(np.asarray(r[1], dtype=np.float64))
    return _to_torch(np.asarray(r, dtype=np.int64))


@torch.library.custom_op("fastsoftmax::sample", mutates_args=())
def _sample_op(logits: torch.Tensor, dim: int, temperature: torch.Tensor, top_k: Optional[torch.Tensor],
               top_p: Optional[torch.Tensor], min_p: Optional[torch.Tensor], seed: torch.Tensor,
               seed_bits: bool) -> torch.Tensor:
    return _sample_tensors(logits, dim, temperature, top_k, top_p, min_p, seed, seed_bits, False)


@_sample_op.register_fake
def _(logits, dim, temperature, top_k, top_p, min_p, seed, seed_bits):
    return logits.new_empty(_batch_shape(logits, dim), dtype=torch.int64)


# With the log-probabilities: a second operator, so that sample's schema (one output) stays.
@torch.library.custom_op("fastsoftmax::sample_with_logprobs", mutates_args=())
def _sample_logprobs_op(logits: torch.Tensor, dim: int, temperature: torch.Tensor, top_k: Optional[torch.Tensor],
                        top_p: Optional[torch.Tensor], min_p: Optional[torch.Tensor], seed: torch.Tensor,
                        seed_bits: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    return _sample_tensors(logits, dim, temperature, top_k, top_p, min_p, seed, seed_bits, True)


@_sample_logprobs_op.register_fake
def _(logits, dim, temperature, top_k, top_p, min_p, seed, seed_bits):
    shape = _batch_shape(logits, dim)
    return logits.new_empty(shape, dtype=torch.int64), logits.new_empty(shape, dtype=torch.float64)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _param(name: str, value: Any, ok, rule: str, integer: bool = False) -> Optional[torch.Tensor]:
    """A per-row parameter as a tensor: scalars checked here, tensors and sequences checked
    (values) by the operator when it runs."""
    if value is None:
        return None
    if _is_scalar(value):
        v = float(value)
        if integer and isinstance(value, (float, np.floating)) and not (math.isfinite(v) and v == math.floor(v)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if not ok(v):
            raise ValueError(f"{name} must be {rule}, got {value!r}")
        # scalar_tensor: the same 0-d tensor as torch.tensor, without parsing a data argument
        if integer:
            return torch.scalar_tensor(min(int(value), 2**62), dtype=torch.int64)
        return torch.scalar_tensor(v, dtype=torch.float64)
    if isinstance(value, torch.Tensor):
        t = value
        if t.device.type not in ("cpu", "meta"):
            raise ValueError(f"fastsoftmax.torch.sample: {name} is on device {str(t.device)!r}; fastsoftmax "
                             "computes on the CPU only")
    elif isinstance(value, (list, tuple)):  # plain Python (traceable by torch.compile)
        leaves = _leaves(value)
        if not all(_is_scalar(v) for v in leaves):
            raise TypeError(f"{name} must be a number, a tensor or a sequence of numbers, got {value!r}")
        floats = any(isinstance(v, (float, np.floating)) for v in leaves)
        t = torch.tensor(_nested(value, float if floats else int), dtype=torch.float64 if floats else torch.int64)
    else:
        a = np.asarray(value)
        if a.dtype == object or a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a number, a tensor or a sequence of numbers, got {value!r}")
        t = torch.from_numpy(np.array(a, dtype=np.int64 if a.dtype.kind in "iu" else np.float64))
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in _INTS):
        raise TypeError(f"{name} must hold real numbers (not booleans), got a {t.dtype} tensor")
    return t.detach()


_INTS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _seed(seed: Any, generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, bool]:
    """The seed as an int64 tensor, and whether its values are 64-bit patterns (True) or
    values to check (False: a caller's tensor)."""
    if generator is not None or seed is None:
        if generator is not None and seed is not None:
            raise ValueError("fastsoftmax.torch.sample: pass seed= or generator=, not both")
        # One 63-bit seed per call from torch's generator (torch.manual_seed reproduces it);
        # traced as a random op under torch.compile, so each compiled call draws anew.
        return torch.randint(0, 2**63 - 1, (), dtype=torch.int64, generator=generator), True
    if isinstance(seed, torch.Tensor):
        if seed.dtype == torch.bool or seed.dtype not in _INTS:
            raise TypeError(f"seed must be an integer tensor (int64), got a {seed.dtype} tensor")
        if seed.device.type not in ("cpu", "meta"):
            raise ValueError(f"fastsoftmax.torch.sample: seed is on device {str(seed.device)!r}; fastsoftmax "
                             "computes on the CPU only")
        return seed.detach().to(torch.int64), False
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be None, an int in [0, 2**64), a sequence of them or an int64 tensor, got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
        s = int(seed)
        return torch.scalar_tensor(s - 2**64 if s >= 2**63 else s, dtype=torch.int64), True
    if isinstance(seed, np.ndarray):
        seed = seed.tolist()
    leaves = _leaves(seed) if isinstance(seed, (list, tuple)) else [seed]
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in leaves):
        raise TypeError(f"seed must be None, an int in [0, 2**64), a sequence of them or an int64 tensor, got {seed!r}")
    if any(not 0 <= int(v) < 2**64 for v in leaves):
        raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
    return torch.tensor(_nested(seed, lambda v: int(v) - 2**64 if int(v) >= 2**63 else int(v)), dtype=torch.int64), True


def _leaves(value: Any) -> list:
    """The numbers of a nested list/tuple."""
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _leaves(item)]
    return [value]


def _nested(value: Any, fn) -> Any:
    """A nested list/tuple with fn applied to every number (as torch.tensor takes it)."""
    if isinstance(value, (list, tuple)):
        return [_nested(item, fn) for item in value]
    return fn(value)


@overload
def sample(logits: torch.Tensor, *, temperature: Any = ..., top_k: Any = ..., top_p: Any = ..., min_p: Any = ...,
           seed: Any = ..., generator: Optional[torch.Generator] = ..., dim: int = ...,
           return_logprobs: Literal[False] = ...) -> torch.Tensor: ...
@overload
def sample(logits: torch.Tensor, *, temperature: Any = ..., top_k: Any = ..., top_p: Any = ..., min_p: Any = ...,
           seed: Any = ..., generator: Optional[torch.Generator] = ..., dim: int = ...,
           return_logprobs: Literal[True]) -> Tuple[torch.Tensor, torch.Tensor]: ...
@overload
def sample(logits: torch.Tensor, *, temperature: Any = ..., top_k: Any = ..., top_p: Any = ..., min_p: Any = ...,
           seed: Any = ..., generator: Optional[torch.Generator] = ..., dim: int = ...,
           return_logprobs: bool = ...) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]: ...


def sample(logits: torch.Tensor, *, temperature: Any = 1.0, top_k: Any = None, top_p: Any = None,
           min_p: Any = None, seed: Any = None, generator: Optional[torch.Generator] = None,
           dim: int = -1, return_logprobs: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """``fastsoftmax.sample`` for a tensor: one int64 token index per row of ``logits`` along ``dim``.

    The same tokens as ``fastsoftmax.sample(logits.numpy(), ..., axis=dim)`` with the same
    seed (docs/sampling.md: temperature, then top-k, top-p, min-p; ``None`` disables a
    filter). Each parameter is a number, a sequence or a tensor (one value per row,
    broadcast to the batch shape ``logits.shape`` without ``dim``). ``seed``: an int in
    ``[0, 2**64)``, a sequence of them, or an integer tensor (values in ``[0, 2**63)``); with
    ``seed=None`` one seed is drawn from torch's generator (``generator=``, or the default
    one, so ``torch.manual_seed`` reproduces it). float32, float64, float16 and bfloat16
    logits, read in place. Returns the batch shape (0-d for 1-d logits); with
    ``return_logprobs=True``, ``(tokens, logprobs)``: ``logprobs`` (float64, the batch shape,
    the NumPy function's values: float64 whatever the logits' dtype, as they are computed) is
    the log-probability of each drawn token under the filtered, renormalized distribution
    it was drawn from (0 for greedy rows). A custom operator:
    ``torch.compile(fullgraph=True)`` traces it (with ``seed=None`` the seed is a traced
    ``torch.randint``, drawn anew per call). Not differentiable. Bad parameters are
    ``ValueError`` / ``TypeError`` naming them: scalars when called, tensor values (and NaN
    or ``+inf`` logits, naming the row) when the operator runs.

    >>> import torch, fastsoftmax.torch as fst
    >>> fst.sample(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0)
    tensor([1])
    """
    _check(logits, "sample")
    _check_float(logits, "sample")
    if logits.dim() == 0:
        raise ValueError("fastsoftmax.torch.sample needs at least one dimension (the vocabulary)")
    d = _dim(dim, logits.dim(), "sample")
    if logits.shape[d] == 0:
        raise ValueError("fastsoftmax.torch.sample needs a non-empty vocabulary dim")
    t = _param("temperature", temperature, lambda v: math.isfinite(v) and v >= 0, "finite and >= 0")
    if t is None:
        raise TypeError("temperature must be a number, a sequence or a tensor (0 is greedy), not None")
    k = _param("top_k", top_k, lambda v: v >= 1, ">= 1 (None disables top-k)", integer=True)
    p = _param("top_p", top_p, lambda v: 0 < v <= 1, "in (0, 1] (None disables top-p)")
    mp = _param("min_p", min_p, lambda v: 0 <= v <= 1, "in [0, 1] (None disables min-p)")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not isinstance(return_logprobs, (bool, np.bool_)):
        raise TypeError(f"return_logprobs must be a bool, got {return_logprobs!r}")
    s, bits = _seed(seed, generator)
    if _plain_eager(logits):
        return _sample_tensors(logits, d, t, k, p, mp, s, bits, bool(return_logprobs))
    if return_logprobs:
        return torch.ops.fastsoftmax.sample_with_logprobs(logits, d, t, k, p, mp, s, bits)
    return torch.ops.fastsoftmax.sample(logits, d, t, k, p, mp, s, bits)


# ---- topk_softmax -------------------------------------------------------------------------

def _topk_softmax(logits: torch.Tensor, k: int, dim: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    v, i, p = _np_topk_softmax(_view(logits), k, axis=dim)
    if logits.dtype == torch.bfloat16:
        values = _to_torch(v.view(np.int16)).view(torch.bfloat16)
    else:
        values = _to_torch(v)
    return values, _to_torch(i), _to_torch(p)


@torch.library.custom_op("fastsoftmax::topk_softmax", mutates_args=())
def _topk_softmax_op(logits: torch.Tensor, k: int, dim: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _topk_softmax(logits, k, dim)


@_topk_softmax_op.register_fake
def _(logits, k, dim):
    shape = list(logits.shape)
    shape[dim] = k
    return (logits.new_empty(shape), logits.new_empty(shape, dtype=torch.int64),
            logits.new_empty(shape, dtype=_result_float(logits.dtype)))


def _save_topk(ctx, inputs, output) -> None:
    logits, k, dim = inputs
    ctx.dim = dim
    ctx.save_for_backward(logits, output[1], output[2])


def _topk_softmax_grad(ctx, g_values, g_indices, g_probs):
    # values_j = x[i_j]: its gradient lands on x[i_j]. probabilities_j = s[i_j] with
    # s = softmax(x): d p_j / d x = p_j (onehot(i_j) - s), so the gradient is
    # scatter(g_p * p) - s * sum(g_p * p), s by fastsoftmax's operator.
    x, idx, p = ctx.saved_tensors
    dim = ctx.dim
    gx = torch.zeros_like(x)
    if g_values is not None:
        gx = gx.scatter_add(dim, idx, g_values.to(x.dtype))
    if g_probs is not None:
        gp = g_probs * p
        gx = gx.scatter_add(dim, idx, gp.to(x.dtype))
        gx = gx - torch.ops.fastsoftmax.softmax(x, dim) * gp.sum(dim, keepdim=True).to(x.dtype)
    return gx, None, None


_topk_softmax_op.register_autograd(_topk_softmax_grad, setup_context=_save_topk)


def topk_softmax(logits: torch.Tensor, k: int, dim: int = -1) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``fastsoftmax.topk_softmax`` for a tensor: ``(values, indices, probabilities)`` of the k
    most probable classes along ``dim``, sorted (logit descending, ties by index ascending).

    ``values`` in the logits' dtype, ``indices`` int64, ``probabilities`` (the softmax of the
    whole row at those indices) float64 for float64 logits and float32 otherwise; each has
    the logits' shape with ``dim`` of length k (contiguous). ``k`` in ``[1, V]``. Rows with
    NaN or ``+inf``, or all ``-inf``, are a ``ValueError`` naming the row. A custom operator
    (traceable by ``torch.compile``), differentiable in ``logits`` through ``values`` (as
    ``torch.topk``) and ``probabilities`` (their softmax's gradient, softmax by fastsoftmax).

    >>> import torch, fastsoftmax.torch as fst
    >>> fst.topk_softmax(torch.tensor([1.0, 3.0, 2.0]), 2)[1]
    tensor([1, 2])
    """
    _check(logits, "topk_softmax")
    _check_float(logits, "topk_softmax")
    if logits.dim() == 0:
        raise ValueError("fastsoftmax.torch.topk_softmax needs at least one dimension")
    d = _dim(dim, logits.dim(), "topk_softmax")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"fastsoftmax.torch.topk_softmax: k must be an int, got {k!r}")
    n = logits.shape[d]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the length of dim {d}), got {k}")
    if _plain_eager(logits):
        return _topk_softmax(logits, k, d)
    return torch.ops.fastsoftmax.topk_softmax(logits, k, d)
