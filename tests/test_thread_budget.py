"""The thread budget: environment variables, cgroup quotas, the per-thread context manager,
set_num_threads, threadpoolctl, the planner, fork handling and bounded pools."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

MAX = fastsoftmax.MAX_THREADS


def run_python(code: str, **env_vars) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FASTSOFTMAX_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def handoff(request):
    """Sets the planner's hand-off costs for one test, and restores the suite's."""
    saved = _core.handoff_costs()

    def set_costs(parked, spinning):
        _core.set_handoff_costs(float(parked), float(spinning))

    yield set_costs
    _core.set_handoff_costs(saved["parked_ns"], saved["spinning_ns"])


# -- environment variables ---------------------------------------------------------------

MALFORMED = ["abc", "1x", "0", "-3", "", " ", "2.5", "+2", "0x10", "99999999999", str(MAX + 1), "4,2"]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_fastsoftmax_num_threads_fails_at_import(value):
    out = run_python("import fastsoftmax", FASTSOFTMAX_NUM_THREADS=value)
    assert out.returncode != 0
    assert "ValueError" in out.stderr
    assert f"FASTSOFTMAX_NUM_THREADS='{value}'" in out.stderr


@pytest.mark.parametrize("value", ["abc", "0", ""])
def test_malformed_fastsoftmax_num_threads_fails_python_m(value):
    out = run_python("import runpy; runpy.run_module('fastsoftmax', run_name='__main__')",
                     FASTSOFTMAX_NUM_THREADS=value)
    assert out.returncode != 0 and "FASTSOFTMAX_NUM_THREADS" in out.stderr


@pytest.mark.parametrize("value", ["abc", "1x", "0", "-3", "", "99999999999", ",4"])
def test_malformed_omp_num_threads_warns_and_is_ignored(value):
    code = """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import fastsoftmax
        from fastsoftmax import _core
        print(fastsoftmax.get_num_threads(), _core.thread_config()["threads"], _core.thread_config()["source"])
        print("|".join(str(x.message) for x in w if issubclass(x.category, RuntimeWarning)))
    """
    out = run_python(code, OMP_NUM_THREADS=value)
    assert out.returncode == 0, out.stderr
    first, warning = out.stdout.splitlines()[:2]
    n, threads, source = first.split()
    assert source in ("affinity", "cgroup") and int(n) == int(threads) >= 1
    assert f"OMP_NUM_THREADS='{value}'" in warning and "ignored" in warning


@pytest.mark.parametrize("value,expected", [("3", 3), (" 5 ", 5), ("4,2", 4), ("1", 1), (str(MAX), MAX)])
def test_omp_num_threads_sets_the_default(value, expected):
    out = run_python("import fastsoftmax; print(fastsoftmax.get_num_threads())", OMP_NUM_THREADS=value)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == expected


def test_fastsoftmax_num_threads_wins_over_omp_num_threads():
    code = ("import fastsoftmax; from fastsoftmax import _core; "
            "print(fastsoftmax.get_num_threads(), _core.thread_config()['source'])")
    out = run_python(code, FASTSOFTMAX_NUM_THREADS="3", OMP_NUM_THREADS="1")
    assert out.stdout.split() == ["3", "FASTSOFTMAX_NUM_THREADS"]
    # a malformed OMP_NUM_THREADS is still reported, though FASTSOFTMAX_NUM_THREADS decides
    out = run_python("import warnings; warnings.simplefilter('error'); import fastsoftmax",
                     FASTSOFTMAX_NUM_THREADS="3", OMP_NUM_THREADS="x")
    assert out.returncode != 0 and "OMP_NUM_THREADS='x'" in out.stderr


def test_c_library_reads_the_same_variables():
    """The C API: a malformed FASTSOFTMAX_NUM_THREADS makes default-thread calls fail with
    FASTSOFTMAX_ERROR_UNSUPPORTED, with nothing written (and get_num_threads return 0);
    calls with explicit threads work."""
    code = f"""
        import ctypes, numpy as np
        lib = ctypes.CDLL({fastsoftmax.get_library()!r})
        P = ctypes.POINTER(ctypes.c_float)
        f = lib.fastsoftmax_softmax_f32
        f.argtypes = [P, P, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t, ctypes.c_ssize_t,
                      ctypes.c_int, ctypes.c_int]
        x = np.zeros(4, np.float32); y = np.full(4, 7, np.float32)
        p = lambda a: a.ctypes.data_as(P)
        a = f(p(x), p(y), 1, 4, 4, 4, 0, 0); ya = y[0]
        b = f(p(x), p(y), 1, 4, 4, 4, 0, 1); yb = y[0]
        print(lib.fastsoftmax_get_num_threads(), a, ya, b, yb)
    """
    out = run_python(code, FASTSOFTMAX_NUM_THREADS="two")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "2", "7.0", "0", "0.25"]
    out = run_python(code, OMP_NUM_THREADS="3")
    assert out.stdout.split()[0] == "3"


def test_c_api_thread_counts_out_of_range_are_invalid_arguments():
    import ctypes
    lib = ctypes.CDLL(fastsoftmax.get_library())
    P = ctypes.POINTER(ctypes.c_float)
    f = lib.fastsoftmax_softmax_f32
    f.argtypes = [P, P, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_ssize_t, ctypes.c_ssize_t, ctypes.c_int,
                  ctypes.c_int]
    x = np.zeros(4, np.float32)
    y = np.full(4, 7, np.float32)
    p = lambda a: a.ctypes.data_as(P)  # noqa: E731
    before = lib.fastsoftmax_get_num_threads()
    for bad in (-1, -(2**31), MAX + 1):
        assert f(p(x), p(y), 1, 4, 4, 4, 0, bad) == 1  # FASTSOFTMAX_ERROR_INVALID_ARGUMENT
        assert np.all(y == 7)
        assert lib.fastsoftmax_set_num_threads(bad) == 1
        assert lib.fastsoftmax_get_num_threads() == before
    assert f(p(x), p(y), 1, 4, 4, 4, 0, MAX) == 0 and np.all(y == 0.25)
    assert lib.fastsoftmax_set_num_threads(3) == 0 and lib.fastsoftmax_get_num_threads() == 3
    assert lib.fastsoftmax_set_num_threads(0) == 0 and lib.fastsoftmax_get_num_threads() == before


@pytest.mark.parametrize("value", ["7", "  12\t", "1024"])
def test_parse_thread_count_accepts(value):
    assert _core.parse_thread_count("X", value) == int(value)


@pytest.mark.parametrize("value", MALFORMED)
def test_parse_thread_count_rejects_with_name_and_value(value):
    if value == "4,2":
        assert _core.parse_thread_count("OMP_NUM_THREADS", value, omp_list=True) == 4
    with pytest.raises(ValueError, match=re.escape(f"X='{value}'")):
        _core.parse_thread_count("X", value)


# -- cgroup quotas ----------------------------------------------------------------------


def fake_tree(tmp_path, proc_cgroup: str, files: dict) -> str:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(proc_cgroup)
    for rel, text in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("cpu_max,expected", [
    ("max 100000\n", 0),          # no quota
    ("200000 100000\n", 2),
    ("250000 100000\n", 3),       # rounded up
    ("50000 100000\n", 1),        # below one CPU: one
    ("1 100000\n", 1),
    ("150000\n", 2),              # period omitted: the default 100000
    ("garbage 100000\n", 0),      # unreadable: no quota
])
def test_cgroup_v2(tmp_path, cpu_max, expected):
    root = fake_tree(tmp_path, "0::/user.slice/app\n", {"sys/fs/cgroup/user.slice/app/cpu.max": cpu_max})
    assert _core.cgroup_cpu_quota(root) == expected


def test_cgroup_v2_parent_quota_binds_the_child(tmp_path):
    root = fake_tree(tmp_path, "0::/a/b\n", {"sys/fs/cgroup/a/cpu.max": "100000 100000\n",
                                            "sys/fs/cgroup/a/b/cpu.max": "max 100000\n"})
    assert _core.cgroup_cpu_quota(root) == 1


def test_cgroup_v2_container_path_missing_uses_the_mount(tmp_path):
    # inside a container /proc/self/cgroup may name the host's path, absent from the mount
    root = fake_tree(tmp_path, "0::/kubepods/pod1/c1\n", {"sys/fs/cgroup/cpu.max": "300000 100000\n"})
    assert _core.cgroup_cpu_quota(root) == 3


@pytest.mark.parametrize("controllers", ["cpu,cpuacct", "cpu"])
@pytest.mark.parametrize("quota,period,expected", [(-1, 100000, 0), (150000, 100000, 2), (20000, 100000, 1),
                                                   (400000, 100000, 4)])
def test_cgroup_v1(tmp_path, controllers, quota, period, expected):
    d = f"sys/fs/cgroup/{controllers}/docker/abc"
    root = fake_tree(tmp_path, f"12:memory:/docker/abc\n4:{controllers}:/docker/abc\n1:name=systemd:/x\n",
                     {f"{d}/cpu.cfs_quota_us": f"{quota}\n", f"{d}/cpu.cfs_period_us": f"{period}\n"})
    assert _core.cgroup_cpu_quota(root) == expected


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert _core.cgroup_cpu_quota(str(tmp_path)) == 0
    assert _core.cgroup_cpu_quota(fake_tree(tmp_path, "0::/\n", {})) == 0


def test_default_is_the_smaller_of_affinity_and_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    env_free = "FASTSOFTMAX_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in os.environ
    below = fake_tree(tmp_path / "below", "0::/\n", {"sys/fs/cgroup/cpu.max": "50000 100000\n"})
    cfg = _core.thread_config(below)
    assert cfg["affinity_cpus"] == affinity and cfg["cgroup_cpus"] == 1
    if env_free:
        assert cfg["threads"] == 1 and cfg["source"] == ("cgroup" if affinity > 1 else "affinity")
    above = fake_tree(tmp_path / "above", "0::/\n",
                      {"sys/fs/cgroup/cpu.max": f"{(affinity + 7) * 100000} 100000\n"})
    cfg = _core.thread_config(above)
    assert cfg["cgroup_cpus"] == affinity + 7
    if env_free:
        assert cfg["threads"] == affinity and cfg["source"] == "affinity"


def test_live_default_matches_the_rule():
    cfg = _core.thread_config()
    assert cfg["affinity_cpus"] == len(os.sched_getaffinity(0))
    if cfg["source"] in ("affinity", "cgroup"):
        quota = cfg["cgroup_cpus"]
        expected = min(cfg["affinity_cpus"], quota) if quota else cfg["affinity_cpus"]
        assert _core.default_num_threads() == expected


# -- the API --------------------------------------------------------------------------


def test_threads_zero_or_none_is_the_default_and_negative_an_error():
    x = np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)
    ref = fastsoftmax.softmax(x, axis=-1)
    for t in (None, 0):
        assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=t), ref)
        assert _core.last_requested_threads() == 0
    for bad in (-1, -(2**40), MAX + 1, 2**31, 10**12, 1.0, True, "1"):
        with pytest.raises(ValueError, match="threads"):
            fastsoftmax.softmax(x, axis=-1, threads=bad)
        with pytest.raises(ValueError, match="threads"):
            fastsoftmax.log_softmax(x, axis=-1, threads=bad, isa=_core.active_isa())


@pytest.mark.parametrize("bad", [-1, MAX + 1, 10**12, 2**31, 1.5, "2", True])
def test_set_num_threads_rejects_with_value_error(bad):
    before = fastsoftmax.get_num_threads()
    with pytest.raises(ValueError, match=f"from 0 to {MAX}"):
        fastsoftmax.set_num_threads(bad)
    with pytest.raises(ValueError):
        with fastsoftmax.threads(bad):
            pass
    assert fastsoftmax.get_num_threads() == before


def test_set_num_threads_zero_restores_the_default():
    try:
        fastsoftmax.set_num_threads(3)
        assert fastsoftmax.get_num_threads() == 3
        fastsoftmax.set_num_threads(0)
        assert fastsoftmax.get_num_threads() == _core.default_num_threads()
    finally:
        fastsoftmax.set_num_threads(None)


def test_context_manager_nests_and_restores():
    base = fastsoftmax.get_num_threads()
    with fastsoftmax.threads(3):
        assert fastsoftmax.get_num_threads() == 3
        with fastsoftmax.threads(1):
            assert fastsoftmax.get_num_threads() == 1
            with fastsoftmax.threads(None):  # no override: the process-wide setting
                assert fastsoftmax.get_num_threads() == base
            assert fastsoftmax.get_num_threads() == 1
        assert fastsoftmax.get_num_threads() == 3
    assert fastsoftmax.get_num_threads() == base


def test_context_manager_restores_on_exception():
    base = fastsoftmax.get_num_threads()
    with pytest.raises(KeyError):
        with fastsoftmax.threads(5):
            with fastsoftmax.threads(2):
                raise KeyError("x")
    assert fastsoftmax.get_num_threads() == base


def test_context_manager_wins_over_set_num_threads_and_loses_to_threads_argument():
    try:
        fastsoftmax.set_num_threads(4)
        with fastsoftmax.threads(2):
            assert fastsoftmax.get_num_threads() == 2
            fastsoftmax.softmax(np.zeros((2, 3), np.float32), axis=-1, threads=3)
            assert _core.last_requested_threads() == 3
        assert fastsoftmax.get_num_threads() == 4
    finally:
        fastsoftmax.set_num_threads(None)


def test_context_manager_is_per_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait(10)
        seen["other"] = fastsoftmax.get_num_threads()
        with fastsoftmax.threads(7):
            seen["other_inside"] = fastsoftmax.get_num_threads()
            release.set()

    t = threading.Thread(target=other)
    t.start()
    base = fastsoftmax.get_num_threads()
    with fastsoftmax.threads(1):
        inside.set()
        release.wait(10)
        seen["main"] = fastsoftmax.get_num_threads()
    t.join(10)
    assert seen == {"other": base, "other_inside": 7, "main": 1}


def test_results_are_bitwise_the_same_under_every_setting(handoff):
    rng = np.random.default_rng(5)
    cases = [rng.standard_normal(3 * 2**16 + 11).astype(np.float32), rng.standard_normal((700, 300)),
             rng.standard_normal((64, 5000)).astype(np.float32)]
    ref = [fastsoftmax.softmax(x, axis=-1, threads=1) for x in cases]

    def check():
        for x, r in zip(cases, ref):
            assert np.array_equal(fastsoftmax.softmax(x, axis=-1), r)
            assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=3), r)

    check()
    with fastsoftmax.threads(2):
        check()
    try:
        fastsoftmax.set_num_threads(5)
        check()
    finally:
        fastsoftmax.set_num_threads(None)
    handoff(0, 0)  # every call splits as far as it can
    check()
    handoff(1e9, 1e9)  # none does
    check()
    digest = hashlib.sha256(ref[0].tobytes()).hexdigest()
    code = f"""
        import hashlib, numpy as np, fastsoftmax
        from fastsoftmax import _core
        _core.set_handoff_costs(0.0, 0.0)
        x = np.random.default_rng(5).standard_normal(3 * 2**16 + 11).astype(np.float32)
        print(hashlib.sha256(fastsoftmax.softmax(x, axis=-1).tobytes()).hexdigest() == {digest!r})
    """
    for env in ({"FASTSOFTMAX_NUM_THREADS": "2"}, {"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "3,1"}):
        out = run_python(code, **env)
        assert out.stdout.split() == ["True"], (env, out.stderr)


# -- the planner ------------------------------------------------------------------------


def test_planner_uses_threads_only_where_work_pays_for_the_hand_off(handoff):
    handoff(10_000, 10_000)  # 10 us, parked or spinning
    assert _core.useful_threads(1, 1e9) == 1
    assert _core.useful_threads(4, 0.0) == 1
    assert _core.useful_threads(4, 39_999.0) == 1  # 2 threads need 2 x 2 x 10 us of work
    assert _core.useful_threads(4, 40_000.0) == 2
    assert _core.useful_threads(4, 60_000.0) == 3
    assert _core.useful_threads(4, 1e9) == 4
    assert _core.useful_threads(8, 100_000.0) == 5
    handoff(100, 100)  # cheap hand-offs: the floor of 10 us of work per thread decides
    assert _core.useful_threads(4, 19_999.0) == 1
    assert _core.useful_threads(4, 20_000.0) == 2
    assert _core.useful_threads(4, 1e9) == 4


def test_planner_measures_the_hand_off_when_not_fixed():
    code = """
        import numpy as np, fastsoftmax
        from fastsoftmax import _core
        before = _core.handoff_costs()
        fastsoftmax.softmax(np.zeros(2**20, np.float32), threads=2)
        after = _core.handoff_costs()
        print(before["measured"], after["measured"], after["overridden"], 1e3 <= after["parked_ns"] <= 2e5,
              2e2 <= after["spinning_ns"] <= 2e5)
    """
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False", "True", "True"]


def test_the_cost_model_scales_with_this_machines_compute_speed(handoff):
    # 256 x 1000 float32 is 38.4 us of modelled work at the fast end: below the 40 us that two
    # threads need with 10 us hand-offs. On a core three times slower it is worth splitting.
    handoff(10_000, 10_000)
    x = np.random.default_rng(2).standard_normal((256, 1000)).astype(np.float32)
    ref = fastsoftmax.softmax(x, axis=-1, threads=1)
    try:
        for scale, splits in ((1.0, False), (3.0, True)):
            _core.set_cost_scale(scale)
            assert _core.cost_scale() == scale
            before = _core.pool_info()["wakes"]
            assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=2), ref)
            assert (_core.pool_info()["wakes"] > before) == splits, scale
    finally:
        _core.set_cost_scale(1.0)


def test_the_cost_scale_is_measured_once_when_not_fixed():
    code = """
        import numpy as np, fastsoftmax
        from fastsoftmax import _core
        s = _core.cost_scale()
        _core.set_cost_scale(7.0)
        fixed = _core.cost_scale()
        _core.set_cost_scale(-1)
        print(1.0 <= s <= 100.0, fixed, _core.cost_scale() == s)
    """
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "7.0", "True"]


def test_a_call_that_does_not_pay_stays_on_the_calling_thread(handoff):
    handoff(1e9, 1e9)
    before = _core.pool_info()
    x = np.random.default_rng(1).standard_normal((512, 1024)).astype(np.float32)
    ref = fastsoftmax.softmax(x, axis=-1, threads=1)
    assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=8), ref)
    after = _core.pool_info()
    assert after["wakes"] == before["wakes"] and after["workers"] == before["workers"]


# -- bounded pools, waking only what a call uses -------------------------------------------


def test_pool_is_bounded_and_wakes_only_the_workers_a_call_uses():
    code = """
        import time, numpy as np, fastsoftmax
        from fastsoftmax import _core
        _core.set_handoff_costs(0.0, 0.0)
        x = np.random.default_rng(0).standard_normal((16384, 256)).astype(np.float32)
        ref = fastsoftmax.softmax(x, axis=-1, threads=1)
        assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=fastsoftmax.MAX_THREADS), ref)
        info = _core.pool_info()
        assert 8 <= info["workers"] <= info["max_pool_threads"] - 1, info
        time.sleep(0.2)  # every worker parks
        for _ in range(5):
            w = _core.pool_info()["wakes"]
            assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=2), ref)
            assert _core.pool_info()["wakes"] - w <= 1
            time.sleep(0.01)
        print("ok", info["workers"], info["max_pool_threads"])
    """
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "ok"


# -- fork --------------------------------------------------------------------------------


def test_fork_generation_gives_the_next_call_a_fresh_pool(handoff):
    """What the pthread_atfork child handler does, without forking: the next parallel
    call builds a new pool (the old one, whose workers a forked child would not have, is
    never touched again) and computes the same result."""
    handoff(0, 0)
    x = np.random.default_rng(2).standard_normal((256, 600)).astype(np.float32)
    ref = fastsoftmax.softmax(x, axis=-1, threads=1)
    assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=2), ref)
    before = _core.pool_info()
    _core.after_fork_in_child()
    info = _core.pool_info()
    assert info["fork_generation"] == before["fork_generation"] + 1 and info["workers"] == 0
    assert np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=2), ref)
    after = _core.pool_info()
    assert after["pools_created"] == before["pools_created"] + 1 and after["workers"] >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_forked_child_uses_its_own_pool():
    code = """
        import os, numpy as np, fastsoftmax
        from fastsoftmax import _core
        _core.set_handoff_costs(0.0, 0.0)
        x = np.random.default_rng(0).standard_normal((300, 700)).astype(np.float32)
        ref = fastsoftmax.softmax(x, axis=-1, threads=2)
        gen = _core.pool_info()["fork_generation"]
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=2), ref)
            ok = ok and _core.pool_info()["fork_generation"] == gen + 1
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def unshare_pid_namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux") or not unshare_pid_namespaces_work(),
                    reason="PID namespaces not permitted here")
def test_child_with_the_parents_pid_in_a_new_pid_namespace_does_not_hang():
    """In a new PID namespace the first process is PID 1; its forked child in a further
    namespace is PID 1 too, so comparing process ids cannot tell that it lacks the
    parent's workers. The child must still finish, with the right result."""
    code = """
        import ctypes, os, numpy as np, fastsoftmax
        from fastsoftmax import _core
        _core.set_handoff_costs(0.0, 0.0)
        assert os.getpid() == 1, os.getpid()
        CLONE_NEWPID = 0x20000000
        x = np.random.default_rng(0).standard_normal((300, 700)).astype(np.float32)
        ref = fastsoftmax.softmax(x, axis=-1, threads=2)
        assert ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWPID) == 0, ctypes.get_errno()
        pid = os.fork()
        if pid == 0:
            ok = os.getpid() == 1 and np.array_equal(fastsoftmax.softmax(x, axis=-1, threads=2), ref)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """
    env = {k: v for k, v in os.environ.items() if k not in ("FASTSOFTMAX_NUM_THREADS", "OMP_NUM_THREADS")}
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", textwrap.dedent(code)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


# -- threadpoolctl -------------------------------------------------------------------------


def test_threadpoolctl_lists_and_limits_the_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not hasattr(threadpoolctl, "register"):
        pytest.skip("threadpoolctl without register()")
    mine = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "fastsoftmax" and i["prefix"] == "_core."]
    assert len(mine) == 1 and mine[0]["num_threads"] == fastsoftmax.get_num_threads()
    assert mine[0]["version"] == fastsoftmax.__version__
    try:
        fastsoftmax.set_num_threads(3)
        with threadpoolctl.threadpool_limits(limits=1):
            assert fastsoftmax.get_num_threads() == 1
            fastsoftmax.softmax(np.zeros((4, 8), np.float32), axis=-1)
            assert _core.last_requested_threads() == 0  # the default, which is now 1
        assert fastsoftmax.get_num_threads() == 3
        with threadpoolctl.threadpool_limits(limits=2, user_api="fastsoftmax"):
            assert fastsoftmax.get_num_threads() == 2
        assert fastsoftmax.get_num_threads() == 3
    finally:
        fastsoftmax.set_num_threads(None)


def test_threadpoolctl_sees_the_c_library_too():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not hasattr(threadpoolctl, "register"):
        pytest.skip("threadpoolctl without register()")
    code = f"""
        import ctypes, fastsoftmax, threadpoolctl
        lib = ctypes.CDLL({fastsoftmax.get_library()!r})
        infos = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "fastsoftmax"]
        print(sorted(i["prefix"] for i in infos))
        with threadpoolctl.threadpool_limits(limits=1, user_api="fastsoftmax"):
            print(lib.fastsoftmax_get_num_threads(), fastsoftmax.get_num_threads())
    """
    out = run_python(code, FASTSOFTMAX_NUM_THREADS="2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["['_core.', 'libfastsoftmax']", "1 1"]
