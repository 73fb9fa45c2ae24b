"""What is timed: fastsoftmax's algorithms per tier, the memory-only roofline patterns, and the peers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import _core

ALGORITHMS = ("two-pass", "online", "three-pass-reload", "three-pass-recompute")
PATTERNS = ("read", "copy", "two-pass", "three-pass-reload", "three-pass-recompute")
PEERS = ("numpy", "scipy", "torch", "onnxruntime")

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
MIN_TRAFFIC = (2, 1)  # no softmax can do with less: read to normalise, read+write to produce
#: fastsoftmax runs calls of fewer elements than this on the calling thread, whatever
#: threads= says (csrc/softmax.cpp, kMinParallelElements); the harness splits its
#: memory-only patterns over threads only from this size on, for the same reason.
MIN_PARALLEL_ELEMENTS = 1 << 17
NEW_OUTPUT_LABEL = "auto (new output)"
TORCH_NEW_OUTPUT_LABEL = "torch (new output)"


class Skip(Exception):
    """An implementation that cannot run here; the message says why (it is listed, not an error)."""


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


def fastsoftmax_impl(op: str, algorithm: str, isa: str, x: np.ndarray, api: str, threads: int = 1) -> Impl:
    """fastsoftmax.softmax(x, out=, algorithm=, isa=, threads=) (or the bare _core.run) into the rotating outputs."""
    import fastsoftmax

    n = _row_len(x)
    dtype = x.dtype.name
    resolved = _core.auto_algorithm(dtype, n) if algorithm == "auto" else algorithm
    kernel = _core.kernel_name(op, algorithm, dtype, isa, n)
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
    resolved = _core.auto_algorithm(x.dtype.name, n)
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
        kernel=_core.kernel_name(op, "auto", x.dtype.name, None, n),
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
    name = f"{x.dtype.name[0]}{x.dtype.itemsize * 8}_pattern_{pattern.replace('-', '_')}_{isa}"
    return Impl(label=f"pattern:{pattern}@{isa}", kind="roofline", call=call, traffic=PATTERN_TRAFFIC[pattern],
                traffic_model="real", roofline=None, algorithm=pattern, isa=isa, kernel=name,
                note="memory-only" + (f", {used} slices on {used} threads at once" if used > 1 else ""),
                threads=used if threads is None else threads, extra={"pattern_threads": used})


def make_toucher(x: np.ndarray, isa: Optional[str]) -> Callable[[], Any]:
    """Reads x once (the paper's "hot input"); not timed."""
    run = _core.run_pattern

    xf = x.reshape(-1)

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

    def make(self, op: str, x: np.ndarray) -> Impl:
        torch = self.torch
        fn = torch.softmax if op == "softmax" else torch.log_softmax
        xt = torch.from_numpy(x)
        views: Dict[int, Any] = {}

        def tensor_of(o):
            key = o.__array_interface__["data"][0]
            t = views.get(key)
            if t is None:
                t = views[key] = torch.from_numpy(o)
            return t

        probe = np.empty_like(x.reshape(-1)[:16])
        try:
            fn(torch.from_numpy(x.reshape(-1)[:16].copy()), -1, out=torch.from_numpy(probe))
        except (TypeError, RuntimeError):  # an old torch without the out= overload
            holder: List[Any] = [None]

            def call(o, fn=fn, xt=xt, holder=holder):
                holder[0] = fn(xt, -1)
            return self._impl(call, f"torch.{op}(x, -1)", result=_holder_result(holder, lambda t: t.numpy()),
                              note=f"torch.{op}(x, -1) (allocates: no out= in this torch)")

        def call(o, fn=fn, xt=xt, tensor_of=tensor_of):
            fn(xt, -1, out=tensor_of(o))

        return self._impl(call, f"torch.{op}(x, -1, out=)", note=f"torch.{op}(x, -1, out=)")

    def make_new_output(self, op: str, x: np.ndarray) -> Optional[Impl]:
        torch = self.torch
        fn = torch.softmax if op == "softmax" else torch.log_softmax
        xt = torch.from_numpy(x)
        holder: List[Any] = [None]

        def call(o, fn=fn, xt=xt, holder=holder):
            holder[0] = fn(xt, -1)

        impl = self._impl(call, f"torch.{op}(x, -1)", result=_holder_result(holder, lambda t: t.numpy()),
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
        self.ir_version: Optional[int] = None

    def _session(self, op: str, dtype: np.dtype, ndim: int = 1):
        """One session per (op, dtype, rank, threads): intra_op_num_threads is fixed when a session is made."""
        key = (op, dtype.name, ndim, self.threads)
        if key in self.sessions:
            return self.sessions[key]
        onnx, helper, ort = self.onnx, self.helper, self.ort
        elem = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE}[dtype.name]
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
                continue
            self.ir_version = ir
            self.sessions[key] = sess
            return sess
        raise Skip(f"onnxruntime rejected the one-node {op} model for {dtype.name}: {last}")

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

        impl = self._impl(call, f"{'Softmax' if op == 'softmax' else 'LogSoftmax'} opset 13, IR {self.ir_version}, "
                                f"intra_op_num_threads={self.threads}", prepare=prepare)
        impl.extra["ir_version"] = self.ir_version
        return impl


PEER_CLASSES = {"numpy": NumpyPeer, "scipy": ScipyPeer, "torch": TorchPeer, "onnxruntime": OrtPeer}


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
    bad = ~(np.abs(s - 1.0) <= 1e-3)
    if bad.any():
        i = int(np.argmax(bad))
        where = f" of row {i}" if rows.shape[0] > 1 else ""
        return f"{'sum' if op == 'softmax' else 'sum of exp'}{where} of the output is {float(s[i])!r}, not 1"
    return None


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
