"""Representative shapes per algorithm: small batched rows (in cache), one long row in and out of cache.

Every case passes ``threads=`` explicitly (1 unless the test is about threads), so results do
not depend on the machine's CPU count or FASTSOFTMAX_NUM_THREADS.

    python -m pytest benchmarks/ --benchmark-only [--benchmark-autosave | --benchmark-compare]
"""

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import fastsoftmax  # noqa: E402
from fastsoftmax import _core  # noqa: E402
from fastsoftmax.bench._impls import ALGORITHMS as KERNEL_ALGORITHMS, Reference  # noqa: E402

try:
    import ml_dtypes
except ImportError:  # optional: the bfloat16 cases are skipped
    ml_dtypes = None

ALGORITHMS = ["auto", *KERNEL_ALGORITHMS]
SHAPES = [
    (1, 128),         # one short row: call overhead
    (64, 1000),       # a classifier batch
    (4096, 128),      # many short rows (attention-like)
    (1, 1 << 16),     # one row in L2
    (1, 1 << 22),     # one row of 16 MiB: beyond L2, out of most L3s with its output
]
RUNNABLE = [i for i in _core.compiled_isas() if _core.isa_runnable(i)]
#: (shape, threads): one long row split into chunks over 2 threads, many rows spread over 2 threads.
THREADED = [((1, 1 << 22), 2), ((4096, 128), 2)]
#: The half types (stored in 2 bytes, computed in float32): a classifier batch and one row out of L2.
HALF_SHAPES = [(64, 1000), (1, 1 << 22)]
HALF_DTYPES = [
    pytest.param(np.float16, id="float16"),
    pytest.param(ml_dtypes.bfloat16 if ml_dtypes is not None else None, id="bfloat16",
                 marks=pytest.mark.skipif(ml_dtypes is None, reason="bfloat16 needs the optional ml_dtypes package")),
]


def _shape_id(shape):
    return "x".join(f"2^{d.bit_length() - 1}" if d > 1 and d & (d - 1) == 0 and d > 1024 else str(d)
                    for d in shape)


def _check(out, op, x=None):
    """The benchmarked calls really computed a softmax (log-softmax) of every row.

    Half types: every element within 1 ulp of the float64 result rounded to the type (a sum is
    no check: in float16 most outputs of a long row are subnormal or zero).
    """
    if out.dtype.itemsize == 2:
        err, _ = Reference(op, x).check(out, 1, log_abs=True)
        assert err is None, err
    elif op == "softmax":
        np.testing.assert_allclose(out.sum(axis=-1, dtype=np.float64), 1.0, rtol=1e-4)
    else:
        np.testing.assert_allclose(np.exp(out.astype(np.float64)).sum(axis=-1), 1.0, rtol=1e-4)


def _run(benchmark, make_input, shape, dtype, algorithm, op="softmax", isa=None, threads=1):
    x, out = make_input(shape, dtype)
    fn = fastsoftmax.softmax if op == "softmax" else fastsoftmax.log_softmax
    n = shape[-1]
    benchmark.group = f"{op} {np.dtype(dtype).name} {_shape_id(shape)}"
    benchmark.extra_info.update({
        "kernel": _core.kernel_name(op, algorithm, np.dtype(dtype).name, isa, n),
        "elements": int(x.size),
        "isa": isa or _core.active_isa(),
        "threads": threads,
    })
    benchmark(fn, x, axis=-1, out=out, algorithm=algorithm, isa=isa, threads=threads)
    _check(out, op, x)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_softmax_float32(benchmark, make_input, shape, algorithm):
    _run(benchmark, make_input, shape, np.float32, algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_softmax_float64(benchmark, make_input, algorithm):
    _run(benchmark, make_input, (64, 1000), np.float64, algorithm)


@pytest.mark.parametrize("algorithm", ["auto", "two-pass", "three-pass-reload"])
@pytest.mark.parametrize("shape", HALF_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_softmax_half(benchmark, make_input, dtype, shape, algorithm):
    """float16 / bfloat16 (compare with test_softmax_float32 of the same shape: half the bytes)."""
    name = np.dtype(dtype).name
    if name not in {k["dtype"] for k in _core.kernels()}:
        pytest.skip(f"this build of fastsoftmax has no {name} kernels")
    _run(benchmark, make_input, shape, dtype, algorithm)


@pytest.mark.parametrize("algorithm", ["auto", "two-pass", "three-pass-reload"])
def test_log_softmax_float32(benchmark, make_input, algorithm):
    _run(benchmark, make_input, (1, 1 << 16), np.float32, algorithm, op="log_softmax")


@pytest.mark.parametrize("isa", RUNNABLE)
def test_two_pass_per_tier(benchmark, make_input, isa):
    _run(benchmark, make_input, (1, 1 << 16), np.float32, "two-pass", isa=isa)


@pytest.mark.parametrize("algorithm", ["auto", "two-pass"])
@pytest.mark.parametrize("shape,threads", THREADED, ids=[f"{_shape_id(s)}-t{t}" for s, t in THREADED])
def test_softmax_threads(benchmark, make_input, shape, threads, algorithm):
    """The same call on 2 threads (compare with test_softmax_float32 at threads=1 in the same group)."""
    _run(benchmark, make_input, shape, np.float32, algorithm, threads=threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_softmax_new_output(benchmark, make_input, threads):
    """softmax(x) without out=: a fresh result per call (its page faults are timed), as most users call it."""
    x, _ = make_input((1, 1 << 22), np.float32)
    benchmark.group = f"softmax float32 {_shape_id((1, 1 << 22))}"
    benchmark.extra_info.update({"elements": int(x.size), "threads": threads, "output": "new"})
    y = benchmark(fastsoftmax.softmax, x, axis=-1, threads=threads)
    _check(y, "softmax")


def test_numpy_ufunc_baseline(benchmark, make_input):
    """A trivial NumPy ufunc on (1, 128): the yardstick of the small-call target (DESIGN section 4)."""
    x, out = make_input((1, 128), np.float32)
    benchmark.group = f"softmax float32 {_shape_id((1, 128))}"  # next to the (1, 128) softmax rows
    benchmark(np.add, x, 1.0, out=out)
