"""The public API's annotations: tests/typing/usage.py type-checks under mypy --strict
(lines marked to be rejected must be), and the Literal types agree with what runs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import get_args

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _core

USAGE = pathlib.Path(__file__).resolve().parent / "typing" / "usage.py"


def test_usage_file_type_checks(tmp_path):
    pytest.importorskip("mypy")
    cmd = [sys.executable, "-m", "mypy", "--strict", "--warn-unused-ignores", "--show-error-codes",
           "--no-error-summary", "--cache-dir", str(tmp_path / "mypy-cache"), str(USAGE)]
    env = dict(os.environ, MYPYPATH="")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_literal_types_match_the_runtime():
    assert fastsoftmax.ALGORITHMS == get_args(fastsoftmax.Algorithm)
    # Every tier this build compiles is a Tier (a new tier must be added to the Literal).
    assert set(_core.compiled_isas()) <= set(get_args(fastsoftmax.Tier))
    for k in fastsoftmax.kernels():
        assert k["isa"] in get_args(fastsoftmax.Tier) and k["algorithm"] in fastsoftmax.ALGORITHMS


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_axis_like_says_what_is_accepted(op):
    """AxisLike is None, an int (anything with __index__) or a tuple of them; a list is a
    TypeError, as for NumPy's reductions and SciPy."""
    fn = getattr(fastsoftmax, op)
    x = np.arange(6.0).reshape(2, 3)
    ref = fn(x, axis=(0, 1))
    assert np.array_equal(fn(x, axis=(np.intp(0), 1)), ref)
    assert np.array_equal(fn(x, axis=None), ref)
    assert np.array_equal(fn(x, axis=np.int64(1)), fn(x, axis=1))
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints"):
        fn(x, axis=[0, 1])
    with pytest.raises(TypeError):
        np.sum(x, axis=[0, 1])  # NumPy's reductions refuse it too
