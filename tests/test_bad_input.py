"""Bad arguments raise the right exception with a useful message, and never touch `out`."""

from __future__ import annotations

import numpy as np
import pytest

import fastsoftmax

OPS = ("softmax", "log_softmax")
FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax}
SENTINEL = -3.5


def sentinel_out(shape=(2, 3), dtype=np.float64):
    return np.full(shape, SENTINEL, dtype=dtype)


def assert_untouched(out):
    assert np.all(out == SENTINEL), "a failing call modified the caller's out"


# ---- input dtypes that are not real numbers ------------------------------------------------

BAD_INPUTS = {
    "complex64": (np.ones((2, 3), np.complex64), "complex"),
    "complex128": (np.ones((2, 3), np.complex128) * 1j, "complex"),
    "clongdouble": (np.ones((2, 3), np.clongdouble), "complex"),
    "object of floats": (np.ones((2, 3), dtype=object), r"real|object|dtype\('O'\)"),
    "object of strings": (np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object), r"real|object|dtype\('O'\)"),
    "unicode strings": (np.array([["a", "b", "c"], ["d", "e", "f"]]), r"real|<U1|str"),
    "byte strings": (np.array([[b"a", b"b", b"c"], [b"d", b"e", b"f"]]), r"real|S1|bytes"),
    "list of strings": ([["a", "b", "c"], ["d", "e", "f"]], r"real|<U1|str"),
    "datetime64": (np.zeros((2, 3), "datetime64[s]"), r"real|datetime"),
    "timedelta64": (np.zeros((2, 3), "timedelta64[s]"), r"real|timedelta"),
    "structured": (np.zeros((2, 3), dtype=[("a", "f8")]), r"real|V|\[\("),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
@pytest.mark.parametrize("op", OPS)
def test_non_real_input_is_a_type_error(op, name):
    x, pattern = BAD_INPUTS[name]
    with pytest.raises(TypeError, match=pattern):
        FUNCS[op](x)
    out = sentinel_out()
    with pytest.raises(TypeError, match=pattern):
        FUNCS[op](x, axis=1, out=out)
    assert_untouched(out)


# ---- bad out= --------------------------------------------------------------------------

def bad_outs():
    ro = np.full((2, 3), SENTINEL)
    ro.flags.writeable = False
    return {
        "wrong shape": (np.full((3, 2), SENTINEL), ValueError, "shape"),
        "wrong ndim": (np.full((6,), SENTINEL), ValueError, "shape"),
        "broadcastable shape": (np.full((1, 3), SENTINEL), ValueError, "shape"),
        "int64": (np.full((2, 3), -3, np.int64), TypeError, "floating dtype"),
        "complex128": (np.full((2, 3), SENTINEL, np.complex128), TypeError, "floating dtype"),
        "bool": (np.zeros((2, 3), bool), TypeError, "floating dtype"),
        "read-only": (ro, ValueError, "read-only|writ"),
    }


@pytest.mark.parametrize("case", list(bad_outs()))
@pytest.mark.parametrize("op", OPS)
def test_bad_out_array(op, case):
    out, exc, pattern = bad_outs()[case]
    before = out.copy()
    x = np.arange(6.0).reshape(2, 3)
    with pytest.raises(exc, match=pattern):
        FUNCS[op](x, axis=1, out=out)
    assert np.array_equal(out, before), "a failing call modified the caller's out"


@pytest.mark.parametrize("op", OPS)
def test_out_and_dtype_must_agree(op):
    # Mixed precision takes out= of any floating dtype, or dtype=; both at once must agree.
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = sentinel_out(dtype=np.float64)
    with pytest.raises(TypeError, match="expected float32"):
        FUNCS[op](x, axis=1, out=out, dtype=np.float32)
    assert_untouched(out)


@pytest.mark.parametrize("dtype", [np.int32, np.complex64, bool, "U3", object, "not a dtype"])
@pytest.mark.parametrize("op", OPS)
def test_dtype_must_be_a_floating_dtype(op, dtype):
    with pytest.raises(TypeError, match="floating dtype"):
        FUNCS[op](np.zeros((2, 3)), axis=1, dtype=dtype)


@pytest.mark.parametrize("bad_out", [[[0.0] * 3] * 2, (1.0, 2.0), 3.0, "out", memoryview(bytearray(48))],
                         ids=["list", "tuple", "float", "str", "memoryview"])
@pytest.mark.parametrize("op", OPS)
def test_out_not_an_ndarray(op, bad_out):
    with pytest.raises(TypeError, match="ndarray"):
        FUNCS[op](np.zeros((2, 3)), axis=1, out=bad_out)


def overlapping_pairs():
    """(name, make) where make(a) -> (x, out) for a float64 buffer `a` of 13 elements."""
    return {
        "shifted by one": lambda a: (a[:-1], a[1:]),
        "shifted by one, reversed": lambda a: (a[1:], a[:-1]),
        "reversed view of x": lambda a: (a[:12], a[:12][::-1]),
        "2-D rows shifted": lambda a: (a[:12].reshape(3, 4), a[1:13].reshape(3, 4)),
        "transposed view of x": lambda a: (a[:9].reshape(3, 3), a[:9].reshape(3, 3).T),
    }


@pytest.mark.parametrize("name", list(overlapping_pairs()))
@pytest.mark.parametrize("op", OPS)
def test_out_partially_overlapping_x(op, name):
    a = np.linspace(-2.0, 2.0, 13)
    x, out = overlapping_pairs()[name](a)
    before = a.copy()
    with pytest.raises(ValueError, match="overlap"):
        FUNCS[op](x, out=out)
    assert np.array_equal(a, before), "a failing call modified the shared buffer"


# ---- bad algorithm / isa -----------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["fast", "", "TWO-PASS", "two_pass", None, 2],
                         ids=lambda a: repr(a))
@pytest.mark.parametrize("op", OPS)
def test_unknown_algorithm_lists_the_valid_ones(op, algorithm):
    out = sentinel_out()
    with pytest.raises(ValueError) as info:
        FUNCS[op](np.zeros((2, 3)), axis=1, out=out, algorithm=algorithm)
    for name in fastsoftmax.ALGORITHMS:
        assert name in str(info.value), f"the message does not list {name!r}: {info.value}"
    assert_untouched(out)


@pytest.mark.parametrize("isa", ["sse2", "AVX2", "avx512f", "neon", ""])
@pytest.mark.parametrize("op", OPS)
def test_unknown_isa(op, isa):
    out = sentinel_out()
    with pytest.raises(ValueError, match="isa"):
        FUNCS[op](np.zeros((2, 3)), axis=1, out=out, isa=isa)
    assert_untouched(out)


def test_isa_with_a_nul_is_shown_whole():
    """Regression (adversarial probe): isa="avx2\\x00junk" was reported as "unknown isa 'avx2":
    the message was cut at the NUL. It is now the name's repr, on the native path (last-axis
    float input) and the Python one (empty input, the statistics functions)."""
    isa = "avx2\x00junk"
    calls = {
        "softmax": lambda: fastsoftmax.softmax(np.zeros((2, 3)), axis=-1, isa=isa),
        "log_softmax float32": lambda: fastsoftmax.log_softmax(np.zeros((2, 3), np.float32), axis=1, isa=isa),
        "softmax, empty": lambda: fastsoftmax.softmax(np.zeros((0, 3)), axis=1, isa=isa),
        "logsumexp": lambda: fastsoftmax.logsumexp(np.zeros(3), isa=isa),
        "softmax_stats": lambda: fastsoftmax.softmax_stats(np.zeros(3), isa=isa),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError) as info:
            call()
        assert f"unknown isa {isa!r} (this build has:" in str(info.value), f"{name}: {info.value}"


@pytest.mark.parametrize("op", OPS)
def test_isa_of_wrong_type(op):
    out = sentinel_out()
    with pytest.raises(TypeError):
        FUNCS[op](np.zeros((2, 3)), axis=1, out=out, isa=2)
    assert_untouched(out)


# ---- other failing calls leave out alone ----------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_failing_axis_leaves_out_untouched(op):
    x = np.zeros((2, 3))
    for axis, exc in [(2, ValueError), (-3, ValueError), ((0, 0), ValueError), ("1", TypeError)]:
        out = sentinel_out()
        with pytest.raises(exc):
            FUNCS[op](x, axis=axis, out=out)
        assert_untouched(out)


@pytest.mark.parametrize("op", OPS)
def test_empty_axis_leaves_out_untouched(op):
    x = np.zeros((2, 0))
    out = np.full((2, 0), SENTINEL)
    with pytest.raises(ValueError):
        FUNCS[op](x, axis=1, out=out)
    out = sentinel_out((3, 2))
    with pytest.raises(ValueError):  # wrong shape, and an empty axis
        FUNCS[op](np.zeros((2, 0)), axis=1, out=out)
    assert_untouched(out)


@pytest.mark.parametrize("op", OPS)
def test_bool_input_with_out_leaves_out_untouched(op):
    out = sentinel_out()
    with pytest.raises(TypeError):
        FUNCS[op](np.ones((2, 3), bool), axis=1, out=out)
    assert_untouched(out)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_error_messages_name_the_function_called(op):
    """log_softmax's errors say log_softmax, not softmax (the shared checks take the name)."""
    fn = getattr(fastsoftmax, op)
    cases = [
        (np.array([True, False]), {}, TypeError, f"^{op} of a boolean array is not supported"),
        (np.array([1 + 1j]), {}, TypeError, f"^{op} of complex input"),
        (np.array(["a"]), {}, TypeError, f"^{op} needs real numbers"),
        (np.array([None]), {}, TypeError, f"^{op} needs real numbers"),
        (np.ones((2, 0)), {"axis": 1}, ValueError, rf"\({op} over an empty axis"),
    ]
    for x, kw, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn(x, **kw)
        with pytest.raises(exc, match=pattern):  # also with out= (the same checks, before any write)
            fn(x, out=np.zeros(x.shape), **kw)
