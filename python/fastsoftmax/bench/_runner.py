"""The sweep: for each N and dtype, time the roofline patterns, the algorithms and the peers."""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple, Union

import numpy as np

from .. import _core
from . import _impls, _machine, _measure, _report, _suites
from ._suites import Case


@dataclass
class BenchConfig:
    sizes: List[int]
    dtypes: List[str] = field(default_factory=lambda: ["float32"])
    ops: List[str] = field(default_factory=lambda: ["softmax"])
    algorithms: List[str] = field(default_factory=lambda: list(_impls.ALGORITHMS) + ["auto"])
    isas: List[str] = field(default_factory=list)          # empty: the active tier
    patterns: bool = True
    peers: List[str] = field(default_factory=lambda: list(_impls.PEERS))
    threads: Union[int, List[int]] = field(default_factory=lambda: [1])  # every row is measured at each count
    shapes: List[Tuple[int, ...]] = field(default_factory=list)  # batch shapes (rows, n), besides the sizes
    causal_shapes: List[Tuple[int, ...]] = field(default_factory=list)  # (..., L, L) with a causal mask
    suite: Optional[str] = None                            # the preset that chose the shapes (--suite)
    new_output: bool = True                                # the "auto (new output)" / "torch (new output)" rows
    default_threads: bool = True                           # the "auto (default threads)" row beside threads=1
    out_dir: Optional[str] = "bench-results"
    repeat: Optional[int] = None
    min_time: float = 0.2                                  # seconds of timed calls per measurement
    min_reps: int = 9
    max_time: float = 10.0                                 # seconds of timed calls per measurement, at most
    max_reps: int = 10000
    max_buffers: int = 4
    max_memory: int = 4 << 30                              # bytes of rotating output buffers, at most
    buffers: Optional[int] = None                          # force the rotation count
    input: str = "normal"
    seed: int = 0
    api: str = "public"                                    # "public": fastsoftmax.softmax; "core": _core.run
    rounds: int = 3                                        # interleaved rounds over the implementations
    validate: bool = True
    plot: bool = True
    progress: bool = True
    quick: bool = False
    command_line: List[str] = field(default_factory=list)


METHODOLOGY = {
    "timer": "time.perf_counter_ns around each single call; median, min, max, p10, p90 over the repetitions",
    "rounds": (
        "for each N the implementations are timed in interleaved rounds (A B C ... A B C ...), each round "
        "re-warmed, so drift and noise from other processes spread over all of them instead of biasing one"),
    "hot_input": "the input row is read once (the 'read' memory pattern, not timed) before every timed call",
    "output_rotation": (
        "each call writes the next of K pre-faulted output buffers, K = min(ceil(2*LLC/row_bytes), "
        "max_buffers, max_memory/row_bytes): once a row is large the buffers total at least twice the "
        "last-level cache, so out-of-cache rows really miss; small rows rotate through a few buffers that "
        "stay in cache"),
    "alignment": "input 4 KiB-aligned, outputs at 2 KiB past a 4 KiB boundary (no 4K aliasing between x[i] and y[i])",
    "traffic": (
        "GB/s = (reads + writes) * N * itemsize / median time, with reads/writes per element from the "
        "algorithm's access pattern (two-pass and online 2R+1W, three-pass-recompute 3R+1W, "
        "three-pass-reload 3R+2W; the same for log_softmax). A write counts as one transfer: "
        "write-allocate (read-for-ownership) traffic is NOT counted."),
    "traffic_model": (
        "'real': the implementation's own access pattern; 'effective': the 2R+1W minimum any softmax needs "
        "(NumPy, SciPy, PyTorch, whose passes and temporaries are not counted); 'assumed': ONNX Runtime, "
        "counted as MLAS's three-pass-reload 3R+2W"),
    "dtypes": (
        "float32 and float64 natively; float16 and bfloat16 (ml_dtypes.bfloat16, optional) are stored in 2 bytes "
        "and computed in float32 by fastsoftmax. A half-type input is the float32 input of the same seed rounded "
        "to the type. Bytes per element (GB/s, traffic, rotation sizes) use the dtype's itemsize. PyTorch gets "
        "bfloat16 tensors as zero-copy views (int16 -> torch.bfloat16); NumPy and SciPy run their ufuncs on the "
        "half type (for bfloat16 through ml_dtypes' ufuncs), computing in it"),
    "validation": (
        "float32/float64: every output row sums to 1 (log_softmax: its exp) within 1e-3, summed in float64. "
        "float16/bfloat16: every element is compared with the float64 softmax of the (half) input correctly "
        "rounded to the dtype, in units in the last place of the dtype: fastsoftmax within 1 ulp (its contract), "
        "peers within 8 ulp (they may compute in the half type). Also accepted: for bfloat16, an absolute error "
        "up to 2^-126 (results below float32's normal range, flushed by a float32 computation); for log_softmax, "
        "fastsoftmax within the float32 bound 4*2^-24*max(1, |x|, |y|) and peers within 8 ulp of max(1, |x|, |y|) "
        "(outputs near 0 are differences of larger numbers). A row failing it is marked '!'; the exit status "
        "is 1 only when a fastsoftmax row fails"),
    "roofline": (
        "x_roofline = median time / median time of the memory-only pattern (same N, dtype; tier roofline_isa) "
        "with the same access pattern and trivial arithmetic: two-pass and online vs 'two-pass' (R; R+W), "
        "three-pass-reload vs 'three-pass-reload' (R; R+W; R+W in place), three-pass-recompute vs "
        "'three-pass-recompute' (R; R; R+W); auto vs the pattern of the algorithm it picked; NumPy and SciPy "
        "vs 'two-pass' (the minimum); PyTorch and ONNX Runtime vs 'three-pass-reload' (what their kernels do)"),
    "threads": (
        "every row is measured at each thread count t of --threads (default 1): fastsoftmax with threads=t passed "
        "per call (at most t: a call splits only where its work pays for the hand-off, README Threads); PyTorch with "
        "torch.set_num_threads(t); ONNX Runtime with one session per t (intra_op_num_threads=t); NumPy and SciPy "
        "are single-threaded and measured at t=1 only"),
    "multicore_roofline": (
        "at t threads each memory-only pattern runs over t contiguous slices of the arrays at once (slice "
        "boundaries on 4 KiB multiples; one slice on the calling thread, the others on t-1 persistent "
        "ThreadPoolExecutor workers; run_pattern releases the GIL); the t-thread rows are compared with the "
        "t-thread patterns. Below 2^17 elements (where fastsoftmax's small calls stay on one thread) the patterns are "
        "not split: the t-thread rows are compared with the one-thread patterns (roofline_threads = 1)"),
    "new_output": (
        "'auto (new output)' times fastsoftmax.softmax(x, threads=t) and 'torch (new output)' torch.softmax(x, -1), "
        "both without out=, as most users call them: every call allocates its result, faults its pages in and "
        "releases the previous result. They are not counted as peers in the 'best peer' comparisons; SciPy "
        "always allocates its result"),
    "scaling": (
        "with several thread counts: for the largest N (and each --shape), per implementation, ns/elem at each t, "
        "speedup = time at the smallest t (normally 1) / time at t, and the fraction of the t-thread memory "
        "roofline reached = roofline time / time (1 = at the bound)"),
}


class _LinePrinter:
    """The progress display when tqdm is missing: one line on stderr per finished N."""

    def __init__(self, total: int, stream: TextIO):
        self.total, self.n, self.stream, self.postfix, self.last = total, 0, stream, "", -1e9

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_postfix_str(self, s: str) -> None:
        now = time.monotonic()
        if s != self.postfix and now - self.last >= 1.0:  # at most a line a second
            self.postfix, self.last = s, now
            print(f"[{self.n}/{self.total}] {s}", file=self.stream, flush=True)

    def write(self, s: str, file: Optional[TextIO] = None) -> None:
        print(s, file=file or sys.stdout, flush=True)

    def close(self) -> None:
        pass


class _Silent(_LinePrinter):
    def set_postfix_str(self, s: str) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _Silent(total, sys.stderr)
    try:
        from tqdm import tqdm
    except ImportError:
        return _LinePrinter(total, sys.stderr)
    return tqdm(total=total, desc="fastsoftmax-bench", unit="run", file=sys.stderr, dynamic_ncols=True,
                leave=False, smoothing=0.1)


def _fmt_n(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def _thread_list(threads: Union[int, Sequence[int]]) -> List[int]:
    ts = [threads] if isinstance(threads, int) else list(threads)
    out = sorted({int(t) for t in ts})
    if not out or out[0] < 1:
        raise ValueError(f"thread counts must be >= 1, got {threads!r}")
    return out


def _cases(cfg: BenchConfig) -> List[Case]:
    """The shapes to time: one row of each size, then the batch shapes, then the causal ones."""
    cases: List[Case] = [Case((n,)) for n in cfg.sizes]
    wanted = [Case(s) for s in cfg.shapes] + [Case(s, causal=True) for s in cfg.causal_shapes]
    for c in wanted:
        if not any(tuple(c) == tuple(o) and c.causal == o.causal for o in cases):
            cases.append(c)
    return cases


def shape_label(shape: Sequence[int]) -> str:
    """'2^20' for one row of 2^20, '4096x32000' (or '64x2^20') for a batch, '16x512x512 causal'
    for attention scores with a causal mask."""
    if len(shape) == 1:
        return _fmt_n(int(shape[0]))
    return ("x".join(_fmt_n(int(d)) if d > 4096 and d & (d - 1) == 0 else str(int(d)) for d in shape)
            + _suites.label_suffix(shape))


def _peer_runs_at(peer: _impls.Peer, t: int) -> bool:
    return peer.multithreaded or t == 1


def _patterns_split(elements: int, t: int) -> bool:
    return t > 1 and elements >= _impls.MIN_PARALLEL_ELEMENTS


def _block_size(cfg: BenchConfig, elements: int, t: int, threads: List[int], tiers: List[str],
                peers: List[_impls.Peer], fs_ok: bool = True, patterns_ok: bool = True) -> int:
    k = len(cfg.algorithms) * len(tiers) if fs_ok else 0
    if cfg.patterns and patterns_ok and (t == 1 or _patterns_split(elements, t) or 1 not in threads):
        k += len(_impls.PATTERNS)
    if cfg.new_output and "auto" in cfg.algorithms and fs_ok:
        k += 1
    for p in peers:
        if _peer_runs_at(p, t):
            k += 1
        if cfg.new_output and p.name == "torch":
            k += 1
    return k


def run_benchmark(cfg: BenchConfig, out: TextIO = sys.stdout) -> Dict[str, Any]:
    """Run the sweep described by `cfg`; print the table; write results (unless out_dir is None).

    Returns the result document (what results.json holds).
    """
    started = time.perf_counter()
    threads = _thread_list(cfg.threads)
    cfg.threads = threads
    env = _machine.set_thread_env(max(threads))
    machine = _machine.machine_info()
    llc = machine["llc_bytes_used"]
    active = machine["active_isa"] or "scalar"
    runnable = machine["runnable_isas"]
    isas = cfg.isas or [active]
    cap = _core.isa_cap()
    skipped: List[Dict[str, str]] = []
    tiers = []
    for isa in isas:
        if isa not in machine["compiled_isas"]:
            skipped.append({"impl": f"*@{isa}", "reason": f"tier {isa!r} is not compiled into this build"})
        elif isa not in runnable:
            skipped.append({"impl": f"*@{isa}", "reason": f"this CPU (or OS) cannot run tier {isa!r}"})
        elif cap in machine["compiled_isas"] and (machine["compiled_isas"].index(isa)
                                                  < machine["compiled_isas"].index(cap)):
            skipped.append({"impl": f"*@{isa}", "reason": f"tier {isa!r} is above the cap FASTSOFTMAX_ISA={cap!r}"})
        elif isa not in tiers:
            tiers.append(isa)
    roofline_isa = active

    peers: List[_impls.Peer] = []
    missing_peers: List[str] = []
    for name in cfg.peers:
        peer = _impls.PEER_CLASSES[name](threads[0])
        try:
            peer.load()
        except _impls.Skip as e:
            skipped.append({"impl": name, "reason": str(e)})
            if name in _impls.PEER_PACKAGES:
                missing_peers.append(name)
            continue
        peers.append(peer)
        if not peer.multithreaded and threads != [1]:
            skipped.append({"impl": name, "threads": [t for t in threads if t != 1],
                            "reason": "single-threaded: measured at threads=1 only"
                                      + ("" if 1 in threads else " (1 is not in --threads)")})
    ftz_after_peers = dict(_core.ftz_daz())

    # The dtypes: bfloat16 needs ml_dtypes; a core built without a dtype's kernels (or patterns) times its peers only.
    dtypes: List[Tuple[str, np.dtype]] = []
    fs_dtypes, pattern_dtypes = _impls.core_kernel_dtypes(), _impls.core_pattern_dtypes()
    for name in cfg.dtypes:
        try:
            dtypes.append((name, _impls.resolve_dtype(name)))
        except _impls.Skip as e:
            skipped.append({"impl": "*", "dtype": name, "reason": str(e)})
            continue
        if name not in fs_dtypes:
            skipped.append({"impl": "fastsoftmax", "dtype": name,
                            "reason": f"this build of fastsoftmax has no {name} kernels (_core.kernels())"})
        if cfg.patterns and name not in pattern_dtypes:
            skipped.append({"impl": "mem:*", "dtype": name,
                            "reason": f"this build of fastsoftmax has no {name} memory-only patterns "
                                      "(_core.patterns()): no roofline"})

    cases = _cases(cfg)
    total = sum(_block_size(cfg, int(np.prod(c)), t, threads, tiers, peers, name in fs_dtypes, name in pattern_dtypes)
                for c in cases for t in threads for name, _ in dtypes) * len(cfg.ops) * max(1, cfg.rounds)

    doc: Dict[str, Any] = {
        "schema": "fastsoftmax-bench/2",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command_line": cfg.command_line,
        "config": {k: v for k, v in asdict(cfg).items() if k != "command_line"},
        "machine": machine,
        "versions": _machine.versions(),
        "dtypes": {name: {"itemsize": dt.itemsize, "fastsoftmax": name in fs_dtypes,
                          "patterns": name in pattern_dtypes} for name, dt in dtypes},
        "peer_versions": {p.name: p.version for p in peers},
        "threads": {"requested": threads, "env": env,
                    "fastsoftmax": "threads=t passed per call (at most t threads: a call splits only where its work pays "
                                   "for the hand-off); 'auto (default threads)' passes none",
                    "fastsoftmax_default_threads": _core.get_num_threads(),
                    "single_threaded_peers": [p.name for p in peers if not p.multithreaded],
                    "multicore_roofline": "t contiguous slices at once on a ThreadPoolExecutor (2^17 elements "
                                          "and more; below that the one-thread patterns)"},
        "ftz_daz": {"at_start": machine["ftz_daz"], "after_loading_peers": ftz_after_peers},
        "roofline_isa": roofline_isa,
        "tiers": tiers,
        "methodology": METHODOLOGY,
        "write_allocate_counted": False,
        "rows": [],
        "skipped": skipped,
        "missing_peers": missing_peers,
    }
    rows: List[Dict[str, Any]] = doc["rows"]
    print(_report.header(doc), file=out, flush=True)
    label_width = max(6, max(len(shape_label(c)) for c in cases))

    bar = _progress(total, cfg.progress)
    skipped_keys = set()
    first_block = True
    pools: Dict[int, _impls.PatternPool] = {}
    try:
        for case in cases:
            elements = int(np.prod(case))
            label = shape_label(case)
            for dtype_name, dtype in dtypes:
                fs_ok, patterns_ok = dtype_name in fs_dtypes, dtype_name in pattern_dtypes
                nbytes = elements * dtype.itemsize
                k = _measure.rotation_count(nbytes, llc, cfg.max_buffers, cfg.max_memory, cfg.buffers)
                bar.set_postfix_str(f"{label} {dtype_name}: allocating {k} x {_report.fmt_bytes(nbytes)}")
                x = _measure.make_input(case, dtype, cfg.input, cfg.seed)
                if case.causal:
                    _suites.apply_causal_mask(x)
                outs = _measure.make_outputs(case, dtype, k)
                touch = _impls.make_toucher(x, roofline_isa)
                for op in cfg.ops:
                    one_thread_patterns: Optional[Dict[str, float]] = None
                    reference = _reference_maker(op, x) if cfg.validate and _impls.is_half(dtype) else None
                    for t in threads:
                        split = _patterns_split(elements, t)
                        with_patterns = (cfg.patterns and patterns_ok
                                         and (t == 1 or split or one_thread_patterns is None))
                        pool = None
                        if with_patterns and split:
                            pool = pools.get(t)
                            if pool is None:
                                pool = pools[t] = _impls.PatternPool(t)
                        block = _measure_block(cfg, op, case, dtype, x, outs, touch, tiers, peers, roofline_isa,
                                               bar, skipped, skipped_keys, t, with_patterns, pool,
                                               fs_ok=fs_ok, reference=reference)
                        if t == 1 or not split:
                            patterns = {r["algorithm"]: r["median_ns"] for r in block if r["kind"] == "roofline"}
                            if patterns and (t == 1 or one_thread_patterns is None):
                                one_thread_patterns = patterns
                        _report.add_ratios(block, fallback=None if with_patterns else one_thread_patterns)
                        rows.extend(block)
                        text = _report.table(block, show_op=len(cfg.ops) > 1, header=first_block,
                                             label_width=label_width)
                        first_block = False
                        bar.write(text, file=out)
                    del reference
                del x, outs, touch
                gc.collect()
    finally:
        bar.close()
        for pool in pools.values():
            pool.close()

    doc["ftz_daz"]["at_end"] = dict(_core.ftz_daz())
    doc["summary"] = (_report.summary(rows, tiers) + _report.dtype_summary(rows, tiers)
                      + _report.default_threads_summary(rows) + _report.shapes_summary(rows, tiers))
    if len(threads) > 1:
        doc["scaling"] = _report.scaling(rows, tiers, threads)
    doc["wall_time_s"] = round(time.perf_counter() - started, 2)
    print(_report.footer(doc), file=out, flush=True)
    if cfg.out_dir:
        paths = _report.write_outputs(doc, cfg.out_dir, plot=cfg.plot)
        doc["files"] = paths
        for p in paths.values():
            print(f"wrote {p}", file=out)
    return doc


def _reference_maker(op: str, x: np.ndarray) -> Callable[[], _impls.Reference]:
    """The float64 reference of (op, x), computed on first use (not timed) and kept for the other rows."""
    held: List[_impls.Reference] = []

    def get() -> _impls.Reference:
        if not held:
            held.append(_impls.Reference(op, x))
        return held[0]

    return get


def _row(op: str, dtype: np.dtype, shape: Tuple[int, ...], impl, timing: _measure.Timing, buffers: int,
         roofline_isa: str, err: Optional[str], threads: int,
         vinfo: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    reads, writes = impl.traffic
    bpe = (reads + writes) * dtype.itemsize
    med = timing.median
    n = int(shape[-1])
    elements = int(np.prod(shape))
    return {
        "op": op,
        "dtype": dtype.name,
        "n": n,
        "rows": elements // n if n else 0,
        "elements": elements,
        "shape": shape_label(shape),
        "log2_n": float(np.log2(n)),
        "threads": threads,
        "impl": impl.label,
        "kind": impl.kind,
        "fresh_output": impl.fresh_output,
        "algorithm": impl.algorithm,
        "resolved_algorithm": impl.extra.get("resolved_algorithm", impl.algorithm),
        "isa": impl.isa,
        "kernel": impl.kernel,
        "reps": timing.reps,
        "buffers": buffers,
        "rotation_bytes": buffers * elements * dtype.itemsize,
        "median_ns": med,
        "min_ns": timing.min,
        "max_ns": timing.max,
        "p10_ns": timing.p10,
        "p90_ns": timing.p90,
        "ns_per_elem": med / elements,
        "ns_per_elem_min": timing.min / elements,
        "ns_per_elem_max": timing.max / elements,
        "gelem_per_s": elements / med,
        "reads": reads,
        "writes": writes,
        "bytes_per_elem": bpe,
        "traffic_model": impl.traffic_model,
        "gb_per_s": bpe * elements / med,
        "roofline_pattern": impl.roofline,
        "roofline_isa": roofline_isa if impl.roofline else None,
        "roofline_threads": None,
        "roofline_ns": None,
        "x_roofline": None,
        "validated": None if impl.kind == "roofline" else err is None,
        "validation_error": err,
        "validation_method": (vinfo or {}).get("validation_method"),
        "validation_tolerance": (vinfo or {}).get("validation_tolerance"),
        "validation_max_ulp": (vinfo or {}).get("validation_max_ulp"),
        "note": impl.note,
        **{k: v for k, v in impl.extra.items() if k not in ("resolved_algorithm",)},
    }


def _measure_block(cfg: BenchConfig, op: str, shape: Tuple[int, ...], dtype: np.dtype, x: np.ndarray,
                   outs: List[np.ndarray], touch, tiers: List[str], peers: List[_impls.Peer], roofline_isa: str, bar,
                   skipped: List[Dict[str, Any]], skipped_keys: set, threads: int = 1, with_patterns: bool = True,
                   pool: Optional[_impls.PatternPool] = None, fs_ok: bool = True,
                   reference: Optional[Callable[[], _impls.Reference]] = None) -> List[Dict[str, Any]]:
    """Time every implementation for one (shape, dtype, op, thread count) in interleaved rounds; returns the rows.

    `fs_ok`: the core has kernels for this dtype (else only the peers run); `reference`: gives the
    float64 reference of a half-type input, against which the results are validated element-wise.
    """
    dtype_name = dtype.name
    elements = int(np.prod(shape))
    label_n = shape_label(shape)
    specs: List[Any] = []
    if cfg.patterns and with_patterns:
        specs += [("pattern", p) for p in _impls.PATTERNS]
    if fs_ok:
        specs += [("fs", (alg, isa)) for isa in tiers for alg in cfg.algorithms]
    if cfg.new_output and "auto" in cfg.algorithms and fs_ok:
        specs.append(("new", None))
    if cfg.default_threads and "auto" in cfg.algorithms and fs_ok and threads == min(_thread_list(cfg.threads)):
        specs.append(("default", None))
    specs += [("peer", p) for p in peers if _peer_runs_at(p, threads)]
    if cfg.new_output:
        specs += [("peer-new", p) for p in peers if p.name == "torch"]
    rounds = max(1, cfg.rounds)

    def skip(label: str, reason: str, with_n: bool = False) -> None:
        key = (label, op, dtype_name, threads, reason)
        if key not in skipped_keys:
            skipped_keys.add(key)
            entry = {"impl": label, "op": op, "dtype": dtype_name, "threads": threads, "reason": reason}
            if with_n:
                entry["n"] = label_n
            skipped.append(entry)

    for p in peers:
        if p.threads != threads and _peer_runs_at(p, threads):
            p.set_threads(threads)

    impls: List[Any] = []
    for kind, spec in specs:
        if kind == "pattern":
            label = spec
        elif kind == "fs":
            label = f"{spec[0]}@{spec[1]}"
        elif kind == "new":
            label = _impls.NEW_OUTPUT_LABEL
        elif kind == "default":
            label = _impls.DEFAULT_THREADS_LABEL
        else:
            label = spec.name if kind == "peer" else _impls.TORCH_NEW_OUTPUT_LABEL
        try:
            if kind == "pattern":
                impl = _impls.pattern_impl(spec, roofline_isa, x, pool, threads)
            elif kind == "fs":
                impl = _impls.fastsoftmax_impl(op, spec[0], spec[1], x, cfg.api, threads)
            elif kind == "new":
                impl = _impls.new_output_impl(op, x, threads)
            elif kind == "default":
                impl = _impls.default_threads_impl(op, x, cfg.api)
            elif kind == "peer":
                impl = spec.make(op, x)
            else:
                impl = spec.make_new_output(op, x)
                if impl is None:
                    raise _impls.Skip("no allocating form")
        except _impls.Skip as e:
            skip(label, str(e))
            bar.update(rounds)
            continue
        except Exception as e:  # noqa: BLE001 - a peer failing must not end the sweep
            if kind not in ("peer", "peer-new"):
                raise
            skip(label, f"failed: {type(e).__name__}: {e}", with_n=True)
            bar.update(rounds)
            continue
        impls.append(impl)

    times: Dict[int, List[np.ndarray]] = {i: [] for i in range(len(impls))}
    reps: Dict[int, int] = {}
    slow: set = set()  # calls of 0.1 s or more: no re-warming in later rounds
    cursor = 0
    last_out: Dict[int, int] = {}
    errors: Dict[int, Optional[str]] = {}
    vinfos: Dict[int, Dict[str, Any]] = {}
    failed: set = set()
    per_round_min = max(1, -(-cfg.min_reps // rounds))
    tag = f" t={threads}" if _thread_list(cfg.threads) != [1] else ""
    for r in range(rounds):
        for i, impl in enumerate(impls):
            if i in failed:
                bar.update(1)
                continue
            bar.set_postfix_str(f"N={label_n} {dtype_name} {op}{tag} {_report.short_label(impl)}"
                                + (f" (round {r + 1}/{rounds})" if rounds > 1 else ""))
            if cfg.repeat is not None:  # exactly --repeat timed calls, spread over the rounds
                fixed: Optional[int] = cfg.repeat // rounds + (1 if r < cfg.repeat % rounds else 0)
                if fixed == 0:
                    bar.update(1)
                    continue
            else:
                fixed = reps.get(i)
            try:
                t = _measure.time_calls(
                    impl.call, outs, touch, impl.prepare, min_time=cfg.min_time / rounds,
                    min_reps=per_round_min, max_reps=max(1, cfg.max_reps // rounds), repeat=fixed,
                    warmup=2 if r == 0 else (0 if i in slow else 1), cursor=cursor,
                    max_time=cfg.max_time / rounds, min_floor=1)
            except Exception as e:  # noqa: BLE001
                if impl.kind != "peer":
                    raise
                failed.add(i)
                skip(impl.label, f"failed: {type(e).__name__}: {e}", with_n=True)
                bar.update(1)
                continue
            cursor = t.next_cursor
            reps.setdefault(i, t.reps)
            if r == 0 and t.median >= 1e8:
                slow.add(i)
            times[i].append(t.times_ns)
            last_out[i] = t.last_out
            if r == rounds - 1 and cfg.validate and impl.kind != "roofline":
                # Now, before a later implementation reuses the rotating output buffer.
                out = outs[t.last_out]
                errors[i], vinfos[i] = _impls.check_output(
                    op, impl.result(out) if impl.result is not None else out, impl.kind,
                    reference() if reference is not None else None)
            bar.update(1)

    block: List[Dict[str, Any]] = []
    for i, impl in enumerate(impls):
        if i in failed or not times[i]:
            continue
        timing = _measure.Timing(np.concatenate(times[i]), int(sum(len(a) for a in times[i])), last_out[i])
        err = errors.get(i)
        block.append(_row(op, dtype, shape, impl, timing, len(outs), roofline_isa, err, threads, vinfos.get(i)))
    return block
