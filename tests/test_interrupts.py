"""Ctrl-C (SIGINT) during long multi-threaded calls leaves no worker thread wedged and the
thread pool working for the next call.

The kernels run with the GIL released and do not poll for signals: Python's handler only
records the signal, and KeyboardInterrupt is raised in the main thread as soon as the
running call returns. Each test runs a child interpreter and interrupts it from outside, as
a terminal would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix",
                                reason="needs POSIX signals")

CHILD = """
    import sys, threading, time
    import numpy as np, fastsoftmax

    fastsoftmax.set_num_threads(2)
    rng = np.random.default_rng(0)
    # One long row (split into chunks across the pool) and many rows (spread across it).
    long_row = rng.standard_normal((1, 1 << 24)).astype(np.float32)
    many_rows = rng.standard_normal((256, 1 << 14)).astype(np.float64)
    want = {id(a): fastsoftmax.softmax(a, axis=1, threads=1) for a in (long_row, many_rows)}

    def check(threads):
        for a in (long_row, many_rows):
            y = fastsoftmax.softmax(a, axis=1, threads=threads)
            assert np.array_equal(y, want[id(a)]), "wrong result after an interrupt"

    rounds = int(sys.argv[1])
    background = sys.argv[2] == "background"
    for k in range(rounds):
        stop = threading.Event()
        errors = []
        def worker():  # other Python threads calling at the same time (they get no signal)
            try:
                while not stop.is_set():
                    fastsoftmax.log_softmax(many_rows, axis=1, threads=2)
            except BaseException as e:
                errors.append(e)
        others = [threading.Thread(target=worker) for _ in range(2)] if background else []
        for t in others:
            t.start()
        out = np.empty_like(long_row)
        t0 = time.monotonic()
        try:
            print(f"ready {k}", flush=True)  # inside the try: a signal may come at once
            while time.monotonic() - t0 < 60:
                fastsoftmax.softmax(long_row, axis=1, out=out)
                fastsoftmax.log_softmax(many_rows, axis=1)
            print(f"not interrupted {k}", flush=True)
            sys.exit(3)
        except KeyboardInterrupt:
            pass
        stop.set()
        for t in others:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in others), "a Python thread calling fastsoftmax hung"
        assert not errors, errors
        check(2)
        check(1)
        check(None)
        print(f"recovered {k}", flush=True)
    print("ok", flush=True)
"""


def expect_line(proc: subprocess.Popen, want: str, transcript: list) -> None:
    line = proc.stdout.readline()
    transcript.append(line)
    if line.strip() != want:
        proc.kill()  # before reading stderr: a live child would keep the pipe open
        out, err = proc.communicate()
        pytest.fail(f"expected {want!r}, the child said:\n{''.join(transcript)}{out}\nstderr:\n{err}")


def run_and_interrupt(rounds: int, mode: str, delays) -> None:
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), str(rounds), mode],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        transcript: list = []
        try:
            for k in range(rounds):
                expect_line(proc, f"ready {k}", transcript)
                time.sleep(delays[k % len(delays)])  # somewhere inside a call (each takes tens of ms)
                proc.send_signal(signal.SIGINT)
                expect_line(proc, f"recovered {k}", transcript)
            # Line by line to the end: communicate() would bypass what readline() has buffered.
            expect_line(proc, "ok", transcript)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"rc={proc.returncode}\n{''.join(transcript)}"


@pytest.mark.parametrize("mode", ["alone", "background"])
def test_ctrl_c_during_threaded_calls_leaves_the_pool_working(mode):
    """Four Ctrl-Cs at different moments of long multi-threaded calls (with and without other
    Python threads calling at the same time): each raises KeyboardInterrupt in the main thread,
    and afterwards calls on 1, 2 and the default number of threads give the exact results."""
    run_and_interrupt(4, mode, delays=(0.05, 0.13, 0.31, 0.02))


def test_uncaught_ctrl_c_exits_promptly():
    """An uncaught KeyboardInterrupt during a multi-threaded call ends the process: the pool's
    idle workers do not keep it alive at exit."""
    code = textwrap.dedent("""
        import numpy as np, fastsoftmax
        x = np.random.default_rng(0).standard_normal((1, 1 << 24)).astype(np.float32)
        print("ready", flush=True)
        while True:
            fastsoftmax.softmax(x, axis=1, threads=2)
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            expect_line(proc, "ready", [])
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            proc.wait(timeout=30)
            waited = time.monotonic() - t0
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert waited < 10, "the process took long to exit after Ctrl-C"
    # Python re-raises SIGINT on itself after an uncaught KeyboardInterrupt.
    assert proc.returncode in (-signal.SIGINT, 130, 1), f"rc={proc.returncode}\n{err}"
    assert "KeyboardInterrupt" in err
