"""fastsoftmax.bench: the benchmark harness (``fastsoftmax-bench``, ``python -m fastsoftmax.bench``).

Reproduces, on the machine it runs on, the out-of-cache bandwidth comparison of
Dukhan & Ablavatski, "The Two-Pass Softmax Algorithm" (2020): every algorithm on
every selected instruction-set tier, the importable peers (NumPy, SciPy, PyTorch,
ONNX Runtime), and memory-only kernels that perform each algorithm's exact access
pattern, which serve as the roofline each algorithm is measured against.

Method (as in the paper's XNNPACK benchmarks): the input is touched right before
every timed call ("hot input"); the output goes to one of several rotating,
pre-faulted buffers whose total exceeds the last-level cache once a row's output
is large, so out-of-cache means out of cache; each row of results is the median
(and min/max) of many individually timed calls.

Threads: ``--threads 1,2`` measures every row at each thread count (fastsoftmax
with ``threads=t`` per call, PyTorch with ``torch.set_num_threads(t)``, ONNX
Runtime with one session per t; NumPy and SciPy, single-threaded, at 1 only),
against memory-only patterns run over t slices at once, and prints how each
algorithm scales. The "(new output)" rows call ``fastsoftmax.softmax(x)`` and
``torch.softmax(x, -1)`` without ``out=``, paying for a fresh result per call.

Dtypes: ``--dtype float32,float64,float16,bfloat16`` (any subset; bfloat16 needs the optional
ml_dtypes package and is listed as skipped without it). Half-type results are validated
element-wise against a float64 reference rounded to the type (fastsoftmax within 1 ulp, peers
within 8); with float32 in the run, the summary gives each half type's two-pass time relative
to float32's at the largest N (target <= 0.6x) and to its own memory-only two-pass pattern.

Run ``fastsoftmax-bench --help`` for the options, or from Python::

    >>> from fastsoftmax.bench import main
    >>> main(["--quick", "--out", "bench-results"])  # doctest: +SKIP
    0

The pieces are importable for custom sweeps: :func:`parse_sizes`,
:func:`parse_threads`, :func:`parse_shapes`, :func:`run_benchmark` (returns the
result document written to ``results.json``).
"""

from ._cli import main, parse_shapes, parse_sizes, parse_threads
from ._runner import BenchConfig, run_benchmark

__all__ = ["main", "parse_sizes", "parse_threads", "parse_shapes", "BenchConfig", "run_benchmark"]
