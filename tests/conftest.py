"""Shared test helpers: the ISA skip/fail rule, kernel parametrization, accuracy report.

ISA rule
--------
A test for an instruction-set tier this CPU (or OS) cannot run is *skipped* with a reason
naming the missing ISA ("CPU lacks avx512"), so the suite passes on an AVX2-only CI
machine. When the environment variable ``FASTSOFTMAX_REQUIRE_ISA`` names the tier (one
name, or several separated by commas), the same test *fails* instead: a CI job that is
meant to exercise AVX-512 must not go green by skipping every AVX-512 test; and
test_dispatch.py::test_required_isa_is_runnable_and_active then also checks that the
(first) named tier is the active one, so such a job sets FASTSOFTMAX_ISA to it as well
when the machine has a better tier.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

import pytest

# A machine profile in the developer's home (fastsoftmax-bench --tune) changes auto's picks:
# the suite tests the built-in rule, and tests/test_profile.py sets its own profiles.
os.environ["FASTSOFTMAX_PROFILE"] = "off"

import fastsoftmax  # noqa: E402
from fastsoftmax import _core

REQUIRE_ENV = "FASTSOFTMAX_REQUIRE_ISA"


def required_isas() -> Tuple[str, ...]:
    """The tiers named by FASTSOFTMAX_REQUIRE_ISA (empty when unset)."""
    raw = os.environ.get(REQUIRE_ENV, "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def below_cap(isa: str) -> bool:
    """Whether isa= may name this tier: not above the FASTSOFTMAX_ISA cap (a cap binds)."""
    cap = _core.isa_cap()
    compiled = _core.compiled_isas()
    return not (cap in compiled and isa in compiled and compiled.index(isa) < compiled.index(cap))


def usable_isas() -> Tuple[str, ...]:
    """The tiers that isa= can run here: compiled in, runnable on this CPU, not above the cap."""
    return tuple(i for i in _core.compiled_isas() if _core.isa_runnable(i) and below_cap(i))


def require_or_skip(isa: str) -> None:
    """Skip the calling test when this CPU cannot run `isa`; fail instead if it is required."""
    if not below_cap(isa):  # FASTSOFTMAX_ISA: isa= above it is refused
        pytest.skip(f"{isa} is above the cap FASTSOFTMAX_ISA={_core.isa_cap()}")
    compiled = _core.compiled_isas()
    if isa in compiled and _core.isa_runnable(isa):
        return
    why = (f"CPU lacks {isa}" if isa in _core.compiled_isas()
           else f"CPU lacks {isa} (tier not compiled into this build)")
    if isa in required_isas():
        pytest.fail(f"{why}, but {REQUIRE_ENV}={os.environ.get(REQUIRE_ENV)} requires it", pytrace=False)
    pytest.skip(why)


try:  # bfloat16 arrays need ml_dtypes (in the test extra; optional for the package)
    import ml_dtypes  # noqa: F401

    HAVE_BFLOAT16 = True
except ImportError:
    HAVE_BFLOAT16 = False

#: The dtypes the kernels read and write (float16/bfloat16 computed in float32).
KERNEL_DTYPES: Tuple[str, ...] = ("float32", "float64", "float16") + (("bfloat16",) if HAVE_BFLOAT16 else ())
HALF_DTYPES: Tuple[str, ...] = tuple(d for d in KERNEL_DTYPES if d in ("float16", "bfloat16"))

#: Every softmax/log_softmax kernel in the registry (one entry per isa x dtype x op x algorithm);
#: bfloat16 ones only where ml_dtypes is installed.
KERNELS: List[Dict] = [k for k in fastsoftmax.kernels() if k["dtype"] in KERNEL_DTYPES]


def kernel_id(k: Dict) -> str:
    return f"{k['isa']}-{k['dtype']}-{k['op']}-{k['algorithm']}"


@pytest.fixture(params=KERNELS, ids=[kernel_id(k) for k in KERNELS])
def kernel(request) -> Dict:
    """A registry kernel this CPU can run (skips/fails per the ISA rule otherwise)."""
    require_or_skip(request.param["isa"])
    return request.param


def run_kernel(k: Dict, x, **kw):
    """Run registry kernel `k` on `x` (which must have k's dtype) through the public API."""
    fn = fastsoftmax.softmax if k["op"] == "softmax" else fastsoftmax.log_softmax
    return fn(x, algorithm=k["algorithm"], isa=k["isa"], **kw)


# ---- accuracy report ------------------------------------------------------------------
# test_accuracy records the worst error it measured per kernel; the table is printed at
# the end of the run with -v or FASTSOFTMAX_ACCURACY_TABLE=1.

ACCURACY: Dict[str, Dict[str, float]] = {}


def record_accuracy(k: Dict, metric: str, value: float, bound_ratio: float) -> None:
    e = ACCURACY.setdefault(kernel_id(k), {"metric": metric, "max": 0.0, "ratio": 0.0})
    e["max"] = max(e["max"], float(value))
    e["ratio"] = max(e["ratio"], float(bound_ratio))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not ACCURACY:
        return
    if not (config.getoption("verbose") > 0 or os.environ.get("FASTSOFTMAX_ACCURACY_TABLE")):
        return
    tr = terminalreporter
    tr.section("fastsoftmax accuracy (worst case measured per kernel)")
    tr.write_line(f"{'kernel':48s} {'metric':22s} {'max error':>11s} {'max err/bound':>14s}")
    for name in sorted(ACCURACY):
        e = ACCURACY[name]
        tr.write_line(f"{name:48s} {e['metric']:22s} {e['max']:11.3e} {e['ratio']:14.3f}")


# ---- slow tests, sanitizer runs ---------------------------------------------------------
# Tests marked `slow` (e.g. the > 2^31-element rows of test_size_limits.py, which need
# 8 GiB and a minute) are skipped unless asked for, so `python -m pytest` stays the quick
# README command: `python -m pytest --run-slow` runs everything, `-m slow` only them.

def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (off by default)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


#: Set by tools/sanitize.sh to the -fsanitize= list the extension was built with.
SANITIZED = os.environ.get("FASTSOFTMAX_SANITIZED", "")

if SANITIZED:
    # Under ASan every allocation goes through its allocator and the kernels run several
    # times slower: fewer property-test examples keep the sanitizer run within CI's time
    # (tests that pin max_examples in their own settings keep theirs).
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("sanitize", max_examples=25, deadline=None)
    _hyp_settings.load_profile("sanitize")


@pytest.fixture(autouse=True, scope="session")
def fixed_handoff_costs():
    """The thread planner splits a call by its work against the hand-off cost measured at
    the first parallel call; a measurement is machine- and moment-dependent, so the suite
    fixes the cost instead: 5 us, with which float32 calls of a little more than 2^17
    elements and more split over 2 threads (20 us of modelled work).
    test_thread_budget.py tests the measured path itself. The planner's factor for this
    machine's compute speed (cost_scale) is fixed at 1 (the fast end) likewise."""
    _core.set_handoff_costs(5000.0, 5000.0)
    _core.set_cost_scale(1.0)
    yield
