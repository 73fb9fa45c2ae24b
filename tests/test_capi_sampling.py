"""The sampling and cross-entropy C API (include/fastsoftmax/fastsoftmax.h, "Sampling")
through ctypes: the same tokens as fastsoftmax.sample, the same losses as
fastsoftmax.cross_entropy, and every bad argument refused with nothing written."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import fastsoftmax as fs

ml_dtypes = pytest.importorskip("ml_dtypes")

LIB = ctypes.CDLL(fs.get_library())
OK, INVALID = 0, 1
P = ctypes.c_void_p
SAMPLE_ARGS = [P, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t, P, P, P, P, P, ctypes.c_uint64,
               ctypes.c_uint64, P, P, ctypes.c_int, P]
CE_ARGS = [P, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t, P, ctypes.c_int64, P, P, P, ctypes.c_int, P]
SAMPLE = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}
CE = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "bf16": ml_dtypes.bfloat16}
for _dt in SAMPLE:
    getattr(LIB, f"fastsoftmax_sample_{_dt}").restype = ctypes.c_int
    getattr(LIB, f"fastsoftmax_sample_{_dt}").argtypes = SAMPLE_ARGS
for _dt in CE:
    getattr(LIB, f"fastsoftmax_cross_entropy_{_dt}").restype = ctypes.c_int
    getattr(LIB, f"fastsoftmax_cross_entropy_{_dt}").argtypes = CE_ARGS


def addr(a):
    return None if a is None else a.ctypes.data


def sample_c(dt, x, *, xs=None, temperature=None, top_k=None, top_p=None, min_p=None, seeds=None, seed=0,
             row_offset=0, tokens=None, logprobs=None, threads=1, rows=None, n=None):
    rows = x.shape[0] if rows is None else rows
    n = x.shape[1] if n is None else n
    bad = np.full(1, -7, np.int64)
    st = getattr(LIB, f"fastsoftmax_sample_{dt}")(
        addr(x), rows, n, x.shape[1] if xs is None else xs, addr(temperature), addr(top_k), addr(top_p), addr(min_p),
        addr(seeds), seed, row_offset, addr(tokens), addr(logprobs), threads, addr(bad))
    return st, int(bad[0])


@pytest.mark.parametrize("dt", list(SAMPLE))
def test_sample_c_gives_the_python_tokens(dt):
    rng = np.random.default_rng(3)
    rows, n = 20, 3000
    x = (rng.standard_normal((rows, n)) * 3).astype(SAMPLE[dt])
    t = rng.uniform(0.3, 2, rows)
    k = rng.integers(1, 4000, rows)
    p = rng.uniform(0.2, 1, rows)
    m = rng.uniform(0, 0.2, rows)
    seeds = rng.integers(0, 2**63, rows).astype(np.uint64)
    tok = np.full(rows, -1, np.int64)
    lp = np.full(rows, 5.0)
    st, bad = sample_c(dt, x, temperature=t, top_k=k, top_p=p, min_p=m, seeds=seeds, row_offset=11, tokens=tok,
                       logprobs=lp, threads=3)
    assert st == OK and bad == -1
    want, wlp = fs.sample(x, temperature=t, top_k=k, top_p=p, min_p=m, seed=seeds, row_offset=11,
                          return_logprobs=True)
    np.testing.assert_array_equal(tok, want)
    np.testing.assert_array_equal(lp, wlp)
    # defaults (NULL parameters), one seed, no logprobs, a strided layout (every other row)
    tok2 = np.full(rows // 2, -1, np.int64)
    st, _ = sample_c(dt, x, xs=2 * n, rows=rows // 2, seed=99, tokens=tok2)
    assert st == OK
    np.testing.assert_array_equal(tok2, fs.sample(x[::2], seed=99))
    # a repeated row (stride 0)
    tok3 = np.full(5, -1, np.int64)
    assert sample_c(dt, x, xs=0, rows=5, seed=4, tokens=tok3, top_k=np.full(5, 3))[0] == OK
    np.testing.assert_array_equal(tok3, fs.sample(np.repeat(x[:1], 5, axis=0), seed=4, top_k=3))


BAD_SAMPLE = [
    ("temperature", -1.0), ("temperature", np.nan), ("temperature", np.inf), ("top_k", 0), ("top_p", 0.0),
    ("top_p", 1.5), ("top_p", np.nan), ("min_p", -0.1), ("min_p", 1.1),
]


@pytest.mark.parametrize("name,value", BAD_SAMPLE)
def test_sample_c_refuses_bad_parameters_and_writes_nothing(name, value):
    x = np.zeros((4, 10), np.float32)
    arr = np.full(4, 0.5 if name != "top_k" else 2, np.int64 if name == "top_k" else np.float64)
    arr[2] = value
    tok = np.full(4, -7, np.int64)
    lp = np.full(4, -7.0)
    st, bad = sample_c("f32", x, tokens=tok, logprobs=lp, **{name: arr})
    assert st == INVALID and bad == -1
    assert (tok == -7).all() and (lp == -7).all()


def test_sample_c_refuses_bad_rows_layouts_and_overlaps():
    x = np.zeros((4, 10), np.float32)
    tok = np.full(4, -7, np.int64)
    y = x.copy()
    y[2, 3] = np.nan
    assert sample_c("f32", y, tokens=tok) == (INVALID, 2)
    y = x.copy()
    y[1, :] = -np.inf
    y[3, 0] = np.inf
    assert sample_c("f32", y, tokens=tok) == (INVALID, 1)
    assert (tok == -7).all()
    assert sample_c("f32", x, tokens=None)[0] == INVALID
    assert sample_c("f32", x, tokens=tok, n=0)[0] == INVALID
    assert sample_c("f32", x, tokens=tok, threads=-1)[0] == INVALID
    assert sample_c("f32", x, tokens=tok, threads=100000)[0] == INVALID
    assert sample_c("f32", x, tokens=tok, rows=0)[0] == OK  # nothing to do
    # the last row's Philox counter, row_offset + 3, beyond 2**64 - 1
    assert sample_c("f32", x, tokens=tok, row_offset=2**64 - 3)[0] == INVALID
    assert (tok == -7).all()
    t2 = np.full(4, -7, np.int64)
    assert sample_c("f32", x, tokens=t2, row_offset=2**64 - 4)[0] == OK and (t2 >= 0).all()
    # tokens inside x, logprobs overlapping tokens
    st = getattr(LIB, "fastsoftmax_sample_f32")(x.ctypes.data, 4, 10, 10, None, None, None, None, None, 0, 0,
                                                x.ctypes.data + 8, None, 1, None)
    assert st == INVALID and (x == 0).all()
    st = getattr(LIB, "fastsoftmax_sample_f32")(x.ctypes.data, 4, 10, 10, None, None, None, None, None, 0, 0,
                                                tok.ctypes.data, tok.ctypes.data + 8, 1, None)
    assert st == INVALID and (tok == -7).all()
    # sizes that overflow: n * 4 beyond PTRDIFF_MAX, a stride that runs off the address space
    assert sample_c("f32", x, tokens=tok, n=2**62)[0] == INVALID
    assert sample_c("f32", x, tokens=tok, xs=2**61)[0] == INVALID
    assert sample_c("f32", x, tokens=tok, xs=-(2**61))[0] == INVALID
    assert (tok == -7).all()


@pytest.mark.parametrize("dt", list(CE))
def test_cross_entropy_c_gives_the_python_losses(dt):
    rng = np.random.default_rng(6)
    rows, n = 30, 777
    x = (rng.standard_normal((rows, n)) * 3).astype(CE[dt])
    t = rng.integers(0, n, rows)
    t[[2, 5]] = -100
    losses = np.full(rows, 9.0)
    total = np.zeros(1)
    count = np.zeros(1, np.int64)
    bad = np.full(1, -7, np.int64)
    st = getattr(LIB, f"fastsoftmax_cross_entropy_{dt}")(addr(x), rows, n, n, addr(t), -100, addr(losses),
                                                         addr(total), addr(count), 2, addr(bad))
    assert st == OK and bad[0] == -1 and count[0] == rows - 2
    want = fs.cross_entropy(x, t, reduction="none").astype(np.float64)
    tol = 1e-12 if dt == "f64" else 2e-6
    np.testing.assert_allclose(losses, want, rtol=tol, atol=tol)
    assert losses[2] == 0 and losses[5] == 0
    np.testing.assert_allclose(total[0] / count[0], fs.cross_entropy(x, t), rtol=tol)


def test_cross_entropy_c_refuses_bad_targets_and_writes_nothing():
    x = np.zeros((3, 4), np.float32)
    losses = np.full(3, 9.0)
    total = np.full(1, 9.0)
    count = np.full(1, 9, np.int64)
    bad = np.full(1, -7, np.int64)
    fn = LIB.fastsoftmax_cross_entropy_f32
    for t in ([0, 4, 1], [0, -1, 1]):
        tt = np.array(t, np.int64)
        st = fn(addr(x), 3, 4, 4, addr(tt), -100, addr(losses), addr(total), addr(count), 1, addr(bad))
        assert st == INVALID and bad[0] == 1
    assert (losses == 9).all() and total[0] == 9 and count[0] == 9
    tt = np.array([0, 1, 2], np.int64)
    assert fn(addr(x), 3, 4, 4, None, -100, addr(losses), None, None, 1, None) == INVALID
    assert fn(addr(x), 3, 4, 4, addr(tt), -100, x.ctypes.data, None, None, 1, None) == INVALID  # losses over x
    assert fn(addr(x), 3, 0, 4, addr(tt), -100, addr(losses), None, None, 1, None) == INVALID
    assert fn(addr(x), 3, 4, 4, addr(tt), -100, addr(losses), None, None, -2, None) == INVALID
    assert (losses == 9).all()
    # all ignored: sum 0, count 0 (the caller's mean is NaN, as PyTorch)
    ti = np.full(3, 7, np.int64)
    assert fn(addr(x), 3, 4, 4, addr(ti), 7, addr(losses), addr(total), addr(count), 1, None) == OK
    assert total[0] == 0 and count[0] == 0 and (losses == 0).all()
