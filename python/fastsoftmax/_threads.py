"""The thread budget: threads=, the per-thread context manager, set_num_threads, the
environment (checked at import), and a threadpoolctl controller."""

from __future__ import annotations

import contextlib
import ctypes
import warnings
from typing import Any, Dict, Iterator, Optional

import numpy as np

from . import _core

__all__ = ["set_num_threads", "get_num_threads", "threads", "MAX_THREADS"]

#: The largest thread count accepted by ``threads=``, :func:`set_num_threads`,
#: :func:`threads` and ``FASTSOFTMAX_NUM_THREADS``.
MAX_THREADS: int = _core.MAX_THREADS


def check_threads(threads, what: str = "threads") -> int:
    """threads= as the core takes it: None or 0 -> 0 (the default), else an int from 1 to
    MAX_THREADS; anything else is a ValueError (a bool or a non-integer too)."""
    if threads is None:
        return 0
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise ValueError(f"{what} must be None or an int from 0 to {MAX_THREADS} (0: the default), got {threads!r}")
    if not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"{what} must be None or an int from 0 to {MAX_THREADS} (0: the default), got {threads!r}")
    return int(threads)


def set_num_threads(n: Optional[int]) -> None:
    """Set the number of threads calls use when they pass no ``threads=`` (process-wide).

    ``None`` or 0 restores the default (see :func:`get_num_threads`). A
    :func:`threads` block of the calling thread takes precedence. Concurrent calls from
    several Python threads never oversubscribe: while one call uses the thread pool, the
    others run on their own thread.

    >>> import fastsoftmax
    >>> fastsoftmax.set_num_threads(2); fastsoftmax.get_num_threads()
    2
    >>> fastsoftmax.set_num_threads(None)
    """
    _core.set_num_threads(check_threads(n, "set_num_threads(n)"))


def get_num_threads() -> int:
    """The number of threads a call uses at most when it passes no ``threads=``.

    In this order: the calling thread's :func:`threads` block; :func:`set_num_threads`;
    ``FASTSOFTMAX_NUM_THREADS``; ``OMP_NUM_THREADS``; else the smaller of the CPUs this
    process may run on (affinity mask) and its cgroup's CPU quota, rounded up. A call
    uses fewer threads when its work would not pay for waking them (README, Threads).

    >>> import fastsoftmax
    >>> fastsoftmax.get_num_threads() >= 1
    True
    """
    return _core.get_num_threads()


@contextlib.contextmanager
def threads(n: Optional[int]) -> Iterator[None]:
    """Within the block, calls from the calling thread that pass no ``threads=`` use at
    most ``n`` threads (``None`` or 0: no override). Other threads are not affected;
    blocks nest, and the previous setting is restored on exit, also on an exception.

    >>> import numpy as np, fastsoftmax
    >>> with fastsoftmax.threads(1):
    ...     fastsoftmax.get_num_threads()
    1
    """
    previous = _core.swap_thread_local_threads(check_threads(n, "threads(n)"))
    try:
        yield
    finally:
        _core.swap_thread_local_threads(previous)


def thread_info() -> Dict[str, Any]:
    """How the default thread count was found, and the planner's hand-off costs and cost factor."""
    info = dict(_core.thread_config())
    info["handoff"] = _core.handoff_costs()
    info["cost_scale"] = _core.cost_scale()  # measured here if no call has asked for threads yet
    info["max_threads"] = MAX_THREADS
    return info


def check_environment() -> None:
    """At import: a malformed FASTSOFTMAX_NUM_THREADS is an error; a malformed
    OMP_NUM_THREADS (which other libraries read too) a RuntimeWarning, and ignored."""
    config = _core.thread_config()
    if config["error"]:
        raise ValueError(config["error"])
    if config["warning"]:
        warnings.warn(f"fastsoftmax: {config['warning']}", RuntimeWarning, stacklevel=3)


def register_threadpoolctl() -> bool:
    """Registers a threadpoolctl controller for the pool when threadpoolctl is importable,
    so that threadpool_info() lists it and threadpool_limits() limits it."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register") or not hasattr(threadpoolctl, "LibController"):
        return False  # threadpoolctl < 3.5 has no registration of new controllers

    class FastsoftmaxController(threadpoolctl.LibController):
        """fastsoftmax's thread pool: the Python extension (_core) or the C library."""

        user_api = "fastsoftmax"
        internal_api = "fastsoftmax"
        filename_prefixes = ("_core.", "libfastsoftmax")
        check_symbols = ("fastsoftmax_py_get_num_threads", "fastsoftmax_get_num_threads")

        def _symbol(self, name: str):
            for prefix in ("fastsoftmax_py_", "fastsoftmax_"):
                fn = getattr(self.dynlib, prefix + name, None)
                if fn is not None:
                    return fn
            raise AttributeError(name)

        def get_num_threads(self):
            fn = self._symbol("get_num_threads")
            fn.restype = ctypes.c_int
            return fn()

        def set_num_threads(self, num_threads):
            fn = self._symbol("set_num_threads")
            fn.argtypes = [ctypes.c_int]
            fn.restype = ctypes.c_int
            return fn(min(max(int(num_threads), 1), MAX_THREADS))

        def get_version(self):
            from . import __version__
            return __version__

    threadpoolctl.register(FastsoftmaxController)
    return True
