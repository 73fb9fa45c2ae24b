"""Edge cases compared with scipy.special.softmax / log_softmax (DESIGN.md section 3).

SciPy's behaviour is the contract -- values where defined, NaN/inf pattern, dtype, shape,
exception type -- except where DESIGN.md says we are deliberately right and SciPy is not:
integer input is converted to the result dtype *before* subtracting (SciPy wraps around),
and float16 is computed in float32 and rounded once. Those are checked against a
longdouble reference instead of SciPy's value.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastsoftmax
from conftest import KERNELS, kernel_id, require_or_skip, run_kernel, usable_isas
from helpers import (
    peak_traced,
    AxisError,
    assert_correctly_rounded_within,
    finfo,
    round_to,
    assert_same_as_scipy,
    compare_with_scipy,
    exact,
    run_scipy,
)

OPS = ("softmax", "log_softmax")
FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax}
inf, nan = np.inf, np.nan


def special_rows(dtype):
    """Named rows with ±inf, NaN and extreme magnitudes (as float64 lists, cast later)."""
    big = float(finfo(dtype).max)
    rng = np.random.default_rng(7)

    def long_row(n, where, value):
        r = rng.standard_normal(n)
        r[where] = value
        return r

    sprinkled = rng.standard_normal(2049)
    sprinkled[::7] = -inf
    return {
        "one +inf": [1.0, inf, 2.0],
        "two +inf": [inf, 0.0, inf],
        "+inf and -inf": [inf, -inf, 0.0],
        "one -inf": [1.0, -inf, 2.0],
        "all -inf": [-inf] * 4,
        "single -inf": [-inf],
        "single +inf": [inf],
        "nan": [1.0, nan, 2.0],
        "all nan": [nan, nan],
        "nan, +inf, -inf": [nan, inf, -inf],
        "+-1e30": [1e30, -1e30, 0.0],
        "1e30 twice": [1e30, 1e30],
        "-1e30 thrice": [-1e30, -1e30, -1e30],
        "+-finfo.max": [big, -big, 0.0],
        "finfo.max twice": [big, big],
        "-finfo.max twice": [-big, -big],
        "very negative row": [-1e6, -1e6 - 1.0, -1e6 - 2.0],
        "beyond f32 fast range": [70000.0, 69999.0, 69990.0],
        "beyond f64 fast range": [2e6, 2e6 - 1.0, 2e6 - 30.0],
        "underflowing terms": [0.0, -200.0, -1000.0, -1e5],
        "tiny inputs": [1e-40, -1e-40, 0.0],
        "nan first of 2049": long_row(2049, 0, nan),
        "nan last of 2049": long_row(2049, -1, nan),
        "nan last of 1000": long_row(1000, -1, nan),
        "+inf at 1500 of 2049": long_row(2049, 1500, inf),
        "+inf last of 1000": long_row(1000, -1, inf),
        "1e30 last of 1000": long_row(1000, -1, 1e30),
        "-inf every 7th of 2049": sprinkled,
        "-inf all but last of 100": [-inf] * 99 + [3.0],
    }


def as_row(values, dtype):
    with np.errstate(over="ignore"):  # 1e30 -> inf in float16: still a valid special case
        return np.array(values, dtype=np.float64).astype(dtype)


# ---- ±inf, NaN, huge values ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_special_values_default_dispatch(op, dtype):
    # float32/float64 run natively and must not warn; float16 results that overflow when
    # rounded (and longdouble, computed with SciPy's formula) warn as SciPy does.
    native = np.dtype(dtype) in (np.float32, np.float64)
    for name, values in special_rows(dtype).items():
        x = as_row(values, dtype)
        compare_with_scipy(FUNCS[op], op, x, what=f"{op} {np.dtype(dtype).name} {name}",
                           allow_warnings=not native)
        # The same row inside a 2-D array, reduced along axis 1 next to an ordinary row.
        x2 = np.stack([x, np.linspace(-1, 1, x.size).astype(dtype)])
        compare_with_scipy(FUNCS[op], op, x2, what=f"{op} {np.dtype(dtype).name} {name} (2-D)",
                           allow_warnings=not native, axis=1)


@pytest.mark.parametrize("k", KERNELS, ids=kernel_id)
def test_special_values_every_kernel(k):
    require_or_skip(k["isa"])
    op, dt = k["op"], np.dtype(k["dtype"])
    names = []
    for name, values in special_rows(dt).items():
        x = as_row(values, dt)
        if dt.itemsize == 2:
            # SciPy computes 16-bit types in 16 bits (each sum term rounded: far off on long
            # rows, docs/scipy-differences.md): its result on the float64 values, rounded once.
            theirs, exc = run_scipy(op, x.astype(np.float64))
            theirs = round_to(theirs, dt).astype(dt)
        else:
            theirs, exc = run_scipy(op, x)
        assert exc is None
        ours = run_kernel(k, x)
        assert_same_as_scipy(op, ours, theirs, x=x, what=f"{kernel_id(k)} {name}")
        names.append(name)
    assert len(names) == len(special_rows(dt))


# ---- integer, bool, float16 input ---------------------------------------------------------

INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def int_inputs(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    full = rng.integers(info.min, info.max, size=(3, 50), dtype=dtype, endpoint=True)
    ext = np.array([[info.min, info.max, 0, info.max - 1]], dtype=dtype)
    return {"full range": full, "extremes": ext}


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_integer_input_converted_before_subtracting(op, dtype):
    """Integers are converted to SciPy's result dtype first, so nothing wraps around."""
    fn = FUNCS[op]
    for name, x in int_inputs(dtype).items():
        theirs, exc = run_scipy(op, x, axis=1)
        assert exc is None
        ours = fn(x, axis=1)
        assert type(ours) is np.ndarray and ours.shape == x.shape
        assert ours.dtype == theirs.dtype, f"{name}: dtype {ours.dtype}, SciPy gives {theirs.dtype}"
        # float16 results are computed in float32 and rounded once.
        compute = np.float32 if ours.dtype == np.float16 else ours.dtype
        assert_correctly_rounded_within(op, ours, x.astype(ours.dtype).astype(compute), axis=1)
        assert np.all(np.isfinite(ours))
        # axis=None over the whole array as well.
        whole = fn(x)
        assert_correctly_rounded_within(op, whole.reshape(1, -1),
                                        x.astype(ours.dtype).astype(compute).reshape(1, -1), axis=1)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_integer_input_small_values_agree_with_scipy(op, dtype):
    """Our answer is SciPy's on the input converted to the result dtype first, and, for
    small signed values (where SciPy's integer subtraction does not wrap), SciPy's own."""
    lo = 0 if np.iinfo(dtype).min == 0 else -5
    x = np.arange(lo, lo + 11, dtype=dtype).reshape(1, 11).repeat(2, axis=0)
    result_dtype = np.exp(np.zeros(1, dtype)).dtype  # SciPy's result dtype
    fn = FUNCS[op]
    for axis in (1, None):
        ours = fn(x, axis=axis)
        theirs, _ = run_scipy(op, x.astype(result_dtype), axis=axis)
        assert_same_as_scipy(op, ours, theirs, x=x, what=f"{op} {np.dtype(dtype).name} axis={axis}")
        if lo < 0:
            compare_with_scipy(fn, op, x, what=f"{op} {np.dtype(dtype).name} axis={axis}", axis=axis)


@pytest.mark.parametrize("op", OPS)
def test_uint8_where_scipy_wraps_around(op):
    """softmax([0, 255] as uint8): SciPy computes 0 - 255 in uint8 (= 1); we do not."""
    x = np.array([0, 255], dtype=np.uint8)
    y = FUNCS[op](x)
    assert y.dtype == np.float16
    expected = exact(op, np.array([0.0, 255.0])).astype(np.float16)
    assert np.array_equal(y, expected), f"{y} != {expected}"


@pytest.mark.parametrize("shape", [(5,), (2, 3)], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_bool_input_raises_type_error_like_scipy(op, shape):
    x = np.ones(shape, dtype=bool)
    _, exc = run_scipy(op, x)
    assert isinstance(exc, TypeError)
    with pytest.raises(TypeError, match="bool"):
        FUNCS[op](x)
    with pytest.raises(TypeError):
        FUNCS[op](np.array(True))


@pytest.mark.parametrize("op", OPS)
def test_float16_computed_in_float32_and_rounded_once(op):
    rng = np.random.default_rng(11)
    x = (4 * rng.standard_normal((4, 300))).astype(np.float16)
    theirs, _ = run_scipy(op, x, axis=1)
    ours = FUNCS[op](x, axis=1)
    assert ours.dtype == theirs.dtype == np.float16 and ours.shape == theirs.shape
    assert_correctly_rounded_within(op, ours, x.astype(np.float32), axis=1)
    # out= of float16 gets the same once-rounded values.
    out = np.full(x.shape, np.float16(-1))
    assert FUNCS[op](x, axis=1, out=out) is out
    assert np.array_equal(out, ours)


# ---- empty and 0-d input ----------------------------------------------------------------

EMPTY_CASES = [
    ((0,), None), ((0,), 0), ((0,), -1), ((0,), ()),
    ((2, 0), None), ((2, 0), 0), ((2, 0), 1), ((2, 0), -1), ((2, 0), (0, 1)),
    ((0, 3), 0), ((0, 3), 1), ((0, 3), None),
    ((0, 0), None), ((0, 0), 1),
    ((2, 0, 3), 0), ((2, 0, 3), 1), ((2, 0, 3), 2), ((2, 0, 3), (0, 2)), ((2, 0, 3), (1, 2)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape, axis", EMPTY_CASES, ids=[f"{s}-axis={a}" for s, a in EMPTY_CASES])
@pytest.mark.parametrize("op", OPS)
def test_empty_arrays(op, shape, axis, dtype):
    x = np.zeros(shape, dtype=dtype)
    compare_with_scipy(FUNCS[op], op, x, what=f"{op} {shape} axis={axis}", axis=axis)


ZERO_D = {
    "float64 3.0": np.float64(3.0),
    "float32 array": np.array(2.0, np.float32),
    "float16": np.float16(1.5),
    "longdouble": np.longdouble(0.5),
    "+inf": np.array(inf),
    "-inf": np.array(-inf),
    "nan": np.array(nan),
    "int8": np.int8(5),
    "uint64": np.uint64(7),
    "int64 array": np.array(-9),
    "python float": 2.5,
    "python int": 3,
}


@pytest.mark.parametrize("name", list(ZERO_D))
@pytest.mark.parametrize("op", OPS)
def test_zero_dimensional_input(op, name):
    for axis in (None, (), 1, (0,), (0, 0)):
        kw = {} if axis is None else {"axis": axis}
        compare_with_scipy(FUNCS[op], op, ZERO_D[name], what=f"{op} 0-d {name} axis={axis}",
                           allow_warnings=name == "longdouble", **kw)


@pytest.mark.parametrize("axis", [0, -1], ids=lambda a: f"axis={a}")
@pytest.mark.parametrize("op", OPS)
def test_zero_dimensional_input_with_int_axis(op, axis):
    """NumPy reductions (and so SciPy) accept axis=0 and axis=-1 on a 0-d array."""
    for name in ("float64 3.0", "float32 array", "+inf", "int8", "python float"):
        compare_with_scipy(FUNCS[op], op, ZERO_D[name], what=f"{op} 0-d {name} axis={axis}", axis=axis)


# ---- axis handling ----------------------------------------------------------------------

GOOD_AXES = [None, 0, 1, 2, -1, -2, -3, (0,), (2,), (0, 1), (1, 2), (0, 2), (2, 0), (-1, 0), (0, 1, 2),
             (2, 1, 0), (), np.int64(1), (np.int32(0), 2)]
BAD_AXES = [3, -4, (0, 3), (-4,), (0, 0), (1, -2), (0, 1, 0), 1.0, "0", (0.0,), True, [0, 1]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", GOOD_AXES + BAD_AXES, ids=lambda a: f"axis={a!r}")
@pytest.mark.parametrize("op", OPS)
def test_axis_handling_like_scipy(op, axis, dtype):
    x = np.random.default_rng(5).standard_normal((2, 3, 4)).astype(dtype)
    compare_with_scipy(FUNCS[op], op, x, what=f"{op} axis={axis!r}", axis=axis)


def test_axis_errors_have_the_right_types():
    x = np.zeros((2, 3))
    with pytest.raises(AxisError):
        fastsoftmax.softmax(x, axis=2)
    with pytest.raises(AxisError):
        fastsoftmax.log_softmax(x, axis=-3)
    with pytest.raises(ValueError, match="duplicate"):
        fastsoftmax.softmax(x, axis=(1, -1))
    with pytest.raises(TypeError):
        fastsoftmax.softmax(x, axis=0.5)


# ---- memory layouts, views, in place ----------------------------------------------------

def layouts(base: np.ndarray):
    """(name, view, axis, the same data C-contiguous, the equivalent axis there)."""
    c = np.ascontiguousarray(base)  # shape (6, 40)
    f = np.asfortranarray(base)
    big = np.zeros((12, 120), base.dtype)
    big[::2, ::3] = base
    return [
        ("C", c, 1, c, 1),
        ("F", f, 1, c, 1),
        ("F axis 0", f, 0, c, 0),
        ("strided", big[::2, ::3], 1, c, 1),
        ("negative stride", base[::-1, ::-1].copy()[::-1, ::-1], 1, c, 1),
        ("reversed rows view", c[:, ::-1], 1, np.ascontiguousarray(c[:, ::-1]), 1),
        ("transposed, axis 0", c.T, 0, np.ascontiguousarray(c.T), 0),
        ("non-last axis", c, 0, np.ascontiguousarray(c.T), 1),
        ("3-D axes (0, 2)", c.reshape(2, 3, 40), (0, 2), c.reshape(2, 3, 40), (0, 2)),
        ("3-D F axes (0, 2)", np.asfortranarray(c.reshape(2, 3, 40)), (0, 2), c.reshape(2, 3, 40), (0, 2)),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
@pytest.mark.parametrize("op", OPS)
def test_layouts_give_correct_and_identical_results(op, algorithm, dtype):
    fn = FUNCS[op]
    base = (3 * np.random.default_rng(9).standard_normal((6, 40))).astype(dtype)
    for name, view, axis, contiguous, c_axis in layouts(base):
        want = fn(contiguous, axis=c_axis, algorithm=algorithm)
        got = fn(view, axis=axis, algorithm=algorithm)
        theirs, _ = run_scipy(op, view, axis=axis)
        assert_same_as_scipy(op, got, theirs, x=view, what=f"{name}")
        if name == "non-last axis":
            want = want.T
        assert np.array_equal(got, want), f"{op} {algorithm} {name}: not bitwise equal to the C-order result"
        # Into a strided, non-contiguous out.
        holder = np.full(view.shape + (2,), -5.0, dtype)
        out = holder[..., 1]
        assert fn(view, axis=axis, algorithm=algorithm, out=out) is out
        assert np.array_equal(out, got), f"{name}: strided out= differs"
        assert np.all(holder[..., 0] == -5.0), f"{name}: wrote outside the strided out"
        # In place: out=x on the same view.
        work = view.copy(order="K") if name in ("C", "F") else None
        if work is not None:
            assert fn(work, axis=axis, algorithm=algorithm, out=work) is work
            assert np.array_equal(work, got), f"{name}: in place differs"


@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
@pytest.mark.parametrize("op", OPS)
def test_in_place_on_views(op, algorithm):
    """out=x works for strided, negative-stride and Fortran views, touching nothing else."""
    fn = FUNCS[op]
    rng = np.random.default_rng(21)
    for name, make in [
        ("C", lambda a: a),
        ("F", lambda a: np.asfortranarray(a)),
        ("strided", lambda a: a[:, ::2]),
        ("negative stride", lambda a: a[::-1, ::-3]),
        ("column slice", lambda a: a[1:4, 5:60]),
    ]:
        for axis in (1, 0, None, (0, 1)):
            buf = rng.standard_normal((6, 90))
            v = make(buf)
            expected = fn(v.copy(), axis=axis, algorithm=algorithm)
            outside = buf.copy()
            res = fn(v, axis=axis, algorithm=algorithm, out=v)
            assert res is v
            assert np.array_equal(v, expected), f"{name} axis={axis}: in-place result differs"
            if v.base is buf:
                mask = np.ones(buf.shape, bool)
                idx = np.arange(buf.size).reshape(buf.shape)
                mask.flat[make(idx).ravel()] = False
                assert np.array_equal(buf[mask], outside[mask]), f"{name} axis={axis}: wrote outside the view"


@pytest.mark.parametrize("op", OPS)
def test_interleaved_out_that_does_not_overlap(op):
    """x = a[::2], out = a[1::2] share a buffer but no element: allowed."""
    a = np.arange(20.0)
    x, out = a[::2], a[1::2]
    expected = FUNCS[op](x.copy())
    assert FUNCS[op](x, out=out) is out
    assert np.array_equal(out, expected)
    assert np.array_equal(x, np.arange(0.0, 20.0, 2.0))


@pytest.mark.parametrize("op", OPS)
def test_list_input_and_python_scalars(op):
    compare_with_scipy(FUNCS[op], op, [[1, 2, 3], [4, 5, 7]], what="nested list", axis=1)
    compare_with_scipy(FUNCS[op], op, [1.5, -2.0, 0.25], what="list of floats")


@pytest.mark.parametrize("op", OPS)
def test_zero_stride_broadcast_input(op):
    row = np.linspace(-2.0, 3.0, 37)
    x = np.broadcast_to(row, (4, 37))
    assert x.strides[0] == 0
    for axis in (0, 1, None):
        ours = compare_with_scipy(FUNCS[op], op, x, what=f"broadcast axis={axis}", axis=axis)
        assert np.array_equal(ours, FUNCS[op](np.ascontiguousarray(x), axis=axis))


# ---- no temporaries for contiguous input (DESIGN section 3) ---------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_contiguous_input_allocates_only_the_output(op, dtype):

    fn = FUNCS[op]
    x = np.random.default_rng(2).standard_normal((32, 8192)).astype(dtype)
    out = np.empty_like(x)
    slack = 64 * 1024

    for axis in (1, -1, None, (0, 1)):
        extra, _ = peak_traced(lambda: fn(x, axis=axis, out=out))
        assert extra <= slack, f"axis={axis}, out=: {extra} bytes of temporaries"
        extra, res = peak_traced(lambda: fn(x, axis=axis))
        assert extra <= x.nbytes + slack, f"axis={axis}: {extra - x.nbytes} bytes beyond the output"
        del res
    work = x.copy()
    extra, _ = peak_traced(lambda: fn(work, axis=1, out=work))
    assert extra <= slack, f"in place: {extra} bytes of temporaries"
    # A strided kernel handles a non-last axis without copying the array.
    extra, _ = peak_traced(lambda: fn(x, axis=0, out=out))
    assert extra <= slack, f"axis=0: {extra} bytes of temporaries"


# ---- byte order, floating-point environment ---------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_byte_swapped_input_like_native(op, dtype):
    """Non-native byte order is only a memory layout: same dtype as SciPy's result (native),
    bitwise the same values as for native input, and a native out= is accepted."""
    fn = FUNCS[op]
    native = (3 * np.random.default_rng(4).standard_normal((3, 50))).astype(dtype)
    swapped = native.astype(native.dtype.newbyteorder())
    assert np.array_equal(swapped, native)
    theirs, _ = run_scipy(op, swapped, axis=1)
    want = fn(native, axis=1)
    got = fn(swapped, axis=1)
    assert got.dtype == theirs.dtype == want.dtype
    assert np.array_equal(got, want), "byte-swapped input gives different values"
    out = np.empty(native.shape, want.dtype)
    assert fn(swapped, axis=1, out=out) is out
    assert np.array_equal(out, want)


def test_kernels_leave_the_fp_environment_alone():
    """No kernel leaves flush-to-zero / denormals-are-zero set for the rest of the process."""
    from fastsoftmax import _core

    before = _core.ftz_daz()
    tiny = np.float32(1e-39)  # subnormal
    x = np.array([0.0, -100.0, -120.0, 1e-40], np.float32)
    for k in KERNELS:
        if k["isa"] in usable_isas():
            run_kernel(k, x.astype(k["dtype"]))
            assert _core.ftz_daz() == before, f"{kernel_id(k)} changed MXCSR"
    assert tiny * np.float32(1.0) == tiny and tiny / np.float32(2) != 0


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ["three-pass-reload", "three-pass-recompute"])
@pytest.mark.parametrize("op", OPS)
def test_non_last_axis_columns_are_bitwise_the_rows(isa, dtype, algorithm, op):
    """Three-pass softmax along a non-last axis runs on the columns directly (vectors across
    neighbouring columns, the row kernels' summation order emulated): bitwise the rows'
    result for column counts around the strip and group widths, axis lengths around the
    unroll and cascade block sizes, and columns that need the exact path (NaN, +inf,
    beyond the fast range, all far below it) next to ordinary ones in the same group;
    in place too. (40000, 40): one strip a call, whose copy is larger than the tile buffer
    it shares the thread's scratch with."""
    require_or_skip(isa)
    fn = FUNCS[op]
    rng = np.random.default_rng(12)
    for n, cols in [(1, 16), (7, 32), (64, 128), (65, 200), (513, 48), (1025, 16), (2049, 40), (3000, 130), (300, 1024),
                    (40000, 40)]:
        x = (4 * rng.standard_normal((2, n, cols))).astype(dtype)
        if n > 3 and cols > 40:
            x[0, n // 2, 5] = np.nan
            x[1, 1, 17] = np.inf
            x[0, 2, 33] = -np.inf  # stays on the fast path
            x[1, n - 1, 40] = 1e30
            x[0, :, 20] = -3e6  # the max is below -kHigh: the exact path
        want = np.swapaxes(fn(np.ascontiguousarray(np.swapaxes(x, 1, 2)), axis=-1, isa=isa, algorithm=algorithm), 1, 2)
        got = fn(x, axis=1, isa=isa, algorithm=algorithm)
        assert np.array_equal(got, want, equal_nan=True), (n, cols)
        y = x.copy()
        assert fn(y, axis=1, out=y, isa=isa, algorithm=algorithm) is y
        assert np.array_equal(y, want, equal_nan=True), (n, cols, "in place")


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_non_last_axis_tiles_are_bitwise_the_rows(isa, dtype):
    """Softmax along a non-last axis gathers tiles of neighbouring rows (8x8 register
    transposes for float32 on AVX tiers, element moves otherwise): every row length and
    tile width around the block size, negative strides, a misaligned buffer, in place and a
    strided out give bitwise the result of the same rows laid out along the last axis."""
    require_or_skip(isa)
    rng = np.random.default_rng(11)
    # (5000, 220): the 2 MiB tile bound gives tiles of 104 float32 rows, not 128.
    for n, cols in [(8, 8), (9, 17), (37, 45), (64, 64), (100, 130), (3, 70), (1025, 24), (33, 300), (5000, 220)]:
        x = (4 * rng.standard_normal((2, n, cols))).astype(dtype)
        want = fastsoftmax.softmax(np.ascontiguousarray(np.swapaxes(x, 1, 2)), axis=-1, isa=isa)
        want = np.swapaxes(want, 1, 2)
        got = fastsoftmax.softmax(x, axis=1, isa=isa)
        assert np.array_equal(got, want), (n, cols)
        rev = np.ascontiguousarray(x[:, ::-1, ::-1])[:, ::-1, ::-1]  # the same array, negative strides
        assert np.array_equal(fastsoftmax.softmax(rev, axis=1, isa=isa), want), (n, cols, "negative strides")
        raw = np.zeros(x.nbytes + 1, np.uint8)[1:]  # an odd byte address
        mis = raw.view(dtype).reshape(x.shape)
        mis[...] = x
        assert np.array_equal(fastsoftmax.softmax(mis, axis=1, isa=isa), want), (n, cols, "misaligned")
        y = x.copy()
        assert fastsoftmax.softmax(y, axis=1, out=y, isa=isa) is y and np.array_equal(y, want), (n, cols, "in place")
        holder = np.full(x.shape + (2,), -5.0, dtype)
        fastsoftmax.softmax(x, axis=1, out=holder[..., 1], isa=isa)
        assert np.array_equal(holder[..., 1], want) and np.all(holder[..., 0] == -5.0), (n, cols, "strided out")
