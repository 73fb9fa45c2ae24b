"""Interpreter exit while other threads are inside a call: the process exits cleanly.

A daemon thread that is running a kernel (GIL released) when the main thread finalizes the
interpreter must not abort the process. On CPython 3.9-3.13 re-taking the GIL then ends
the thread with pthread_exit, whose unwind through pybind11's noexcept ~gil_scoped_release
was std::terminate ("terminate called without an active exception", exit 134);
the bindings hang such a thread instead, as CPython 3.14 does (csrc/bindings/release_gil.h).
Each case runs child interpreters; NumPy and SciPy exit cleanly in the same situation.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax
from conftest import SANITIZED

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the abort was glibc's pthread_exit unwind")

# Four daemon threads looping over one kind of call; the main thread exits while they are
# inside it (0.1 s: well after the first calls began, each 4 x 2^20 elements, 1-10 ms).
DAEMONS = """
    import sys, threading, time
    import numpy as np, fastsoftmax as fs
    kind, threads = sys.argv[1], int(sys.argv[2])
    x = np.random.default_rng(0).standard_normal((4, 1 << 20)).astype(np.float32)
    xt = np.ascontiguousarray(x.T)  # (2^20, 4): axis=0 is not the fast path's case
    calls = {
        "softmax": lambda: fs.softmax(x, axis=-1, threads=threads),  # the C fast path
        "log_softmax_axis0": lambda: fs.log_softmax(xt, axis=0, threads=threads),  # pybind11 run
        "logsumexp": lambda: fs.logsumexp(x, axis=-1, threads=threads),  # row_stats
        "softmax_stats": lambda: fs.softmax_stats(x, axis=-1, threads=threads),
    }
    call = calls[kind]
    started = threading.Semaphore(0)
    def loop():
        started.release()
        while True:
            call()
    for _ in range(4):
        threading.Thread(target=loop, daemon=True).start()
    for _ in range(4):
        started.acquire()
    time.sleep(0.1)
    print("exiting", flush=True)
"""

CASES = [("softmax", 2), ("softmax", 1), ("log_softmax_axis0", 2), ("logsumexp", 2), ("softmax_stats", 1)]
RUNS_EACH = 4  # 20 child interpreters in all; each aborted in ~39 of 40 runs before the fix


def run_children(code: str, argvs, timeout: float = 60):
    """Starts one child per argv at once (they mostly sleep), returns their CompletedProcess."""
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in argvs]
    results = []
    for argv, p in zip(argvs, procs):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"child {argv} did not exit within {timeout} s")
        results.append((argv, p.returncode, out, err))
    return results


@pytest.mark.skipif("thread" in SANITIZED, reason="daemon threads outlive the checks")
def test_exit_with_daemon_threads_inside_calls():
    """20 child interpreters exit (code 0, nothing on stderr) while 4 daemon threads each
    are inside calls: the fast path, the pybind11 path, logsumexp and softmax_stats, on one
    thread and with the pool's workers busy."""
    argvs = [(kind, str(threads)) for kind, threads in CASES for _ in range(RUNS_EACH)]
    failures = []
    for argv, rc, out, err in run_children(DAEMONS, argvs):
        if rc != 0 or "terminate" in err or out.strip() != "exiting":
            failures.append(f"{' '.join(argv)}: exit {rc}, stdout {out.strip()!r}, stderr {err.strip()[-300:]!r}")
    assert not failures, f"{len(failures)} of {len(argvs)} children failed:\n" + "\n".join(failures)


# The finalizing thread's own calls go on: a __del__ run while the interpreter finalizes
# (the module's globals are cleared) makes the process's first call, a large softmax with
# the GIL released. Nothing can be imported by then: the child keeps what it needs.
FINALIZER_CALL = """
    import hashlib, os, sys, numpy as np, fastsoftmax
    class AtExit:
        def __init__(self):
            self.x = np.random.default_rng(0).standard_normal((4, 1 << 20)).astype(np.float32)
            self.threads = int(sys.argv[1])
            self.softmax, self.write, self.is_finalizing = fastsoftmax.softmax, os.write, sys.is_finalizing
            self.sha = hashlib.sha256
        def __del__(self):
            fin = self.is_finalizing()
            y = self.softmax(self.x, axis=-1, threads=self.threads)
            self.write(1, b"finalizing=%d %s\\n" % (fin, self.sha(y.tobytes()).hexdigest().encode()))
    keep = AtExit()
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_call_from_the_finalizing_thread_completes(threads):
    """A call made by the thread that finalizes the interpreter (from a __del__) runs to
    completion, with the result of the same call made earlier: only other threads are
    held back at exit."""
    x = np.random.default_rng(0).standard_normal((4, 1 << 20)).astype(np.float32)
    want = hashlib.sha256(fastsoftmax.softmax(x, axis=-1).tobytes()).hexdigest()
    [(_, rc, out, err)] = run_children(FINALIZER_CALL, [(str(threads),)])
    assert rc == 0 and err == "", (rc, err)
    assert out == f"finalizing=1 {want}\n", out
