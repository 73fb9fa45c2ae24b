"""Threads: bitwise reproducibility for any thread count, concurrent callers, controls."""

import concurrent.futures
import os
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

from conftest import usable_isas
from helpers import exact  # tests/ is on sys.path (rootdir conftest)

ALGS = ["two-pass", "three-pass-reload", "three-pass-recompute", "online"]
CHUNK = 1 << 16  # csrc/softmax.cpp kChunk: rows longer than this are split


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_bitwise_identical_for_any_thread_count(alg, op, dtype):
    rng = np.random.default_rng(7)
    fn = getattr(fastsoftmax, op)
    # One long row split into uneven chunks; a few long rows; many short rows.
    cases = [rng.standard_normal(3 * CHUNK + 123), rng.uniform(-1000, 1000, (3, 2 * CHUNK + 5)),
             rng.standard_normal((3000, 77))]
    for x in cases:
        x = x.astype(dtype)
        results = [fn(x, axis=-1, algorithm=alg, threads=t) for t in (1, 2, 3, 8)]
        for r in results[1:]:
            assert np.array_equal(results[0], r), f"{op}/{alg} shape {x.shape}: threads change the bits"


@pytest.mark.parametrize("n", [500, 512])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("alg", ALGS)
def test_batches_too_big_for_the_cache_are_the_rows_one_by_one(alg, dtype, n):
    """Batches of short rows over half the last-level cache prefetch the next batch's rows
    (RowRunner::rows): the results are bitwise those of each row alone, for any thread
    count, with rows a multiple of the batch or not, and rows spaced wider than they are long."""
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dt = np.dtype(ml_dtypes.bfloat16)
    else:
        dt = np.dtype(dtype)
    c = _core.cache_sizes()
    llc = c["l3"] or c["l2"] or (32 << 20)
    stride = 512
    rows = llc // 2 // (2 * n * dt.itemsize) + 7  # input plus output past half the LLC
    x = np.random.default_rng(3).standard_normal((rows, stride)).astype(dt)[:, :n]
    one = [fastsoftmax.softmax(x[r], algorithm=alg, threads=1) for r in range(0, rows, 97)]
    for threads in (1, 2, 3):
        y = fastsoftmax.softmax(x, axis=-1, algorithm=alg, threads=threads)
        for k, r in enumerate(range(0, rows, 97)):
            assert np.array_equal(y[r].view(np.uint16 if dt.itemsize == 2 else dt), one[k].view(np.uint16 if dt.itemsize == 2 else dt)), (threads, r)


@pytest.mark.parametrize("isa", usable_isas())
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_short_reload_rows_are_the_rows_one_by_one(isa, dtype, op):
    """Batches of reload rows of at most sixteen blocks (Passes::lean_reload: up to 16384 float32
    on AVX-512), run in one function: bitwise
    the rows computed one by one by RowRunner::row (a strided view: each row is gathered
    first), for batches of 1 to 9 rows, any thread count, rows with NaN, +-inf, all -inf and
    beyond the fast range, lengths around the limits, and rows whose mass sits in one
    vector lane (where a change in the order of the partial sums shows in the result)."""
    fn = getattr(fastsoftmax, op)
    rng = np.random.default_rng(12)
    if dtype == "bfloat16":
        dtype = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    dtype = np.dtype(dtype)
    big = {4: 1e30, 8: 1e300, 2: 65504 if dtype == np.float16 else 1e30}[dtype.itemsize]
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]  # bitwise, NaN included
    for n in (1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 77, 100, 128, 192, 200, 256, 300, 512, 1000, 1023, 1024, 1025,
              1100, 2048, 2049, 3000, 3072, 4095, 4096, 4097, 5000, 8191, 8192, 8193,
              12000, 16383, 16384, 16385):
        for rows in (1, 2, 4, 5, 9):
            for kind in ("normal", "one lane"):
                if kind == "normal":
                    x = (rng.standard_normal((rows, n)) * 8).astype(dtype)
                else:
                    x = np.full((rows, n), -np.inf, dtype)
                    x[:, ::16] = rng.random((rows, len(range(0, n, 16))))
                if rows > 1 and kind == "normal" and n > 5:
                    for r, c, v in [(0, 3, np.nan), (1, 0, np.inf), (2, slice(None), -np.inf), (3, 1, big),
                                    (4, slice(0, 5), -np.inf)]:
                        if r < rows:
                            x[r, c] = v
                strided = np.empty((rows, 2 * n), dtype)[:, ::2]
                strided[...] = x
                with np.errstate(all="ignore"):
                    one = fn(strided, axis=-1, algorithm="three-pass-reload", isa=isa, threads=1).view(bits)
                    for t in (1, 2, 3):
                        y = fn(x, axis=-1, algorithm="three-pass-reload", isa=isa, threads=t)
                        assert np.array_equal(y.view(bits), one), (n, rows, kind, t)
                    y = fn(x, axis=-1, isa=isa)  # auto: reload for rows this short
                    assert np.array_equal(y.view(bits), one), (n, rows, kind, "auto")


@pytest.mark.parametrize("alg", ALGS)
def test_chunked_long_row_is_accurate(alg):
    x = np.random.default_rng(3).uniform(90, 100, 5 * CHUNK + 17).astype(np.float32)
    y = fastsoftmax.softmax(x, algorithm=alg, threads=2)
    ref = exact("softmax", x)
    d = np.abs(x.astype(np.longdouble) - x.max())
    assert np.all(np.abs(y - ref) / ref <= 1e-6 + d * 2.0**-24)
    assert abs(float(np.sum(y, dtype=np.float64)) - 1) < 1e-6


def test_chunked_rows_with_specials_take_the_exact_path():
    x = np.random.default_rng(1).standard_normal(3 * CHUNK).astype(np.float32)
    x[CHUNK + 5] = -np.inf
    y = fastsoftmax.softmax(x, threads=2)
    assert y[CHUNK + 5] == 0 and abs(float(y.sum(dtype=np.float64)) - 1) < 1e-6
    x[2 * CHUNK + 1] = np.nan
    assert np.all(np.isnan(fastsoftmax.softmax(x, threads=2)))
    assert np.all(np.isnan(fastsoftmax.log_softmax(x, threads=2)))


def test_many_python_threads_at_once_get_correct_results():
    rng = np.random.default_rng(11)
    shapes = [(1, 128), (64, 1000), (3, 70_000), (200_001,), (4096, 33), (2, 3, 5000)]
    inputs = [(rng.standard_normal(s) * 5).astype(dt) for s in shapes for dt in (np.float32, np.float64)]
    expected = [fastsoftmax.softmax(x, axis=-1, threads=1) for x in inputs]

    def worker(seed):
        order = np.random.default_rng(seed).permutation(len(inputs))
        for _ in range(6):
            for i in order:
                y = fastsoftmax.softmax(inputs[i], axis=-1, threads=int(1 + seed % 3))
                if not np.array_equal(y, expected[i]):
                    return f"thread {seed}: shape {inputs[i].shape} {inputs[i].dtype} differs"
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        errors = [e for e in ex.map(worker, range(8)) if e]
    assert errors == []
    # and the reference itself is right
    for x, y in zip(inputs, expected):
        ref = exact("softmax", x, axis=-1)
        assert np.allclose(y, ref, rtol=1e-5 if x.dtype == np.float32 else 1e-13, atol=0)


def test_set_and_get_num_threads():
    before = fastsoftmax.get_num_threads()
    try:
        fastsoftmax.set_num_threads(3)
        assert fastsoftmax.get_num_threads() == 3
    finally:
        fastsoftmax.set_num_threads(None)
    assert fastsoftmax.get_num_threads() == before == _core.default_num_threads()


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True, 1025, 2**31, 10**12])
def test_bad_thread_counts_are_errors(bad):
    with pytest.raises(ValueError, match="threads"):
        fastsoftmax.softmax(np.ones(4), threads=bad)
    with pytest.raises(ValueError, match="threads"):
        fastsoftmax.set_num_threads(bad)


def test_env_var_sets_the_default():
    code = "import fastsoftmax; print(fastsoftmax.get_num_threads())"
    env = dict(os.environ, FASTSOFTMAX_NUM_THREADS="5")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5"


@pytest.mark.parametrize("shape,axis", [((1000,), None), ((3, 1000), -1), ((3, 1000), 0), ((2, 3, 10), (1, 2))])
@pytest.mark.parametrize("with_out", [False, True])
def test_threads_keyword_reaches_the_core(shape, axis, with_out):
    """threads= must reach the kernels on every path -- the C fast path, the Python fast
    path, the general one (the Python fast path once dropped it, so threads=1 ran on all
    cores and the harness timed 2 threads as 1). The core records what it was given."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = np.empty_like(x) if with_out else None
    for t in (1, 3, 1):
        for isa in (None, _core.active_isa()):  # isa= skips the C fast path
            fastsoftmax.softmax(x, axis=axis, out=out, threads=t, isa=isa)
            assert _core.last_requested_threads() == t, (t, isa)
    fastsoftmax.softmax(x, axis=axis, out=out)
    assert _core.last_requested_threads() == 0  # 0: the library default
