"""fastsoftmax-bench --op softmax_backward,log_softmax_backward: the backward kernels beside
PyTorch's CPU backward (aten::_softmax_backward_data / _log_softmax_backward_data, what
autograd runs) and the memory-only pattern of the same traffic (read y and g for the row
sum -- g alone for log-softmax's -- then read both again and write dx), at one thread and the default thread count; and the
forward through fastsoftmax.torch beside the NumPy call on the same memory.

Method: y, g and dx (and torch's dx) are allocated and touched once; each implementation is
timed for `min_time` seconds per round, rounds interleaved, and the median per-call time
of all rounds is reported. torch gets torch.set_num_threads(t) and the same memory
(torch.from_numpy). Results: a table on the terminal and backward-results.json in --out.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from .. import _backward as bw
from .. import _api
from .. import _threads
from . import _machine, _measure

BACKWARD_OPS = ("softmax_backward", "log_softmax_backward")
DEFAULT_SIZES = [1 << 24]
DEFAULT_SHAPES = [(256, 32000)]


def _median_time(call: Callable[[], Any], min_time: float, min_reps: int) -> List[float]:
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


class _Pattern:
    """The memory-only pattern over t slices of rows at once (threads; the core releases the GIL);
    each row as the kernel walks it (its reads for the sum, then its reads and write of dx), or
    one long row in t pieces."""

    def __init__(self, y: np.ndarray, g: np.ndarray, dx: np.ndarray, t: int, log: bool):
        self.log = log
        rows = y.shape[0]
        self.t = max(1, min(t, rows)) if rows > 1 else 1
        if rows == 1 and t > 1:  # one long row: split it into t pieces
            n = y.shape[1]
            cut = [n * k // t for k in range(t + 1)]
            self.parts = [(y[0, a:b], g[0, a:b], dx[0, a:b]) for a, b in zip(cut, cut[1:])]
            self.t = t
        else:
            cut = [rows * k // self.t for k in range(self.t + 1)]
            self.parts = [(y[a:b], g[a:b], dx[a:b]) for a, b in zip(cut, cut[1:])]
        self.pool = ThreadPoolExecutor(self.t) if self.t > 1 else None

    def __call__(self) -> None:
        if self.pool is None:
            for yy, gg, dd in self.parts:
                _core.backward_pattern(yy, gg, dd, self.log)
            return
        list(self.pool.map(lambda p: _core.backward_pattern(*p, self.log), self.parts))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _reference_ok(op: str, y: np.ndarray, g: np.ndarray, dx: np.ndarray) -> bool:
    """dx against a float64 computation on a few rows (float32 tolerance, relative to each row's scale)."""
    rows = range(min(y.shape[0], 4))
    for r in rows:
        yr, gr = y[r].astype(np.float64), g[r].astype(np.float64)
        ref = gr - np.exp(yr) * gr.sum() if op == "log_softmax_backward" else yr * (gr - (gr * yr).sum())
        scale = np.abs(ref).max() + 1e-30
        if not np.all(np.abs(dx[r].astype(np.float64) - ref) <= 1e-5 * scale):
            return False
    return True


def run(ops: Sequence[str], sizes: Sequence[int], shapes: Sequence[Tuple[int, int]], threads: Sequence[int],
        min_time: float, rounds: int, out_dir: Optional[str], seed: int = 0, min_reps: int = 5,
        forward: bool = True, printer: Callable[[str], None] = print) -> Dict[str, Any]:
    try:
        import torch
        import fastsoftmax.torch as fst
    except ImportError:
        torch = fst = None
    cases: List[Tuple[int, int]] = [(1, n) for n in sizes] + [tuple(s) for s in shapes]  # type: ignore[misc]
    doc: Dict[str, Any] = {"machine": _machine_info(), "method": __doc__, "threads": list(threads), "rows": []}
    saved_torch_threads = torch.get_num_threads() if torch is not None else None
    for rows, n in cases:
        shape = (rows, n)
        rng = np.random.default_rng(seed)
        x = _measure.aligned_empty(rows * n, np.float32).reshape(shape)
        x[...] = rng.standard_normal(shape, dtype=np.float32)
        g = _measure.aligned_empty(rows * n, np.float32).reshape(shape)
        g[...] = rng.standard_normal(shape, dtype=np.float32)
        ys = {"softmax_backward": _api.softmax(x, axis=-1), "log_softmax_backward": _api.log_softmax(x, axis=-1)}
        dx = _measure.aligned_empty(rows * n, np.float32, _measure.OUTPUT_PAGE_OFFSET).reshape(shape)
        dx_t = _measure.aligned_empty(rows * n, np.float32, _measure.OUTPUT_PAGE_OFFSET).reshape(shape)
        dx[...] = 0
        dx_t[...] = 0
        for t in threads:
            impls: Dict[str, Callable[[], Any]] = {}
            patterns = []
            for op in ops:
                y = ys[op]
                fn = getattr(bw, op)
                impls[f"{op}: fastsoftmax"] = (lambda fn=fn, y=y: fn(y, g, out=dx, threads=t))
                patterns.append(_Pattern(y, g, dx, t, op == "log_softmax_backward"))
                impls[f"{op}: memory-only pattern"] = patterns[-1]
                if torch is not None:
                    ty, tg, tdx = torch.from_numpy(y), torch.from_numpy(g), torch.from_numpy(dx_t)
                    if op == "softmax_backward":
                        aten = torch.ops.aten._softmax_backward_data.out
                        impls[f"{op}: torch"] = (lambda ty=ty, tg=tg, tdx=tdx, aten=aten:
                                                 aten(tg, ty, 1, torch.float32, grad_input=tdx))
                    else:
                        aten = torch.ops.aten._log_softmax_backward_data.out
                        impls[f"{op}: torch"] = (lambda ty=ty, tg=tg, tdx=tdx, aten=aten:
                                                 aten(tg, ty, 1, torch.float32, out=tdx))
            if forward and fst is not None:
                tx = torch.from_numpy(x)
                impls["softmax forward: fastsoftmax.torch"] = lambda tx=tx: fst.softmax(tx, -1)
                impls["softmax forward: fastsoftmax.softmax (NumPy, same memory)"] = lambda: _api.softmax(x, axis=-1)
            samples: Dict[str, List[float]] = {k: [] for k in impls}
            with _threads.threads(t):
                if torch is not None:
                    torch.set_num_threads(t)
                for name, call in impls.items():  # warm up (and fault in torch's scratch)
                    call()
                for _ in range(rounds):
                    for name, call in impls.items():
                        samples[name] += _median_time(call, min_time, min_reps)
            for pattern in patterns:
                pattern.close()
            for op in ops:
                getattr(bw, op)(ys[op], g, out=dx, threads=t)
                ok = _reference_ok(op, ys[op], g, dx)
                if not ok:
                    doc.setdefault("failures", []).append(f"{op} {shape} threads={t}")
            for name, s in samples.items():
                med = statistics.median(s)
                doc["rows"].append({"shape": list(shape), "threads": t, "impl": name, "seconds": med,
                                    "ns_per_element": med * 1e9 / (rows * n), "calls": len(s)})
            _print_case(printer, shape, t, doc["rows"], ops)
    if torch is not None:
        torch.set_num_threads(saved_torch_threads)
    doc["summary"] = _summary(doc["rows"], ops)
    for line in doc["summary"]["lines"]:
        printer(line)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "backward-results.json"), "w") as f:
            json.dump(doc, f, indent=1)
    return doc


def _machine_info() -> Dict[str, Any]:
    return {"cpu": _core.cpu_brand(), "isa": _core.active_isa(), "default_threads": _core.get_num_threads(),
            "versions": _machine.versions()}


def _rows_of(rows: List[Dict[str, Any]], shape, t) -> Dict[str, float]:
    return {r["impl"]: r["seconds"] for r in rows if tuple(r["shape"]) == tuple(shape) and r["threads"] == t}


def _print_case(printer, shape, t, rows, ops) -> None:
    got = _rows_of(rows, shape, t)
    printer(f"\nshape {shape[0]}x{shape[1]} float32, threads={t}")
    for name, s in got.items():
        printer(f"  {name:<58s} {s * 1e3:9.3f} ms  {s * 1e9 / (shape[0] * shape[1]):7.3f} ns/element")


def _summary(rows: List[Dict[str, Any]], ops) -> Dict[str, Any]:
    lines: List[str] = ["", "summary (targets: backward <= 1.15x its memory-only pattern, >= 1.5x faster than "
                            "torch; forward through fastsoftmax.torch within 5% of the NumPy call)"]
    items = []
    keys = sorted({(tuple(r["shape"]), r["threads"]) for r in rows})
    for shape, t in keys:
        got = _rows_of(rows, shape, t)
        for op in ops:
            ours = got.get(f"{op}: fastsoftmax")
            pat = got.get(f"{op}: memory-only pattern")
            th = got.get(f"{op}: torch")
            item = {"shape": list(shape), "threads": t, "op": op,
                    "vs_pattern": ours / pat if ours and pat else None,
                    "torch_over_ours": th / ours if ours and th else None}
            items.append(item)
            lines.append(f"  {op:<22s} {shape[0]}x{shape[1]} t={t}: {item['vs_pattern']:.2f}x the pattern"
                         + (f", torch takes {item['torch_over_ours']:.2f}x as long" if th else ", torch not installed"))
        a = got.get("softmax forward: fastsoftmax.torch")
        b = got.get("softmax forward: fastsoftmax.softmax (NumPy, same memory)")
        if a and b:
            items.append({"shape": list(shape), "threads": t, "op": "softmax forward", "torch_api_over_numpy": a / b})
            lines.append(f"  softmax forward        {shape[0]}x{shape[1]} t={t}: fastsoftmax.torch takes {a / b:.3f}x "
                         "the NumPy call's time")
    return {"items": items, "lines": lines}
