"""Run-time dispatch: tier selection, FASTSOFTMAX_ISA, the registry, show_runtime()."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import conftest
import fastsoftmax
from conftest import REQUIRE_ENV, below_cap, require_or_skip, required_isas
from fastsoftmax import _core
from helpers import run_scipy

DTYPES = ("float32", "float64", "float16", "bfloat16")  # the registry lists bfloat16 with or without ml_dtypes
OPS = ("softmax", "log_softmax")
EXPLICIT_ALGORITHMS = tuple(a for a in fastsoftmax.ALGORITHMS if a != "auto")

# ---- select_isa over mocked CPU feature sets -------------------------------------------------

AVX2_OK = {"avx": True, "fma": True, "f16c": True, "avx2": True, "os_ymm": True}
AVX512_OK = {**AVX2_OK, "avx512f": True, "os_zmm": True}
ALL_FEATURES = {k: True for k in _core.cpu_features()}

SELECT_CASES = [
    ("no features", {}, None, "scalar"),
    ("every feature False", {k: False for k in ALL_FEATURES}, None, "scalar"),
    ("avx2+fma+avx+os_ymm", AVX2_OK, None, "avx2"),
    ("avx2 without os_ymm", {**AVX2_OK, "os_ymm": False}, None, "scalar"),
    ("avx2 without fma", {**AVX2_OK, "fma": False}, None, "scalar"),
    ("avx2 without avx", {**AVX2_OK, "avx": False}, None, "scalar"),
    ("avx2 without f16c (float16 conversions)", {**AVX2_OK, "f16c": False}, None, "scalar"),
    ("fma+avx+os_ymm without avx2", {**AVX2_OK, "avx2": False}, None, "scalar"),
    ("avx512f+fma+os_zmm + avx2", AVX512_OK, None, "avx512"),
    ("avx512f+fma+os_zmm alone", {"avx512f": True, "fma": True, "os_zmm": True}, None, "avx512"),
    ("every feature", ALL_FEATURES, None, "avx512"),
    ("avx512f without os_zmm", {**AVX512_OK, "os_zmm": False}, None, "avx2"),
    ("avx512f without os_zmm, no avx2", {"avx512f": True, "fma": True, "os_ymm": True}, None, "scalar"),
    ("avx512f without fma", {**AVX512_OK, "fma": False}, None, "scalar"),
    ("avx512 features, cap avx2", AVX512_OK, "avx2", "avx2"),
    ("avx512 features, cap scalar", AVX512_OK, "scalar", "scalar"),
    ("avx512 features, cap avx512", AVX512_OK, "avx512", "avx512"),
    ("avx2 features, cap avx512", AVX2_OK, "avx512", "avx2"),
    ("avx2 features, cap scalar", AVX2_OK, "scalar", "scalar"),
    ("no features, cap avx2", {}, "avx2", "scalar"),
]


@pytest.mark.parametrize("features, cap, expected", [c[1:] for c in SELECT_CASES],
                         ids=[c[0] for c in SELECT_CASES])
def test_select_isa_on_mocked_features(features, cap, expected):
    needed = [t for t in (expected, cap) if t is not None and t not in _core.compiled_isas()]
    if needed:  # a non-x86 build has the scalar tier alone
        pytest.skip(f"CPU lacks {needed[0]} (tier not compiled into this build)")
    assert _core.select_isa(features, cap) == expected
    if cap is None:
        assert _core.select_isa(features) == expected


@pytest.mark.parametrize("cap", ["bogus", "AVX2", "sse4", "avx512f"])
def test_select_isa_unknown_cap(cap):
    with pytest.raises(ValueError, match=cap):
        _core.select_isa(AVX512_OK, cap)


def test_select_isa_unknown_feature_key():
    with pytest.raises(KeyError, match="avx1024"):
        _core.select_isa({"avx1024": True})


def test_select_isa_matches_this_cpu():
    cap = os.environ.get("FASTSOFTMAX_ISA") or None
    assert _core.active_isa() == _core.select_isa(_core.cpu_features(), cap)
    for isa in _core.compiled_isas():
        # A tier is runnable exactly when selecting with it as the cap yields it.
        assert _core.isa_runnable(isa) == (_core.select_isa(_core.cpu_features(), isa) == isa)


# ---- the registry ------------------------------------------------------------------------

def test_kernels_cover_every_combination():
    ks = fastsoftmax.kernels()
    combos = [(k["isa"], k["dtype"], k["op"], k["algorithm"]) for k in ks]
    expected = set(itertools.product(_core.compiled_isas(), DTYPES, OPS, EXPLICIT_ALGORITHMS))
    assert len(combos) == len(set(combos)), "a kernel is listed twice"
    assert set(combos) == expected
    assert len(ks) == len(_core.compiled_isas()) * len(DTYPES) * 2 * 4
    assert len({k["name"] for k in ks}) == len(ks), "kernel names are not unique"
    for k in ks:
        assert set(k) == {"name", "isa", "dtype", "op", "algorithm", "supported"}
        assert k["supported"] == _core.isa_runnable(k["isa"])
        assert k["isa"] in k["name"]
    assert all(k["supported"] for k in ks if k["isa"] == "scalar")


def test_kernels_list_an_avx2_variant_for_each():
    if "avx2" not in _core.compiled_isas():
        pytest.skip("CPU lacks avx2 (tier not compiled into this build)")
    ks = fastsoftmax.kernels()
    avx2 = {(k["dtype"], k["op"], k["algorithm"]) for k in ks if k["isa"] == "avx2"}
    everything = {(k["dtype"], k["op"], k["algorithm"]) for k in ks}
    assert avx2 == everything
    assert len(avx2) == len(DTYPES) * 2 * 4


@pytest.mark.parametrize("isa", _core.compiled_isas())
def test_kernel_name_agrees_with_kernels(isa):
    by_key = {(k["isa"], k["dtype"], k["op"], k["algorithm"]): k for k in fastsoftmax.kernels()}
    for dtype, op, alg in itertools.product(DTYPES, OPS, EXPLICIT_ALGORITHMS):
        if _core.isa_runnable(isa) and not below_cap(isa):
            with pytest.raises(ValueError, match="above the cap"):
                _core.kernel_name(op, alg, dtype, isa)
        elif _core.isa_runnable(isa):
            assert _core.kernel_name(op, alg, dtype, isa) == by_key[(isa, dtype, op, alg)]["name"]
        else:
            with pytest.raises(ValueError, match="cannot run"):
                _core.kernel_name(op, alg, dtype, isa)


@pytest.mark.parametrize("isa", _core.compiled_isas())
def test_explicit_isa_runs_or_is_refused(isa):
    x = np.linspace(-3, 3, 100)
    if _core.isa_runnable(isa) and not below_cap(isa):
        with pytest.raises(ValueError, match="above the cap"):
            fastsoftmax.softmax(x, isa=isa)
    elif _core.isa_runnable(isa):
        y = fastsoftmax.softmax(x, isa=isa)
        theirs, _ = run_scipy("softmax", x)
        assert np.allclose(y, theirs, rtol=1e-14, atol=0)
    else:
        with pytest.raises(ValueError, match="cannot run"):
            fastsoftmax.softmax(x, isa=isa)


def _vendor_family_model():
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read().split("\n\n")[0]
    except OSError:
        pytest.skip("no /proc/cpuinfo to read the CPU family from")
    fields = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("vendor_id"), int(fields.get("cpu family", "-1")), int(fields.get("model", "-1"))


def narrow_vector_arithmetic() -> bool:
    """The avx2 tier, or AVX-512 on AMD family 19h (Zen 4, which runs it as 256-bit halves)."""
    isa = _core.active_isa()
    if isa != "avx512":
        return isa == "avx2"
    vendor, family, _ = _vendor_family_model()
    return vendor == "AuthenticAMD" and family == 0x19


def halved_avx2_arithmetic() -> bool:
    """The avx2 tier on a core that runs 256-bit AVX2 as two 128-bit halves: AMD families 15h,
    16h, 17h before model 30h (Zen, Zen+), Hygon family 18h."""
    if _core.active_isa() != "avx2":
        return False
    vendor, family, model = _vendor_family_model()
    if vendor == "HygonGenuine":
        return family == 0x18
    return vendor == "AuthenticAMD" and (family in (0x15, 0x16) or (family == 0x17 and model < 0x30))


@pytest.mark.parametrize("dtype", DTYPES)
def test_auto_rule_is_the_documented_one(dtype):
    """README: three-pass reload for rows of at most L2 bytes of input (float64: 4 L2), two-pass
    beyond; where the vector arithmetic is 256 bits wide, at most max(that, L3/4) (16-bit: L3/8);
    where AVX2 runs in 128-bit halves, reload at any length."""
    if halved_avx2_arithmetic():
        assert _core.auto_reload_limit(dtype)["builtin_bytes"] == 2**63 - 1
        for n in (1, 1 << 20, 1 << 26, 1 << 40):
            assert _core.auto_algorithm(dtype, n) == "three-pass-reload", n
        return
    caches = _core.cache_sizes()
    l2 = caches["l2"] or (1 << 20)
    item = {"float32": 4, "float64": 8}.get(dtype, 2)  # bfloat16 without ml_dtypes has no np.dtype
    limit = (4 if dtype == "float64" else 1) * l2
    if narrow_vector_arithmetic():
        limit = max(limit, (caches["l3"] or 0) // (8 if item == 2 else 4))
    edge = limit // item  # the longest reload row
    for n, want in [(1, "three-pass-reload"), (edge // 2, "three-pass-reload"), (edge, "three-pass-reload"),
                    (edge + 1, "two-pass"), (4 * edge, "two-pass"), (1 << 26, "two-pass")]:
        assert _core.auto_algorithm(dtype, n) == want, (n, l2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_auto_uses_the_kernel_it_names(op, dtype):
    fn = getattr(fastsoftmax, op)
    active = _core.active_isa()
    for n in (1, 100, 4096, 1 << 18):
        alg = _core.auto_algorithm(dtype, n)
        assert alg in EXPLICIT_ALGORITHMS
        assert _core.kernel_name(op, "auto", dtype, None, n) == _core.kernel_name(op, alg, dtype, active, n)
        x = np.random.default_rng(n).standard_normal(n).astype(dtype)
        assert np.array_equal(fn(x), fn(x, algorithm=alg, isa=active))


BATCH_RULE_SCRIPT = r"""
import json, numpy as np, fastsoftmax
from fastsoftmax import _core
picks = {}
for dtype in ("float32", "float64", "float16", "bfloat16"):
    for n in (1000, 16383, 16384, 40000):
        for rows in (1, 2, 3, 64, 1000):
            picks[f"{dtype} {n} {rows}"] = _core.auto_algorithm(dtype, n, rows)
# A batch the rule may move, in every layout: C order, a Fortran-order copy, the transpose
# along axis 0, a strided view, the C API's layout through the Python call with out=.
x = np.random.default_rng(5).standard_normal((40, 16384)).astype(np.float32) * 4
alg = _core.auto_algorithm("float32", 16384, 40)
want = fastsoftmax.softmax(x, axis=-1)
same = {
    "explicit": fastsoftmax.softmax(x, axis=-1, algorithm=alg),
    "fortran": fastsoftmax.softmax(np.asfortranarray(x), axis=-1),
    "axis 0": fastsoftmax.softmax(np.ascontiguousarray(x.T), axis=0).T,
    "strided": fastsoftmax.softmax(np.repeat(x, 2, axis=1)[:, ::2], axis=-1),
    "two threads": fastsoftmax.softmax(x, axis=-1, threads=2),
}
try:
    import dask.array as da, fastsoftmax.dask
    same["dask"] = fastsoftmax.dask.softmax(da.from_array(x, chunks=(8, 16384)), axis=-1).compute(scheduler="sync")
except ImportError:
    pass
print(json.dumps({"picks": picks, "alg": alg, "kernel": _core.kernel_name("softmax", "auto", "float32", None, 16384, 40),
                  "same": {k: bool(np.array_equal(v, want)) for k, v in same.items()}}))
"""


def test_auto_batch_rule_is_the_documented_one():
    """README: a batch of float32/float64 rows of at least 16384 elements whose input plus
    output reach the streaming threshold runs two-pass where AVX-512 is executed at full
    width; the single-row rule otherwise. The choice depends on the job's rows, not their
    layout: views, a non-last axis, threads and Dask blocks get the C-order call's bits.
    The threshold is lowered (FASTSOFTMAX_STREAM_MIN_BYTES) so that small arrays reach it."""
    threshold = 1 << 20
    env = {**os.environ, "FASTSOFTMAX_STREAM_MIN_BYTES": str(threshold)}
    proc = subprocess.run([sys.executable, "-c", BATCH_RULE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    wide = _core.active_isa() == "avx512" and not narrow_vector_arithmetic()
    item = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
    for key, pick in out["picks"].items():
        dtype, n, rows = key.split()
        n, rows = int(n), int(rows)
        single = _core.auto_algorithm(dtype, n)  # this process: the same single-row rule
        batch = wide and item[dtype] >= 4 and n >= 16384 and rows >= 2 and rows * n * 2 * item[dtype] >= threshold
        assert pick == ("two-pass" if batch else single), key
    assert out["kernel"] == _core.kernel_name("softmax", out["alg"], "float32", _core.active_isa(), 16384)
    assert out["same"] and all(out["same"].values()), out["same"]


# ---- FASTSOFTMAX_ISA (read once per process: subprocesses) ---------------------------------

def run_python(code: str, isa_env=None, module=False):
    env = {k: v for k, v in os.environ.items() if k != "FASTSOFTMAX_ISA"}
    if isa_env is not None:
        env["FASTSOFTMAX_ISA"] = isa_env
    cmd = [sys.executable, "-m", code] if module else [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


PROBE = """
import numpy as np, fastsoftmax
from fastsoftmax import _core
print("active", _core.active_isa())
for op in ("softmax", "log_softmax"):
    for dtype in ("float32", "float64"):
        for alg in fastsoftmax.ALGORITHMS:
            print("kernel", op, dtype, alg, _core.kernel_name(op, alg, dtype))
x = np.random.default_rng(42).standard_normal((3, 1500))
for dtype in ("float32", "float64"):
    for alg in fastsoftmax.ALGORITHMS:
        for op in ("softmax", "log_softmax"):
            y = getattr(fastsoftmax, op)(x.astype(dtype), axis=1, algorithm=alg)
            print("result", op, dtype, alg, y.tobytes().hex())
"""


def parse_probe(stdout):
    active, names, results = None, {}, {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts[0] == "active":
            active = parts[1]
        elif parts[0] == "kernel":
            names[tuple(parts[1:4])] = parts[4]
        elif parts[0] == "result":
            results[tuple(parts[1:4])] = bytes.fromhex(parts[4])
    return active, names, results


@pytest.mark.parametrize("tier", ["scalar", "avx2", "avx512"])
def test_fastsoftmax_isa_env_caps_the_tier(tier):
    if tier != "scalar":
        require_or_skip(tier)
    proc = run_python(PROBE, isa_env=tier)
    assert proc.returncode == 0, proc.stderr
    active, names, results = parse_probe(proc.stdout)
    assert active == tier
    assert len(names) == 2 * 2 * len(fastsoftmax.ALGORITHMS)
    for (op, dtype, alg), name in names.items():
        assert name.endswith("_" + tier), f"{op}/{dtype}/{alg} uses {name} under FASTSOFTMAX_ISA={tier}"
    x = np.random.default_rng(42).standard_normal((3, 1500))
    assert len(results) == 2 * 2 * len(fastsoftmax.ALGORITHMS)
    for (op, dtype, alg), raw in results.items():
        got = np.frombuffer(raw, dtype=dtype).reshape(3, 1500)
        # Bitwise what this process computes with the tier forced explicitly...
        here = getattr(fastsoftmax, op)(x.astype(dtype), axis=1, algorithm=alg, isa=tier)
        assert np.array_equal(got, here), f"{op}/{dtype}/{alg} differs from isa={tier!r}"
        # ... and correct.
        theirs, _ = run_scipy(op, x.astype(dtype), axis=1)
        rtol = 4e-6 if dtype == "float32" else 1e-13
        assert np.allclose(got, theirs, rtol=rtol, atol=0), f"{op}/{dtype}/{alg} under FASTSOFTMAX_ISA={tier}"


@pytest.mark.parametrize("value", ["bogus", "sse2", "AVX2"])
def test_fastsoftmax_isa_bogus_fails_at_import(value):
    """An unknown FASTSOFTMAX_ISA is refused by import (naming the variable and its value),
    not by the first call; python -m fastsoftmax exits non-zero."""
    proc = run_python("import fastsoftmax", isa_env=value)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: FASTSOFTMAX_ISA=") and repr(value) in last, proc.stderr
    proc = run_python("fastsoftmax", isa_env=value, module=True)
    assert proc.returncode != 0 and repr(value) in proc.stderr
    # The native core refuses it on its own too (for code that imports _core directly).
    code = """
    from fastsoftmax import _core
    import numpy as np
    for f in (lambda: _core.active_isa(), lambda: _core.run("softmax", "auto", np.ones(3), np.ones(3))):
        try:
            f()
        except ValueError as e:
            print("ValueError", e)
    """
    load_core = ("import importlib.machinery, importlib.util\n"
                 f"path = {_core.__file__!r}\n"
                 "loader = importlib.machinery.ExtensionFileLoader('fastsoftmax._core', path)\n"
                 "spec = importlib.util.spec_from_file_location('fastsoftmax._core', path, loader=loader)\n"
                 "_core = importlib.util.module_from_spec(spec); loader.exec_module(_core)")
    proc = run_python(textwrap.dedent(code).replace("from fastsoftmax import _core", load_core), isa_env=value)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ValueError") and "FASTSOFTMAX_ISA" in line for line in lines), (
        proc.stdout + proc.stderr)


def cap_and_higher_tier():
    """A runnable tier and a better runnable one, or a skip."""
    runnable = [i for i in _core.compiled_isas() if _core.isa_runnable(i)]
    if len(runnable) < 2:
        pytest.skip("this CPU runs one tier only")
    return runnable[1], runnable[0]


def test_fastsoftmax_isa_is_a_cap_that_binds_isa():
    """isa= above FASTSOFTMAX_ISA is a ValueError naming both, on every path that takes isa=:
    the kernels, empty and long double input (no kernel), the stats functions, the core."""
    cap, higher = cap_and_higher_tier()
    code = f"""
    import numpy as np, fastsoftmax
    from fastsoftmax import _core
    calls = [
        lambda: fastsoftmax.softmax(np.ones(4), isa={higher!r}),
        lambda: fastsoftmax.log_softmax(np.ones((2, 3), np.float32), axis=0, isa={higher!r}),
        lambda: fastsoftmax.softmax(np.ones((0, 3)), isa={higher!r}),
        lambda: fastsoftmax.softmax(np.ones(3, np.longdouble), isa={higher!r}),
        lambda: fastsoftmax.logsumexp(np.ones(3), isa={higher!r}),
        lambda: fastsoftmax.softmax_stats(np.ones(3), isa={higher!r}),
        lambda: _core.run("softmax", "auto", np.ones(3), np.ones(3), {higher!r}),
        lambda: _core.row_stats(np.ones(3), {higher!r}),
        lambda: _core.kernel_name("softmax", "auto", "float32", {higher!r}),
    ]
    for f in calls:
        try:
            f()
            print("no error")
        except ValueError as e:
            print("ValueError", e)
    print("ok", fastsoftmax.softmax(np.ones(2), isa={cap!r}).tolist())
    """
    proc = run_python(code, isa_env=cap)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 10
    for line in lines[:-1]:
        assert line.startswith("ValueError") and repr(higher) in line and f"FASTSOFTMAX_ISA={cap!r}" in line, line
    assert lines[-1] == "ok [0.5, 0.5]"


# ---- show_runtime / python -m fastsoftmax ---------------------------------------------------

def test_show_runtime_names_the_active_tier(capsys):
    fastsoftmax.show_runtime()
    out = capsys.readouterr().out
    active = _core.active_isa()
    assert f"active tier: {active}" in out
    for dtype in DTYPES:
        for op in OPS:
            assert _core.kernel_name(op, "auto", dtype, None, 1024) in out


def test_show_runtime_under_cap_avx2():
    require_or_skip("avx2")
    proc = run_python("import fastsoftmax; fastsoftmax.show_runtime()", isa_env="avx2")
    assert proc.returncode == 0, proc.stderr
    assert "active tier: avx2" in proc.stdout
    assert "FASTSOFTMAX_ISA: avx2" in proc.stdout
    assert "_avx512" not in proc.stdout.split("active tier:")[1]


def test_python_m_fastsoftmax():
    proc = run_python("fastsoftmax", isa_env=os.environ.get("FASTSOFTMAX_ISA"), module=True)
    assert proc.returncode == 0, proc.stderr
    assert f"active tier: {_core.active_isa()}" in proc.stdout
    factor = [ln for ln in proc.stdout.splitlines() if ln.startswith("thread planner's cost factor: ")]
    assert len(factor) == 1 and 1.0 <= float(factor[0].split(": ")[1].split()[0]) <= 100.0, factor
    assert fastsoftmax.runtime_info()["threads"]["cost_scale"] == _core.cost_scale()


def test_python_m_fastsoftmax_json_version_help():
    cmd = [sys.executable, "-m", "fastsoftmax"]
    proc = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    here = json.loads(json.dumps(fastsoftmax.runtime_info()))
    assert set(info) == set(here)
    # (num_threads, threads and ftz_daz describe this process's state, which tests change.)
    for key in ("fastsoftmax", "cpu_features", "cache_sizes", "compiled_isas", "runnable_isas", "FASTSOFTMAX_ISA",
                "active_isa", "error", "auto_kernels", "avx512_bf16_rounding"):
        assert info[key] == here[key], key
    assert info["active_isa"] == _core.active_isa() and info["error"] is None
    proc = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"fastsoftmax {fastsoftmax.__version__}"
    proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--json" in proc.stdout and "exit status" in proc.stdout.lower()
    proc = subprocess.run(cmd + ["--bogus"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_runtime_info_is_public():
    info = fastsoftmax.runtime_info()
    assert "runtime_info" in fastsoftmax.__all__
    assert info["active_isa"] == _core.active_isa()
    assert info["runnable_isas"] == [i for i in _core.compiled_isas() if _core.isa_runnable(i)]
    assert info["FASTSOFTMAX_ISA"] == (os.environ.get("FASTSOFTMAX_ISA") or None)


def test_python_m_fastsoftmax_fails_for_a_cap_this_cpu_cannot_run(monkeypatch, capsys):
    """FASTSOFTMAX_ISA naming a compiled tier this CPU lacks: import works (a cap above the
    CPU caps nothing), but the report says so and the exit status is 1 (a health check sees it).
    Faked in process: no CPU here lacks what it has."""
    from fastsoftmax import __main__ as cli
    top = _core.compiled_isas()[0]
    real = _core.isa_runnable
    monkeypatch.setattr(_core, "isa_cap", lambda: top)
    monkeypatch.setattr(_core, "isa_runnable", lambda isa: isa != top and real(isa))
    monkeypatch.setattr(_core, "active_isa", lambda: "scalar")
    assert cli.main(["--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert f"FASTSOFTMAX_ISA={top!r}" in info["error"] and "cannot run" in info["error"]
    assert cli.main([]) == 1
    assert "ERROR: FASTSOFTMAX_ISA" in capsys.readouterr().out
    monkeypatch.setattr(_core, "isa_runnable", real)
    assert cli.main(["--json"]) == (0 if real(top) else 1)  # the cap is this CPU's real limit


# ---- FASTSOFTMAX_REQUIRE_ISA and the skip/fail rule ----------------------------------------

def test_required_isa_is_runnable_and_active():
    """With FASTSOFTMAX_REQUIRE_ISA set (CI), the named tier must run here and be in use.

    Without it, the active tier must be the best runnable one under the FASTSOFTMAX_ISA cap.
    """
    required = required_isas()
    if required:
        for isa in required:
            assert isa in _core.compiled_isas(), f"{REQUIRE_ENV}: {isa} is not compiled into this build"
            assert _core.isa_runnable(isa), f"{REQUIRE_ENV}: this CPU cannot run {isa}"
        assert _core.active_isa() == required[0], (
            f"{REQUIRE_ENV}={required[0]} but the active tier is {_core.active_isa()}")
    else:
        cap = os.environ.get("FASTSOFTMAX_ISA") or None
        runnable = [i for i in _core.compiled_isas() if _core.isa_runnable(i)]
        assert _core.active_isa() in runnable
        assert _core.active_isa() == _core.select_isa(_core.cpu_features(), cap)
        if cap is None:
            assert _core.active_isa() == runnable[0]  # compiled_isas() is best first


def test_require_or_skip_rule(monkeypatch):
    """A tier the CPU lacks skips, unless FASTSOFTMAX_REQUIRE_ISA names it: then it fails."""
    monkeypatch.setattr(conftest._core, "isa_runnable", lambda isa: isa == "scalar")
    monkeypatch.setattr(conftest._core, "isa_cap", lambda: None)  # as without FASTSOFTMAX_ISA
    tier = "avx2" if "avx2" in _core.compiled_isas() else "scalar-but-missing"
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"CPU lacks {tier}"):
        require_or_skip(tier)
    monkeypatch.setenv(REQUIRE_ENV, tier)
    with pytest.raises(pytest.fail.Exception, match=f"CPU lacks {tier}"):
        require_or_skip(tier)
    monkeypatch.setenv(REQUIRE_ENV, "avx512,scalar")
    with pytest.raises(pytest.skip.Exception):
        require_or_skip(tier)
    require_or_skip("scalar")  # runnable: returns


def test_avx512_bf16_rounding_follows_the_cpu(capsys):
    """The avx512 tier's bfloat16 kernels use vcvtneps2bf16 exactly where the CPU has
    AVX512-BF16 and can run the tier (gcc and clang both build it), and show_runtime says so."""
    f = _core.cpu_features()
    expected = "avx512" in _core.compiled_isas() and f["avx512_bf16"] and _core.isa_runnable("avx512")
    assert _core.avx512_bf16_rounding() == expected
    fastsoftmax.show_runtime()
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("bfloat16 rounding")]
    assert line == ["bfloat16 rounding on the avx512 tier: "
                    + ("vcvtneps2bf16 (AVX512-BF16)" if expected else "shifts (no AVX512-BF16)")]
