"""fastsoftmax: memory-bandwidth-bound softmax and log-softmax for CPUs.

The two-pass algorithm of Dukhan & Ablavatski (2020) and the classic three-pass and
online algorithms, as AVX-512, AVX2+FMA and portable kernels chosen at run time.

>>> import numpy as np, fastsoftmax
>>> fastsoftmax.softmax(np.array([1.0, 1.0]))
array([0.5, 0.5])
"""

from ._api import ALGORITHMS, Algorithm, AxisLike, Tier, log_softmax, softmax
from ._threads import (MAX_THREADS, check_environment as _check_environment, get_num_threads,
                       register_threadpoolctl as _register_threadpoolctl, set_num_threads, threads)
from ._runtime import (check_environment as _check_isa_environment, get_cmake_dir, get_include, get_library, kernels,
                       runtime_info, show_runtime)
from ._profile import load as _load_profile
from ._sampling import sample
from ._backward import log_softmax_backward, softmax_backward
from ._topk import cross_entropy, topk_softmax
from ._stats import (SoftmaxStats, log_softmax_from_stats, logsumexp, merge_stats, softmax_from_stats,
                     softmax_stats)

from ._version import __version__

__all__ = ["softmax", "log_softmax", "set_num_threads", "get_num_threads", "threads", "MAX_THREADS", "kernels",
           "show_runtime", "runtime_info",
           "get_include", "get_cmake_dir", "get_library", "ALGORITHMS", "__version__",
           "logsumexp", "softmax_stats", "merge_stats", "softmax_from_stats", "log_softmax_from_stats",
           "SoftmaxStats", "AxisLike", "Algorithm", "Tier", "sample", "softmax_backward",
           "log_softmax_backward", "topk_softmax", "cross_entropy"]

_check_environment()
_check_isa_environment()
_load_profile()
_register_threadpoolctl()
