"""Introspection: what the CPU has, what was compiled, which kernel each call uses."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, Dict, List

from . import _core, _profile, _threads

__all__ = ["kernels", "show_runtime", "runtime_info", "get_include", "get_cmake_dir", "get_library"]

# Where the wheel put the C API (next to the extension module, also in editable installs).
_PREFIX = os.path.dirname(os.path.abspath(_core.__file__))


def get_include() -> str:
    """The directory holding ``fastsoftmax/fastsoftmax.h``, the C API header.

    >>> import os, fastsoftmax
    >>> os.path.isfile(os.path.join(fastsoftmax.get_include(), "fastsoftmax", "fastsoftmax.h"))
    True
    """
    return os.path.join(_PREFIX, "include")


def get_cmake_dir() -> str:
    """The directory of ``fastsoftmaxConfig.cmake``, for ``-Dfastsoftmax_DIR=...``.

    ``find_package(fastsoftmax CONFIG REQUIRED)`` then provides the imported target
    ``fastsoftmax::fastsoftmax``.

    >>> import os, fastsoftmax
    >>> os.path.isfile(os.path.join(fastsoftmax.get_cmake_dir(), "fastsoftmaxConfig.cmake"))
    True
    """
    return os.path.join(_PREFIX, "lib", "cmake", "fastsoftmax")


def get_library() -> str:
    """The path of the C API shared library (``libfastsoftmax.so`` on Linux)."""
    lib = os.path.join(_PREFIX, "lib")
    for name in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
        if name.startswith(("libfastsoftmax.", "fastsoftmax.")) and name.endswith((".so", ".dylib", ".dll")):
            return os.path.join(lib, name)
    raise FileNotFoundError(f"no fastsoftmax shared library under {lib}")


def kernels() -> List[Dict[str, Any]]:
    """Every compiled kernel variant and whether this CPU can run it.

    Each entry is a dict with ``name``, ``isa``, ``dtype``, ``op``, ``algorithm`` and
    ``supported``.

    >>> import fastsoftmax
    >>> any(k["isa"] == "scalar" and k["supported"] for k in fastsoftmax.kernels())
    True
    """
    return _core.kernels()


def check_environment() -> None:
    """At import: a FASTSOFTMAX_ISA that names no tier of this build is an error (as a
    malformed FASTSOFTMAX_NUM_THREADS), never a silent fallback nor a later surprise."""
    try:
        _core.active_isa()
    except ValueError:
        compiled = ", ".join(_core.compiled_isas())
        raise ValueError(f"FASTSOFTMAX_ISA={_core.isa_cap()!r} is not an instruction-set tier of this build "
                         f"(it has: {compiled}); unset it or name one of those") from None


def runtime_info() -> Dict[str, Any]:
    """What :func:`show_runtime` prints (and ``python -m fastsoftmax --json``), as a dict.

    Keys: ``fastsoftmax`` (the version), ``python``, ``platform``, ``cpu``,
    ``cpu_features``, ``cache_sizes``, ``compiled_isas``, ``runnable_isas``,
    ``FASTSOFTMAX_ISA`` (the cap this process read, or None), ``active_isa``,
    ``auto_kernels`` (the kernel ``algorithm="auto"`` picks per op/dtype for a short row, a
    long row and a large batch of long rows), ``auto_profile`` (the machine profile file, whether its entry for this machine
    is applied, auto's reload limit per dtype and the row length from which the kernels use
    software prefetch: see ``fastsoftmax-bench --tune``), ``ftz_daz``, ``avx512_bf16_rounding``, ``threads``
    (the default thread count and where it came from, the thread planner's hand-off costs
    and its cost factor for this machine's speed), ``num_threads``, and
    ``error``: None, or why the configuration is not what was asked for (a
    ``FASTSOFTMAX_ISA`` naming a tier this CPU cannot run; ``python -m fastsoftmax`` then
    exits with status 1).

    >>> import fastsoftmax
    >>> info = fastsoftmax.runtime_info()
    >>> info["active_isa"] in info["runnable_isas"]
    True
    """
    from . import __version__

    cap = _core.isa_cap()
    runnable = [i for i in _core.compiled_isas() if _core.isa_runnable(i)]
    try:
        active = _core.active_isa()
        error = None
    except ValueError as e:  # a bad FASTSOFTMAX_ISA (import refuses it first)
        active, error = None, str(e)
    if active is not None and cap and cap not in runnable:
        error = (f"FASTSOFTMAX_ISA={cap!r} asks for a tier this CPU (or OS) cannot run; "
                 f"calls use {active} instead")
    selected = {}
    if active is not None:
        for dtype in _core.dtype_names():
            for op in ("softmax", "log_softmax"):
                selected[f"{op}/{dtype}"] = {
                    "in-cache row (1K)": _core.kernel_name(op, "auto", dtype, None, 1024),
                    "out-of-cache row (64M)": _core.kernel_name(op, "auto", dtype, None, 1 << 26),
                    "out-of-cache batch (1024 x 64K)": _core.kernel_name(op, "auto", dtype, None, 1 << 16, 1024),
                }
    return {
        "fastsoftmax": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _core.cpu_brand() or platform.processor(),
        "cpu_features": _core.cpu_features(),
        "cache_sizes": _core.cache_sizes(),
        "compiled_isas": _core.compiled_isas(),
        "runnable_isas": runnable,
        "FASTSOFTMAX_ISA": cap,
        "active_isa": active,
        "error": error,
        "auto_kernels": selected,
        "auto_profile": _profile.status() if active is not None else None,
        "ftz_daz": _core.ftz_daz(),
        "avx512_bf16_rounding": _core.avx512_bf16_rounding(),
        "threads": _threads.thread_info(),
        "num_threads": _core.get_num_threads(),
    }


def show_runtime() -> None:
    """Print the CPU features, compiled and runnable tiers, and the kernel in use.

    >>> import fastsoftmax
    >>> fastsoftmax.show_runtime()  # doctest: +SKIP
    """
    info = runtime_info()
    print(f"fastsoftmax {info['fastsoftmax']}  (Python {info['python']}, {info['platform']})")
    print(f"CPU: {info['cpu']}")
    feats = info["cpu_features"]
    print("CPU features: " + " ".join(f"{k}={'yes' if v else 'no'}" for k, v in feats.items()))
    c = info["cache_sizes"]
    print(f"caches ({c['source'] or 'unknown'}): L1d {c['l1d'] // 1024} KiB, L2 {c['l2'] // 1024} KiB, "
          f"L3 {c['l3'] // 1024} KiB")
    print(f"compiled tiers: {', '.join(info['compiled_isas'])}; runnable here: {', '.join(info['runnable_isas'])}")
    cap = info["FASTSOFTMAX_ISA"]
    print(f"FASTSOFTMAX_ISA: {cap if cap else '(not set)'}")
    if info["error"]:
        print(f"ERROR: {info['error']}")
    if info["active_isa"] is None:
        return
    print(f"active tier: {info['active_isa']}")
    for key, names in info["auto_kernels"].items():
        print(f"  {key:20s} " + "; ".join(f"{k}: {v}" for k, v in names.items()))
    prof = info["auto_profile"]
    limits = ", ".join(f"{d} {_profile.limit_text(b)}" for d, b in prof["reload_limit_bytes"].items())
    if prof["applied"]:
        print(f"auto: reload up to {limits} (machine profile {prof['path']}, tuned {prof.get('tuned')})")
    else:
        print(f"auto: reload up to {limits} (built-in rule; profile: {prof['reason']})")
    pf = prof["prefetch_min_elements"]
    print("software prefetch: " + (f"rows (and chunks of long rows) of {pf} elements or more" if pf < 1 << 62
                                   else "off (machine profile)"))
    fd = info["ftz_daz"]
    print(f"MXCSR: FTZ={fd['ftz']} DAZ={fd['daz']}")
    print("bfloat16 rounding on the avx512 tier: "
          + ("vcvtneps2bf16 (AVX512-BF16)" if info["avx512_bf16_rounding"] else "shifts (no AVX512-BF16)"))
    t = info["threads"]
    quota = f"{t['cgroup_cpus']} CPUs" if t["cgroup_cpus"] else "none"
    print(f"threads: {info['num_threads']} (default {t['threads']} from {t['source']}; affinity {t['affinity_cpus']} "
          f"CPUs, cgroup quota {quota})")
    h = t["handoff"]
    if h["measured"]:
        print(f"thread hand-off: {h['parked_ns'] / 1e3:.1f} us to a parked worker, "
              f"{h['spinning_ns'] / 1e3:.1f} us to a spinning one" + (" (fixed)" if h["overridden"] else ""))
    else:
        print("thread hand-off: not measured yet (at the first call that may use threads)")
    print(f"thread planner's cost factor: {t['cost_scale']:.2f} (one thread's in-cache speed here against "
          "the fast end of 0.15 ns per float32 element)")
    if t["warning"]:
        print(f"WARNING: {t['warning']}")
