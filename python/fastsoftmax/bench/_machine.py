"""What the benchmark ran on: CPU, caches, tiers, FP state, library versions, threads."""

from __future__ import annotations

import glob
import os
import platform
import sys
from typing import Any, Dict, List, Optional

from .. import _core

#: Environment variables that cap the thread pools of the peers' runtimes. They must be
#: set before those runtimes are imported (PyTorch and ONNX Runtime read them at load).
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)

#: The distributions whose versions are recorded (looked up without importing them).
VERSIONED = ("fastsoftmax", "numpy", "scipy", "torch", "onnxruntime", "onnx", "ml_dtypes", "matplotlib",
             "py-cpuinfo", "tqdm", "pytest-benchmark")

DEFAULT_LLC = 32 << 20  # used when the cache size is unknown


def set_thread_env(threads: int) -> Dict[str, str]:
    """Pin the peers' thread pools to `threads` (before they are imported); returns what was set."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    return {var: os.environ[var] for var in THREAD_ENV_VARS}


def versions() -> Dict[str, Optional[str]]:
    from importlib import metadata

    out: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:  # the imported package, which can differ from the installed metadata in a dev tree
        from .. import __version__

        out["fastsoftmax"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return out


def sysfs_caches() -> List[Dict[str, Any]]:
    """The caches of CPU 0 as Linux's sysfs lists them (a cross-check of _core.cache_sizes())."""
    caches = []
    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        entry: Dict[str, Any] = {}
        for key in ("level", "type", "size", "shared_cpu_list", "coherency_line_size"):
            try:
                with open(os.path.join(d, key)) as f:
                    entry[key] = f.read().strip()
            except OSError:
                pass
        if entry:
            caches.append(entry)
    return caches


def py_cpuinfo() -> Dict[str, Any]:
    """py-cpuinfo's get_cpu_info() (with its cache sizes, which are wrong on some VMs), or a reason."""
    try:
        import cpuinfo  # py-cpuinfo
    except ImportError:
        return {"error": "py-cpuinfo is not installed (pip install 'fastsoftmax[bench]')"}
    try:
        info = dict(cpuinfo.get_cpu_info())
    except Exception as e:  # it shells out on some platforms
        return {"error": f"py-cpuinfo failed: {type(e).__name__}: {e}"}
    return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}


def llc_bytes(caches: Dict[str, Any]) -> int:
    for key in ("l3", "l2"):
        v = int(caches.get(key) or 0)
        if v > 0:
            return v
    return DEFAULT_LLC


def machine_info(with_cpuinfo: bool = True) -> Dict[str, Any]:
    caches = dict(_core.cache_sizes())
    compiled = list(_core.compiled_isas())
    try:
        active = _core.active_isa()
    except ValueError:
        active = None
    try:
        affinity = sorted(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        affinity = None
    info: Dict[str, Any] = {
        "cpu_brand": _core.cpu_brand() or platform.processor(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "affinity": affinity,
        "cache_sizes": caches,
        "llc_bytes_used": llc_bytes(caches),
        "sysfs_caches": sysfs_caches(),
        "compiled_isas": compiled,
        "runnable_isas": [i for i in compiled if _core.isa_runnable(i)],
        "active_isa": active,
        "FASTSOFTMAX_ISA": os.environ.get("FASTSOFTMAX_ISA"),
        "cpu_features": dict(_core.cpu_features()),
        "ftz_daz": dict(_core.ftz_daz()),
        "memory_bytes": _total_memory(),
    }
    if with_cpuinfo:
        info["py_cpuinfo"] = py_cpuinfo()
    return info


def _total_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def command_line(argv: Optional[List[str]]) -> List[str]:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fastsoftmax-bench"
    if prog in ("__main__.py", "-m", "-c"):
        prog = "python -m fastsoftmax.bench"
    return [prog] + list(sys.argv[1:] if argv is None else argv)
