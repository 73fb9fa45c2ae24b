"""softmax_backward / log_softmax_backward: the gradients of softmax and log_softmax."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _args as args
from . import _core

__all__ = ["softmax_backward", "log_softmax_backward"]


def _backward(op: str, y: Any, grad: Any, axis: int, out: Any, isa: Optional[str], threads: Optional[int]):
    nthreads = args.check_options(isa, threads)
    arrays = []
    for name, a in (("y", np.asarray(y)), ("grad", np.asarray(grad))):
        native = args.native_float(a)
        if native is None:
            raise TypeError(f"{op}: {name} must be float16, bfloat16, float32 or float64, got {a.dtype}")
        arrays.append(native)
    y, grad = arrays
    if y.dtype != grad.dtype:
        raise TypeError(f"{op}: y and grad must have the same dtype, got {y.dtype} and {grad.dtype}")
    if y.shape != grad.shape:
        raise ValueError(f"{op}: y and grad must have the same shape, got {y.shape} and {grad.shape}")
    if y.ndim == 0:
        raise ValueError(f"{op}: y must have at least one dimension")
    (ax,) = args.normalize_axes(axis, y.ndim)
    if out is not None:
        args.check_out(out, y.shape, y.dtype)
        for name, a in (("y", y), ("grad", grad)):
            if np.may_share_memory(out, a) and not args.same_view(out, a) and np.shares_memory(out, a):
                raise ValueError(f"{op}: out partially overlaps {name}; pass out={name} or a separate array")
    if y.size == 0:
        return out if out is not None else np.empty_like(y)
    last = ax == y.ndim - 1
    ym = np.ascontiguousarray(y if last else np.moveaxis(y, ax, -1))
    gm = np.ascontiguousarray(grad if last else np.moveaxis(grad, ax, -1))
    om = None
    if out is not None:
        om = out if last else np.moveaxis(out, ax, -1)
        if not om.flags.c_contiguous:
            om = None
    if om is not None and (args.same_view(om, ym) or args.same_view(om, gm) or
                           not (np.may_share_memory(om, ym) or np.may_share_memory(om, gm))):
        getattr(_core, op)(ym, gm, om, isa, nthreads)
        return out
    res = np.empty_like(ym)
    getattr(_core, op)(ym, gm, res, isa, nthreads)
    res = res if last else np.moveaxis(res, -1, ax)
    if out is not None:
        out[...] = res
        return out
    return res


def softmax_backward(y: Any, grad: Any, axis: int = -1, *, out: Any = None, isa: Optional[str] = None,
                     threads: Optional[int] = None) -> Any:
    """Gradient of :func:`softmax` with respect to its input: ``y * (grad - sum(grad * y, axis))``.

    ``y`` is the softmax's output along ``axis`` (one int) and ``grad`` the gradient of a
    loss with respect to ``y``; both float16, bfloat16, float32 or float64, one shape and
    dtype. Computed in one read pass for the row sums and one pass that writes the result
    (16-bit types in float32, rounded once); bitwise the same for any thread count.
    ``out=`` may be ``y`` or ``grad`` (in place) or a separate array.

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> y = fastsoftmax.softmax(np.array([0.0, 0.0]))
    >>> fastsoftmax.softmax_backward(y, np.array([1.0, 0.0]))
    array([ 0.25, -0.25])
    """
    return _backward("softmax_backward", y, grad, axis, out, isa, threads)


def log_softmax_backward(y: Any, grad: Any, axis: int = -1, *, out: Any = None, isa: Optional[str] = None,
                         threads: Optional[int] = None) -> Any:
    """Gradient of :func:`log_softmax` with respect to its input: ``grad - exp(y) * sum(grad, axis)``.

    ``y`` is the log-softmax's output; otherwise as :func:`softmax_backward`.

    Examples
    --------
    >>> import numpy as np, fastsoftmax
    >>> y = fastsoftmax.log_softmax(np.array([0.0, 0.0]))
    >>> fastsoftmax.log_softmax_backward(y, np.array([1.0, 0.0]))
    array([ 0.5, -0.5])
    """
    return _backward("log_softmax_backward", y, grad, axis, out, isa, threads)
