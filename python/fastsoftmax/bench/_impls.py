"""What is timed: fastsoftmax's algorithms per tier, the memory-only roofline patterns, and the peers."""

from __future__ import annotations

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
    extra: Dict[str, Any] = field(default_factory=dict)


# ---- fastsoftmax ------------------------------------------------------------------------

def fastsoftmax_impl(op: str, algorithm: str, isa: str, x: np.ndarray, api: str) -> Impl:
    import fastsoftmax

    n = x.shape[-1]
    dtype = x.dtype.name
    resolved = _core.auto_algorithm(dtype, n) if algorithm == "auto" else algorithm
    kernel = _core.kernel_name(op, algorithm, dtype, isa, n)
    if api == "core":
        run = _core.run

        def call(o, run=run, op=op, alg=algorithm, x=x, isa=isa):
            run(op, alg, x, o, isa)
    else:
        fn = fastsoftmax.softmax if op == "softmax" else fastsoftmax.log_softmax

        def call(o, fn=fn, alg=algorithm, x=x, isa=isa):
            fn(x, out=o, algorithm=alg, isa=isa)

    return Impl(
        label=f"{algorithm}@{isa}", kind="fastsoftmax", call=call, traffic=TRAFFIC[resolved],
        traffic_model="real", roofline=ROOFLINE_OF[resolved], algorithm=algorithm, isa=isa, kernel=kernel,
        note=f"auto -> {resolved}" if algorithm == "auto" else "",
        extra={"resolved_algorithm": resolved, "api": api},
    )


def pattern_impl(pattern: str, isa: str, x: np.ndarray) -> Impl:
    run = _core.run_pattern
    if pattern == "read":
        def call(o, run=run, x=x, isa=isa):
            run("read", x, x, isa)  # reads x only; out is ignored
    else:
        def call(o, run=run, p=pattern, x=x, isa=isa):
            run(p, x, o, isa)
    name = f"{x.dtype.name[0]}{x.dtype.itemsize * 8}_pattern_{pattern.replace('-', '_')}_{isa}"
    return Impl(label=f"pattern:{pattern}@{isa}", kind="roofline", call=call, traffic=PATTERN_TRAFFIC[pattern],
                traffic_model="real", roofline=None, algorithm=pattern, isa=isa, kernel=name,
                note="memory-only")


def make_toucher(x: np.ndarray, isa: Optional[str]) -> Callable[[], Any]:
    """Reads x once (the paper's "hot input"); not timed."""
    run = _core.run_pattern

    def touch(run=run, x=x, isa=isa):
        run("read", x, x, isa)

    return touch


# ---- peers --------------------------------------------------------------------------------

class Peer:
    name = ""
    traffic = MIN_TRAFFIC
    traffic_model = "effective"
    roofline = "two-pass"
    note = ""

    def __init__(self, threads: int):
        self.threads = threads
        self.version: Optional[str] = None

    def load(self) -> None:
        """Import the runtime (raising Skip when it is missing) and pin its threads."""

    def make(self, op: str, x: np.ndarray) -> Impl:  # pragma: no cover - abstract
        raise NotImplementedError

    def _impl(self, call, kernel: str, prepare=None, result=None, note: Optional[str] = None) -> Impl:
        return Impl(label=self.name, kind="peer", call=call, traffic=self.traffic, traffic_model=self.traffic_model,
                    roofline=self.roofline, kernel=kernel, prepare=prepare, result=result,
                    note=self.note if note is None else note)


class NumpyPeer(Peer):
    name = "numpy"
    note = "naive max/exp/sum/divide, in place in out="

    def load(self) -> None:
        self.version = np.__version__

    def make(self, op: str, x: np.ndarray) -> Impl:
        subtract, exp, divide, log = np.subtract, np.exp, np.divide, np.log
        if op == "softmax":
            def call(o, x=x):
                subtract(x, x.max(), out=o)
                exp(o, out=o)
                divide(o, o.sum(), out=o)
            kernel = "x.max(); subtract(out=); exp(out=); o.sum(); divide(out=)"
        else:
            def call(o, x=x):
                subtract(x, x.max(), out=o)
                subtract(o, log(exp(o).sum()), out=o)
            kernel = "x.max(); subtract(out=); log(exp(o).sum()); subtract(out=)"
        return self._impl(call, kernel)


class ScipyPeer(Peer):
    name = "scipy"
    note = "scipy.special.softmax (allocates its result)"

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

        def call(o, fn=fn, x=x):
            fn(x)

        return self._impl(call, f"scipy.special.{op}(x)", result=lambda o: fn(x),
                          note=f"scipy.special.{op} (allocates its result)")


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

        probe = np.empty_like(x[:16])
        try:
            fn(torch.from_numpy(x[:16].copy()), -1, out=torch.from_numpy(probe))
        except (TypeError, RuntimeError):  # an old torch without the out= overload
            def call(o, fn=fn, xt=xt):
                fn(xt, -1)
            return self._impl(call, f"torch.{op}(x, -1)", result=lambda o: fn(xt, -1).numpy(),
                              note=f"torch.{op}(x, -1) (allocates: no out= in this torch)")

        def call(o, fn=fn, xt=xt, tensor_of=tensor_of):
            fn(xt, -1, out=tensor_of(o))

        return self._impl(call, f"torch.{op}(x, -1, out=)", note=f"torch.{op}(x, -1, out=)")


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
        self.sessions: Dict[Tuple[str, str], Any] = {}
        self.ir_version: Optional[int] = None

    def _session(self, op: str, dtype: np.dtype):
        key = (op, dtype.name)
        if key in self.sessions:
            return self.sessions[key]
        onnx, helper, ort = self.onnx, self.helper, self.ort
        elem = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE}[dtype.name]
        xin = helper.make_tensor_value_info("X", elem, ["n"])
        yout = helper.make_tensor_value_info("Y", elem, ["n"])
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
        for ir in range(int(onnx.IR_VERSION), 6, -1):
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
        sess = self._session(op, x.dtype)
        binding = sess.io_binding()
        binding.bind_cpu_input("X", x)
        shape = list(x.shape)
        dtype = x.dtype

        def prepare(o, binding=binding, shape=shape, dtype=dtype):
            binding.bind_output("Y", "cpu", 0, dtype, shape, o.__array_interface__["data"][0])

        def call(o, sess=sess, binding=binding):
            sess.run_with_iobinding(binding)

        impl = self._impl(call, f"{'Softmax' if op == 'softmax' else 'LogSoftmax'} opset 13, IR {self.ir_version}",
                          prepare=prepare)
        impl.extra["ir_version"] = self.ir_version
        return impl


PEER_CLASSES = {"numpy": NumpyPeer, "scipy": ScipyPeer, "torch": TorchPeer, "onnxruntime": OrtPeer}


def validate(op: str, y: np.ndarray) -> Optional[str]:
    """None when `y` looks like a softmax (log-softmax) of a row, else what is wrong."""
    y = np.asarray(y)
    if op == "softmax":
        s = float(np.sum(y, dtype=np.float64))
    else:
        s = 0.0
        for i in range(0, y.size, 1 << 20):
            s += float(np.exp(y[i:i + (1 << 20)].astype(np.float64)).sum())
    if not np.isfinite(s) or abs(s - 1.0) > 1e-3:
        return f"{'sum' if op == 'softmax' else 'sum of exp'} of the output is {s!r}, not 1"
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
