"""The names of kernels.inc's lists reach every consumer from the core: the Python API's
algorithm names, the benchmark harness's algorithms and patterns, the C header's
fastsoftmax_algorithm, the CPU features; and every binding that takes isa= picks the tier
one way (one message per refusal)."""

from __future__ import annotations

import os
import re
from typing import get_args

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core, _profile
from fastsoftmax.bench import _cli, _impls, _report, _tune


def test_python_algorithm_names_are_the_cores():
    core = tuple(_core.algorithms())
    assert core, "the core lists no algorithm"
    assert len(set(core)) == len(core)
    assert fastsoftmax.ALGORITHMS == ("auto", *core)
    # The Literal is spelled out for type checkers; it must say the same, in the same order.
    assert get_args(fastsoftmax.Algorithm) == ("auto", *core)
    # The registry's kernels have exactly these algorithms, for every tier, dtype and op.
    by_combo: dict = {}
    for k in fastsoftmax.kernels():
        by_combo.setdefault((k["isa"], k["dtype"], k["op"]), []).append(k["algorithm"])
    assert by_combo and all(tuple(algs) == core for algs in by_combo.values()), by_combo


def test_auto_resolves_to_a_core_algorithm():
    for dtype in ("float32", "float64", "float16", "bfloat16"):
        for n in (1, 1 << 10, 1 << 26):
            assert _core.auto_algorithm(dtype, n) in _core.algorithms()


def test_dtype_names_are_the_cores():
    names = tuple(_core.dtype_names())
    assert names and len(set(names)) == len(names)
    assert {k["dtype"] for k in fastsoftmax.kernels()} == set(names)
    assert _impls.DTYPES == names and _profile.DTYPES == names
    assert set(_impls.ITEMSIZE) == set(names) and _report.ITEMSIZE is _impls.ITEMSIZE
    assert _impls.HALF_DTYPES == tuple(d for d in names if d in ("float16", "bfloat16"))


def test_tune_measures_the_pair_auto_chooses_between():
    """--tune times the two algorithms of auto's rule: in cache (short rows) and beyond (the
    suite runs with the built-in limit, FASTSOFTMAX_PROFILE=off)."""
    pair = tuple(_core.auto_algorithms())
    assert _tune.ALGS == pair and len(set(pair)) == 2 and set(pair) <= set(_core.algorithms())
    for dtype in _core.dtype_names():
        assert _core.auto_algorithm(dtype, 1) == pair[0]
        saved = _core.auto_reload_limit(dtype)
        _core.set_auto_reload_limit(dtype, 1 << 20)  # a finite limit (the built-in one may be none)
        try:
            assert _core.auto_algorithm(dtype, 1 << 40) == pair[1]
        finally:
            _core.set_auto_reload_limit(dtype, saved["bytes"] if saved["from_profile"] else None)
    assert [a for a, _ in _tune.prefetch_workloads()] == list(pair)


def test_bench_algorithms_and_patterns_are_the_cores():
    core, patterns = _core.algorithms(), _core.pattern_names()
    assert sorted(_impls.ALGORITHMS) == sorted(core)
    assert _impls.PATTERNS == tuple(patterns)
    assert [p["pattern"] for p in _core.patterns() if p["isa"] == "scalar" and p["dtype"] == "float32"] == patterns
    # Per-name data: one entry per name, nothing for a name the core does not have.
    assert set(_impls.TRAFFIC) == set(core)
    assert set(_impls.ROOFLINE_OF) == set(core) and set(_impls.ROOFLINE_OF.values()) <= set(patterns)
    assert set(_impls.PATTERN_TRAFFIC) == set(patterns)
    assert _cli._ALGS == (*_impls.ALGORITHMS, "auto")
    assert _report._ALG_ORDER == (*_impls.ALGORITHMS, "auto")
    # The harness lists the algorithms that read the row twice before those that read it three times.
    reads = [_impls.TRAFFIC[a][0] for a in _impls.ALGORITHMS]
    assert reads == sorted(reads)


def test_c_header_algorithm_codes_follow_the_core():
    """fastsoftmax_algorithm: AUTO = 0, then the core's algorithms from 1 in its order
    (capi.cpp static_asserts the same; this reads the installed header)."""
    header = os.path.join(fastsoftmax.get_include(), "fastsoftmax", "fastsoftmax.h")
    with open(header, encoding="utf-8") as f:
        text = f.read()
    codes = {m.group(1): int(m.group(2)) for m in re.finditer(r"FASTSOFTMAX_ALGORITHM_(\w+)\s*=\s*(\d+)", text)}
    assert codes.pop("AUTO") == 0
    by_code = {code: name.lower().replace("_", "-") for name, code in codes.items()}
    assert [by_code[c] for c in sorted(by_code)] == _core.algorithms()
    assert sorted(by_code) == list(range(1, len(_core.algorithms()) + 1))


def test_cpu_feature_names_round_trip():
    """select_isa takes every feature cpu_features() names, and no other."""
    feats = _core.cpu_features()
    assert feats and all(isinstance(v, bool) for v in feats.values())
    assert _core.select_isa(feats) in _core.compiled_isas()
    assert _core.select_isa({k: False for k in feats}) == "scalar"
    with pytest.raises(KeyError, match="unknown CPU feature 'sse9'"):
        _core.select_isa({**feats, "sse9": True})


@pytest.mark.parametrize("isa", ["bogus", "avx2\x00junk", "AVX2"])
def test_every_binding_refuses_a_tier_the_same_way(isa):
    x = np.ones((2, 4), np.float32)
    y, g, out = x / 4, np.ones_like(x), np.empty_like(x)
    calls = {
        "run": lambda: _core.run("softmax", "auto", x, out, isa),
        "row_stats": lambda: _core.row_stats(x, isa),
        "kernel_name": lambda: _core.kernel_name("softmax", "auto", "float32", isa),
        "run_pattern": lambda: _core.run_pattern("read", x, out, isa),
        "softmax_backward": lambda: _core.softmax_backward(y, g, out, isa),
        "log_softmax_backward": lambda: _core.log_softmax_backward(y, g, out, isa),
        "backward_pattern": lambda: _core.backward_pattern(y, g, out, False, isa),
    }
    expected = f"unknown isa {isa!r} (this build has: {', '.join(_core.compiled_isas())})"
    for name, call in calls.items():
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == expected, name


def test_tier_errors_come_before_name_errors():
    """An unknown op or algorithm with an unknown isa: the isa is reported (the tier is picked
    first), and with a good isa the name is."""
    with pytest.raises(ValueError, match="unknown isa 'bogus'"):
        _core.kernel_name("softmax", "bogus", "float32", "bogus")
    with pytest.raises(ValueError, match=r"no kernel for op='softmax', algorithm='read'"):
        _core.kernel_name("softmax", "read", "float32")
    with pytest.raises(ValueError, match=r"no kernel for op='pattern', algorithm='two-pass'"):
        _core.kernel_name("pattern", "two-pass", "float32")
    with pytest.raises(ValueError, match="unknown memory pattern 'online'"):
        _core.run_pattern("online", np.ones(4), np.ones(4))
