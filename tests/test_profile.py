"""Machine profiles for algorithm="auto" (fastsoftmax-bench --tune): the limit a profile sets
decides auto's kernel, profiles are read at import only for the machine they were measured
on, bad profiles are refused or reported, and the C API sets the same limit."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core, _profile
from fastsoftmax.bench import _tune

DTYPES = _profile.DTYPES
ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}


@pytest.fixture
def restore_limits():
    yield
    for d in DTYPES:
        _core.set_auto_reload_limit(d, None)
    _core.set_prefetch_min_elements(None)


def test_the_suite_runs_without_a_profile():
    # conftest sets FASTSOFTMAX_PROFILE=off: the built-in rule everywhere.
    st = _profile.status()
    assert st["path"] is None and not st["applied"]
    assert st["reload_limit_bytes"] == st["builtin_limit_bytes"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_limit_moves_autos_crossover(dtype, restore_limits):
    size = ITEMSIZE[dtype]
    limit = 3 << 16
    _core.set_auto_reload_limit(dtype, limit)
    assert _core.auto_reload_limit(dtype) == {"bytes": limit, "from_profile": True,
                                              "builtin_bytes": _core.auto_reload_limit(dtype)["builtin_bytes"]}
    assert _core.auto_algorithm(dtype, limit // size) == "three-pass-reload"
    assert _core.auto_algorithm(dtype, limit // size + 1) == "two-pass"
    assert "two-pass" in _core.kernel_name("softmax", "auto", dtype, None, limit // size + 1).replace("_", "-")
    _core.set_auto_reload_limit(dtype, 0)
    assert _core.auto_algorithm(dtype, 1) == "two-pass"
    _core.set_auto_reload_limit(dtype, None)
    builtin = _core.auto_reload_limit(dtype)["builtin_bytes"]
    assert _core.auto_reload_limit(dtype)["bytes"] == builtin
    if builtin == 2**63 - 1:  # no limit: reload at any length (AVX2 run in 128-bit halves)
        assert _core.auto_algorithm(dtype, 1 << 40) == "three-pass-reload"
        return
    assert _core.auto_algorithm(dtype, builtin // size) == "three-pass-reload"
    assert _core.auto_algorithm(dtype, builtin // size + 1) == "two-pass"


def test_auto_runs_the_kernel_the_limit_picks(restore_limits):
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    reload = fastsoftmax.softmax(x, algorithm="three-pass-reload")
    two = fastsoftmax.softmax(x, algorithm="two-pass")
    assert not np.array_equal(reload, two)  # else this test could not tell them apart
    _core.set_auto_reload_limit("float32", 0)
    assert np.array_equal(fastsoftmax.softmax(x), two)
    assert np.array_equal(fastsoftmax.softmax(x, threads=2), two)
    _core.set_auto_reload_limit("float32", 1 << 30)
    assert np.array_equal(fastsoftmax.softmax(x), reload)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="bytes must be >= 0"):
        _core.set_auto_reload_limit("float32", -5)
    with pytest.raises(ValueError, match="dtype must be"):
        _core.set_auto_reload_limit("int8", 5)


def test_choose_limit_picks_the_least_loss():
    pts = [(1 << 15, 1.0, 2.0), (1 << 16, 1.0, 1.2), (1 << 17, 1.3, 1.0), (1 << 18, 2.0, 1.0)]
    assert _tune.choose_limit(pts) == (1 << 16, 1.0)
    assert _tune.choose_limit([(b, 2.0, 1.0) for b, _, _ in pts]) == (0, 1.0)
    assert _tune.choose_limit([(b, 1.0, 2.0) for b, _, _ in pts]) == (1 << 18, 1.0)
    # One noisy size near the crossover does not move the limit below it.
    noisy = [(1, 1.0, 2.0), (2, 1.02, 1.0), (4, 0.9, 1.0), (8, 2.0, 1.0)]
    assert _tune.choose_limit(noisy) == (4, 1.02)


def test_ladder():
    assert _tune.ladder(1 << 15, 1 << 18) == [1 << 15, 3 << 14, 1 << 16, 3 << 15, 1 << 17, 3 << 16, 1 << 18]


def _entry(limits):
    return {"tuned": "2026-01-01T00:00:00+00:00", "reload_limit_bytes": limits}


def _write(path, machines):
    path.write_text(json.dumps({"format": 1, "machines": machines}))


def _child(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("FASTSOFTMAX_PROFILE", "XDG_CONFIG_HOME")}
    e.update(env)
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], env=e,
                          capture_output=True, text=True, timeout=120)


REPORT = ("import json, fastsoftmax; from fastsoftmax import _core\n"
          "p = fastsoftmax.runtime_info()['auto_profile']\n"
          "print(json.dumps({'applied': p['applied'], 'limits': p['reload_limit_bytes'], 'reason': p['reason'],"
          " 'pick': _core.auto_algorithm('float32', 40000)}))")


def test_import_applies_this_machines_entry(tmp_path):
    path = tmp_path / "profile.json"
    _write(path, {_profile.machine_key(): _entry({"float32": 4096, "float64": 1 << 22}),
                  "Some Other CPU | avx2 | L2 1 | L3 2": _entry({"float32": 1 << 30})})
    r = _child(REPORT, FASTSOFTMAX_PROFILE=str(path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["applied"] is True
    assert out["limits"]["float32"] == 4096 and out["limits"]["float64"] == 1 << 22
    assert out["pick"] == "two-pass"  # 160 KB of float32 is past the profile's 4 KiB
    # dtypes the entry does not name keep the built-in rule
    assert out["limits"]["float16"] == _core.auto_reload_limit("float16")["builtin_bytes"]


PREFETCH_REPORT = ("import json, fastsoftmax; from fastsoftmax import _core\n"
                   "p = fastsoftmax.runtime_info()['auto_profile']\n"
                   "print(json.dumps([_core.prefetch_min_elements(), p['prefetch_min_elements']]))")


def test_import_applies_the_entrys_prefetch_setting(tmp_path):
    path = tmp_path / "profile.json"
    _write(path, {_profile.machine_key(): dict(_entry({"float32": 4096}), prefetch_min_elements=_tune.PREFETCH_OFF)})
    r = _child(PREFETCH_REPORT, FASTSOFTMAX_PROFILE=str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [_tune.PREFETCH_OFF] * 2
    # an entry without the key keeps the built-in rule
    _write(path, {_profile.machine_key(): _entry({"float32": 4096})})
    r = _child(PREFETCH_REPORT, FASTSOFTMAX_PROFILE=str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [1 << 16] * 2


@pytest.mark.parametrize("bad", [-1, True, "off", 1.5])
def test_a_bad_prefetch_setting_is_refused(tmp_path, bad):
    path = tmp_path / "profile.json"
    _write(path, {_profile.machine_key(): dict(_entry({"float32": 4096}), prefetch_min_elements=bad)})
    r = _child("import fastsoftmax", FASTSOFTMAX_PROFILE=str(path))
    assert r.returncode != 0 and "prefetch_min_elements" in r.stderr


def test_choose_prefetch():
    off = _tune.PREFETCH_OFF
    assert _tune.choose_prefetch([1.0, 1.0], [0.9, 0.99]) == off
    assert _tune.choose_prefetch([1.0, 1.0], [0.8, 1.01]) is None  # slower on one workload
    assert _tune.choose_prefetch([1.0, 1.0], [0.99, 0.99]) is None  # within the margin
    assert _tune.choose_prefetch([2.0, 1.0], [1.9, 0.99], margin=0.03) == off


def test_another_machines_entry_is_not_used(tmp_path):
    path = tmp_path / "profile.json"
    _write(path, {"Some Other CPU | avx2 | L2 1 | L3 2": _entry({"float32": 0})})
    r = _child(REPORT, FASTSOFTMAX_PROFILE=str(path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["applied"] is False and "no entry for this machine" in out["reason"]
    assert out["limits"]["float32"] == _core.auto_reload_limit("float32")["builtin_bytes"]


def test_the_tier_cap_is_part_of_the_machine(tmp_path):
    path = tmp_path / "profile.json"
    _write(path, {_profile.machine_key(): _entry({"float32": 0})})
    r = _child(REPORT, FASTSOFTMAX_PROFILE=str(path), FASTSOFTMAX_ISA="scalar")
    assert r.returncode == 0, r.stderr
    if _core.active_isa() != "scalar":
        assert json.loads(r.stdout)["applied"] is False


def test_default_location_and_off(tmp_path):
    cfg = tmp_path / "cfg"
    (cfg / "fastsoftmax").mkdir(parents=True)
    _write(cfg / "fastsoftmax" / "profile.json", {_profile.machine_key(): _entry({"float32": 0})})
    r = _child(REPORT, XDG_CONFIG_HOME=str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["applied"] is True
    r = _child(REPORT, XDG_CONFIG_HOME=str(cfg), FASTSOFTMAX_PROFILE="off")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["applied"] is False and out["reason"] == "FASTSOFTMAX_PROFILE=off"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": 99, "machines": {}}),
                                     json.dumps({"format": 1, "machines": {"k": {"reload_limit_bytes": {"float32": -1}}}}),
                                     json.dumps({"format": 1, "machines": {"k": {"reload_limit_bytes": {"int8": 5}}}})])
def test_a_bad_profile(tmp_path, content):
    path = tmp_path / "profile.json"
    path.write_text(content)
    # named explicitly: an import error naming the variable
    r = _child("import fastsoftmax", FASTSOFTMAX_PROFILE=str(path))
    assert r.returncode != 0 and "FASTSOFTMAX_PROFILE" in r.stderr
    # the default file: a warning, and the built-in rule
    (tmp_path / "cfg" / "fastsoftmax").mkdir(parents=True)
    (tmp_path / "cfg" / "fastsoftmax" / "profile.json").write_text(content)
    code = ("import warnings, json\nwith warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n    import fastsoftmax\n"
            "print(json.dumps([str(x.message) for x in w]))\n" + REPORT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**{k: v for k, v in os.environ.items() if k != "FASTSOFTMAX_PROFILE"},
                            "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert r.returncode == 0, r.stderr
    warned, report = r.stdout.splitlines()[:2]
    assert any("ignoring the profile" in m for m in json.loads(warned))
    assert json.loads(report)["applied"] is False


def test_an_empty_variable_is_an_error():
    r = _child("import fastsoftmax", FASTSOFTMAX_PROFILE="")
    assert r.returncode != 0 and "FASTSOFTMAX_PROFILE is empty" in r.stderr


def test_tune_writes_an_entry_and_keeps_the_others(tmp_path, monkeypatch, restore_limits):
    path = tmp_path / "sub" / "profile.json"
    path.parent.mkdir()
    _write(path, {"Some Other CPU | avx2 | L2 1 | L3 2": _entry({"float32": 123})})
    monkeypatch.setattr(_tune, "ladder", lambda: [1 << 15, 1 << 16])
    monkeypatch.setattr(_tune, "available_dtypes", lambda: ["float32", "float16"])
    monkeypatch.setattr(_tune, "prefetch_workloads", lambda: [("three-pass-reload", (4, 1 << 16)),
                                                              ("two-pass", (1, 1 << 17))])
    from fastsoftmax.bench import _cli

    assert _cli.main(["--tune", "--quick", "--profile", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["machines"]["Some Other CPU | avx2 | L2 1 | L3 2"]["reload_limit_bytes"] == {"float32": 123}
    mine = data["machines"][_profile.machine_key()]
    assert set(mine["reload_limit_bytes"]) == {"float32", "float16"}
    assert mine["reload_limit_bytes"]["float32"] in (0, 1 << 15, 1 << 16)
    assert [row[0] for row in mine["measurements"]["float32"]] == [1 << 15, 1 << 16]
    assert all(r > 0 and t > 0 for _, r, t in mine["measurements"]["float32"])
    pf = mine["prefetch_measurements"]["rows"]
    assert [row[0] for row in pf] == [4 << 16, 1 << 17] and all(b > 0 and o > 0 for _, b, o in pf)
    chosen = _tune.choose_prefetch([b for _, b, _ in pf], [o for _, _, o in pf])
    assert mine.get("prefetch_min_elements") == chosen
    assert _core.prefetch_min_elements() == (1 << 16 if chosen is None else chosen)
    # applied to this process at once
    assert _core.auto_reload_limit("float32") == {"bytes": mine["reload_limit_bytes"]["float32"],
                                                  "builtin_bytes": mine["builtin_limit_bytes"]["float32"],
                                                  "from_profile": True}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".profile-")]  # no temporary left


def test_dry_run_writes_nothing(tmp_path, monkeypatch, restore_limits):
    monkeypatch.setattr(_tune, "ladder", lambda: [1 << 15])
    monkeypatch.setattr(_tune, "available_dtypes", lambda: ["float32"])
    monkeypatch.setattr(_tune, "prefetch_workloads", lambda: [("two-pass", (1, 1 << 16))])
    from fastsoftmax.bench import _cli

    path = tmp_path / "p.json"
    assert _cli.main(["--tune", "--quick", "--dry-run", "--profile", str(path)]) == 0
    assert not path.exists()
    assert _core.auto_reload_limit("float32")["from_profile"] is False
    assert _core.prefetch_min_elements() == 1 << 16  # measured with both settings, restored


def test_profile_options_need_tune(capsys):
    from fastsoftmax.bench import _cli

    with pytest.raises(SystemExit) as e:
        _cli.main(["--profile", "x.json"])
    assert e.value.code == 2


def test_c_api_sets_the_same_limit():
    lib = ctypes.CDLL(fastsoftmax.get_library())
    lib.fastsoftmax_set_auto_reload_limit.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.fastsoftmax_set_auto_reload_limit.restype = ctypes.c_int
    lib.fastsoftmax_auto_reload_limit.argtypes = [ctypes.c_int]
    lib.fastsoftmax_auto_reload_limit.restype = ctypes.c_int64
    builtin = lib.fastsoftmax_auto_reload_limit(0)
    assert builtin == _core.auto_reload_limit("float32")["builtin_bytes"]
    try:
        assert lib.fastsoftmax_set_auto_reload_limit(0, 12345) == 0
        assert lib.fastsoftmax_auto_reload_limit(0) == 12345
        assert lib.fastsoftmax_auto_reload_limit(1) == _core.auto_reload_limit("float64")["builtin_bytes"]
        assert lib.fastsoftmax_set_auto_reload_limit(0, -1) == 0
        assert lib.fastsoftmax_auto_reload_limit(0) == builtin
        # and AUTO follows it
        x = np.random.default_rng(5).standard_normal(5000).astype(np.float32)
        y = np.empty_like(x)
        fn = lib.fastsoftmax_softmax_f32
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t,
                       ctypes.c_ssize_t, ctypes.c_int, ctypes.c_int]
        for limit, alg in ((0, "two-pass"), (1 << 30, "three-pass-reload")):
            assert lib.fastsoftmax_set_auto_reload_limit(0, limit) == 0
            assert fn(x.ctypes.data, y.ctypes.data, 1, x.size, 0, 0, 0, 1) == 0
            assert np.array_equal(y, fastsoftmax.softmax(x, algorithm=alg))
        assert lib.fastsoftmax_set_auto_reload_limit(7, 5) == 1  # unknown dtype: invalid argument
        assert lib.fastsoftmax_auto_reload_limit(7) == -1
    finally:
        lib.fastsoftmax_set_auto_reload_limit(0, -1)
