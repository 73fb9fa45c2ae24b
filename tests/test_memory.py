"""Memory: a call allocates its output and nothing else; calls do not leak; a request that
cannot be allocated is a MemoryError, never a crash (docs/bad-input.md, "Sizes").

The RSS checks run in a fresh interpreter (subprocess) so that other tests' allocations and
the pytest machinery do not blur them. Linux only (they read /proc/self).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax
from conftest import SANITIZED
from helpers import peak_traced

OPS = ("softmax", "log_softmax")
FUNCS = {"softmax": fastsoftmax.softmax, "log_softmax": fastsoftmax.log_softmax}
SLACK = 64 * 1024  # bytes: Python objects of the call itself (views, tuples, the result object)
MiB = 1 << 20

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
# AddressSanitizer reserves terabytes of address space, keeps freed memory in quarantine and
# aborts on an operator new it cannot satisfy; RSS and address-space limits mean nothing there.
not_under_asan = pytest.mark.skipif("address" in SANITIZED, reason="not meaningful under AddressSanitizer")

as_strided = np.lib.stride_tricks.as_strided


# For child processes: peak_extra(call) is how much a call raised the peak RSS (VmHWM,
# reset through /proc/self/clear_refs), and its result (indented as the tests' code).
PEAK_RSS = """
        import numpy as np, fastsoftmax
        def status(key):
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        def peak_extra(call):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            base = status("VmRSS")
            res = call()
            return status("VmHWM") - base, res
"""


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter; fails the test on a crash (a signal)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode >= 0, f"the child died of signal {-proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


# ---- peak memory of one call ------------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("op", OPS)
def test_peak_traced_memory_is_the_output(op, threads):
    """8 MiB of C-contiguous float32: the call allocates the 8 MiB result and nothing more
    (tracemalloc sees NumPy's allocations); with out= it allocates nothing. Many rows, one
    long row (split into chunks across threads) and the whole array (axis=None)."""
    fn = FUNCS[op]
    rng = np.random.default_rng(3)
    for shape, axis in [((64, 32768), -1), ((1, 1 << 21), 1), ((1 << 21,), None), ((64, 32768), None)]:
        x = rng.standard_normal(shape).astype(np.float32)
        assert x.nbytes == 8 * MiB
        extra, res = peak_traced(lambda: fn(x, axis=axis, threads=threads))
        assert x.nbytes <= extra <= x.nbytes + SLACK, \
            f"{shape} axis={axis}: {extra - x.nbytes} bytes beyond the output"
        del res
        out = np.empty_like(x)
        extra, _ = peak_traced(lambda: fn(x, axis=axis, out=out, threads=threads))
        assert extra <= SLACK, f"{shape} axis={axis}, out=: {extra} bytes of temporaries"
        extra, _ = peak_traced(lambda: fn(out, axis=axis, out=out, threads=threads))
        assert extra <= SLACK, f"{shape} axis={axis}, in place: {extra} bytes of temporaries"


@linux_only
@not_under_asan
def test_peak_rss_is_the_output():
    """The same in resident memory, which also sees what C++ allocates: the peak RSS of a
    call (VmHWM, reset through /proc/self/clear_refs) grows by the output alone, and by
    nothing with out=, for contiguous input on one or several threads."""
    code = PEAK_RSS + """
        x = np.random.default_rng(0).standard_normal((256, 1 << 16)).astype(np.float32)  # 64 MiB
        out = np.empty_like(x)
        for threads in (1, 2):  # warm up: worker threads exist, out's pages are resident
            fastsoftmax.softmax(x, axis=1, out=out, threads=threads)
            fastsoftmax.softmax(x.reshape(-1), out=out.reshape(-1), threads=threads)
        for threads in (1, 2):
            for name, xv, ov, axis in [("rows", x, out, 1), ("one row", x.reshape(-1), out.reshape(-1), None)]:
                extra, y = peak_extra(lambda: fastsoftmax.softmax(xv, axis=axis, threads=threads))
                print(f"new {name} {threads} {extra}")
                del y
                extra, _ = peak_extra(lambda: fastsoftmax.log_softmax(xv, axis=axis, out=ov, threads=threads))
                print(f"out {name} {threads} {extra}")
        print("nbytes", x.nbytes)
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    nbytes = int(lines[-1][1])
    for kind, name1, name2, threads, extra in [(ln[0], ln[1], ln[2] if len(ln) == 5 else "", ln[-2], int(ln[-1]))
                                               for ln in lines[:-1]]:
        limit = (nbytes if kind == "new" else 0) + 2 * MiB
        assert extra <= limit, f"{kind} {name1} {name2} threads={threads}: peak RSS grew by {extra / MiB:.1f} MiB"


@linux_only
@not_under_asan
def test_statistics_of_strided_rows_copy_no_row():
    """logsumexp / softmax_stats of a strided or broadcast row read it where it lies: the
    peak RSS grows by a chunk-sized buffer per thread at most, not by a copy of the row
    (the issue: logsumexp(np.broadcast_to(np.float32(0), (2**28,))) peaked ~1 GiB higher).
    One long row, 1-d and 2-d, a step of 2 and a zero stride, 1 and 2 threads; the values
    are bitwise those of a contiguous copy."""
    code = PEAK_RSS + """
        n = 1 << 25
        base = np.random.default_rng(0).standard_normal(2 * n).astype(np.float32)  # 256 MiB
        cases = {"step 2": base[::2], "broadcast": np.broadcast_to(np.float32(0.5), (n,)),
                 "2-d step 2": base.reshape(1, -1)[:, ::2], "2-d broadcast": np.broadcast_to(np.float32(0.5), (2, n))}
        for threads in (1, 2):  # warm up: worker threads and their buffers exist
            fastsoftmax.logsumexp(base[:1 << 20][::2], threads=threads)
        for name, v in cases.items():
            want = fastsoftmax.logsumexp(np.ascontiguousarray(v), axis=-1)
            for threads in (1, 2):
                extra, got = peak_extra(lambda: fastsoftmax.logsumexp(v, axis=-1, threads=threads))
                assert np.array_equal(got, want), (name, got, want)
                print(f"{name.replace(' ', '_')} logsumexp {threads} {extra}")
                extra, s = peak_extra(lambda: fastsoftmax.softmax_stats(v, axis=-1, threads=threads))
                assert np.array_equal(s.logsumexp(), fastsoftmax.softmax_stats(np.ascontiguousarray(v)).logsumexp())
                print(f"{name.replace(' ', '_')} stats {threads} {extra}")
        print("row_bytes", n * 4)
    """
    proc = run_python(code, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    row_bytes = int(lines[-1][1])
    for name, what, threads, extra in lines[:-1]:
        assert int(extra) <= 8 * MiB, (f"{what} of a {name} row ({row_bytes / MiB:.0f} MiB), threads={threads}: "
                                       f"peak RSS grew by {int(extra) / MiB:.1f} MiB")


# ---- no growth over many calls ------------------------------------------------------------------

@linux_only
@not_under_asan
def test_many_calls_do_not_grow_rss():
    """100,000 small calls, then a few thousand of every kind (shapes, dtypes, axes, out=,
    in place, threads, failing calls): the resident set stays where it was."""
    code = """
        import os, numpy as np, fastsoftmax
        from fastsoftmax import _core
        page = os.sysconf("SC_PAGE_SIZE")
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        x = np.random.default_rng(1).standard_normal((1, 128)).astype(np.float32)
        out = np.empty_like(x)
        def small(n):
            for i in range(n):
                fastsoftmax.softmax(x, axis=-1)
                fastsoftmax.log_softmax(x, axis=-1, out=out)
        rng = np.random.default_rng(2)
        inputs = [rng.standard_normal(s).astype(d) for s, d in [
            ((3, 5), np.float64), ((7,), np.float32), ((2, 3, 4), np.float16), ((4, 9), np.int16),
            ((2, 70000), np.float32), ((5, 6), np.longdouble), ((0, 3), np.float64)]]
        def mixed(n):
            for i in range(n):
                a = inputs[i % len(inputs)]
                fn = fastsoftmax.softmax if i % 2 else fastsoftmax.log_softmax
                fn(a, axis=-1)
                fn(a.T, axis=0 if a.ndim > 1 else None, threads=2)
                o = np.empty(a.shape, fn(a, axis=-1).dtype)
                fn(a, axis=-1, out=o)
                fn(a[..., ::-1], axis=-1)
                for bad in ({"axis": 9}, {"isa": "sse2"}, {"algorithm": "fast"}, {"out": o[..., :0]}):
                    try:
                        fn(a, **bad)
                    except (ValueError, TypeError):
                        pass
                try:  # an exception thrown in C++ and translated by the bindings
                    _core.run("softmax", "two-pass", a.astype(np.float32), o.astype(np.float64))
                except (ValueError, TypeError):
                    pass
        small(20000); mixed(500)  # warm up: caches, pools, arenas
        r0 = rss()
        small(100000)
        r1 = rss()
        mixed(3000)
        r2 = rss()
        print(r0, r1, r2)
    """
    proc = run_python(code, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r0, r1, r2 = map(int, proc.stdout.split())
    assert r1 - r0 <= 1 * MiB, f"100,000 small calls grew RSS by {(r1 - r0) / MiB:.2f} MiB"
    assert r2 - r1 <= 2 * MiB, f"3,000 rounds of mixed calls grew RSS by {(r2 - r1) / MiB:.2f} MiB"


# ---- MemoryError ------------------------------------------------------------------------------

def huge(dtype, shape):
    """A zero-stride view: any shape, no memory (read-only, as np.broadcast_to makes)."""
    v = as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape))
    v.flags.writeable = False
    return v


@pytest.mark.parametrize("op", OPS)
def test_unallocatable_result_is_a_memory_error(op):
    """Results (and converted copies) beyond the address space: NumPy's MemoryError, raised
    before anything is computed, on every path that allocates one."""
    fn = FUNCS[op]
    n = 1 << 46  # 2^46 elements: 256 TiB of float32, more than the 128 TiB of user address space
    cases = [
        ("last axis (fast path)", huge(np.float32, (n,)), {}),
        ("rows, last axis", huge(np.float64, (1 << 23, 1 << 23)), {"axis": -1}),
        ("non-last axis", huge(np.float32, (1 << 23, 1 << 23)), {"axis": 0}),
        ("all axes", huge(np.float32, (1 << 23, 1 << 23)), {"axis": None}),
        ("int16: converted copy", huge(np.int16, (n,)), {}),
        ("float16: computed in float32", huge(np.float16, (n,)), {}),
        ("axis=()", huge(np.float32, (n,)), {"axis": ()}),
        ("tuple axes", huge(np.float32, (1 << 15, 1 << 16, 1 << 15)), {"axis": (0, 2)}),
    ]
    for name, x, kw in cases:
        with pytest.raises(MemoryError):
            fn(x, **kw)
    # The process is fine afterwards.
    assert np.allclose(fn(np.zeros(4)), [0.25] * 4 if op == "softmax" else np.log([0.25] * 4))


NATIVE_ALLOCATION_FAILURE = """
    import resource, numpy as np, fastsoftmax
    def vmsize():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize"):
                    return int(line.split()[1]) * 1024
    n, rows = 1 << 24, 4
    # Strided rows go through a per-task row buffer in C++ (n floats, 64 MiB): with the
    # address space capped just above what is mapped now, that allocation fails.
    x = np.broadcast_to(np.float32(0.5), (rows, n))
    holder = np.full((rows, 2 * n), -3.5, np.float32)
    out = holder[:, ::2]
    fastsoftmax.softmax(np.ones((8, 1 << 17), np.float32), axis=1, threads=2)  # the pool's threads exist
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vmsize() + (32 << 20), hard))
    results = []
    for threads in (1, 2):
        try:
            fastsoftmax.softmax(x, axis=1, out=out, threads=threads)
            results.append("no error")
        except MemoryError:
            results.append("MemoryError")
        except BaseException as e:
            results.append(type(e).__name__)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    print(*results)
    print("untouched", bool((holder == -3.5).all()))
    fastsoftmax.softmax(x, axis=1, out=out, threads=2)  # and the next call works
    print("after", bool(np.allclose(out, 1.0 / n)), bool((holder[:, 1::2] == -3.5).all()))
"""


@linux_only
@not_under_asan
def test_native_allocation_failure_is_a_memory_error():
    """A C++ allocation that fails (std::bad_alloc, on the calling thread or in a worker) is a
    MemoryError; out is untouched, and the thread pool serves the next call."""
    proc = run_python(NATIVE_ALLOCATION_FAILURE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["MemoryError MemoryError", "untouched True", "after True True"], proc.stdout


# A call needs scratch memory on each of its threads (the row buffer of strided rows, the
# tile of a non-last axis, the chunk statistics of long rows, 16-bit reload's middle row).
# The address space is capped with room for one thread's block only: with threads=2 the
# call must fail before writing anything (it used to write the rows of the thread that got
# its block, then raise), and with threads=1 the same cap must let it run.
SCRATCH_FOR_ONE_THREAD = """
    import resource, sys, numpy as np, fastsoftmax
    def vmsize():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize"):
                    return int(line.split()[1]) * 1024
    MiB = 1 << 20
    rng = np.random.default_rng(0)
    case = sys.argv[1]
    if case.startswith("long rows"):  # the generic row runner, strided out rows
        rows, n = 4, 1 << 22
        half = case.endswith("float16")
        dtype = np.float16 if half else np.float32
        x = rng.standard_normal((rows, n)).astype(dtype)
        holder = np.full((rows, 2 * n), -3.5, dtype)
        out = holder[:, ::2]
        # float16 three-pass reload: the gathered row (n x 2 bytes) and its float32 middle row.
        kw = dict(axis=-1, algorithm="three-pass-reload") if half else dict(axis=-1)
        block = n * 6 if half else n * 4
    else:  # a non-last axis of a C-order array: tiles of 128 rows, 2 MiB a thread
        x = rng.standard_normal((4096, 1024)).astype(np.float32)
        holder = out = np.full(x.shape, -3.5, np.float32)
        # two-pass: the transposing tile walk; auto (three-pass): the column kernel, whose
        # copy shares the tile's memory.
        kw = dict(axis=0, algorithm="two-pass" if case == "tiles" else "auto")
        block = 2 * MiB
    # The planner's hand-off cost fixed as in the suite (conftest.py), so that threads=2
    # really splits the call (a measured cost on a loaded machine may keep it on one).
    fastsoftmax._core.set_handoff_costs(5000.0, 5000.0)
    # The pool's threads exist; a contiguous call needs no scratch, so none is cached yet.
    fastsoftmax.softmax(np.ones((8, 1 << 17), np.float32), axis=1, threads=2)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vmsize() + block * 3 // 2, hard))
    for threads in (2, 1):
        try:
            fastsoftmax.softmax(x, out=out, threads=threads, **kw)
            result = "ok"
        except MemoryError:
            result = "MemoryError"
        except BaseException as e:
            result = type(e).__name__
        untouched = holder.min() == holder.max() == -3.5  # (no temporary array: under the cap)
        print(threads, result, "untouched" if untouched else "written")
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    want = fastsoftmax.softmax(x, threads=1, **kw)
    again = fastsoftmax.softmax(x, threads=2, **kw)
    print("same", bool(np.array_equal(out, want)), bool(np.array_equal(again, want)))
"""


@linux_only
@not_under_asan
def test_scratch_of_every_thread_is_allocated_before_anything_is_written():
    """With room for one thread's scratch block, a two-thread call raises MemoryError and
    leaves out untouched; a one-thread call under the same limit computes the result (so
    the limit really was one block); afterwards two threads give the same bits. Long rows
    with strided out rows (float32 two-pass, float16 three-pass reload: the probe's case,
    4 x 2^22 instead of 8 x 2^24), and a non-last axis (tile walk, column kernel)."""
    cases = ["long rows", "long rows float16", "tiles", "columns"]
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRATCH_FOR_ONE_THREAD), case],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for case in cases]
    for case, p in zip(cases, procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"{case}: exit {p.returncode}\n{err}"
        assert out.split("\n")[:3] == ["2 MemoryError untouched", "1 ok written", "same True True"], (case, out)


THREAD_CREATION_FAILURE = """
    import resource, numpy as np, fastsoftmax
    def vmsize():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize"):
                    return int(line.split()[1]) * 1024
    x = np.random.default_rng(0).standard_normal((4, 1 << 18)).astype(np.float32)
    want = fastsoftmax.softmax(x, axis=1, threads=1)  # no pool thread started yet
    out = np.full(x.shape, -3.5, np.float32)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # No room for a worker's stack: the pool cannot start a thread.
    resource.setrlimit(resource.RLIMIT_AS, (vmsize() + (1 << 20), hard))
    try:
        fastsoftmax.softmax(x, axis=1, out=out, threads=2)
        result = "ok"
    except BaseException as e:
        result = f"{type(e).__name__}: {e}"
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    print(result)
    print("same", bool(np.array_equal(out, want)))
"""


@linux_only
@not_under_asan
def test_thread_start_failure_falls_back_to_fewer_threads():
    """When the pool cannot start a worker thread (address-space or thread limits), a call
    still computes its result -- which does not depend on the thread count -- on the threads
    it has, instead of failing with RuntimeError('Resource temporarily unavailable')."""
    proc = run_python(THREAD_CREATION_FAILURE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["ok", "same True"], proc.stdout
