"""fastsoftmax.sample against an exact float64 reference of the filtered distribution
(docs/sampling.md): each filter alone and combined, temperatures, ties, -inf, per-row
parameters; the draw rule checked row by row from the Philox uniforms, and frequencies of
many draws checked against binomial bounds (fixed seeds: deterministic; each bound fails
with probability <= 1e-6 for a correct sampler); reproducibility across thread counts and
batch splits; bad parameters are clear errors that leave `out` untouched."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import fastsoftmax as fs
from fastsoftmax import _core


# --- the reference ----------------------------------------------------------------------

def reference(x, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """The filtered, renormalized distribution of one row in float64 (docs/sampling.md), and
    whether its decisions are robust to float32 rounding (no threshold within 1e-5)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if temperature == 0:
        q = np.zeros(n)
        q[int(np.argmax(x))] = 1.0
        return q, True
    mx = x.max()
    y = (x - mx) / temperature
    w = np.exp(y)
    # logit descending, +0.0 above -0.0, index ascending
    order = np.lexsort((np.arange(n), np.signbit(x) & (x == 0), -x))
    length = n
    robust = True
    if top_k is not None:
        length = min(length, top_k)
    if top_p is not None and top_p < 1:
        ww = w[order[:length]]
        cum = np.cumsum(ww) / ww.sum()
        lp = int(np.searchsorted(cum, top_p, side="left")) + 1  # first prefix whose mass >= p
        lp = min(lp, length)
        before = cum[lp - 2] if lp >= 2 else 0.0
        if abs(cum[lp - 1] - top_p) < 1e-5 or abs(before - top_p) < 1e-5:
            robust = False
        length = lp
    keep = np.zeros(n, dtype=bool)
    keep[order[:length]] = True
    if min_p is not None and min_p > 0:
        ratio = w / w.max()
        if np.any(np.abs(ratio - min_p) < 1e-5 * max(min_p, 1e-30)):
            robust = False
        keep &= ratio >= min_p
    keep &= w > 0
    q = np.where(keep, w, 0.0)
    return q / q.sum(), robust


def expected_token(q, u):
    """The walk: the first index whose cumulative probability (index order) exceeds u; None
    when u lies within 1e-6 of a boundary (float32 weights may put it either side)."""
    cum = np.cumsum(q)
    t = int(np.searchsorted(cum, u, side="right"))
    t = min(t, int(np.flatnonzero(q)[-1]))
    near = np.abs(cum[q > 0] - u) < 1e-6
    return None if near.any() else t


def uniforms(seed, rows, offset=0):
    return np.array([_core.philox_uniform(seed, offset + r) for r in range(rows)])


def binomial_ok(counts, q, draws, alpha=1e-6):
    """Every count inside its two-sided binomial interval (Bonferroni over the tokens)."""
    m = max(1, int(np.count_nonzero(q)))
    a = alpha / (2 * m)
    lo = stats.binom.ppf(a, draws, q)
    hi = stats.binom.isf(a, draws, q)
    bad = np.flatnonzero((counts < lo) | (counts > hi))
    return bad


def draw_many(row, draws, seed, **kw):
    x = np.ascontiguousarray(np.broadcast_to(row, (draws, row.size)))
    return fs.sample(x, seed=seed, **kw)


CASES = [
    dict(),
    dict(temperature=0.5),
    dict(temperature=2.0),
    dict(top_k=1),
    dict(top_k=5),
    dict(top_p=0.5),
    dict(top_p=0.9),
    dict(min_p=0.05),
    dict(min_p=0.3),
    dict(top_k=8, top_p=0.8),
    dict(top_k=10, top_p=0.7, min_p=0.1, temperature=0.7),
    dict(top_p=0.95, min_p=0.02, temperature=1.5),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_draw_rule_row_by_row(case, dtype):
    # Many rows, each its own logits; the drawn token is the one the documented walk picks
    # with the row's Philox uniform in the float64 reference distribution.
    rng = np.random.default_rng(123)
    rows, n = 300, 40
    x = (rng.standard_normal((rows, n)) * 2).astype(dtype)
    tok, lp = fs.sample(x, seed=2024, return_logprobs=True, **case)
    u = uniforms(2024, rows)
    checked = 0
    for r in range(rows):
        q, robust = reference(x[r], **case)
        if not robust:
            continue
        assert q[tok[r]] > 0, (r, tok[r])
        np.testing.assert_allclose(lp[r], np.log(q[tok[r]]), rtol=0, atol=2e-6)
        e = expected_token(q, u[r])
        if e is not None:
            assert tok[r] == e, (r, tok[r], e)
            checked += 1
    assert checked > rows * 0.9


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_frequencies_within_binomial_bounds(case):
    rng = np.random.default_rng(7)
    row = (rng.standard_normal(24) * 1.5).astype(np.float32)
    q, robust = reference(row, **case)
    assert robust
    draws = 20000
    tok = draw_many(row, draws, seed=99, **case)
    counts = np.bincount(tok, minlength=row.size)
    assert np.all(counts[q == 0] == 0)
    assert binomial_ok(counts, q, draws).size == 0


def test_large_vocabulary_matches_reference():
    # Rows long enough for every radix level to matter (and many ties within a bucket).
    rng = np.random.default_rng(5)
    rows, n = 12, 128256
    x = (rng.standard_normal((rows, n)) * 3).astype(np.float32)
    x[:, ::7] = np.round(x[:, ::7], 1)  # plenty of exact ties
    u = uniforms(11, rows)
    # top_k=5000 exceeds the 2004 blocks of 64 (the whole row is ranked); temperature 3 puts
    # the top-p crossing deep in the low weights.
    for case in [dict(top_p=0.9), dict(top_k=50), dict(top_k=1000, top_p=0.5), dict(min_p=0.01),
                 dict(top_k=50, temperature=0.6), dict(), dict(top_k=5000), dict(top_p=0.99, temperature=3.0),
                 dict(top_k=5000, top_p=0.7, min_p=0.001)]:
        tok, lp = fs.sample(x, seed=11, return_logprobs=True, **case)
        for r in range(rows):
            q, robust = reference(x[r], **case)
            if not robust:
                continue
            assert q[tok[r]] > 0
            np.testing.assert_allclose(lp[r], np.log(q[tok[r]]), atol=1e-5)
            e = expected_token(q, u[r])
            if e is not None:
                assert tok[r] == e, (case, r)


def test_flat_and_two_level_rows():
    # One value everywhere (every token in one weight bucket, all tied keys), and two values.
    n = 128256
    flat = np.zeros((1, n), np.float32)
    # ties keep the lowest indices: the first ceil(p * kept) tokens (+1 for rounding of the sum)
    for kw, bound in ((dict(top_p=0.5), n // 2 + 1), (dict(top_k=7), 7), (dict(top_p=0.5, top_k=100), 51)):
        tok = fs.sample(np.repeat(flat, 400, axis=0), seed=3, **kw)
        assert tok.min() >= 0 and tok.max() < bound, kw
        assert tok.max() >= (bound - 2) * 0.9, kw  # drawn from the whole kept range
    two = np.zeros((1, n), np.float32)
    two[0, 1::2] = 1.0
    tok = fs.sample(np.repeat(two, 200, axis=0), seed=5, top_p=0.4)
    kept = int(np.ceil(0.4 * (n // 2) * (1 + np.exp(-1.0))))  # odd tokens needed to reach 0.4
    assert np.all(tok % 2 == 1) and tok.max() <= 2 * (kept + 1) + 1 and tok.max() > 1.8 * kept


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_peaked_rows_match_the_reference(dtype):
    # Rows where a few tokens hold most of the mass (as language models' rows mostly are):
    # top-p's crossing lies among the blocks whose maximum is heavy, which are ranked alone.
    # The tokens against the float64 reference, ties among the dominant tokens included, and
    # the same for any thread count.
    rng = np.random.default_rng(17)
    checked = total = 0
    for n in (300, 5000, 128256):
        rows = 24 if n < 100000 else 6
        x = (rng.standard_normal((rows, n)) * 2).astype(np.float32)
        for r in range(rows):
            heavy = rng.integers(0, n, 1 + r % 6)
            x[r, heavy] += rng.uniform(4, 12, heavy.size).astype(np.float32)
            if r % 3 == 0:  # the heaviest value tied at two places
                x[r, rng.integers(0, n, 1)] = x[r].max()
        if dtype == "bfloat16":
            x = x.astype(pytest.importorskip("ml_dtypes").bfloat16)
        else:
            x = x.astype(dtype)
        u = uniforms(23, rows)
        for kw in (dict(top_p=0.5), dict(top_p=0.9), dict(top_p=0.97), dict(top_p=0.8, min_p=0.01),
                   dict(top_p=0.9, temperature=0.7)):
            tok, lp = fs.sample(x, seed=23, return_logprobs=True, threads=1, **kw)
            tok2, lp2 = fs.sample(x, seed=23, return_logprobs=True, threads=2, **kw)
            np.testing.assert_array_equal(tok2, tok)
            np.testing.assert_array_equal(lp2, lp)
            total += rows
            for r in range(rows):
                q, robust = reference(x[r].astype(np.float64), **kw)
                if not robust:
                    continue
                assert q[tok[r]] > 0, (n, kw, r)
                np.testing.assert_allclose(lp[r], np.log(q[tok[r]]), rtol=0, atol=1e-5)
                e = expected_token(q, u[r])
                if e is not None:
                    assert tok[r] == e, (n, kw, r, tok[r], e)
                    checked += 1
    assert checked >= total // 2, (checked, total)  # draws near a boundary are not checked


def test_greedy_is_argmax_lowest_index():
    x = np.array([[1.0, 3.0, 3.0, 2.0], [-np.inf, 5.0, -np.inf, 5.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    assert fs.sample(x, temperature=0).tolist() == [1, 1, 0]
    tok, lp = fs.sample(x, temperature=0, top_p=0.1, return_logprobs=True)
    assert tok.tolist() == [1, 1, 0] and lp.tolist() == [0.0, 0.0, 0.0]
    # greedy per row, sampling elsewhere
    t = fs.sample(x, temperature=[0.0, 1.0, 0.0], seed=3)
    assert t[0] == 1 and t[2] == 0 and t[1] in (1, 3)


def test_ties_at_the_threshold_keep_the_lowest_indices():
    row = np.array([0.0, 2.0, 1.0, 2.0, 2.0, 2.0, -1.0], np.float32)
    draws = 4000
    # top-k = 2 among four tied maxima: indices 1 and 3
    tok = draw_many(row, draws, seed=1, top_k=2)
    assert set(tok.tolist()) == {1, 3}
    # top-k = 5: the four maxima and index 2
    assert set(draw_many(row, draws, seed=1, top_k=5).tolist()) == {1, 2, 3, 4, 5}
    # top-p = 0.3 of four equal maxima (mass ~0.24 each): two tokens reach it
    q, _ = reference(row, top_p=0.3)
    assert set(np.flatnonzero(q)) == {1, 3}
    assert set(draw_many(row, draws, seed=1, top_p=0.3).tolist()) == {1, 3}
    # min-p keeps every token equal to the threshold value
    assert set(draw_many(row, draws, seed=1, min_p=1.0).tolist()) == {1, 3, 4, 5}
    # +0.0 ranks above -0.0 (then index): top_k=2 of [-0, +0, 1, -0] keeps 2 and 1
    signed = np.array([-0.0, 0.0, 1.0, -0.0], np.float32)
    assert set(draw_many(signed, 3000, seed=2, top_k=2).tolist()) == {1, 2}
    assert set(draw_many(signed.astype(np.float64), 3000, seed=2, top_k=2).tolist()) == {1, 2}
    # all equal: top_k=3 keeps 0, 1, 2 uniformly
    flat = np.zeros(10, np.float32)
    tok = draw_many(flat, 30000, seed=8, top_k=3)
    counts = np.bincount(tok, minlength=10)
    assert binomial_ok(counts, np.array([1 / 3] * 3 + [0] * 7), 30000).size == 0


def test_top_p_keeps_the_token_that_crosses_p():
    row = np.log(np.array([0.5, 0.3, 0.2]))
    # 0.5 < 0.6: the crossing token (0.3) is kept; p = 0.5 is reached by the first alone
    assert set(draw_many(row, 3000, seed=4, top_p=0.6).tolist()) == {0, 1}
    assert set(draw_many(row, 3000, seed=4, top_p=0.4).tolist()) == {0}


def test_neg_inf_never_drawn():
    row = np.array([-np.inf, 0.0, -np.inf, 0.5, -np.inf, -np.inf], np.float32)
    for kw in [dict(), dict(top_k=4), dict(top_k=6), dict(top_p=0.999999), dict(min_p=0.0), dict(temperature=3.0)]:
        tok = draw_many(row, 3000, seed=5, **kw)
        assert set(tok.tolist()) <= {1, 3}, kw
        assert set(tok.tolist()) == {1, 3}, kw
    one = np.full(1000, -np.inf, np.float32)
    one[777] = -1e30
    assert set(draw_many(one, 200, seed=1, top_k=10).tolist()) == {777}


def test_disabled_filters_equal_no_filter():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 30)).astype(np.float32)
    base = fs.sample(x, seed=77)
    for kw in [dict(top_k=30), dict(top_k=10**9), dict(top_p=1.0), dict(min_p=0.0),
               dict(top_k=None, top_p=None, min_p=None)]:
        np.testing.assert_array_equal(fs.sample(x, seed=77, **kw), base)


def test_per_row_parameters_equal_separate_calls():
    rng = np.random.default_rng(9)
    rows, n = 6, 500
    x = rng.standard_normal((rows, n)).astype(np.float32)
    t = np.array([1.0, 0.5, 0.0, 2.0, 1.0, 0.9])
    k = np.array([n, 5, 3, 50, 1, 200])
    p = np.array([1.0, 0.9, 0.5, 0.3, 1.0, 0.7])
    mp = np.array([0.0, 0.1, 0.0, 0.0, 0.5, 0.02])
    seeds = np.array([1, 2, 3, 4, 5, 2**64 - 1], dtype=np.uint64)
    tok, lp = fs.sample(x, temperature=t, top_k=k, top_p=p, min_p=mp, seed=seeds, return_logprobs=True)
    for r in range(rows):
        one, l1 = fs.sample(x[r:r + 1], temperature=t[r], top_k=int(k[r]), top_p=p[r], min_p=mp[r],
                            seed=int(seeds[r]), row_offset=r, return_logprobs=True)
        assert tok[r] == one[0] and lp[r] == l1[0]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_scalar_parameters_equal_the_same_values_per_row(dtype, monkeypatch):
    # Scalar parameters with an int seed go to the core as scalars (sample_rows_scalar), other
    # calls as per-row arrays (sample_rows): the same tokens and log-probabilities, bitwise.
    if dtype == "bfloat16":
        dt = pytest.importorskip("ml_dtypes").bfloat16
    else:
        dt = np.dtype(dtype)
    calls = {"sample_rows_scalar": 0, "sample_rows": 0}
    for name in calls:
        def counted(*args, _fn=getattr(_core, name), _name=name):
            calls[_name] += 1
            return _fn(*args)
        monkeypatch.setattr(_core, name, counted)
    rng = np.random.default_rng(44)
    settings = [dict(), dict(temperature=0.0), dict(temperature=0.7), dict(top_k=1), dict(top_k=40),
                dict(top_p=0.9), dict(top_p=0.3), dict(min_p=0.05), dict(top_k=50, top_p=0.8),
                dict(top_p=0.95, min_p=0.02, temperature=1.3), dict(top_k=20, top_p=0.7, min_p=0.1, temperature=0.6),
                dict(temperature=np.float32(0.8), top_k=np.int32(30), top_p=np.float16(0.75), min_p=np.float64(0.01))]
    seeds = [0, 7, 123456789, 2**64 - 1]
    compared = 0
    for shape in [(1000,), (1, 1000), (8, 1000), (2, 3, 257), (1, 40_000)]:
        x = (rng.standard_normal(shape) * 2.5).astype(np.float32)
        x[..., ::7] += 6.0  # a few tokens well above the rest, as in LLM rows
        x = x.astype(dt)
        batch = shape[:-1]
        for kw in settings:
            for seed in seeds:
                before = calls["sample_rows_scalar"]
                t1, l1 = fs.sample(x, seed=seed, return_logprobs=True, **kw)
                assert calls["sample_rows_scalar"] == before + 1
                per_row = {name: np.full(batch, v) for name, v in kw.items()}
                before = calls["sample_rows"]
                t2, l2 = fs.sample(x, seed=np.full(batch, seed, np.uint64), return_logprobs=True, **per_row)
                assert calls["sample_rows"] == before + 1
                assert np.shape(t1) == np.shape(t2) == batch and np.shape(l1) == batch
                np.testing.assert_array_equal(t1, t2)
                assert np.asarray(l1).tobytes() == np.asarray(l2).tobytes()
                # scalars mixed with one per-row array: the scalars broadcast, the same draws
                t3 = fs.sample(x, seed=seed, top_p=np.full(batch, kw.get("top_p", 1.0)),
                               **{k: v for k, v in kw.items() if k != "top_p"})
                np.testing.assert_array_equal(t3, t1)
                compared += 1
    assert compared == 5 * len(settings) * len(seeds)


def test_reproducible_across_threads_and_batch_splits():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((40, 3000)).astype(np.float32)
    kw = dict(top_p=0.9, top_k=400, min_p=0.001, temperature=0.8, seed=123456789)
    ref = fs.sample(x, threads=1, **kw)
    for th in (2, 3, 8):
        np.testing.assert_array_equal(fs.sample(x, threads=th, **kw), ref)
    parts = [fs.sample(x[a:b], row_offset=a, **kw) for a, b in [(0, 7), (7, 8), (8, 40)]]
    np.testing.assert_array_equal(np.concatenate(parts), ref)
    # same seed, same tokens; another seed, other tokens
    np.testing.assert_array_equal(fs.sample(x, **kw), ref)
    assert (fs.sample(x, **{**kw, "seed": 1}) != ref).any()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_one_long_row_over_threads(dtype):
    # A row longer than one chunk (32768 elements) runs its passes over the threads: the same
    # tokens and log-probabilities for any thread count, and as the same row in a batch (where
    # each row runs on one thread).
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((1, 100_003)) * 2.5).astype(np.float32)
    x[0, rng.integers(0, x.shape[1], 20)] += 8
    if dtype == "bfloat16":
        x = x.astype(pytest.importorskip("ml_dtypes").bfloat16)
    else:
        x = x.astype(dtype)
    batch = np.concatenate([x, x])
    settings = [dict(top_p=0.9), dict(min_p=0.05), dict(), dict(top_p=0.95, min_p=0.01, temperature=0.7),
                dict(top_k=50, top_p=0.8)]
    for kw in settings:
        for seed in range(12):
            ref_t, ref_l = fs.sample(x, seed=seed, threads=1, return_logprobs=True, **kw)
            for th in (2, 3):
                t, lp = fs.sample(x, seed=seed, threads=th, return_logprobs=True, **kw)
                assert t[0] == ref_t[0] and lp[0] == ref_l[0], (kw, seed, th)
            tb, lb = fs.sample(batch, seed=seed, threads=2, return_logprobs=True, **kw)
            assert tb[0] == ref_t[0] and lb[0] == ref_l[0], (kw, seed)


def test_seed_generator_and_none():
    x = np.random.default_rng(0).standard_normal((200, 50)).astype(np.float32)
    a = fs.sample(x, seed=np.random.default_rng(42))
    b = fs.sample(x, seed=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    s = int(np.random.default_rng(42).integers(0, 2**64, dtype=np.uint64))
    np.testing.assert_array_equal(fs.sample(x, seed=s), a)
    assert fs.sample(x).shape == (200,)


def test_axis_shapes_dtypes_and_out():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 17, 4)).astype(np.float32)
    a = fs.sample(x, axis=1, seed=5)
    assert a.shape == (3, 4) and a.dtype == np.int64
    b = fs.sample(np.moveaxis(x, 1, -1), seed=5)
    np.testing.assert_array_equal(a, b)
    out = np.full((3, 4), -1, np.int64)
    assert fs.sample(x, axis=1, seed=5, out=out) is out
    np.testing.assert_array_equal(out, a)
    one = fs.sample(x[0, :, 0], seed=5)
    assert np.ndim(one) == 0 and 0 <= one < 17
    # float16 / bfloat16 are exact in float32: the same tokens
    h = x.astype(np.float16)
    np.testing.assert_array_equal(fs.sample(h, axis=1, seed=5), fs.sample(h.astype(np.float32), axis=1, seed=5))
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = x.astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(fs.sample(bf, axis=1, seed=5), fs.sample(bf.astype(np.float32), axis=1, seed=5))
    assert fs.sample(np.zeros((0, 5), np.float32), seed=1).shape == (0,)


def test_philox_known_answers_and_uniform():
    assert _core.philox4x32(0, 0, 0, 0, 0, 0) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    m = 0xFFFFFFFF
    assert _core.philox4x32(m, m, m, m, m, m) == (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert _core.philox4x32(0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)
    seed, ctr = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    o = _core.philox4x32(ctr & m, ctr >> 32, 0, 0, seed & m, seed >> 32)
    assert _core.philox_uniform(seed, ctr) == ((o[0] >> 5) * 2**26 + (o[1] >> 6)) / 2**53


BAD = [
    (dict(top_k=0), "top_k"), (dict(top_k=-3), "top_k"), (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"), (dict(top_p=np.nan), "top_p"),
    (dict(min_p=-0.01), "min_p"), (dict(min_p=1.01), "min_p"), (dict(min_p=np.nan), "min_p"),
    (dict(temperature=-1.0), "temperature"), (dict(temperature=np.nan), "temperature"),
    (dict(temperature=np.inf), "temperature"),
    (dict(top_k=[5, 0, 5]), r"top_k.*row \(1,\)"), (dict(top_p=[0.5, 0.5, 2.0]), r"top_p.*row \(2,\)"),
    (dict(top_k=[1, 2]), "top_k.*shape"), (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"),
    (dict(row_offset=2**64 - 2), "row_offset"), (dict(row_offset=-1), "row_offset"),
]


@pytest.mark.parametrize("kw,match", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_parameters_are_errors_and_out_is_untouched(kw, match):
    x = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32)
    out = np.full(3, -7, np.int64)
    with pytest.raises(ValueError, match=match):
        fs.sample(x, out=out, **kw)
    assert (out == -7).all()


def test_row_offset_up_to_the_last_counter():
    # Row r draws with counter row_offset + r: the last row may take counter 2**64 - 1, and
    # its draw is the one that row takes alone at that offset (no counter wraps to 0).
    x = np.random.default_rng(2).standard_normal((3, 40)).astype(np.float32)
    top = 2**64 - 3
    tok, lp = fs.sample(x, seed=9, row_offset=top, return_logprobs=True)
    for r in range(3):
        t1, l1 = fs.sample(x[r:r + 1], seed=9, row_offset=top + r, return_logprobs=True)
        assert t1[0] == tok[r] and l1[0] == lp[r]
    u = uniforms(9, 1, offset=2**64 - 1)
    q, _ = reference(x[2])
    e = expected_token(q, u[0])
    assert e is None or tok[2] == e


def test_bad_logits_name_the_row_and_leave_out_untouched():
    x = np.zeros((2, 3, 5), np.float32)
    out = np.full((2, 3), -7, np.int64)
    y = x.copy(); y[1, 2, 4] = np.nan; y[1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"row \(1, 1\) contains NaN"):
        fs.sample(y, out=out, seed=1)
    y = x.copy(); y[0, 2, :] = -np.inf
    with pytest.raises(ValueError, match=r"row \(0, 2\) is all -inf"):
        fs.sample(y, out=out, seed=1, temperature=0)
    y = x.copy(); y[1, 0, 3] = np.inf
    with pytest.raises(ValueError, match=r"row \(1, 0\) contains \+inf"):
        fs.sample(y, out=out, seed=1)
    assert (out == -7).all()
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        fs.sample(np.array([[0.0, 1.0], [np.nan, 0.0]]), seed=1)
    with pytest.raises(TypeError):
        fs.sample(np.arange(5), seed=1)
    with pytest.raises(TypeError):
        fs.sample(x, out=np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError):
        fs.sample(np.zeros((2, 0), np.float32))


# --- the vector passes: identical bits on every tier, 16-bit logits read natively --------

_TIER_SCRIPT = r"""
import hashlib, sys
import numpy as np
import fastsoftmax as fs
import ml_dtypes
rng = np.random.default_rng(31)
out = []
for n in (7, 127, 128, 129, 1000, 4099, 128256):
    rows = 5 if n > 5000 else 24
    x = (rng.standard_normal((rows, n)) * 3).astype(np.float32)
    x[:, ::5] = np.round(x[:, ::5], 1)          # ties
    x[0, ::3] = -np.inf                            # -inf logits
    x[1, : n // 2] = x[1, 0]                       # a long run of one value
    x[2, rng.integers(0, n, 3)] += 12              # a few dominant tokens (peaked rows) ...
    x[3, [0, n - 1]] = x[3].max() + 9              # ... two of them tied
    for dt in (np.float32, np.float16, ml_dtypes.bfloat16):
        xd = x.astype(dt)
        for kw in (dict(), dict(top_p=0.9), dict(top_p=0.3, min_p=0.02), dict(top_k=50),
                   dict(top_k=3, top_p=0.8, min_p=0.1, temperature=0.7), dict(min_p=0.05, temperature=1.7),
                   dict(top_k=n // 2 + 1), dict(temperature=0.0)):
            tok, lp = fs.sample(xd, seed=4321, return_logprobs=True, **kw)
            out.append(tok.tobytes() + lp.tobytes())
print(fs.runtime_info()["active_isa"], hashlib.sha256(b"".join(out)).hexdigest())
"""


def test_tokens_and_logprobs_are_bitwise_identical_on_every_tier():
    # The vector passes are compiled per tier; each tier runs in its own process
    # (FASTSOFTMAX_ISA is read once), over float32/float16/bfloat16 rows of lengths around
    # the block sizes, ties, -inf and runs of equal values, every filter combination.
    import os
    import subprocess
    import sys

    pytest.importorskip("ml_dtypes")
    tiers = fs.runtime_info()["runnable_isas"]
    results = {}
    for tier in tiers:
        env = dict(os.environ, FASTSOFTMAX_ISA=tier)
        proc = subprocess.run([sys.executable, "-c", _TIER_SCRIPT], capture_output=True, text=True, timeout=300,
                              env=env)
        assert proc.returncode == 0, proc.stderr
        active, digest = proc.stdout.split()
        assert active == tier
        results[tier] = digest
    assert len(tiers) >= 1
    assert len(set(results.values())) == 1, results


@pytest.mark.parametrize("n", [33, 128256])
def test_16bit_logits_give_the_float32_tokens(n):
    # float16 and bfloat16 rows are widened in registers, never copied: the same tokens and
    # log-probabilities as their exact float32 values, including float16 subnormals and infinities.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(17)
    x = (rng.standard_normal((6, n)) * 4).astype(np.float32)
    x[2, 1::2] = -np.inf
    h = x.astype(np.float16)
    h[3, :5] = np.array([6e-8, -6e-8, 1e-5, 0.0, -0.0], np.float16)  # subnormals, signed zeros
    for dt, xd in ((np.float16, h), (ml_dtypes.bfloat16, x.astype(ml_dtypes.bfloat16))):
        for kw in (dict(), dict(top_p=0.9), dict(top_k=5), dict(min_p=0.1), dict(temperature=0)):
            a = fs.sample(xd, seed=9, return_logprobs=True, **kw)
            b = fs.sample(xd.astype(np.float32), seed=9, return_logprobs=True, **kw)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    # every float16 subnormal (both signs) in one row, every float16 in [-8, 8] in another
    bits = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    sub = bits[(np.abs(bits.astype(np.float32)) < 2.0 ** -14) & np.isfinite(bits)]
    mid = bits[np.isfinite(bits) & (np.abs(bits.astype(np.float32)) <= 8)]
    for row in (sub, mid):
        r = np.ascontiguousarray(np.broadcast_to(row, (3, row.size)))
        for kw in (dict(), dict(top_p=0.9), dict(min_p=0.5), dict(top_k=100, top_p=0.5)):
            a = fs.sample(r, seed=2, return_logprobs=True, **kw)
            b = fs.sample(r.astype(np.float32), seed=2, return_logprobs=True, **kw)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    hb = h.copy()
    hb[4, 7] = np.inf
    with pytest.raises(ValueError, match=r"row 4 contains \+inf"):
        fs.sample(hb, seed=1)
    hb[4, 7] = np.nan
    with pytest.raises(ValueError, match="row 4 contains NaN"):
        fs.sample(hb, seed=1)


def test_float16_subnormals_under_flush_to_zero():
    # Some libraries leave flush-to-zero / denormals-are-zero set on a thread (torch can set
    # it explicitly): the native float16 reads must not depend on it.
    torch = pytest.importorskip("torch")
    bits = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    sub = bits[(np.abs(bits.astype(np.float32)) < 2.0 ** -14) & np.isfinite(bits)]
    r = np.ascontiguousarray(np.broadcast_to(sub, (3, sub.size)))
    want = fs.sample(r.astype(np.float32), seed=2, return_logprobs=True, threads=1, top_p=0.9)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        got = fs.sample(r, seed=2, return_logprobs=True, threads=1, top_p=0.9)
    finally:
        torch.set_flush_denormal(False)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("trial", range(24))
def test_random_configurations_match_the_reference(trial):
    # Row lengths around the block sizes, scales from nearly flat to very peaked, extreme
    # temperatures and p, ties and -inf: every robust row draws the reference's token.
    rng = np.random.default_rng(1000 + trial)
    n = int(rng.choice([1, 2, 3, 17, 64, 129, 1000, 5000]))
    scale = float(rng.choice([0.01, 1.0, 30.0]))
    x = (rng.standard_normal((40, n)) * scale).astype(np.float32)
    if n > 4:
        x[:, ::3] = np.round(x[:, ::3] * 4) / 4  # ties
        x[::5, 1] = -np.inf
    kw = dict(temperature=float(rng.choice([0.05, 1.0, 10.0])))
    if rng.random() < 0.8:
        kw["top_p"] = float(rng.choice([1e-3, 0.3, 0.9, 0.999]))
    if rng.random() < 0.3:
        kw["top_k"] = int(rng.integers(1, n + 2))
    if rng.random() < 0.3:
        kw["min_p"] = float(rng.choice([1e-4, 0.05, 0.5]))
    tok, lp = fs.sample(x, seed=trial, return_logprobs=True, **kw)
    u = uniforms(trial, 40)
    checked = 0
    for r in range(40):
        q, robust = reference(x[r], **kw)
        if not robust:
            continue
        assert q[tok[r]] > 0, (kw, r)
        np.testing.assert_allclose(lp[r], np.log(q[tok[r]]), atol=2e-5)
        e = expected_token(q, u[r])
        if e is not None:
            assert tok[r] == e, (kw, r)
            checked += 1
    assert checked >= 10, (kw, checked)
