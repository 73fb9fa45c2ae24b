"""The fuzz harness (fuzz/fuzz_softmax.py) on a fixed set of inputs, so that the harness keeps
working as the API grows, and every check it makes also runs in the ordinary test suite.

Bugs the fuzzer found are regression tests: here, and beside the rows of docs/bad-input.md
they belong to (test_bad_input_catalogue.py::test_bad_algorithm_or_tier_without_a_kernel_call:
an unknown isa was silently ignored for empty and long double input).
"""

from __future__ import annotations

import collections
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

import fastsoftmax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import fuzz_softmax  # noqa: E402


@pytest.mark.parametrize("block", range(4))
def test_fuzz_harness_on_fixed_inputs(block):
    rng = random.Random(1234 + block)
    for i in range(60):
        data = rng.randbytes(rng.choice((8, 32, 64, 256, 1024)))
        try:
            fuzz_softmax.test_one_input(data)
        except fuzz_softmax.Failure as e:
            pytest.fail(f"input {data.hex()}:\n{e}", pytrace=False)


def test_capi_calls_on_fixed_inputs():
    """The harness's C API calls (inputs whose first byte is below CAPI_SHARE): refused,
    computed and empty calls all come up, and each passes the harness's checks."""
    rng = random.Random(99)
    seen = collections.Counter()
    for _ in range(400):
        data = bytes([rng.randrange(fuzz_softmax.CAPI_SHARE)]) + rng.randbytes(rng.choice((8, 32, 64, 256)))
        try:
            seen[fuzz_softmax.run_capi_case(fuzz_softmax.build_capi_case(data[1:]))] += 1
        except fuzz_softmax.Failure as e:
            pytest.fail(f"input {data.hex()}:\n{e}", pytrace=False)
    assert seen["refused"] >= 60 and seen["computed"] >= 60 and seen["empty"] >= 5, seen


@pytest.mark.parametrize("args, valid", [
    (dict(rows=1, n=2**64 - 1, xs=0, ys=0), False),           # the adversarial probe's crashes
    (dict(rows=2**62, n=4, xs=4, ys=4), False),
    (dict(rows=2, n=4, xs=4, ys=-(2**63)), False),            # -ys overflowed, row 1 over row 0
    (dict(rows=0, n=4, xs=4, ys=4, alg=99), False),           # unknown algorithm, empty call
    (dict(rows=2, n=4, xs=4, ys=4, y_shift=4), False),        # y one element past x
    (dict(rows=3, n=4, xs=8, ys=8, y_shift=16), True),        # interleaved rows
    (dict(rows=3, n=4, xs=8, ys=8, y_shift=0), True),         # in place
    (dict(rows=3, n=4, xs=8, ys=4, y_shift=0), False),        # the same pointer, other strides
    (dict(rows=1, n=4, xs=-(2**63), ys=2**63 - 1), True),     # one row: strides unused
])
def test_capi_oracle_states_the_header(args, valid):
    """The harness's restatement of the header's rules (capi_valid) on the probe's cases and
    the layouts the header allows; float32, x at a plausible address, y y_shift bytes on."""
    c = fuzz_softmax.CapiCase()
    c.absolute = True
    c.x_at = 1 << 40
    c.y_at = c.x_at + args.pop("y_shift", 4096)
    c.alg = args.pop("alg", 0)
    for k, v in args.items():
        setattr(c, k, v)
    assert fuzz_softmax.capi_valid(c) is valid


def test_as_strided_outs_on_fixed_inputs():
    """The harness's as_strided outs: some overlap themselves (must be refused), some do not
    (must be filled, and nothing between their elements written); all pass."""
    rng = random.Random(7)
    seen = collections.Counter()
    for _ in range(5000):
        if min(seen["overlap"], seen["apart"]) >= 15:
            break
        data = bytes([rng.randrange(fuzz_softmax.CAPI_SHARE, 256)]) + rng.randbytes(rng.choice((32, 64, 256)))
        case = fuzz_softmax.build_case(data)
        if case.out_bytes is None or case.kwargs["out"].size < 2:
            continue
        seen["overlap" if fuzz_softmax.elements_overlap(case.kwargs["out"]) else "apart"] += 1
        try:
            fuzz_softmax.run_case(case)
        except fuzz_softmax.Failure as e:
            pytest.fail(f"input {data.hex()}:\n{e}", pytrace=False)
    assert min(seen["overlap"], seen["apart"]) >= 15, seen


def test_decoder_is_total():
    """Every byte string decodes to a case (past the end, each choice takes its first option)."""
    for data in (b"", b"\x00", b"\xff" * 7, bytes(range(256))):
        case = fuzz_softmax.build_case(data)
        assert case.op in ("softmax", "log_softmax")


def test_decoder_bounds_empty_arrays():
    """An input CI's fuzz run decoded to shape (104, 39909, 92, 0): zero elements, so the old
    cap passed it, and the "list" layout's tolist() built 4 million empty lists (out of memory).
    The cap now counts a zero-length axis as 1."""
    data = bytes.fromhex("22d7d7d7d7d7272d90ffcbfcff3bff28f7fef708f626")
    case = fuzz_softmax.build_case(data)
    shape = np.shape(case.x)
    assert 0 in shape
    assert math.prod(max(1, n) for n in shape) <= fuzz_softmax.MAX_ELEMENTS_LARGE
    fuzz_softmax.run_case(case)


# ---- regressions found by fuzzing ----------------------------------------------------------------
# Rows longer than 2^16 elements are split into chunks whose two-pass statistics are merged
# (csrc/softmax.cpp, csrc/kernels/rows.h); a NaN in some chunks got lost in the merge and
# the row came out finite instead of all NaN (SciPy: a NaN anywhere makes the row NaN).

CHUNK = 1 << 16


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
def test_nan_alone_in_the_last_chunk_makes_the_row_nan(algorithm, op, dtype, threads):
    """Found by fuzzing: x = zeros(65537), x[-1] = NaN -- the NaN is the whole last chunk;
    two-pass gave 1/65536 everywhere else."""
    fn = getattr(fastsoftmax, op)
    for n in (CHUNK + 1, 2 * CHUNK + 1, 2 * CHUNK + 7):
        x = np.zeros(n, dtype)
        x[-1] = np.nan
        y = fn(x, algorithm=algorithm, threads=threads)
        assert np.isnan(y).all(), f"n={n}: {int(np.isnan(y).sum())} NaN of {n}; y[:3] = {y[:3]}"
        x2 = np.stack([np.zeros(n, dtype), x])  # and as the second of two rows
        y2 = fn(x2, axis=1, algorithm=algorithm, threads=threads)
        assert np.isnan(y2[1]).all() and not np.isnan(y2[0]).any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("algorithm", fastsoftmax.ALGORITHMS)
def test_nan_in_one_chunk_and_a_large_value_in_another(algorithm, op, threads):
    """Found by fuzzing (float64): x = zeros(2^17), x[0] = NaN, x[65541] = 65504 -- two-pass
    gave [nan, 0, ..., 0, 1, 0, ...]: the NaN chunk's statistics vanished when rescaled to
    the other chunk's much larger exponent."""
    fn = getattr(fastsoftmax, op)
    for big in (65504.0, 3e5, 1e6):
        for nan_at, big_at in ((0, CHUNK + 5), (CHUNK + 5, 0), (3, 2 * CHUNK + 1)):
            x = np.zeros(3 * CHUNK, np.float64)
            x[nan_at] = np.nan
            x[big_at] = big
            y = fn(x, algorithm=algorithm, threads=threads)
            assert np.isnan(y).all(), (f"NaN at {nan_at}, {big} at {big_at}: {int(np.isnan(y).sum())} NaN; "
                                       f"y[{big_at}] = {y[big_at]}")
