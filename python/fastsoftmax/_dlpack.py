"""DLPack in, the same type out: torch tensors and other CPU arrays that export ``__dlpack__``.

The public functions hand their arguments here when one is not a NumPy array but has
``__dlpack__``/``__dlpack_device__``. Inputs are read through ``np.from_dlpack`` (no copy;
for a torch tensor ``Tensor.numpy()``, the same view at a third of the cost),
``out=`` is written in place, and the result comes back as a torch tensor for a torch input
(``torch.from_numpy`` of the NumPy result: no copy) -- as a NumPy array for other
producers. bfloat16 tensors are viewed as 16-bit integers and then as
``ml_dtypes.bfloat16`` (NumPy has no bfloat16 of its own), so they reach the bfloat16
kernels without a float32 copy. torch is never imported here: a tensor is recognised by its
type's module, and torch is only touched when the caller passed a tensor.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Optional

import numpy as np

from . import _args
from ._threads import threads as _threads

__all__ = ["is_foreign", "is_torch", "to_numpy", "tensor_view", "from_numpy", "call", "device_error"]

# DLPack's DLDeviceType values (dlpack.h), for error messages.
_DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi", 10: "rocm",
                 11: "rocm_host", 12: "ext_dev", 13: "cuda_managed", 14: "oneapi", 15: "webgpu", 16: "hexagon",
                 17: "maia"}
_KDLCPU = 1


def is_torch(obj: Any) -> bool:
    """A torch.Tensor (or subclass, e.g. Parameter), recognised without importing torch."""
    if obj is None or isinstance(obj, np.ndarray):
        return False
    mod = type(obj).__module__
    if mod != "torch" and not mod.startswith("torch."):
        return False
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_foreign(obj: Any) -> bool:
    """Not a NumPy array, but a DLPack producer (torch, JAX, CuPy ... arrays)."""
    return (obj is not None and not isinstance(obj, np.ndarray) and hasattr(obj, "__dlpack__")
            and hasattr(obj, "__dlpack_device__"))


def device_error(op: str, what: str, device: str) -> ValueError:
    return ValueError(f"{op}: {what} is on device {device!r}; fastsoftmax computes on the CPU only "
                      "(move it first, e.g. tensor.cpu())")


def _bfloat16_dtype(op: str) -> np.dtype:
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"{op}: bfloat16 tensors need the ml_dtypes package (NumPy has no bfloat16 type): "
                        "pip install ml_dtypes (or fastsoftmax[torch])") from None
    return np.dtype(ml_dtypes.bfloat16)


def to_numpy(obj: Any, op: str, what: str) -> np.ndarray:
    """A NumPy view of a CPU DLPack object's memory (no copy); ValueError naming any other device."""
    if is_torch(obj):
        torch = sys.modules["torch"]
        if obj.device.type != "cpu":
            raise device_error(op, what, str(obj.device))
        return tensor_view(obj, op)
    dev = obj.__dlpack_device__()
    kind, index = int(dev[0]), int(dev[1])
    if kind != _KDLCPU:
        raise device_error(op, what, f"{_DEVICE_NAMES.get(kind, f'device type {kind}')}:{index}")
    return np.from_dlpack(obj)


def tensor_view(t: Any, op: str) -> np.ndarray:
    """A NumPy view of a CPU torch tensor's memory (no copy; bfloat16 as ml_dtypes.bfloat16)."""
    torch = sys.modules["torch"]
    if t.requires_grad:
        t = t.detach()
    bf16 = t.dtype == torch.bfloat16
    if bf16:
        t = t.view(torch.int16)
    try:
        a = t.numpy()  # the same view as np.from_dlpack(t), without the DLPack capsule's cost
    except (RuntimeError, TypeError):  # e.g. a subclass or a lazy (conj / neg) view: DLPack decides
        a = np.from_dlpack(t)
    return a.view(_bfloat16_dtype(op)) if bf16 else a


def from_numpy(a: Any, like: Any) -> Any:
    """The result `a` (a NumPy array or scalar) as `like`'s type: a torch tensor over the same
    memory for a torch input, else `a` itself."""
    if not is_torch(like):
        return a
    torch = sys.modules["torch"]
    a = np.asarray(a)
    if a.dtype.kind == "V" and a.dtype.itemsize == 2 and a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)  # the same memory as torch.from_dlpack(a), at a quarter of its cost


def _needs_grad(x: Any) -> bool:
    if not is_torch(x) or not x.requires_grad:
        return False
    return bool(sys.modules["torch"].is_grad_enabled())


def call(op: str, compute: Callable[..., Any], x: Any, axis: Any, out: Any, algorithm: str, isa: Optional[str],
         threads: Optional[int], dtype: Any) -> Any:
    """softmax / log_softmax with a DLPack object as x or out: compute(op, x, axis, out, ...)
    on NumPy views, the result in x's type. A torch x that requires grad (with grad mode on)
    goes through fastsoftmax.torch's autograd operators instead."""
    if _needs_grad(x) or (is_torch(out) and out.requires_grad):
        if out is not None:
            raise TypeError(f"{op}: out= does not support automatic differentiation, and x (or out) requires "
                            "grad; drop out= or call it under torch.no_grad()")
        if dtype is not None or algorithm != "auto" or isa is not None:
            raise TypeError(f"{op}: dtype=, algorithm= and isa= are not supported with a tensor that requires "
                            "grad; use fastsoftmax.torch (dtype= takes a torch dtype there)")
        return _through_autograd(op, x, axis, threads)
    xn = to_numpy(x, op, "x") if is_foreign(x) else x
    on = to_numpy(out, op, "out") if is_foreign(out) else out
    res = compute(op, xn, axis, on, algorithm, isa, threads, dtype)
    if out is not None:
        return out
    return from_numpy(res, x)


def logsumexp_call(fn: Callable[..., Any], x: Any, axis: Any, keepdims: bool, out: Any, dtype: Any, b: Any,
                   return_sign: bool, isa: Optional[str], threads: Optional[int]) -> Any:
    """logsumexp with DLPack objects among x, b and out: fn on NumPy views, results in x's type."""
    op = "logsumexp"
    if _needs_grad(x) or _needs_grad(b) or (is_torch(out) and out.requires_grad):
        if out is not None or b is not None or return_sign or dtype is not None or isa is not None:
            raise TypeError("logsumexp: out=, b=, return_sign=, dtype= and isa= are not supported with a tensor "
                            "that requires grad; use fastsoftmax.torch.logsumexp")
        return _through_autograd("logsumexp", x, axis, threads, keepdims=keepdims)
    xn = to_numpy(x, op, "x") if is_foreign(x) else x
    bn = to_numpy(b, op, "b") if is_foreign(b) else b
    on = to_numpy(out, op, "out") if is_foreign(out) else out
    res = fn(xn, axis, keepdims=keepdims, out=on, dtype=dtype, b=bn, return_sign=return_sign, isa=isa,
             threads=threads)
    if out is not None and not return_sign:
        return out
    if return_sign:
        lse, sign = res
        return (out if out is not None else from_numpy(lse, x)), from_numpy(sign, x)
    return from_numpy(res, x)


def _through_autograd(op: str, x: Any, axis: Any, threads: Optional[int], keepdims: bool = False) -> Any:
    """The NumPy-style call (axis: None, an int or a tuple) on a tensor that requires grad,
    through fastsoftmax.torch's differentiable operators (torch ops move and merge the axes)."""
    from . import torch as fst

    if x.device.type != "cpu":
        raise device_error(op, "x", str(x.device))
    with _threads(threads) if threads else contextlib.nullcontext():
        if op == "logsumexp":
            nd = max(x.dim(), 1)
            axes = tuple(range(nd)) if axis is None else _args.normalize_axes(axis, nd)
            if not axes:  # every element its own sum: log(exp(x)) == x
                return x.clone()
            return fst.logsumexp(x, list(axes), keepdim=keepdims)
        fn = fst.softmax if op == "softmax" else fst.log_softmax
        axes = _args.normalize_axes(axis, x.dim())
        if len(axes) == 1:
            return fn(x, axes[0])
        if not axes:  # every element its own row (0-d input, axis=()): 1, or 0 for log_softmax
            return fn(x.unsqueeze(-1), -1).squeeze(-1)
        k = len(axes)
        dest = list(range(x.dim() - k, x.dim()))
        moved = x.movedim(axes, dest)
        y = fn(moved.reshape(moved.shape[: x.dim() - k] + (-1,)), -1)
        return y.reshape(moved.shape).movedim(dest, axes)
