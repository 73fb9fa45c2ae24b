"""Software prefetch is a speed setting only: the rows a call reads with prefetch (those of
at least _core.prefetch_min_elements() elements, and the chunks of long rows) give the same
bits as without it, forward and backward, on every tier, and the setting is checked."""

from __future__ import annotations

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

from conftest import KERNEL_DTYPES, require_or_skip

ALGORITHMS = ("two-pass", "online", "three-pass-reload", "three-pass-recompute")
# Batched short rows (no prefetch by default), a one-chunk row right at the default limit,
# and a row of three chunks whose last chunk is shorter than the limit.
SHAPES = ((64, 1000), (1, 1 << 16), (1, 2 * (1 << 16) + 4099))


@pytest.fixture
def restore_prefetch():
    yield
    _core.set_prefetch_min_elements(None)


def test_default_and_reset(restore_prefetch):
    assert _core.prefetch_min_elements() == 1 << 16
    _core.set_prefetch_min_elements(0)
    assert _core.prefetch_min_elements() == 0
    _core.set_prefetch_min_elements(2**100)  # beyond int64: prefetch off
    assert _core.prefetch_min_elements() == 2**63 - 1
    _core.set_prefetch_min_elements(None)
    assert _core.prefetch_min_elements() == 1 << 16


@pytest.mark.parametrize("bad", [-1, -(2**70)])
def test_negative_limit_is_refused(bad, restore_prefetch):
    _core.set_prefetch_min_elements(1234)
    with pytest.raises(ValueError, match="set_prefetch_min_elements"):
        _core.set_prefetch_min_elements(bad)
    assert _core.prefetch_min_elements() == 1234


@pytest.mark.parametrize("bad", [1.5, "64", True])
def test_non_int_limit_is_refused(bad, restore_prefetch):
    with pytest.raises(TypeError, match="set_prefetch_min_elements"):
        _core.set_prefetch_min_elements(bad)
    assert _core.prefetch_min_elements() == 1 << 16


@pytest.mark.parametrize("isa", ["avx512", "avx2", "neon", "scalar"])
@pytest.mark.parametrize("dtype", KERNEL_DTYPES)
def test_results_do_not_depend_on_prefetch(isa, dtype, restore_prefetch):
    if isa not in _core.compiled_isas():
        pytest.skip(f"{isa} is not compiled into this build")
    require_or_skip(isa)
    rng = np.random.default_rng(7)
    for shape in SHAPES:
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        for op in (fastsoftmax.softmax, fastsoftmax.log_softmax):
            for algorithm in ALGORITHMS:
                outs = []
                for limit in (0, None, 2**62):
                    _core.set_prefetch_min_elements(limit)
                    outs.append(op(x, axis=-1, algorithm=algorithm, isa=isa, threads=1))
                for other in outs[1:]:
                    assert other.tobytes() == outs[0].tobytes(), (shape, op.__name__, algorithm)
        y = fastsoftmax.softmax(x, axis=-1)
        g = (rng.standard_normal(shape) * 2).astype(dtype)
        for backward in (fastsoftmax.softmax_backward, fastsoftmax.log_softmax_backward):
            outs = []
            for limit in (0, None, 2**62):
                _core.set_prefetch_min_elements(limit)
                outs.append(backward(y, g, axis=-1, isa=isa, threads=1))
            for other in outs[1:]:
                assert other.tobytes() == outs[0].tobytes(), (shape, backward.__name__)
