"""Accuracy of every registry kernel against a np.longdouble reference (DESIGN.md section 4).

Bounds (x_i - max x is exact in float64/longdouble):

* float32 softmax: |y - r| / r <= 6e-7  + (|x_i - max x| + log2 n) * 2**-24
* float64 softmax: |y - r| / r <= 2e-15 + (|x_i - max x| + log2 n) * 2**-53
  (n the row length: the log2 n term bounds the rounding of the row's sum, whose
  summation tree is about log2 n deep; test_summation.py holds rows that need it)
  measured over outputs r >= finfo(dtype).tiny (the normal range); below it the error
  must stay under tiny in absolute terms.
* log_softmax: |y - r| <= 4 * eps * max(1, |x_i|, |log sigma|), log sigma = logsumexp(row).
* float16 / bfloat16 (computed in float32, rounded once): y lies in [round(r - b),
  round(r + b)], b the float32 bound above -- what rounding a float32 result that meets
  its bound can give -- and, for softmax, within 1 ulp of the output type of round(r).
  Softmax with 16-bit results computes its exps with Exp16 (passes.h), relative error
  <= 2^-13.25 (tools/derive_exp_16.py): its b adds 2 x 2^-13.25 (the exps of the element
  and of the sum) + 2^-20 (the single ln2 constant's factor between elements of a row).

Inputs from N(0, 1), U[-1000, 1000] and U[90, 100]; every row length from 1 to 2*1024+1
(two full cascade blocks of the widest unroll, 4 accumulators x 16 lanes x 16 steps, plus
one), length 0, and 4097, 65537 and 2**20.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import pytest
import scipy.special

import fastsoftmax
from conftest import KERNEL_DTYPES, KERNELS, kernel_id, record_accuracy, require_or_skip, run_kernel, usable_isas
from helpers import EXP16_SOFTMAX_BOUND, finfo, round_to, ulp

WIDEST_BLOCK = 4 * 16 * 16  # elements per cascade block of the widest tier (avx512 f32)
SMALL_LENGTHS = tuple(range(1, 2 * WIDEST_BLOCK + 2))  # 1 .. 2049, every one
LARGE_LENGTHS = (4097, 65537, 1 << 20)
INTENDED_LENGTHS = {0} | set(SMALL_LENGTHS) | set(LARGE_LENGTHS)

DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.standard_normal(n),
    "uniform-1000-1000": lambda rng, n: rng.uniform(-1000.0, 1000.0, n),
    "uniform-90-100": lambda rng, n: rng.uniform(90.0, 100.0, n),
}

LD = np.longdouble


def compute_dtype(dtype) -> np.dtype:
    """The dtype a kernel computes in: float32 for the 16-bit types."""
    return np.dtype(np.float32) if np.dtype(dtype).itemsize <= 4 else np.dtype(dtype)


def rel_base(dtype) -> float:
    return 6e-7 if compute_dtype(dtype) == np.float32 else 2e-15


def gap_coef(dtype) -> float:
    return 2.0**-24 if compute_dtype(dtype) == np.float32 else 2.0**-53


def ref_dtype(dtype):
    # float64 holds a float32 kernel's reference to ~1e-16, far below its 6e-7 bound; a
    # float64 kernel needs the longdouble reference itself.
    return np.float64 if compute_dtype(dtype) == np.float32 else LD


class Ref(NamedTuple):
    """Reference results for rows stored back to back, precomputed for one kernel dtype."""
    lengths: np.ndarray     # row lengths, in order
    starts: np.ndarray      # offset of each row in the flat buffers
    normal: np.ndarray      # indices of elements whose reference softmax is >= tiny
    subnormal: np.ndarray   # the other indices
    soft_n: np.ndarray      # reference softmax at `normal` (ref_dtype)
    soft64_n: np.ndarray    # the same in float64
    rel_bound_n: np.ndarray  # softmax relative-error bound at `normal`
    sub_hi: np.ndarray      # reference + tiny at `subnormal` (the output must not exceed it)
    log: np.ndarray         # reference log_softmax (ref_dtype)
    log_scale: np.ndarray   # max(1, |x_i|, |logsumexp(row)|)
    log_bound: np.ndarray   # 4 * eps * log_scale
    sum_tol: np.ndarray     # per row: bound on |sum(softmax row) - 1|
    soft_all: np.ndarray    # reference softmax of every element (float64)
    soft_b: np.ndarray      # its bound in the compute dtype, absolute


def reference(x: np.ndarray, lengths) -> Ref:
    """Longdouble softmax/log_softmax of rows stored back to back in x (vectorized).

    Everything that could meet subnormal float64 numbers (slow on x86) is done once here
    in longdouble, so the per-kernel checks stay cheap.
    """
    dt = x.dtype
    fi = finfo(compute_dtype(dt))  # float32's for the 16-bit types (flushed below its tiny)
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    rid = np.repeat(np.arange(len(lengths)), lengths)
    xl = x.astype(np.float64).astype(LD) if dt.itemsize == 2 else x.astype(LD)
    mx = np.maximum.reduceat(xl, starts)
    shifted = xl - mx[rid]
    e = np.exp(shifted)
    s = np.add.reduceat(e, starts)
    log_s = np.log(s)
    soft = e / s[rid]
    gap = -shifted  # |x_i - max x|, exact
    normal_mask = soft >= LD(fi.tiny)
    normal = np.flatnonzero(normal_mask)
    subnormal = np.flatnonzero(~normal_mask)
    rd = ref_dtype(dt)
    soft_n = soft[normal].astype(rd)
    log2n = np.log2(np.maximum(lengths, 1)).astype(np.float64)[rid]
    rel_bound_n = rel_base(dt) + (gap[normal].astype(np.float64) + log2n[normal]) * gap_coef(dt)
    sub_hi = (soft[subnormal] + LD(fi.tiny)).astype(np.float64)
    log = (shifted - log_s[rid]).astype(rd)
    lse = (mx + log_s).astype(np.float64)
    log_scale = np.maximum(np.maximum(1.0, np.abs(x.astype(np.float64))), np.abs(lse)[rid])
    weighted_gap = np.add.reduceat(soft * gap, starts).astype(np.float64)
    sum_tol = rel_base(dt) + gap_coef(dt) * (weighted_gap + np.log2(np.maximum(lengths, 1))) + lengths * float(fi.tiny)
    soft_b = soft * (LD(rel_base(dt)) + (gap + log2n.astype(LD)) * LD(gap_coef(dt))) * LD(1 + 1e-12) + LD(fi.tiny)
    return Ref(lengths, starts, normal, subnormal, soft_n, soft_n.astype(np.float64), rel_bound_n,
               sub_hi, log, log_scale, 4.0 * float(fi.eps) * log_scale, sum_tol,
               soft.astype(np.float64), soft_b.astype(np.float64))


@functools.lru_cache(maxsize=1)  # tests are ordered by (dtype, distribution): one case live at a time
def case(dtype: str, dist: str):
    rng = np.random.default_rng([list(DISTRIBUTIONS).index(dist), np.dtype(dtype).itemsize])
    lengths = SMALL_LENGTHS + LARGE_LENGTHS
    x = DISTRIBUTIONS[dist](rng, sum(lengths)).astype(dtype)
    return x, reference(x, lengths)


class Check(NamedTuple):
    ok: np.ndarray        # per element: within the bound
    err: np.ndarray       # error of the measured elements (relative for softmax, absolute for log)
    bound: np.ndarray     # their bound
    measured: np.ndarray  # their indices


def check_half(op: str, y: np.ndarray, ref: Ref) -> Check:
    """16-bit output: within the rounded float32 bracket (softmax: widened by Exp16's
    bound); softmax also within 1 ulp of the output type of the rounded reference.
    err: |y - round(r)| in ulps of the output type."""
    if op == "softmax":
        r, b = ref.soft_all, ref.soft_b + ref.soft_all * EXP16_SOFTMAX_BOUND
    else:
        r, b = ref.log.astype(np.float64), ref.log_bound * (1 + 1e-12)
    y64 = y.astype(np.float64)
    ok = (y64 >= round_to(r - b, y.dtype)) & (y64 <= round_to(r + b, y.dtype))
    r16 = round_to(r, y.dtype)
    err = np.abs(y64 - r16) / ulp(r16, y.dtype)
    if op == "softmax":
        ok &= (err <= 1.0) | (r < finfo(np.float32).tiny)  # below float32's tiny: flushed to 0
    return Check(ok, err, np.ones(y.shape), np.arange(y.size))


def check(op: str, y: np.ndarray, ref: Ref) -> Check:
    """Compare a kernel's output y (all rows back to back) with the reference."""
    if y.dtype.itemsize == 2:
        return check_half(op, y, ref)
    if op == "softmax":
        err = np.abs((y[ref.normal].astype(ref.soft_n.dtype) - ref.soft_n).astype(np.float64)) / ref.soft64_n
        ok = np.ones(y.shape, bool)
        ok[ref.normal] = err <= ref.rel_bound_n
        ys = y[ref.subnormal]
        ok[ref.subnormal] = (ys >= 0) & (ys <= ref.sub_hi)  # |y - r| <= tiny below the normal range
        return Check(ok, err, ref.rel_bound_n, ref.normal)
    err = np.abs((y.astype(ref.log.dtype) - ref.log).astype(np.float64))
    return Check(err <= ref.log_bound, err, ref.log_bound, np.arange(y.size))


def describe_worst(c: Check, x, y, where: str) -> str:
    bad = np.flatnonzero(~c.ok)
    if bad.size == 0:
        return f"{where}: ok"
    ratio = np.full(y.shape, np.inf)
    ratio[c.measured] = c.err / c.bound
    i = bad[np.argmax(ratio[bad])]
    return (f"{where}: {bad.size} elements over the bound; worst at {i}: x={x[i]!r} y={y[i]!r} "
            f"({ratio[i]:.2f}x the bound)")


# Tests are listed dtype -> distribution -> kernel, so case() holds one data set at a time.
ACCURACY_PARAMS = [
    pytest.param(k, dist, id=f"{kernel_id(k)}-{dist}")
    for dtype in KERNEL_DTYPES
    for dist in DISTRIBUTIONS
    for k in KERNELS
    if k["dtype"] == dtype
]


@pytest.mark.parametrize("k, dist", ACCURACY_PARAMS)
def test_kernel_accuracy_all_lengths(k, dist):
    require_or_skip(k["isa"])
    dt = np.dtype(k["dtype"])
    x, ref = case(k["dtype"], dist)
    covered = set()

    # Length 0: an empty row is an error (as in SciPy); zero rows of any length are fine.
    with pytest.raises(ValueError):
        run_kernel(k, np.empty((3, 0), dt), axis=-1)
    with np.errstate(all="ignore"), pytest.raises(ValueError):
        scipy.special.softmax(np.empty((3, 0), dt), axis=-1)
    empty_rows = run_kernel(k, np.empty((0, 7), dt), axis=-1)
    assert empty_rows.shape == (0, 7) and empty_rows.dtype == dt
    covered.add(0)

    # Every row through the kernel, each into its own slice of one output buffer.
    y = np.full(x.shape, np.nan, dt)
    for start, n in zip(ref.starts.tolist(), ref.lengths.tolist()):
        view = y[start:start + n]
        assert run_kernel(k, x[start:start + n], out=view) is view
        covered.add(n)
    assert covered == INTENDED_LENGTHS
    assert not np.isnan(y).any(), "some output element was not written (or is NaN)"

    c = check(k["op"], y, ref)
    if not c.ok.all():
        rid = np.repeat(np.arange(len(ref.lengths)), ref.lengths)
        bad_rows = sorted(set(ref.lengths[rid[~c.ok]].tolist()))
        pytest.fail(f"{kernel_id(k)} on {dist}: error over the bound in rows of length "
                    f"{bad_rows[:20]}{'...' if len(bad_rows) > 20 else ''}; "
                    + describe_worst(c, x, y, "all rows"))
    if c.err.size and dt.itemsize == 2:
        record_accuracy(k, f"{k['op']} error, ulp of {dt.name}", c.err.max(), c.err.max())
    elif c.err.size:
        scaled = c.err if k["op"] == "softmax" else c.err / ref.log_scale
        record_accuracy(k, "softmax rel. error" if k["op"] == "softmax" else "log_softmax err/scale",
                        scaled.max(), (c.err / c.bound).max())

    if k["op"] == "softmax" and dt.itemsize > 2:  # (16-bit rows: each element is checked above)
        # Rows sum to 1 within the per-element bounds (summed in higher precision).
        acc = LD if dt == np.float64 else np.float64
        dev = np.abs(np.add.reduceat(y.astype(acc), ref.starts).astype(np.float64) - 1.0)
        worst = int(np.argmax(dev / ref.sum_tol))
        assert np.all(dev <= ref.sum_tol), (
            f"row of length {ref.lengths[worst]} sums to 1 +- {dev[worst]:.3e} > {ref.sum_tol[worst]:.3e}")
        if dt == np.float32:
            assert dev.max() <= 1e-6


# ---- misaligned rows, writes outside the row ------------------------------------------

MISALIGNED_LENGTHS = (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1023, 1025, 2049)
OFFSETS = tuple(range(1, 16))
SENTINEL = -7.25  # never a softmax or log-softmax output of these rows
PAD = 40          # sentinel elements after the row (more than one widest vector)


@functools.lru_cache(maxsize=None)
def misaligned_rows(dtype: str):
    """{n: (row, Ref)} for the lengths above, from 3 * N(0, 1)."""
    rng = np.random.default_rng(1234)
    rows = {}
    for n in MISALIGNED_LENGTHS:
        row = (3.0 * rng.standard_normal(n)).astype(dtype)
        rows[n] = (row, reference(row, [n]))
    return rows


def test_misaligned_rows_and_no_writes_outside(kernel):
    k = kernel
    dt = np.dtype(k["dtype"])
    covered = set()
    for n, (row, ref) in misaligned_rows(k["dtype"]).items():
        for off in OFFSETS:
            # Input at element offset `off` of its buffer, output at 16 - off of another.
            xbuf = np.full(off + n + PAD, SENTINEL, dt)
            xbuf[off:off + n] = row
            xbuf_before = xbuf.copy()
            o_off = 16 - off
            ybuf = np.full(o_off + n + PAD, SENTINEL, dt)
            out = ybuf[o_off:o_off + n]
            run_kernel(k, xbuf[off:off + n], out=out)
            assert np.array_equal(xbuf, xbuf_before), f"n={n} offset={off}: the input was modified"
            assert np.all(ybuf[:o_off] == SENTINEL), f"n={n} offset={o_off}: wrote before the row"
            assert np.all(ybuf[o_off + n:] == SENTINEL), f"n={n} offset={o_off}: wrote past the row end"
            c = check(k["op"], out, ref)
            assert c.ok.all(), describe_worst(c, row, out, f"n={n} offset={off}")

            # In place (out=x) at the same misaligned offset.
            view = xbuf[off:off + n]
            assert run_kernel(k, view, out=view) is view
            assert np.all(xbuf[:off] == SENTINEL), f"in place n={n} offset={off}: wrote before the row"
            assert np.all(xbuf[off + n:] == SENTINEL), f"in place n={n} offset={off}: wrote past the row end"
            c = check(k["op"], view, ref)
            assert c.ok.all(), describe_worst(c, row, view, f"in place n={n} offset={off}")
            covered.add((n, off))
    assert covered == {(n, o) for n in MISALIGNED_LENGTHS for o in OFFSETS}


@pytest.mark.parametrize("dtype", KERNEL_DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_default_dispatch_meets_bounds(op, dtype):
    """The default call (algorithm="auto", active tier) meets the same bounds, 2-D rows too."""
    fn = getattr(fastsoftmax, op)
    for n, (row, ref) in misaligned_rows(dtype).items():
        y = fn(row)
        assert y.dtype == np.dtype(dtype) and y.shape == (n,)
        c = check(op, y, ref)
        assert c.ok.all(), describe_worst(c, row, y, f"n={n}")
        y2 = fn(np.stack([row, row]), axis=1)
        assert np.array_equal(y2[0], y) and np.array_equal(y2[1], y)


# ---- reads and writes stay inside the row (guard pages) ----------------------------------

GUARD_SCRIPT = r"""
import ctypes, mmap, sys
import numpy as np
import fastsoftmax
from fastsoftmax import _core
_tiers, _cap = _core.compiled_isas(), _core.isa_cap()
def usable(isa):  # runnable here and not above a FASTSOFTMAX_ISA cap (conftest.usable_isas)
    return _core.isa_runnable(isa) and not (_cap in _tiers and _tiers.index(isa) < _tiers.index(_cap))
try:
    import ml_dtypes  # bfloat16
except ImportError:
    ml_dtypes = None

PAGE = mmap.PAGESIZE
DATA_PAGES = 16
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

def guarded():
    # [guard page][DATA_PAGES pages][guard page]; touching a guard page is a SIGSEGV.
    m = mmap.mmap(-1, (DATA_PAGES + 2) * PAGE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    for off in (0, (DATA_PAGES + 1) * PAGE):
        assert libc.mprotect(addr + off, PAGE, 0) == 0, ctypes.get_errno()
    return m

xbuf, ybuf = guarded(), guarded()
lengths = list(range(1, 70)) + [127, 128, 129, 1023, 1024, 1025, 2047, 2048, 2049, 4097]
done = 0
for k in fastsoftmax.kernels():
    if not usable(k["isa"]) or (k["dtype"] == "bfloat16" and ml_dtypes is None):
        continue
    fn = fastsoftmax.softmax if k["op"] == "softmax" else fastsoftmax.log_softmax
    dt = np.dtype(k["dtype"])
    for n in lengths:
        nbytes = n * dt.itemsize
        end = (DATA_PAGES + 1) * PAGE           # first byte of the trailing guard page
        for start in (end - nbytes, PAGE):      # row ending at the trailing guard / starting after the leading one
            x = np.frombuffer(xbuf, dt, count=n, offset=start)
            y = np.frombuffer(ybuf, dt, count=n, offset=start)
            x[...] = np.linspace(-5, 5, n)       # frombuffer on a writable mmap is writable
            fn(x, out=y, algorithm=k["algorithm"], isa=k["isa"])
            fn(y, out=y, algorithm=k["algorithm"], isa=k["isa"])  # in place
            done += 1
print("checked", done)
"""


STREAM_ENV = "FASTSOFTMAX_STREAM_MIN_BYTES"  # rows at least this large use streaming stores

# Rows of every runnable kernel at misaligned offsets inside sentinel-filled buffers;
# prints whether anything outside a row changed and a digest of all the outputs.
STREAM_LENGTHS = list(range(1, 40)) + [63, 64, 65, 127, 129, 1023, 1025, 2049, 4097]
STREAM_OFFSETS = (0, 1, 5, 15)
SENTINEL_SCRIPT = r"""
import hashlib
import numpy as np
import fastsoftmax
from fastsoftmax import _core
_tiers, _cap = _core.compiled_isas(), _core.isa_cap()
def usable(isa):  # runnable here and not above a FASTSOFTMAX_ISA cap (conftest.usable_isas)
    return _core.isa_runnable(isa) and not (_cap in _tiers and _tiers.index(isa) < _tiers.index(_cap))
try:
    import ml_dtypes  # bfloat16
except ImportError:
    ml_dtypes = None

SENTINEL, PAD = -7.25, 40
lengths = LENGTHS
digest, bad, done = hashlib.sha256(), [], 0
rng = np.random.default_rng(77)
for k in fastsoftmax.kernels():
    if not usable(k["isa"]) or (k["dtype"] == "bfloat16" and ml_dtypes is None):
        continue
    fn = fastsoftmax.softmax if k["op"] == "softmax" else fastsoftmax.log_softmax
    dt = np.dtype(k["dtype"])
    for n in lengths:
        row = (3 * rng.standard_normal(n)).astype(dt)
        for off in OFFSETS:
            ybuf = np.full(off + n + PAD, SENTINEL, dt)
            y = ybuf[off:off + n]
            fn(row, out=y, algorithm=k["algorithm"], isa=k["isa"])
            xbuf = np.full(off + n + PAD, SENTINEL, dt)
            xbuf[off:off + n] = row
            v = xbuf[off:off + n]
            fn(v, out=v, algorithm=k["algorithm"], isa=k["isa"])
            if not (np.all(ybuf[:off] == SENTINEL) and np.all(ybuf[off + n:] == SENTINEL)
                    and np.all(xbuf[:off] == SENTINEL) and np.all(xbuf[off + n:] == SENTINEL)):
                bad.append(f"{k['name']} n={n} offset={off}")
            if not np.array_equal(y, v):
                bad.append(f"{k['name']} n={n} offset={off}: in place differs")
            digest.update(y.tobytes())
            done += 1
print("checked", done)
print("outside", len(bad), "; ".join(bad[:8]))
print("digest", digest.hexdigest())
""".replace("LENGTHS", repr(STREAM_LENGTHS)).replace("OFFSETS", repr(STREAM_OFFSETS))


def run_script(script: str, env_extra: dict):
    import os
    import subprocess
    import sys

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("streaming", [False, True], ids=["regular stores", "streaming stores"])
def test_reads_and_writes_stay_inside_the_row(streaming):
    """Every runnable kernel on rows that end at (or start right after) an inaccessible page:
    a read or write outside the row is a segmentation fault of the subprocess. With
    FASTSOFTMAX_STREAM_MIN_BYTES=0 every row takes the streaming-store write path, which the
    default threshold (half the last-level cache) keeps out of reach of the other tests."""
    from fastsoftmax import _core

    proc = run_script(GUARD_SCRIPT, {STREAM_ENV: "0" if streaming else str(1 << 62)})
    assert proc.returncode == 0, f"exit status {proc.returncode} (-11 = SIGSEGV):\n{proc.stderr[-2000:]}"
    runnable = sum(1 for k in KERNELS if k["isa"] in usable_isas())
    assert proc.stdout.split() == ["checked", str(runnable * (69 + 10) * 2)]


def test_streaming_stores_write_the_same_values_and_nothing_else():
    """The streaming write path (forced for every row) gives bitwise the results of the
    regular one, at misaligned offsets, in place too, touching nothing outside the row."""
    from fastsoftmax import _core

    results = {}
    for label, threshold in (("regular", str(1 << 62)), ("streaming", "0")):
        proc = run_script(SENTINEL_SCRIPT, {STREAM_ENV: threshold})
        assert proc.returncode == 0, f"{label}: exit status {proc.returncode}:\n{proc.stderr[-2000:]}"
        lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
        runnable = sum(1 for k in KERNELS if k["isa"] in usable_isas())
        assert lines["checked"] == str(runnable * len(STREAM_LENGTHS) * len(STREAM_OFFSETS))
        assert lines["outside"].startswith("0 "), f"{label}: wrote outside the row: {lines['outside']}"
        results[label] = lines["digest"]
    assert results["streaming"] == results["regular"], "streaming stores change the results"


# Jobs too big for the cache stream their output (lean_reload's non-temporal stores, the
# column kernel's pass 3, the last pass of two-pass, online and recompute rows) although
# each row alone would not. A threshold of 70000 bytes makes every job of the short rows
# below (input plus output: the batches have enough rows to pass it) such a job, while no
# row of lean_reload's length (at most 16384 float32, 8192 float64, 16384 16-bit elements
# on AVX-512: 64 KiB) reaches it alone. The long rows (more than one chunk, the row path
# outside the tiers) take a threshold of 600000 bytes: a row alone stays below it, their
# batch of three passes it.
JOB_STREAM_CASES = {
    "short rows": (70000, (1, 7, 16, 33, 64, 100, 128, 200, 256, 511, 512, 777, 1024, 1025, 2048, 3001, 4096, 6001,
                           8192, 12001, 16384), True),
    "long rows": (600000, (65537, 70001), False),
}
JOB_SCRIPT = r"""
import hashlib
import numpy as np
import fastsoftmax
from fastsoftmax import _core
_tiers, _cap = _core.compiled_isas(), _core.isa_cap()
def usable(isa):
    return _core.isa_runnable(isa) and not (_cap in _tiers and _tiers.index(isa) < _tiers.index(_cap))
try:
    import ml_dtypes  # bfloat16
except ImportError:
    ml_dtypes = None

SENTINEL, PAD = -7.25, 40
digest, bad, done = hashlib.sha256(), [], 0
rng = np.random.default_rng(91)
def check(name, y_buf, lo, hi, y):
    global done
    if not (np.all(y_buf[:lo] == SENTINEL) and np.all(y_buf[hi:] == SENTINEL)):
        bad.append(name)
    digest.update(np.ascontiguousarray(y).tobytes())
    done += 1
for k in fastsoftmax.kernels():
    if not usable(k["isa"]) or (k["dtype"] == "bfloat16" and ml_dtypes is None):
        continue
    fn = fastsoftmax.softmax if k["op"] == "softmax" else fastsoftmax.log_softmax
    dt = np.dtype(k["dtype"])
    kw = dict(algorithm=k["algorithm"], isa=k["isa"])
    # Batches of contiguous rows (the last axis), y at element offsets from its buffer.
    for n in LENGTHS:
        rows = max(ROWS if n < 2048 else min(ROWS, 11), MIN_BYTES // (2 * n * dt.itemsize) + 1)  # past the threshold
        x = (3 * rng.standard_normal((rows, n))).astype(dt)
        x[min(5, rows - 2), n // 2] = np.nan  # rows outside the fast range inside a streamed batch
        x[min(9, rows - 1), :] = -np.inf
        for off in (0, 3):
            for threads in (1, 2):
                y_buf = np.full(off + rows * n + PAD, SENTINEL, dt)
                y = y_buf[off:off + rows * n].reshape(rows, n)
                fn(x, axis=-1, out=y, threads=threads, **kw)
                check(f"{k['name']} rows n={n} off={off} t={threads}", y_buf, off, off + rows * n, y)
    # Along a non-last axis: (axis, columns), y's columns starting at any element offset.
    for n, cols in ((3, 80), (37, 48), (300, 67), (129, 200)) if COLUMNS and k["algorithm"].startswith("three-pass") else ():
        x = (3 * rng.standard_normal((n, cols))).astype(dt)
        x[n // 2, 17] = np.inf
        for off in (0, 1, 5, 15):
            y_buf = np.full(off + n * cols + PAD, SENTINEL, dt)
            y = y_buf[off:off + n * cols].reshape(n, cols)
            fn(x, axis=0, out=y, threads=1 + off % 2, **kw)
            check(f"{k['name']} columns {n}x{cols} off={off}", y_buf, off, off + n * cols, y)
print("checked", done)
print("outside", len(bad), "; ".join(bad[:8]))
print("digest", digest.hexdigest())
"""


@pytest.mark.parametrize("case", list(JOB_STREAM_CASES))
def test_jobs_beyond_the_cache_stream_the_same_values_and_nothing_else(case):
    """Batches of rows of every algorithm, and softmax along a non-last axis, in jobs that
    stream their output: bitwise the results of the same jobs with regular stores, with y
    at every alignment, rows outside the fast range among the streamed ones, one and two
    threads, and nothing written outside y."""
    min_bytes, lengths, columns = JOB_STREAM_CASES[case]
    script = (JOB_SCRIPT.replace("LENGTHS", repr(lengths)).replace("MIN_BYTES", str(min_bytes))
              .replace("ROWS", "37" if columns else "3").replace("COLUMNS", repr(columns)))
    results = {}
    for label, threshold in (("regular", str(1 << 62)), ("streaming", str(min_bytes))):
        proc = run_script(script, {STREAM_ENV: threshold})
        assert proc.returncode == 0, f"{label}: exit status {proc.returncode}:\n{proc.stderr[-2000:]}"
        lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
        usable = [k for k in KERNELS if k["isa"] in usable_isas()]
        three_pass = sum(1 for k in usable if k["algorithm"].startswith("three-pass"))
        assert lines["checked"] == str(len(usable) * len(lengths) * 2 * 2 + (three_pass * 4 * 4 if columns else 0))
        assert lines["outside"].startswith("0 "), f"{label}: wrote outside y: {lines['outside']}"
        results[label] = lines["digest"]
    assert results["streaming"] == results["regular"], "streaming stores change the results"
