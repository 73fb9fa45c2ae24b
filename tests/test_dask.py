"""fastsoftmax.dask: softmax, log_softmax and logsumexp of Dask arrays, the axes over any chunks.

Run with the synchronous scheduler and with a distributed.LocalCluster of 2 worker processes
on loopback, compared with the NumPy-side fastsoftmax (bitwise where every row is in one
block, within DESIGN section 4's bounds where the rows span chunks; hypothesis picks the
chunking). Dask is an optional dependency (the ``dask`` extra): without it, the tests that
need it skip, naming the missing package; the import tests run regardless.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsoftmax
from test_stats import DISTRIBUTIONS, assert_log_softmax_as_exact_path, assert_within_design_bounds, extreme_rows

try:
    import dask
    import dask.array as da
except ImportError:
    dask = da = None
try:
    import distributed
except ImportError:
    distributed = None

needs_dask = pytest.mark.skipif(da is None, reason="dask is not installed (pip install \"fastsoftmax[dask]\")")
needs_distributed = pytest.mark.skipif(
    da is None or distributed is None,
    reason="distributed is not installed (pip install \"fastsoftmax[dask]\")" if da is not None
    else "dask is not installed (pip install \"fastsoftmax[dask]\")")

if da is not None:
    import fastsoftmax.dask as fsd


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


# ---- the optional dependency ---------------------------------------------------------------

def test_import_fastsoftmax_does_not_import_dask():
    r = run_python("""
        import sys, numpy as np, fastsoftmax
        fastsoftmax.softmax(np.zeros(3)); fastsoftmax.logsumexp(np.zeros(3))
        fastsoftmax.softmax_from_stats(np.zeros(3), fastsoftmax.softmax_stats(np.zeros(3)))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        print(loaded)
        sys.exit(1 if loaded else 0)
    """)
    assert r.returncode == 0, f"import fastsoftmax loaded {r.stdout.strip()} {r.stderr}"


def test_without_dask_the_import_error_names_the_extra():
    r = run_python("""
        import sys
        sys.modules["dask"] = None; sys.modules["dask.array"] = None   # as if not installed
        import fastsoftmax
        try:
            import fastsoftmax.dask
        except ImportError as e:
            print(e)
            sys.exit(0)
        sys.exit(1)
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fastsoftmax[dask]" in r.stdout


# ---- synchronous scheduler ---------------------------------------------------------------

def compute(a):
    return a.compute(scheduler="synchronous")


OPS = {"softmax": (fastsoftmax.softmax, "softmax"), "log_softmax": (fastsoftmax.log_softmax, "log_softmax")}


@needs_dask
@pytest.mark.parametrize("op", list(OPS))
def test_rows_in_one_chunk_are_bitwise_the_numpy_call(op):
    x = np.random.default_rng(0).standard_normal((10, 300)).astype(np.float32)
    fn, name = OPS[op]
    for chunks, axis in (((3, 300), 1), ((10, 50), 0), ((4, 300), -1), ((10, 300), None)):
        y = getattr(fsd, name)(da.from_array(x, chunks=chunks), axis=axis)
        assert isinstance(y, da.Array) and y.chunks == da.from_array(x, chunks=chunks).chunks
        np.testing.assert_array_equal(compute(y), fn(x, axis=axis), err_msg=f"chunks={chunks} axis={axis}")


@needs_dask
def test_rows_of_unknown_chunk_sizes():
    """Rows selected by a mask (chunk sizes unknown until computed), the softmax axis in
    one chunk: the NumPy call's result."""
    x = np.random.default_rng(4).standard_normal((9, 40)).astype(np.float32)
    d = da.from_array(x, chunks=(3, 40))
    picked = d[d[:, 0] > -0.5]
    assert any(np.isnan(c) for c in picked.chunks[0])
    want = x[x[:, 0] > -0.5]
    for op, (fn, name) in OPS.items():
        np.testing.assert_array_equal(compute(getattr(fsd, name)(picked, axis=1)), fn(want, axis=1), err_msg=op)


@needs_dask
@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_rows_over_several_chunks(op, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 5000)) * 8).astype(dtype)
    fn, name = OPS[op]
    dx = da.from_array(x, chunks=(4, 700))
    y = compute(getattr(fsd, name)(dx, axis=1, split_every=3))
    assert_within_design_bounds(op, y, x, "chunks (4, 700)")
    # against the NumPy-side call: both within the bounds of the truth
    assert_within_design_bounds(op, fn(x, axis=1), x)
    # the other axes: axis 0 over chunks, a tuple, the whole array
    for axis in (0, (0, 1), None):
        want = fn(x, axis=axis)
        got = compute(getattr(fsd, name)(dx, axis=axis))
        tol = dict(rtol=4e-6, atol=0) if dtype == np.float32 else dict(rtol=1e-13, atol=0)
        if op == "log_softmax":
            tol = dict(rtol=0, atol=8 * np.finfo(dtype).eps * max(1.0, float(np.max(np.abs(want)))))
        np.testing.assert_allclose(got, want, err_msg=f"axis={axis}", **tol)


@needs_dask
@given(data=st.data())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_chunking_within_design_bounds(data):
    """Hypothesis picks the chunks along (and across) the softmax axis and the reduction tree."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    op = data.draw(st.sampled_from(list(OPS)), label="op")
    dist = data.draw(st.sampled_from(list(DISTRIBUTIONS)), label="dist")
    rows = data.draw(st.integers(1, 5), label="rows")
    n = data.draw(st.integers(1, 2000), label="n")
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=10), label="cuts")) - {n})
    col_chunks = tuple(np.diff([0, *cuts, n]).tolist())
    row_chunk = data.draw(st.integers(1, rows), label="row chunk")
    split_every = data.draw(st.integers(2, 6), label="split_every")
    x = DISTRIBUTIONS[dist](np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), (rows, n)).astype(dtype)
    dx = da.from_array(x, chunks=(row_chunk, col_chunks))
    y = compute(getattr(fsd, OPS[op][1])(dx, axis=-1, split_every=split_every))
    assert_within_design_bounds(op, y, x, f"chunks {dx.chunks}")
    lse = compute(fsd.logsumexp(dx, axis=1, split_every=split_every))
    want = fastsoftmax.logsumexp(x, axis=1)
    eps = float(np.finfo(dtype).eps)
    assert lse.dtype == want.dtype
    assert np.all(np.abs(lse.astype(np.float64) - want) <= 4 * eps * np.maximum(1, np.abs(want)))


@needs_dask
def test_logsumexp_like_the_numpy_call():
    rng = np.random.default_rng(2)
    x = rng.uniform(-100, 100, (4, 6, 50))
    dx = da.from_array(x, chunks=(3, 2, 17))
    for axis in (None, 0, 1, 2, -1, (0, 2), (1, 2), (0, 1, 2), ()):
        for keepdims in (False, True):
            want = fastsoftmax.logsumexp(x, axis=axis, keepdims=keepdims)
            got = compute(fsd.logsumexp(dx, axis=axis, keepdims=keepdims))
            assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype
            np.testing.assert_allclose(got, want, rtol=4e-16 * 4, err_msg=f"axis={axis} keepdims={keepdims}")
    # one chunk along the axis: the same bits as the NumPy-side call
    np.testing.assert_array_equal(compute(fsd.logsumexp(da.from_array(x, chunks=(1, 2, 50)), axis=2)),
                                  fastsoftmax.logsumexp(x, axis=2))


@needs_dask
@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.int32, np.uint8, np.bool_, np.longdouble],
                         ids=lambda d: np.dtype(d).name)
def test_result_dtypes_as_the_numpy_calls(dtype):
    x = (np.arange(40) % 7).reshape(4, 10).astype(dtype)
    dx = da.from_array(x, chunks=(2, 3))
    for keepdims in (False, True):
        want = fastsoftmax.logsumexp(x, axis=1, keepdims=keepdims)
        got = fsd.logsumexp(dx, axis=1, keepdims=keepdims)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(compute(got).astype(np.float64), want.astype(np.float64), rtol=1e-3)
    if dtype == np.bool_:
        with pytest.raises(TypeError, match="boolean"):
            fsd.softmax(dx, axis=1)
        return
    if dtype == np.longdouble:
        with pytest.raises(TypeError, match="float32/float64"):
            fsd.softmax(dx, axis=1)  # rows over several chunks: statistics are float32/float64 only
        dx = da.from_array(x, chunks=(2, 10))
    for op in OPS:
        want = OPS[op][0](x, axis=1)
        got = getattr(fsd, op)(dx, axis=1)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(compute(got).astype(np.float64), want.astype(np.float64), rtol=1e-3, atol=1e-6)


@needs_dask
def test_bfloat16_like_the_numpy_calls():
    """fastsoftmax.softmax takes bfloat16 arrays; so does the Dask version (it once rejected
    them as 'not real numbers')."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = (np.random.default_rng(4).standard_normal((4, 10)) * 3).astype(ml_dtypes.bfloat16)
    for chunks in ((2, 10), (2, 3)):
        dx = da.from_array(x, chunks=chunks)
        for op in OPS:
            want = OPS[op][0](x, axis=1)
            got = getattr(fsd, op)(dx, axis=1)
            assert got.dtype == want.dtype
            np.testing.assert_allclose(compute(got).astype(np.float64), want.astype(np.float64), rtol=1e-2,
                                       atol=1e-2)
        want = fastsoftmax.logsumexp(x, axis=1)
        got = fsd.logsumexp(dx, axis=1)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(compute(got).astype(np.float64), want.astype(np.float64), rtol=1e-2)


@needs_dask
def test_special_values_across_chunks():
    x = np.random.default_rng(3).standard_normal((6, 40))
    x[0, 5] = np.nan
    x[1, 30] = np.inf
    x[2, :20] = -np.inf           # a whole chunk of -inf: the identity of the merge
    x[3, :] = -np.inf             # a whole row
    x[4, 35] = 1e7                # beyond the fast range (exact statistics) in one chunk
    dx = da.from_array(x, chunks=(2, 10))
    for op in OPS:
        got = compute(getattr(fsd, op)(dx, axis=1))
        want = OPS[op][0](x, axis=1)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=op)
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-13, atol=1e-300)
    lse = compute(fsd.logsumexp(dx, axis=1))
    want = fastsoftmax.logsumexp(x, axis=1)
    np.testing.assert_array_equal(np.isnan(lse), np.isnan(want))
    np.testing.assert_allclose(lse[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-15)


@needs_dask
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_extreme_rows_across_chunks(dtype):
    """Rows up to float max (both signs; test_stats.extreme_rows) with the axis over several
    chunks: what the statistics path gives on one machine -- the softmax within DESIGN
    section 4's bound, log_softmax as accurate as the exact path, logsumexp within 4 eps
    (float64: also beyond 1.2457e308, where sum(exp) has no float64 exponent)."""
    x = extreme_rows(dtype, np.random.default_rng(33), n=12)
    for chunks in ((4, 3), (7, (1, 5, 6))):
        dx = da.from_array(x, chunks=chunks)
        assert_within_design_bounds("softmax", compute(fsd.softmax(dx, axis=1, split_every=2)), x, f"{chunks}")
        assert_log_softmax_as_exact_path(compute(fsd.log_softmax(dx, axis=1)), x, f"{chunks}")
        lse = compute(fsd.logsumexp(dx, axis=1, split_every=2))
        assert lse.dtype == dtype
        xl = x.astype(np.longdouble)
        mx = np.max(xl, axis=1)
        ref = mx + np.log(np.sum(np.exp(xl - mx[:, None]), axis=1))
        eps = float(np.finfo(dtype).eps)
        assert np.all(np.abs((lse.astype(np.longdouble) - ref).astype(np.float64))
                      <= 4 * eps * np.maximum(1, np.abs(ref.astype(np.float64)))), (lse, ref)
    big = da.from_array(np.array([[1.25e308, 0.0, 3.0, 1.2e308], [-1.25e308, -1.25e308, -1.3e308, -np.inf]]),
                        chunks=(1, 1))
    np.testing.assert_array_equal(compute(fsd.logsumexp(big, axis=1)), fastsoftmax.logsumexp(big.compute(), axis=1))
    assert np.all(np.isfinite(compute(fsd.logsumexp(big, axis=1))))


@needs_dask
def test_errors():
    with pytest.raises(ValueError, match="empty axis"):
        fsd.softmax(da.zeros((3, 0), chunks=(1, 1)), axis=1)
    with pytest.raises(TypeError, match="complex"):
        fsd.logsumexp(da.zeros(3, dtype=complex))
    with pytest.raises(ValueError, match="threads"):
        fsd.softmax(da.zeros(3), threads=-1)
    with pytest.raises(np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError):
        fsd.log_softmax(da.zeros((2, 3)), axis=2)
    assert compute(fsd.logsumexp(da.zeros((3, 0), chunks=(1, 1)), axis=1)).tolist() == [-np.inf] * 3


@needs_dask
def test_logsumexp_weights_are_not_supported_and_say_so():
    """fastsoftmax.logsumexp takes b=; the Dask version refuses it, with the way out."""
    x = da.zeros((2, 4), chunks=(1, 2))
    for b in (np.ones(4), da.ones((2, 4), chunks=(1, 2)), 1.0):
        with pytest.raises(NotImplementedError, match=r"does not take weights \(b=\).*x \+ da.log\(b\)"):
            fsd.logsumexp(x, axis=1, b=b)
    # the way out it names gives the weighted sum, for positive weights
    w = np.arange(1.0, 9.0).reshape(2, 4)
    got = compute(fsd.logsumexp(x + da.log(da.from_array(w, chunks=(1, 2))), axis=1))
    np.testing.assert_allclose(got, fastsoftmax.logsumexp(np.zeros((2, 4)), axis=1, b=w), rtol=1e-15)


@needs_dask
def test_graphs_of_different_inputs_do_not_collide():
    a = da.from_array(np.zeros((2, 6)), chunks=(1, 2))
    b = da.from_array(np.arange(12.0).reshape(2, 6), chunks=(1, 2))
    for make in (lambda x: fsd.softmax(x, axis=1), lambda x: fsd.log_softmax(x.rechunk((1, 6)), axis=1),
                 lambda x: fsd.logsumexp(x, axis=1), lambda x: fsd.softmax(x, axis=0)):
        ya, yb = make(a), make(b)
        assert ya.name != yb.name
        ra, rb = dask.compute(ya, yb, scheduler="synchronous")
        np.testing.assert_array_equal(ra, compute(make(a)))
        np.testing.assert_array_equal(rb, compute(make(b)))
        assert not np.array_equal(ra, rb)


@needs_dask
def test_docstring_examples():
    import doctest

    assert doctest.testmod(fsd, raise_on_error=False).failed == 0
    for name in fsd.__all__:
        assert ">>>" in (getattr(fsd, name).__doc__ or ""), f"fastsoftmax.dask.{name} has no example"


@needs_dask
def test_docs_example_runs():
    from test_stats import doc_blocks

    blocks = [b for b in doc_blocks("docs/stats.md") if "import dask" in b and "LocalCluster" not in b]
    assert blocks
    for b in blocks:
        exec(compile(b, "docs/stats.md", "exec"), {})


@needs_dask
def test_numpy_input_and_0d():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(compute(fsd.softmax(x)), fastsoftmax.softmax(x))
    assert compute(fsd.logsumexp(da.from_array(np.float32(2.0)))) == np.float32(2.0)


# ---- a distributed cluster: 2 worker processes on loopback ----------------------------------

@pytest.fixture(scope="module")
def client():
    if da is None or distributed is None:
        pytest.skip("distributed is not installed (pip install \"fastsoftmax[dask]\")")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None, worker_dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@needs_distributed
def test_cluster_runs_in_two_other_processes(client):
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids


@needs_distributed
def test_cluster_results_are_the_synchronous_bits(client):
    """The same graph on worker processes gives the same bits as the synchronous scheduler."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((16, 20_000)) * 5).astype(np.float32)
    x[3, 17] = np.nan
    dx = da.from_array(x, chunks=(8, 3000))
    for op in OPS:
        arr = getattr(fsd, op)(dx, axis=1, threads=1)
        got = client.compute(arr, sync=True)
        np.testing.assert_array_equal(got, compute(arr), err_msg=op)
        ok = np.ones(x.shape[0], bool)
        ok[3] = False
        assert_within_design_bounds(op, got[ok], x[ok], f"{op} on the cluster")
        assert np.all(np.isnan(got[3]))
    lse = fsd.logsumexp(dx, axis=1)
    np.testing.assert_array_equal(client.compute(lse, sync=True), compute(lse))
    one_chunk = fsd.softmax(da.from_array(x, chunks=(4, 20_000)), axis=1)
    np.testing.assert_array_equal(client.compute(one_chunk, sync=True), fastsoftmax.softmax(x, axis=1))
