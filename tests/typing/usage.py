"""What a type checker accepts and rejects in fastsoftmax's public API.

Checked by tests/test_typing.py with ``mypy --strict --warn-unused-ignores``: every line
below must type-check, except those marked ``# type: ignore[<code>]``, which must be
rejected with exactly that error code (an ignore that is not needed is itself an error).
Not run: it is read by mypy only.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
from numpy.typing import NDArray

import fastsoftmax
from fastsoftmax import Algorithm, AxisLike, Tier

x = np.ones((2, 3), np.float32)

# ---- accepted ----------------------------------------------------------------------------
y: NDArray[np.floating[Any]] = fastsoftmax.softmax(x)
y = fastsoftmax.softmax([[1.0, 2.0], [3.0, 4.0]], axis=(0, 1), algorithm="two-pass", isa="scalar", threads=2)
y = fastsoftmax.log_softmax(x, axis=-1, out=np.empty_like(x), dtype=np.float64)
y = fastsoftmax.log_softmax(x, np.int64(1), algorithm="online", isa=None, threads=None)
y = fastsoftmax.softmax(x, axis=None, dtype="float32")
s: np.floating[Any] = fastsoftmax.softmax(2.5)  # a scalar in, a NumPy scalar out
s = fastsoftmax.log_softmax(np.float32(1.0))
axis: AxisLike = (0, np.intp(1))
axis = -1
axis = None
alg: Algorithm = "three-pass-recompute"
tier: Tier = "avx512"
algs: tuple[Algorithm, ...] = fastsoftmax.ALGORITHMS
y = fastsoftmax.softmax(x, axis=axis, algorithm=alg, isa=tier)

n: int = fastsoftmax.get_num_threads()
fastsoftmax.set_num_threads(2)
fastsoftmax.set_num_threads(None)
with fastsoftmax.threads(1):
    pass
info: Dict[str, Any] = fastsoftmax.runtime_info()
ks: List[Dict[str, Any]] = fastsoftmax.kernels()
fastsoftmax.show_runtime()
path: str = fastsoftmax.get_include()
m: int = fastsoftmax.MAX_THREADS

lse: Any = fastsoftmax.logsumexp(x, axis=1, b=np.ones(3), keepdims=True, dtype=np.float64, isa="avx2", threads=1)
lse = fastsoftmax.logsumexp([1.0, 2.0], out=np.empty((), np.float32), b=2.0)
val, sign = fastsoftmax.logsumexp(x, b=[1.0, -1.0, 2.0], return_sign=True)  # a pair
pair: tuple[Any, Any] = fastsoftmax.logsumexp(x, axis=(0, 1), return_sign=True)
flag: bool = bool(n)
either = fastsoftmax.logsumexp(x, return_sign=flag)  # a pair or not: decided at run time

# ---- rejected ----------------------------------------------------------------------------
fastsoftmax.softmax(x, axis=[0, 1])  # type: ignore[call-overload]
fastsoftmax.softmax(x, axis=1.0)  # type: ignore[call-overload]
fastsoftmax.softmax(x, algorithm="fast")  # type: ignore[call-overload]
fastsoftmax.log_softmax(x, isa="sse2")  # type: ignore[call-overload]
fastsoftmax.softmax(x, threads="2")  # type: ignore[call-overload]
fastsoftmax.softmax(x, 0, None)  # type: ignore[call-overload]
bad_axis: AxisLike = [0, 1]  # type: ignore[assignment]
bad_alg: Algorithm = "fast"  # type: ignore[assignment]
bad_tier: Tier = "AVX2"  # type: ignore[assignment]
not_an_array: NDArray[np.floating[Any]] = fastsoftmax.softmax(2.5)  # type: ignore[assignment]
not_a_scalar: np.floating[Any] = fastsoftmax.softmax(x)  # type: ignore[assignment]
fastsoftmax.set_num_threads("2")  # type: ignore[arg-type]
fastsoftmax.threads(1.5)  # type: ignore[arg-type]
bad_info: List[str] = fastsoftmax.runtime_info()  # type: ignore[assignment]
not_a_pair: NDArray[np.floating[Any]] = fastsoftmax.logsumexp(x, return_sign=True)  # type: ignore[assignment]
fastsoftmax.logsumexp(x, return_sign=1)  # type: ignore[call-overload]
fastsoftmax.logsumexp(x, isa="sse2")  # type: ignore[call-overload]
fastsoftmax.logsumexp(x, axis=[0, 1])  # type: ignore[call-overload]
fastsoftmax.logsumexp(x, keepdims="yes")  # type: ignore[call-overload]
fastsoftmax.logsumexp(x, None, False)  # type: ignore[call-overload]
