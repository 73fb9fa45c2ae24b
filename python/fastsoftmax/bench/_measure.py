"""Buffers and the timing loop: hot input, rotating pre-faulted outputs, per-call timing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._impls import HALF_DTYPES

Shape = Union[int, Sequence[int]]


def _shape(shape: Shape) -> Tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)

PAGE = 4096
#: Byte offset (mod 4 KiB) of every output buffer; the input sits at offset 0. Half a page
#: apart, loads of x[i] and stores to y[i] never alias in the low 12 address bits (4K
#: aliasing would otherwise add a layout-dependent penalty to in-cache rows).
OUTPUT_PAGE_OFFSET = 2048


def aligned_empty(n: int, dtype: np.dtype, page_offset: int = 0) -> np.ndarray:
    """An uninitialised 1-D array whose data starts `page_offset` bytes past a 4 KiB boundary."""
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    raw = np.empty(nbytes + 2 * PAGE, np.uint8)
    addr = raw.__array_interface__["data"][0]
    start = (-addr) % PAGE + page_offset
    return raw[start:start + nbytes].view(dtype)


def make_input(shape: Shape, dtype: np.dtype, kind: str, seed: int) -> np.ndarray:
    """The benchmark input (a row of n, or a C-contiguous batch of rows): N(0, 1) ("normal")
    or U(-1000, 1000) ("uniform", as in XNNPACK's benchmarks).

    float16 and bfloat16 inputs are the float32 input (the same values as --dtype float32
    with the same seed) rounded to the half type, in chunks.
    """
    dtype = np.dtype(dtype)
    shp = _shape(shape)
    n = int(np.prod(shp))
    rng = np.random.default_rng(seed)
    x = aligned_empty(n, dtype, 0)
    if dtype.name in HALF_DTYPES:
        step = 1 << 22
        for a in range(0, n, step):
            m = min(step, n - a)
            if kind == "uniform":
                v = rng.uniform(-1000.0, 1000.0, m).astype(np.float32)
            else:
                v = rng.standard_normal(m, dtype=np.float32)
            x[a:a + m] = v.astype(dtype)
    elif kind == "uniform":
        x[...] = rng.uniform(-1000.0, 1000.0, n)
    else:
        x[...] = rng.standard_normal(n, dtype=dtype.type)
    return x.reshape(shp)


def rotation_count(nbytes: int, llc: int, max_buffers: int, max_memory: int, forced: Optional[int] = None) -> int:
    """How many output buffers to rotate through for rows of `nbytes`.

    Enough that they total at least twice the last-level cache (ceil(2*LLC/nbytes)),
    capped at `max_buffers` (so small rows stay in cache, as they would in a real
    program that reuses its output) and at `max_memory` bytes in all; at least 1.
    """
    if forced is not None:
        return max(1, int(forced))
    k = max(1, math.ceil(2 * llc / max(nbytes, 1)))
    k = min(k, max(1, max_buffers))
    k = min(k, max(1, max_memory // max(nbytes, 1)))
    return k


def make_outputs(shape: Shape, dtype: np.dtype, count: int) -> List[np.ndarray]:
    """`count` output buffers of `shape`, written once so no page fault is timed."""
    shp = _shape(shape)
    n = int(np.prod(shp))
    outs = []
    for _ in range(count):
        o = aligned_empty(n, dtype, OUTPUT_PAGE_OFFSET)
        o.fill(0)
        outs.append(o.reshape(shp))
    return outs


@dataclass
class Timing:
    times_ns: np.ndarray  # one entry per timed call
    reps: int
    last_out: int = 0     # index of the output buffer the last timed call wrote
    next_cursor: int = 0  # the buffer to write next

    @property
    def median(self) -> float:
        return float(np.median(self.times_ns))

    @property
    def min(self) -> float:
        return float(self.times_ns.min())

    @property
    def max(self) -> float:
        return float(self.times_ns.max())

    @property
    def p10(self) -> float:
        return float(np.percentile(self.times_ns, 10))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.times_ns, 90))


def time_calls(call: Callable[[np.ndarray], object], outs: List[np.ndarray], touch: Callable[[], object],
               prepare: Optional[Callable[[np.ndarray], object]] = None, *, min_time: float = 0.2,
               min_reps: int = 5, max_reps: int = 10000, repeat: Optional[int] = None,
               warmup: int = 2, cursor: int = 0, max_time: Optional[float] = None,
               min_floor: int = 1) -> Timing:
    """Time `call(out)` once per repetition, rotating `out` through `outs`.

    Before every timed call the input is touched (`touch()`, not timed) and
    `prepare(out)` runs (not timed; e.g. ONNX Runtime's output binding). The number of
    repetitions makes the timed calls last about `min_time` seconds in all, within
    [min_reps, max_reps], and at most about `max_time` seconds (but at least `min_floor`
    repetitions) when single calls are slow, unless `repeat` fixes it. Buffers are used in turn from index
    `cursor` (pass the previous Timing's next_cursor so every call writes the least
    recently written buffer).
    """
    perf = time.perf_counter_ns
    k = len(outs)
    est: List[int] = []
    if repeat is None:
        warmup = max(1, warmup)  # the first call also estimates the time per call
    for i in range(warmup):
        o = outs[(cursor + i) % k]
        touch()
        if prepare is not None:
            prepare(o)
        t0 = perf()
        call(o)
        est.append(perf() - t0)
        if est[-1] > 100_000_000:  # a call of 0.1 s or more is warm after one call
            break
    warmup = len(est)
    if repeat is not None:
        reps = max(1, int(repeat))
    else:
        per_call = max(min(est), 1) if est else 1
        reps = int(min(max(math.ceil(min_time * 1e9 / per_call), min_reps), max_reps))
        if max_time is not None and reps * per_call > max_time * 1e9:  # huge, slow calls: fewer reps
            reps = max(min_floor, int(max_time * 1e9 / per_call))
    times = np.empty(reps, np.int64)
    start = cursor + warmup  # keep rotating from where the warm-up stopped
    if prepare is None:
        for i in range(reps):
            o = outs[(start + i) % k]
            touch()
            t0 = perf()
            call(o)
            times[i] = perf() - t0
    else:
        for i in range(reps):
            o = outs[(start + i) % k]
            touch()
            prepare(o)
            t0 = perf()
            call(o)
            times[i] = perf() - t0
    return Timing(times, reps, (start + reps - 1) % k, (start + reps) % k)
