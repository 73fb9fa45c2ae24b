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


# ---- --suite models -------------------------------------------------------------------------

def _suite_config(extra=()):
    from fastsoftmax.bench._cli import build_parser, make_config

    argv = ["--suite", "models", *extra]
    return make_config(build_parser().parse_args(argv), argv)


def test_models_suite_config():
    import fastsoftmax
    from fastsoftmax.bench import _suites

    cfg = _suite_config()
    assert cfg.suite == "models" and cfg.sizes == []
    assert cfg.dtypes == ["float32", "bfloat16", "float16"]
    assert cfg.algorithms == ["auto"] and cfg.peers == ["torch", "onnxruntime"] and cfg.patterns is False
    assert cfg.threads == sorted({1, fastsoftmax.get_num_threads()})
    for length in (128, 512, 2048, 4096):
        assert any(s[1:] == (length, length) for s in cfg.shapes)
        assert any(s[1:] == (length, length) for s in cfg.causal_shapes)
    assert (256, 1000) in cfg.shapes
    for v in _suites.VOCABULARIES:
        assert (1, v) in cfg.shapes and (64, v) in cfg.shapes
    # each default can be overridden by its option; --sizes adds single rows
    cfg = _suite_config(["--dtype", "float64", "--threads", "1", "--peers", "numpy", "--rooflines",
                         "--sizes", "1024", "--algorithms", "two-pass,auto"])
    assert cfg.dtypes == ["float64"] and cfg.threads == [1] and cfg.peers == ["numpy"] and cfg.patterns
    assert cfg.sizes == [1024] and cfg.algorithms == ["two-pass", "auto"]


def test_causal_case_and_mask():
    import numpy as np

    from fastsoftmax.bench._runner import BenchConfig, _cases, shape_label
    from fastsoftmax.bench._suites import Case, apply_causal_mask

    cases = _cases(BenchConfig(sizes=[8], shapes=[(2, 4, 4)], causal_shapes=[(2, 4, 4)]))
    assert [(tuple(c), c.causal) for c in cases] == [((8,), False), ((2, 4, 4), False), ((2, 4, 4), True)]
    assert [shape_label(c) for c in cases] == ["2^3", "2x4x4", "2x4x4 causal"]
    with pytest.raises(ValueError, match="square"):
        Case((4, 8), causal=True)
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    apply_causal_mask(x)
    for b in range(2):
        for i in range(4):
            for j in range(4):
                assert (x[b, i, j] == -np.inf) == (j > i)
                if j <= i:
                    assert x[b, i, j] == b * 16 + i * 4 + j


def test_shapes_summary_compares_auto_with_the_fastest_peer():
    from fastsoftmax.bench import _report

    def row(shape, impl, kind, ns, threads=1, **kw):
        return {"shape": shape, "impl": impl, "kind": kind, "median_ns": ns, "ns_per_elem": ns / 100,
                "dtype": "float32", "op": "softmax", "threads": threads, "n": 10, "rows": 10,
                "isa": "avx2" if kind == "fastsoftmax" else None, "fresh_output": False, **kw}

    rows = [row("10x10", "auto@avx2", "fastsoftmax", 100.0), row("10x10", "numpy", "peer", 300.0),
            row("10x10", "onnxruntime", "peer", 150.0),
            row("1x32000", "auto@avx2", "fastsoftmax", 100.0), row("1x32000", "onnxruntime", "peer", 110.0),
            row("10x10", "auto (default threads)", "fastsoftmax", 50.0, default_threads=2),
            row("1x32000", "auto (default threads)", "fastsoftmax", 100.0, default_threads=2),
            row("10x10", "onnxruntime", "peer", 80.0, threads=2), row("1x32000", "onnxruntime", "peer", 90.0, threads=2),
            row("2^10", "auto@avx2", "fastsoftmax", 1.0)]
    one, default = _report.shapes_summary(rows, ["avx2"])
    assert one["setting"] == "one thread" and one["shapes"] == 2
    assert {r["shape"]: round(r["ratio"], 6) for r in one["ratios"]} == {"10x10": 1.5, "1x32000": 1.1}
    assert one["worst_shape"] == "1x32000" and one["worst_peer"] == "onnxruntime" and one["shapes_met"] == 1
    assert "NOT met (1 of 2)" in one["text"][0]
    assert default["threads"] == 2 and default["worst_shape"] == "1x32000"
    assert round(default["worst_ratio"], 6) == 0.9 and default["shapes_met"] == 1


def test_models_suite_runs_masked_shapes():
    code = """
        import io, json
        from fastsoftmax.bench import BenchConfig, run_benchmark
        cfg = BenchConfig(sizes=[], shapes=[(3, 16)], causal_shapes=[(2, 16, 16)], algorithms=["auto"], isas=[],
                          peers=["numpy"], patterns=False, new_output=False, out_dir=None, min_time=0.002,
                          max_time=0.02, min_reps=3, rounds=1, progress=False, plot=False, suite="models")
        doc = run_benchmark(cfg, out=io.StringIO())
        print(json.dumps({"rows": [{k: r.get(k) for k in ("impl", "shape", "validated")} for r in doc["rows"]],
                          "summary": [s for s in doc["summary"] if s.get("comparison") == "shapes_vs_peers"]}))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    shapes = {r["shape"] for r in doc["rows"]}
    assert shapes == {"3x16", "2x16x16 causal"}
    assert all(r["validated"] for r in doc["rows"])  # against the float64 reference of the masked input
    (s,) = [s for s in doc["summary"] if s["setting"] == "one thread"]
    assert s["shapes"] == 2 and {r["shape"] for r in s["ratios"]} == shapes
