"""A new result keeps the input's memory order where NumPy's order="K" would (np.exp(x) and
SciPy do): Fortran in, Fortran out; in the C fast path and the Python paths alike."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax}


def layouts():
    rng = np.random.default_rng(7)
    base = rng.standard_normal((6, 5, 4))
    return {
        "C": base[0],
        "F": np.asfortranarray(base[0]),
        "F3": np.asfortranarray(base),
        "transposed3": base.transpose(2, 0, 1),
        "swapped3": base.transpose(0, 2, 1),
        "sliced": np.asfortranarray(base[0])[::2],
        "reversed": base[0][::-1, ::-1],
        "1-d strided": base[0, 0, ::2],
    }


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int16", "longdouble"])
@pytest.mark.parametrize("op", sorted(FUNCS))
@pytest.mark.parametrize("name", sorted(layouts()))
def test_new_result_keeps_the_input_memory_order(name, op, dtype):
    x = layouts()[name].astype(dtype, order="K")
    axes = [None, -1, 0] + ([1] if x.ndim > 2 else [])
    for axis in axes:
        y = FUNCS[op](x, axis=axis)
        like = np.empty_like(x, dtype=y.dtype)  # order="K"
        if axis is None and x.ndim > 1 and not x.flags.c_contiguous:
            # Several reduced axes that do not merge into one in x's order: x is copied to C
            # order for the kernel, and the result is C order (x's would cost another copy).
            assert y.strides == like.strides or y.flags.c_contiguous, (name, y.strides)
        else:
            assert y.strides == like.strides, (name, axis, y.strides, like.strides)
        ref = FUNCS[op](np.ascontiguousarray(x), axis=axis)
        if dtype == "longdouble":  # NumPy's reductions: their summation order follows the layout
            assert np.allclose(y, ref, rtol=1e-15, atol=0)
        else:  # the kernels: bitwise whatever the layout
            assert np.array_equal(y, ref)


@pytest.mark.parametrize("op", sorted(FUNCS))
def test_fortran_in_fortran_out_on_the_fast_path(op):
    """softmax(x, axis=-1) of a float array is decided in C (_core.fast_*): its result too."""
    x = np.asfortranarray(np.random.default_rng(1).standard_normal((64, 33)).astype(np.float32))
    fast = getattr(_core, "fast_" + op)
    y = fast(x, -1, None, None, "auto", None, None)
    assert y is not NotImplemented
    assert y.flags.f_contiguous and not y.flags.c_contiguous
    assert np.array_equal(y, FUNCS[op](np.ascontiguousarray(x), axis=-1))
    y = FUNCS[op](x, axis=-1)
    assert y.flags.f_contiguous and type(y) is np.ndarray


@pytest.mark.parametrize("op", sorted(FUNCS))
def test_fortran_input_with_several_axes_and_mixed_precision(op):
    x = np.asfortranarray(np.random.default_rng(2).standard_normal((3, 4, 5)))
    ref = FUNCS[op](np.ascontiguousarray(x), axis=(0, 1))
    # Rows of several axes are read in C order (bitwise the C-order result); in F order
    # they do not merge into one strided row, so x is copied and the result is C order
    # (F order would cost one more copy).
    y = FUNCS[op](x, axis=(0, 1))
    assert np.array_equal(y, ref)
    assert y.flags.c_contiguous
    y = FUNCS[op](x, axis=-1, dtype=np.float32)  # rounded once into float32, still F order
    assert y.dtype == np.float32 and y.flags.f_contiguous
    assert np.array_equal(y, FUNCS[op](np.ascontiguousarray(x), axis=-1, dtype=np.float32))
    y = FUNCS[op](x, axis=())  # each element its own row
    assert y.flags.f_contiguous
    e = FUNCS[op](np.zeros((0, 3), order="F"), axis=1)
    assert e.shape == (0, 3) and e.strides == np.empty_like(np.zeros((0, 3), order="F")).strides


def test_subclass_input_gives_a_plain_fortran_array():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is discouraged
        m = np.asfortranarray([[1.0, 2.0], [3.0, 4.0]]).view(np.matrix)
    assert m.flags.f_contiguous
    y = fastsoftmax.softmax(m, axis=-1)
    assert type(y) is np.ndarray and y.flags.f_contiguous
