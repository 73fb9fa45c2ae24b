"""What is timed: fastsoftmax's algorithms per tier, the memory-only roofline patterns, and the peers."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import _core

PEERS = ("numpy", "scipy", "torch", "onnxruntime")
#: The dtypes the harness runs: the core's (kernels.inc); the half types are stored in 2 bytes and
#: computed in float32 by fastsoftmax.
DTYPES = tuple(_core.dtype_names())
#: Bytes per element of each of them (bfloat16's NumPy type needs ml_dtypes, so it is not asked).
ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
HALF_DTYPES = tuple(d for d in DTYPES if ITEMSIZE[d] == 2)
#: Kernel-name prefixes (csrc/kernels/kernels.inc): f32_two_pass_softmax_avx512, bf16_pattern_read_avx2, ...
DTYPE_PREFIX = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}

#: Reads and writes of the whole row per call (DESIGN section 1). A write counts as one
#: transfer: write-allocate (RFO) traffic is not counted.
TRAFFIC: Dict[str, Tuple[int, int]] = {
    "two-pass": (2, 1),
    "online": (2, 1),
    "three-pass-recompute": (3, 1),
    "three-pass-reload": (3, 2),
}  # the same for softmax and log_softmax
PATTERN_TRAFFIC: Dict[str, Tuple[int, int]] = {
    "read": (1, 0),
    "copy": (1, 1),
    "two-pass": (2, 1),
    "three-pass-reload": (3, 2),
    "three-pass-recompute": (3, 1),
}
#: The memory-only pattern that bounds each algorithm.
ROOFLINE_OF = {
    "two-pass": "two-pass",
    "online": "two-pass",
    "three-pass-recompute": "three-pass-recompute",
    "three-pass-reload": "three-pass-reload",
}
#: The core's algorithms (csrc/kernels/kernels.inc), those that read the row twice first.
ALGORITHMS: Tuple[str, ...] = tuple(sorted(_core.algorithms(), key=lambda a: TRAFFIC[a][0]))
#: The core's memory-only patterns, in its order.
PATTERNS: Tuple[str, ...] = tuple(_core.pattern_names())
MIN_TRAFFIC = (2, 1)  # no softmax can do with less: read to normalise, read+write to produce
#: fastsoftmax runs calls of fewer elements than this on the calling thread, whatever
#: threads= says unless the work pays for the threads' hand-off (README, Threads); the harness
#: splits its memory-only patterns over threads only from this size on.
MIN_PARALLEL_ELEMENTS = 1 << 17
NEW_OUTPUT_LABEL = "auto (new output)"
DEFAULT_THREADS_LABEL = "auto (default threads)"
TORCH_NEW_OUTPUT_LABEL = "torch (new output)"


class Skip(Exception):
    """An implementation that cannot run here; the message says why (it is listed, not an error)."""


# ---- dtypes --------------------------------------------------------------------------------

def resolve_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a --dtype name; bfloat16 is ml_dtypes.bfloat16 (Skip when ml_dtypes is missing)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as e:
            raise Skip(f"bfloat16 arrays need the optional ml_dtypes package, which is not importable ({e}); "
                       "pip install ml_dtypes") from None
        return np.dtype(ml_dtypes.bfloat16)
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    return np.dtype(name)


def is_half(dtype: Any) -> bool:
    """float16 or bfloat16 (by name: ml_dtypes.bfloat16 is not a NumPy float kind)."""
    return np.dtype(dtype).name in HALF_DTYPES


def core_kernel_dtypes() -> List[str]:
    """The dtypes this build of the core has softmax kernels for (from _core.kernels())."""
    return sorted({k["dtype"] for k in _core.kernels()})


def core_pattern_dtypes() -> List[str]:
    """The dtypes this build of the core has memory-only patterns for (from _core.patterns())."""
    return sorted({p["dtype"] for p in _core.patterns()})


def pattern_kernel_name(pattern: str, dtype_name: str, isa: str) -> str:
    """The core's name of a memory-only pattern kernel (f32_pattern_read_avx512, bf16_pattern_two_pass_avx2)."""
    for p in _core.patterns():
        if p["dtype"] == dtype_name and p["pattern"] == pattern and p["isa"] == isa:
            return p["name"]
    return f"{DTYPE_PREFIX.get(dtype_name, dtype_name)}_pattern_{pattern.replace('-', '_')}_{isa}"


@dataclass
class Impl:
    label: str                      # the row's name: "two-pass@avx512", "pattern:copy@avx512", "torch"
    kind: str                       # "fastsoftmax" | "roofline" | "peer"
    call: Callable[[np.ndarray], Any]
    traffic: Tuple[int, int]        # (row reads, row writes) per call
    traffic_model: str              # "real" | "effective" | "assumed"
    roofline: Optional[str]         # the pattern this row is compared with (None for patterns)
    algorithm: Optional[str] = None
    isa: Optional[str] = None
    kernel: Optional[str] = None
    prepare: Optional[Callable[[np.ndarray], Any]] = None
    result: Optional[Callable[[np.ndarray], np.ndarray]] = None  # what to validate (default: the out buffer)
    note: str = ""
    threads: int = 1                # threads the implementation was asked to use
    fresh_output: bool = False      # allocates its result on every call (no out=)
    extra: Dict[str, Any] = field(default_factory=dict)


# ---- fastsoftmax ------------------------------------------------------------------------

def _row_len(x: np.ndarray) -> int:
    return int(x.shape[-1])


def _rows(x: np.ndarray) -> int:
    """The rows of x along its last axis (what auto's batch rule sees)."""
    return int(x.size // x.shape[-1]) if x.ndim > 1 and x.shape[-1] else 1


def fastsoftmax_impl(op: str, algorithm: str, isa: str, x: np.ndarray, api: str, threads: int = 1) -> Impl:
    """fastsoftmax.softmax(x, out=, algorithm=, isa=, threads=) (or the bare _core.run) into the rotating outputs."""
    import fastsoftmax

    n = _row_len(x)
    rows = _rows(x)
    dtype = x.dtype.name
    resolved = _core.auto_algorithm(dtype, n, rows) if algorithm == "auto" else algorithm
    kernel = _core.kernel_name(op, algorithm, dtype, isa, n, rows)
    if api == "core":
        run = _core.run

        def call(o, run=run, op=op, alg=algorithm, x=x, isa=isa, t=threads):
            run(op, alg, x, o, isa, t)
    else:
        fn = fastsoftmax.softmax if op == "softmax" else fastsoftmax.log_softmax
        if x.ndim == 1:
            def call(o, fn=fn, alg=algorithm, x=x, isa=isa, t=threads):
                fn(x, out=o, algorithm=alg, isa=isa, threads=t)
        else:  # a batch: softmax of every row (axis=None would be the whole array)
            def call(o, fn=fn, alg=algorithm, x=x, isa=isa, t=threads):
                fn(x, axis=-1, out=o, algorithm=alg, isa=isa, threads=t)

    return Impl(
        label=f"{algorithm}@{isa}", kind="fastsoftmax", call=call, traffic=TRAFFIC[resolved],
        traffic_model="real", roofline=ROOFLINE_OF[resolved], algorithm=algorithm, isa=isa, kernel=kernel,
        note=f"auto -> {resolved}" if algorithm == "auto" else "", threads=threads,
        extra={"resolved_algorithm": resolved, "api": api},
    )


def default_threads_impl(op: str, x: np.ndarray, api: str) -> Impl:
    """``fastsoftmax.softmax(x, out=)`` with no threads=: what a user's call runs on (the library's
    default thread count, split only where the work pays for it), filed beside the one-thread rows."""
    impl = fastsoftmax_impl(op, "auto", _core.active_isa(), x, api, threads=0)
    impl.label = DEFAULT_THREADS_LABEL
    impl.threads = 1
    impl.note = f"threads=None (default {_core.get_num_threads()}); {impl.note}"
    impl.extra["default_threads"] = _core.get_num_threads()
    return impl


def _holder_result(holder: List[Any], convert: Callable[[Any], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def result(o):
        if holder[0] is None:
            raise RuntimeError("no call was made")
        return convert(holder[0])
    return result


def new_output_impl(op: str, x: np.ndarray, threads: int = 1) -> Impl:
    """``fastsoftmax.softmax(x, threads=t)`` without out=: a fresh result array per call, as most users call it.

    The previous call's result is kept until the next call replaces it (so each timed call
    pays one allocation, its page faults, and the release of the previous result).
    """
    import fastsoftmax

    n = _row_len(x)
    resolved = _core.auto_algorithm(x.dtype.name, n, _rows(x))
    fn = fastsoftmax.softmax if op == "softmax" else fastsoftmax.log_softmax
    holder: List[Any] = [None]
    if x.ndim == 1:
        def call(o, fn=fn, x=x, t=threads, holder=holder):
            holder[0] = fn(x, threads=t)
        code = f"fastsoftmax.{op}(x, threads={threads})"
    else:
        def call(o, fn=fn, x=x, t=threads, holder=holder):
            holder[0] = fn(x, axis=-1, threads=t)
        code = f"fastsoftmax.{op}(x, axis=-1, threads={threads})"
    return Impl(
        label=NEW_OUTPUT_LABEL, kind="fastsoftmax", call=call, traffic=TRAFFIC[resolved], traffic_model="real",
        roofline=ROOFLINE_OF[resolved], algorithm="auto", isa=_core.active_isa(),
        kernel=_core.kernel_name(op, "auto", x.dtype.name, None, n, _rows(x)),
        result=_holder_result(holder, np.asarray), threads=threads, fresh_output=True,
        note=f"{code}: allocates its result (page faults; write-allocate)",
        extra={"resolved_algorithm": resolved, "api": "public"},
    )


class PatternPool:
    """Runs a memory-only pattern with `threads` threads over as many contiguous slices at once.

    One slice runs on the calling thread, the others on threads-1 persistent workers of a
    ThreadPoolExecutor (started, all of them, when the pool is made). ``_core.run_pattern``
    releases the GIL, so the slices really run at the same time. Slice boundaries fall on
    4 KiB multiples, so every slice keeps the alignment of the whole array.
    """

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self.pool: Optional[ThreadPoolExecutor] = None
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(max_workers=self.threads - 1, thread_name_prefix="fastsoftmax-bench-roof")
            barrier = threading.Barrier(self.threads)
            futs = [self.pool.submit(barrier.wait) for _ in range(self.threads - 1)]  # all workers exist now
            barrier.wait()
            for f in futs:
                f.result()

    def bounds(self, size: int, itemsize: int) -> List[Tuple[int, int]]:
        t = self.threads
        quantum = max(1, 4096 // itemsize)
        step = -(-size // t)
        step = -(-step // quantum) * quantum
        out = []
        for i in range(t):
            a, b = min(i * step, size), min((i + 1) * step, size)
            if b > a:
                out.append((a, b))
        return out or [(0, size)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def pattern_impl(pattern: str, isa: str, x: np.ndarray, pool: Optional[PatternPool] = None,
                 threads: Optional[int] = None) -> Impl:
    """The memory-only `pattern` over x (into the rotating outputs), on one thread or split over `pool`'s threads.

    `threads` is the thread count the row is filed under (the one the other rows of its
    block use); it defaults to the pool's.
    """
    run = _core.run_pattern
    xf = x.reshape(-1)
    used = pool.threads if pool is not None else 1
    if pool is None or used == 1:
        if pattern == "read":
            def call(o, run=run, x=xf, isa=isa):
                run("read", x, x, isa)  # reads x only; out is ignored
        else:
            def call(o, run=run, p=pattern, x=xf, isa=isa):
                run(p, x, o.reshape(-1), isa)
        bounds = [(0, xf.size)]
    else:
        bounds = pool.bounds(xf.size, xf.dtype.itemsize)
        used = len(bounds)
        xs = [xf[a:b] for a, b in bounds]
        cache: Dict[int, List[np.ndarray]] = {}

        def slices_of(o, cache=cache, bounds=bounds):
            key = o.__array_interface__["data"][0]
            v = cache.get(key)
            if v is None:
                of = o.reshape(-1)
                v = cache[key] = [of[a:b] for a, b in bounds]
            return v

        submit = pool.pool.submit  # type: ignore[union-attr]
        rest = list(range(1, len(bounds)))
        if pattern == "read":
            def call(o, run=run, xs=xs, isa=isa, submit=submit, rest=rest):
                futs = [submit(run, "read", xs[i], xs[i], isa) for i in rest]
                run("read", xs[0], xs[0], isa)
                for f in futs:
                    f.result()
        else:
            def call(o, run=run, p=pattern, xs=xs, isa=isa, submit=submit, rest=rest, slices_of=slices_of):
                os_ = slices_of(o)
                futs = [submit(run, p, xs[i], os_[i], isa) for i in rest]
                run(p, xs[0], os_[0], isa)
                for f in futs:
                    f.result()
    name = pattern_kernel_name(pattern, x.dtype.name, isa)
    return Impl(label=f"pattern:{pattern}@{isa}", kind="roofline", call=call, traffic=PATTERN_TRAFFIC[pattern],
                traffic_model="real", roofline=None, algorithm=pattern, isa=isa, kernel=name,
                note="memory-only" + (f", {used} slices on {used} threads at once" if used > 1 else ""),
                threads=used if threads is None else threads, extra={"pattern_threads": used})


def make_toucher(x: np.ndarray, isa: Optional[str]) -> Callable[[], Any]:
    """Reads x once (the paper's "hot input"); not timed.

    With the core's "read" pattern for x's dtype; for a dtype the core has no patterns for
    (a half type in an older build), the same bytes are read as float32 (the pattern only
    loads them), else NumPy reads them.
    """
    run = _core.run_pattern

    xf = x.reshape(-1)
    if x.dtype.name not in core_pattern_dtypes():
        if xf.nbytes % 4 == 0 and "float32" in core_pattern_dtypes():
            xf = xf.view(np.float32)
        else:
            raw = xf.view(np.uint8)

            def touch_np(raw=raw):
                raw.max()

            return touch_np

    def touch(run=run, x=xf, isa=isa):
        run("read", x, x, isa)

    return touch


# ---- peers --------------------------------------------------------------------------------

class Peer:
    name = ""
    traffic = MIN_TRAFFIC
    traffic_model = "effective"
    roofline = "two-pass"
    note = ""
    #: False: the runtime is single-threaded for softmax; measured at threads=1 only.
    multithreaded = True

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.version: Optional[str] = None

    def load(self) -> None:
        """Import the runtime (raising Skip when it is missing) and pin its threads."""

    def set_threads(self, threads: int) -> None:
        """Use `threads` threads for the calls made from now on."""
        self.threads = threads

    def make(self, op: str, x: np.ndarray) -> Impl:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_new_output(self, op: str, x: np.ndarray) -> Optional[Impl]:
        """The peer's allocating form (no out=), where it has one worth timing beside the out= form."""
        return None

    def _impl(self, call, kernel: str, prepare=None, result=None, note: Optional[str] = None) -> Impl:
        return Impl(label=self.name, kind="peer", call=call, traffic=self.traffic, traffic_model=self.traffic_model,
                    roofline=self.roofline, kernel=kernel, prepare=prepare, result=result,
                    note=self.note if note is None else note, threads=self.threads)


class NumpyPeer(Peer):
    name = "numpy"
    note = "naive max/exp/sum/divide, in place in out= (single-threaded)"
    multithreaded = False

    def load(self) -> None:
        self.version = np.__version__

    def make(self, op: str, x: np.ndarray) -> Impl:
        subtract, exp, divide, log = np.subtract, np.exp, np.divide, np.log
        if op == "softmax":
            def call(o, x=x):
                subtract(x, x.max(axis=-1, keepdims=True), out=o)
                exp(o, out=o)
                divide(o, o.sum(axis=-1, keepdims=True), out=o)
            kernel = "x.max(-1); subtract(out=); exp(out=); o.sum(-1); divide(out=)"
        else:
            def call(o, x=x):
                subtract(x, x.max(axis=-1, keepdims=True), out=o)
                subtract(o, log(exp(o).sum(axis=-1, keepdims=True)), out=o)
            kernel = "x.max(-1); subtract(out=); log(exp(o).sum(-1)); subtract(out=)"
        return self._impl(call, kernel)


class ScipyPeer(Peer):
    name = "scipy"
    note = "scipy.special.softmax (allocates its result; single-threaded)"
    multithreaded = False

    def load(self) -> None:
        try:
            import scipy
            import scipy.special as special
        except ImportError as e:
            raise Skip(f"scipy is not importable ({e})") from None
        self.version = scipy.__version__
        self.special = special

    def make(self, op: str, x: np.ndarray) -> Impl:
        fn = self.special.softmax if op == "softmax" else self.special.log_softmax
        holder: List[Any] = [None]

        def call(o, fn=fn, x=x, holder=holder):
            holder[0] = fn(x, axis=-1)

        return self._impl(call, f"scipy.special.{op}(x, axis=-1)", result=_holder_result(holder, np.asarray),
                          note=f"scipy.special.{op} (allocates its result; single-threaded)")


class TorchPeer(Peer):
    name = "torch"
    roofline = "three-pass-reload"
    note = "torch.softmax(x, -1, out=)"

    def load(self) -> None:
        try:
            import torch
        except ImportError as e:
            raise Skip(f"torch is not importable ({e})") from None
        self.torch = torch
        self.version = torch.__version__
        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set (it can be set once per process)
            pass

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        self.torch.set_num_threads(threads)

    def tensor(self, a: np.ndarray):
        """A zero-copy tensor over `a`: bfloat16 (ml_dtypes) arrays are viewed as int16, then as torch.bfloat16."""
        if a.dtype.name == "bfloat16":
            return self.torch.from_numpy(a.view(np.int16)).view(self.torch.bfloat16)
        return self.torch.from_numpy(a)

    def array(self, t, dtype: np.dtype) -> np.ndarray:
        """The NumPy array of a result tensor (a view; bfloat16 through int16)."""
        if t.dtype == self.torch.bfloat16:
            return t.view(self.torch.int16).numpy().view(dtype)
        return t.numpy()

    def make(self, op: str, x: np.ndarray) -> Impl:
        torch = self.torch
        fn = torch.softmax if op == "softmax" else torch.log_softmax
        xt = self.tensor(x)
        views: Dict[int, Any] = {}
        tensor = self.tensor

        def tensor_of(o):
            key = o.__array_interface__["data"][0]
            t = views.get(key)
            if t is None:
                t = views[key] = tensor(o)
            return t

        probe = np.empty_like(x.reshape(-1)[:16])
        try:
            fn(tensor(x.reshape(-1)[:16].copy()), -1, out=tensor(probe))
        except (TypeError, RuntimeError):  # an old torch without the out= overload
            holder: List[Any] = [None]

            def call(o, fn=fn, xt=xt, holder=holder):
                holder[0] = fn(xt, -1)
            return self._impl(call, f"torch.{op}(x, -1)",
                              result=_holder_result(holder, lambda t, d=x.dtype: self.array(t, d)),
                              note=f"torch.{op}(x, -1) (allocates: no out= in this torch)")

        def call(o, fn=fn, xt=xt, tensor_of=tensor_of):
            fn(xt, -1, out=tensor_of(o))

        return self._impl(call, f"torch.{op}(x, -1, out=)", note=f"torch.{op}(x, -1, out=)")

    def make_new_output(self, op: str, x: np.ndarray) -> Optional[Impl]:
        torch = self.torch
        fn = torch.softmax if op == "softmax" else torch.log_softmax
        xt = self.tensor(x)
        holder: List[Any] = [None]

        def call(o, fn=fn, xt=xt, holder=holder):
            holder[0] = fn(xt, -1)

        impl = self._impl(call, f"torch.{op}(x, -1)",
                          result=_holder_result(holder, lambda t, d=x.dtype: self.array(t, d)),
                          note=f"torch.{op}(x, -1): allocates its result (page faults)")
        impl.label = TORCH_NEW_OUTPUT_LABEL
        impl.fresh_output = True
        return impl


class OrtPeer(Peer):
    name = "onnxruntime"
    traffic = (3, 2)
    traffic_model = "assumed"  # MLAS's softmax is three-pass with reload (DESIGN section 1)
    roofline = "three-pass-reload"
    note = "one-node opset-13 model, output bound with io_binding"

    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise Skip(f"onnxruntime is not importable ({e})") from None
        try:
            import onnx
            from onnx import helper
        except ImportError as e:
            raise Skip(f"the onnx package is needed to build the one-node model ({e}); pip install onnx") from None
        self.ort, self.onnx, self.helper = ort, onnx, helper
        self.version = ort.__version__
        self.sessions: Dict[Tuple[str, str, int, int], Any] = {}
        self.node_ops: Dict[Tuple[str, str, int, int], Optional[List[str]]] = {}
        self.ir_version: Optional[int] = None

    def _session(self, op: str, dtype: np.dtype, ndim: int = 1):
        """One session per (op, dtype, rank, threads): intra_op_num_threads is fixed when a session is made."""
        key = (op, dtype.name, ndim, self.threads)
        if key in self.sessions:
            return self.sessions[key]
        onnx, helper, ort = self.onnx, self.helper, self.ort
        elems = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE,
                 "float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16}
        if dtype.name not in elems:
            raise Skip(f"no ONNX element type for {dtype.name}")
        elem = elems[dtype.name]
        dims = ["n"] if ndim == 1 else [f"d{i}" for i in range(ndim - 1)] + ["n"]
        xin = helper.make_tensor_value_info("X", elem, dims)
        yout = helper.make_tensor_value_info("Y", elem, dims)
        node = helper.make_node("Softmax" if op == "softmax" else "LogSoftmax", ["X"], ["Y"], axis=-1)
        graph = helper.make_graph([node], f"fastsoftmax_bench_{op}", [xin], [yout])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="fastsoftmax-bench")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        except Exception:  # pragma: no cover - older runtimes
            pass
        last: Optional[Exception] = None
        # The newest IR version the installed runtime accepts (onnx can be newer than ORT).
        irs = [self.ir_version] if self.ir_version else range(int(onnx.IR_VERSION), 6, -1)
        for ir in irs:
            model.ir_version = ir
            try:
                sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
                last = e
                if "NOT_IMPLEMENTED" in str(e):  # no kernel for this dtype: another IR version will not help
                    break
                continue
            self.ir_version = ir
            self.sessions[key] = sess
            if dtype.name in HALF_DTYPES:
                self.node_ops[key] = self._node_ops(model.SerializeToString(), dtype)
            return sess
        msg = " ".join(str(last).split())
        raise Skip(f"onnxruntime rejected the one-node {op} model for {dtype.name}: {msg}")

    def _node_ops(self, model_bytes: bytes, dtype: np.dtype) -> Optional[List[str]]:
        """The operators ORT really runs for the model (from a profiled call on 16 elements), or None.

        Where the CPU provider has no kernel for a dtype, ORT runs the operator's function body
        (Softmax-13: ReduceMax, Sub, Exp, ReduceSum, Div) with Casts to float32 around it.
        """
        ort = self.ort
        try:
            with tempfile.TemporaryDirectory(prefix="fastsoftmax-bench-ort-") as d:
                so = ort.SessionOptions()
                so.log_severity_level = 3
                so.intra_op_num_threads = 1
                so.enable_profiling = True
                so.profile_file_prefix = os.path.join(d, "profile")
                sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
                sess.run(None, {"X": np.zeros(16, dtype)})
                path = sess.end_profiling()
                with open(path) as f:
                    events = json.load(f)
        except Exception:  # noqa: BLE001 - only a note depends on it
            return None
        ops: List[str] = []
        for e in events:
            name = (e.get("args") or {}).get("op_name") if e.get("cat") == "Node" else None
            if name and name not in ops:
                ops.append(name)
        return ops or None

    def make(self, op: str, x: np.ndarray) -> Impl:
        sess = self._session(op, x.dtype, x.ndim)
        binding = sess.io_binding()
        binding.bind_cpu_input("X", x)
        shape = list(x.shape)
        dtype = x.dtype

        def prepare(o, binding=binding, shape=shape, dtype=dtype):
            binding.bind_output("Y", "cpu", 0, dtype, shape, o.__array_interface__["data"][0])

        def call(o, sess=sess, binding=binding):
            sess.run_with_iobinding(binding)

        node = "Softmax" if op == "softmax" else "LogSoftmax"
        impl = self._impl(call, f"{node} opset 13, IR {self.ir_version}, "
                                f"intra_op_num_threads={self.threads}", prepare=prepare)
        impl.extra["ir_version"] = self.ir_version
        ops = self.node_ops.get((op, dtype.name, x.ndim, self.threads))
        if ops is not None and ops != [node]:
            # No kernel for this dtype: a graph of element-wise passes, not MLAS's three-pass softmax.
            impl.traffic, impl.traffic_model, impl.roofline = MIN_TRAFFIC, "effective", "two-pass"
            impl.kernel += f"; runs {', '.join(ops)}"
            impl.note = (f"no {dtype.name} {node} kernel on ORT's CPU provider: it runs the function body "
                         f"({', '.join(ops)}); counted as 2R+1W (effective)")
            impl.extra["ort_ops"] = ops
        return impl


PEER_CLASSES = {"numpy": NumpyPeer, "scipy": ScipyPeer, "torch": TorchPeer, "onnxruntime": OrtPeer}

#: What pip installs for a peer that is not importable (the extras: "bench" brings ONNX
#: Runtime and onnx, which builds its one-node model; "peers" PyTorch, being large).
PEER_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "torch": ("torch",)}


def install_command(missing: List[str]) -> str:
    """The one pip command that adds the peers named in `missing` (in PEER_PACKAGES)."""
    packages = [pkg for name in PEER_PACKAGES if name in missing for pkg in PEER_PACKAGES[name]]
    return "pip install " + " ".join(packages)


#: Sum check (float32, float64): every row of a softmax (the exp of a log-softmax) sums to 1 within this.
SUM_TOLERANCE = 1e-3
#: Half types: the most units in the last place (of the output dtype) an element may be from the
#: float64 reference rounded to that dtype. fastsoftmax computes in float32 and rounds once (its
#: contract: 1 ulp). Peers may compute in the half type itself (NumPy and SciPy do: the subtraction
#: x - max, exp, the sum and the division each round to it), hence the looser bound: it flags a wrong
#: or badly inaccurate result, not the rounding of a half-precision computation.
ULP_TOLERANCE = {"fastsoftmax": 1}
PEER_ULP_TOLERANCE = {"float16": 8, "bfloat16": 8}
#: log-softmax in float32 (fastsoftmax's compute type for the half types): absolute error bound
#: 4 * 2^-24 * max(1, |x_i|, |log softmax_i|) (README, Accuracy). Also accepted for fastsoftmax where an
#: output near 0 has a half ulp smaller than that (the rounding of x_i - max - log(sum) in float32).
_LOG_ABS_F32 = 4.0 * 2.0 ** -24
#: Results below float32's normal range (2^-126) may be flushed to zero by a float32 computation (FTZ, or
#: an exp that underflows early): accepted within this absolute error. It matters for bfloat16 only,
#: whose range is float32's; float16's subnormals are normal float32 numbers.
_FLOOR = {"bfloat16": 2.0 ** -126}
#: Significand bits (with the implicit one) of the half types, for the ulp of a magnitude.
_PRECISION = {"float16": 11, "bfloat16": 8}
_CHUNK = 1 << 20


def validate(op: str, y: np.ndarray) -> Optional[str]:
    """None when every row of `y` (its last axis) looks like a softmax (log-softmax), else what is wrong."""
    y = np.asarray(y)
    rows = y.reshape(-1, y.shape[-1]) if y.ndim else y.reshape(1, 1)
    if op == "softmax":
        s = np.sum(rows, axis=-1, dtype=np.float64)
    else:
        s = np.zeros(rows.shape[0])
        for i in range(0, rows.shape[-1], 1 << 20):
            s += np.exp(rows[:, i:i + (1 << 20)].astype(np.float64)).sum(axis=-1)
    bad = ~(np.abs(s - 1.0) <= SUM_TOLERANCE)
    if bad.any():
        i = int(np.argmax(bad))
        where = f" of row {i}" if rows.shape[0] > 1 else ""
        return f"{'sum' if op == 'softmax' else 'sum of exp'}{where} of the output is {float(s[i])!r}, not 1"
    return None


def round_to(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 values correctly rounded (to nearest, ties to even) to `dtype`.

    The half types go through float32 rounded to odd, which is exact to round again (float32
    has more than 2 bits beyond either half type's significand): ml_dtypes rounds float64 to
    bfloat16 through float32 rounded to nearest (a double rounding, wrong next to a tie). NumPy's
    conversions to float16 are correct but slow (over 100 ns each) for subnormal results, which
    are most results of a long softmax row, so those are rounded here.
    """
    dtype = np.dtype(dtype)
    if dtype.itemsize != 2:
        return v.astype(dtype)
    f = v.astype(np.float32)
    f = np.where(np.abs(f.astype(np.float64)) > np.abs(v), np.nextafter(f, np.float32(0)), f)  # toward zero
    inexact = (f.astype(np.float64) != v) & np.isfinite(v)
    f = (f.view(np.uint32) | inexact.astype(np.uint32)).view(np.float32)  # sticky bit: round to odd
    if dtype.name != "float16":
        return f.astype(dtype)
    # float16 subnormals (|v| < 2^-14) are multiples of 2^-24: round |v| * 2^24 to an integer
    # (ties to even) and use it as the bits (1024 is the bit pattern of 2^-14, the smallest normal).
    small = np.abs(v) < 2.0 ** -14
    if not small.any():
        return f.astype(dtype)
    h = np.where(small, np.float32(0), f).astype(dtype)
    vs = v[small]
    bits = np.rint(np.abs(vs) * 2.0 ** 24).astype(np.uint16) | (np.signbit(vs).astype(np.uint16) << 15)
    h.view(np.uint16)[small] = bits
    return h


def _ordered(a: np.ndarray) -> np.ndarray:
    """Float bit patterns mapped to integers in value order: the difference of two is their distance in ulps
    (NaNs land beyond the infinities: far from every number)."""
    size = a.dtype.itemsize
    it, wide = {2: (np.int16, np.int32), 4: (np.int32, np.int64), 8: (np.int64, np.int64)}[size]
    i = a.view(it).astype(wide)
    mag = i & ((1 << (8 * size - 1)) - 1)
    return np.where(i < 0, -mag, mag)


class Reference:
    """The float64 softmax (log-softmax) of x over its last axis, correctly rounded to x's dtype.

    Computed once per (input, op) in chunks (max, sum of exp, then the values) and shared by
    every result of that input; the per-row max and sum are kept for the log-softmax
    absolute bound.
    """

    def __init__(self, op: str, x: np.ndarray):
        self.op = op
        self.dtype = x.dtype
        n = int(x.shape[-1]) if x.ndim else 1
        rows = x.reshape(-1, n)
        self.x = rows
        r = rows.shape[0]
        self.step = max(1, _CHUNK // max(r, 1))
        m = np.full(r, -np.inf)
        for a in range(0, n, self.step):
            m = np.maximum(m, self._x64(a, a + self.step).max(axis=-1))
        s = np.zeros(r)
        for a in range(0, n, self.step):
            s += np.exp(self._x64(a, a + self.step) - m[:, None]).sum(axis=-1)
        self.max, self.sum, self.log_sum = m, s, np.log(s)
        self.ref = np.empty((r, n), x.dtype)
        self.ref_ordered = np.empty((r, n), np.int32 if x.dtype.itemsize == 2 else np.int64)
        for a in range(0, n, self.step):
            v = round_to(self.values(a, a + self.step), x.dtype)
            self.ref[:, a:a + self.step] = v
            self.ref_ordered[:, a:a + self.step] = _ordered(v)

    def _x64(self, a: int, b: int) -> np.ndarray:
        c = self.x[:, a:b]
        if c.dtype.itemsize < 4:  # half -> float32 is exact and fast; half -> float64 is slow in NumPy
            c = c.astype(np.float32)
        return c.astype(np.float64)

    def values(self, a: int, b: int) -> np.ndarray:
        """The float64 results of columns [a, b) of every row."""
        v = self._x64(a, b) - self.max[:, None]
        if self.op == "softmax":
            return np.exp(v) / self.sum[:, None]
        return v - self.log_sum[:, None]

    def check(self, y: np.ndarray, tolerance_ulp: int, log_abs: bool = False,
              log_scaled: bool = False) -> Tuple[Optional[str], int]:
        """(None or what is wrong, the largest distance in ulps) of `y` from the rounded reference.

        An element more than `tolerance_ulp` off is still accepted (and counted as at the
        tolerance) when its absolute error is within _FLOOR of the dtype, and for log-softmax,
        with `log_abs`, within the float32 absolute bound (_LOG_ABS_F32), with `log_scaled`,
        within `tolerance_ulp` ulp of max(1, |x_i|, |y_i|) (log-softmax is a difference of
        numbers that large: a computation in the half type is that far off near 0).
        """
        y = np.asarray(y)
        if y.dtype != self.dtype:
            return f"the output has dtype {y.dtype}, expected {self.dtype}", -1
        if y.size != self.ref.size:
            return f"the output has {y.size} elements, expected {self.ref.size}", -1
        rows = y.reshape(self.ref.shape)
        n = rows.shape[-1]
        worst, where, bad = -1, (0, 0), 0
        for a in range(0, n, self.step):
            yc = rows[:, a:a + self.step]
            d = np.abs(_ordered(yc) - self.ref_ordered[:, a:a + self.step])
            over = d > tolerance_ulp
            if over.any():
                i, j = np.nonzero(over)
                exact = self.values(a, a + self.step)[i, j]
                err = np.abs(yc[i, j].astype(np.float32).astype(np.float64) - exact)
                ok = err <= _FLOOR.get(self.dtype.name, 0.0)
                if self.op == "log_softmax" and (log_abs or log_scaled):
                    x = self.x[i, a + j].astype(np.float32).astype(np.float64)
                    big = np.maximum(1.0, np.maximum(np.abs(x), np.abs(exact)))
                    if log_abs:
                        ok |= err <= _LOG_ABS_F32 * big
                    if log_scaled and self.dtype.name in _PRECISION:
                        ulp = np.ldexp(1.0, np.frexp(big)[1] - _PRECISION[self.dtype.name])
                        ok |= err <= tolerance_ulp * ulp
                d[i[ok], j[ok]] = tolerance_ulp  # within an absolute bound: counted as at the tolerance
                over = d > tolerance_ulp
            k = int(np.argmax(d))
            if int(d.flat[k]) > worst:
                worst, where = int(d.flat[k]), (k // d.shape[1], a + k % d.shape[1])
            bad += int(np.count_nonzero(over))
        if not bad:
            return None, worst
        i, j = where
        got = float(rows[i, j].astype(np.float32))
        want = float(self.ref[i, j].astype(np.float32))
        exact = float(self.values(j, j + 1)[i, 0])
        at = f"[{i}, {j}]" if rows.shape[0] > 1 else f"[{j}]"
        return (f"{bad} of {rows.size} elements more than {tolerance_ulp} ulp ({self.dtype.name}) from the float64 "
                f"reference; worst {worst} ulp at {at}: {got!r}, reference {want!r} (exact {exact:.6g})"), worst


def tolerance_ulp(impl_kind: str, dtype: np.dtype) -> int:
    """The ulp tolerance of the element-wise check (half types): 1 for fastsoftmax, looser for peers."""
    if impl_kind == "fastsoftmax":
        return ULP_TOLERANCE["fastsoftmax"]
    return PEER_ULP_TOLERANCE.get(np.dtype(dtype).name, 8)


def check_output(op: str, y: np.ndarray, impl_kind: str = "fastsoftmax",
                 reference: Optional[Reference] = None) -> Tuple[Optional[str], Dict[str, Any]]:
    """Validate one result: (None or what is wrong, details for the row).

    float32/float64 (no reference): every row sums to 1 (its exp for log-softmax) within SUM_TOLERANCE.
    Half types (with the reference of the input): every element within tolerance_ulp() ulp of the
    float64 reference rounded to the dtype, or within the absolute bounds of Reference.check (a sum
    is no check there: in float16 the outputs of a long row are subnormal or zero, and their sum
    is far from 1 for a correct result).
    """
    if reference is None:
        return validate(op, y), {"validation_method": "sum", "validation_tolerance": SUM_TOLERANCE}
    tol = tolerance_ulp(impl_kind, reference.dtype)
    err, worst = reference.check(y, tol, log_abs=impl_kind == "fastsoftmax", log_scaled=impl_kind != "fastsoftmax")
    return err, {"validation_method": "ulp", "validation_tolerance": tol,
                 "validation_max_ulp": worst if worst >= 0 else None}


def peer_list(spec: str) -> List[str]:
    s = spec.strip().lower()
    if s in ("on", "all", "yes", "1", "true"):
        return list(PEERS)
    if s in ("off", "none", "no", "0", "false", ""):
        return []
    names = []
    aliases = {"ort": "onnxruntime", "pytorch": "torch", "np": "numpy"}
    for item in s.split(","):
        item = aliases.get(item.strip(), item.strip())
        if item not in PEERS:
            raise ValueError(f"unknown peer {item!r}; choose on, off or a list of {', '.join(PEERS)}")
        if item not in names:
            names.append(item)
    return names
