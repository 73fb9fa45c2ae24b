"""The benchmark harness's thread rows: the default thread count beside one thread, and
the scaling list (timings are not checked, only that the rows and the summary exist and
agree with each other)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from fastsoftmax.bench import parse_threads


def test_parse_threads_scaling_is_powers_of_two_up_to_the_cpus():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    got = parse_threads("scaling")
    assert got[0] == 1 and got[-1] == cpus and got == sorted(set(got))
    assert all(t == cpus or (t & (t - 1)) == 0 for t in got)
    assert parse_threads("scaling,3") == sorted(set(got) | {3})
    with pytest.raises(ValueError, match="scaling"):
        parse_threads("0")


def test_default_threads_row_and_summary():
    code = """
        import io, json
        from fastsoftmax.bench import BenchConfig, run_benchmark
        cfg = BenchConfig(sizes=[2**10, 2**17], shapes=[(64, 300)], algorithms=["auto"], isas=[], peers=[],
                          patterns=False, new_output=False, out_dir=None, min_time=0.002, max_time=0.02,
                          min_reps=3, rounds=1, progress=False, plot=False)
        doc = run_benchmark(cfg, out=io.StringIO())
        rows = [{k: r.get(k) for k in ("impl", "n", "threads", "median_ns", "kind")} for r in doc["rows"]]
        summary = [s for s in doc["summary"] if s.get("kind") == "default_threads"]
        print(json.dumps({"rows": rows, "summary": summary}))
    """
    env = {k: v for k, v in os.environ.items() if k not in ("FASTSOFTMAX_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    default_rows = [r for r in doc["rows"] if r["impl"] == "auto (default threads)"]
    one_rows = [r for r in doc["rows"] if r["impl"].startswith("auto@")]
    assert len(default_rows) == len(one_rows) == 3
    assert all(r["threads"] == 1 and r["median_ns"] > 0 for r in default_rows)
    (s,) = doc["summary"]
    assert s["pairs"] == 3 and len(s["ratios"]) == 3
    assert s["worst_ratio"] == max(r["ratio"] for r in s["ratios"]) >= s["best_ratio"] > 0
    assert "default threads" in s["text"][0] and "worst ratio" in s["text"][0]
