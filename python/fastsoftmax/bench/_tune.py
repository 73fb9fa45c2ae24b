"""fastsoftmax-bench --tune: this machine's crossover between three-pass reload and two-pass,
and whether its kernels run faster without software prefetch.

Both kernels run, one thread, on single rows from 32 KiB to 128 MiB of input (half-octave
steps), in interleaved rounds; per dtype the limit is the one whose picks lose least in
total against the faster kernel at every measured size (robust to one noisy size near the
crossover). The result is stored in the machine profile (fastsoftmax._profile) that
``algorithm="auto"`` reads at import.
"""

from __future__ import annotations

import datetime
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core, _profile

#: The pair ``auto`` chooses between, from the core: three-pass reload in cache, two-pass beyond.
RELOAD, TWO_PASS = _core.auto_algorithms()
ALGS: Tuple[str, str] = (RELOAD, TWO_PASS)


def ladder(lo_bytes: int = 1 << 15, hi_bytes: int = 1 << 27) -> List[int]:
    """Input sizes in bytes: 2^k and 1.5 * 2^k from lo to hi.

    >>> ladder(1 << 15, 1 << 17)
    [32768, 49152, 65536, 98304, 131072]
    """
    out, b = [], lo_bytes
    while b <= hi_bytes:
        out.append(b)
        if b + b // 2 <= hi_bytes:
            out.append(b + b // 2)
        b *= 2
    return out


def choose_limit(points: Sequence[Tuple[int, float, float]]) -> Tuple[int, float]:
    """The reload limit (bytes) whose picks lose least against the faster kernel, summed
    over the measured sizes, and the worst ratio (picked / faster) it leaves.

    points: (bytes, reload time, two-pass time), bytes ascending. Candidates: 0 (two-pass
    everywhere) and each measured size (reload up to it). Ties go to the smaller limit.

    >>> choose_limit([(1, 1.0, 2.0), (2, 1.0, 1.5), (4, 2.0, 1.0), (8, 3.0, 1.0)])
    (2, 1.0)
    >>> choose_limit([(1, 1.0, 2.0), (2, 1.01, 1.0), (4, 0.99, 1.0), (8, 3.0, 1.0)])[0]
    4
    """
    best: Optional[Tuple[float, int, float]] = None
    for limit in [0] + [b for b, _, _ in points]:
        loss, worst = 0.0, 1.0
        for b, t_reload, t_two in points:
            picked = t_reload if b <= limit else t_two
            ratio = picked / min(t_reload, t_two)
            loss += ratio - 1.0
            worst = max(worst, ratio)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, limit, worst)
    assert best is not None
    return best[1], best[2]


def _array_dtype(name: str):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _time_per_call(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def measure_dtype(dtype: str, sizes: Sequence[int], rounds: int, min_sample_s: float,
                  rng: np.random.Generator) -> List[Tuple[int, float, float]]:
    """(bytes, reload ns/element, two-pass ns/element) per size: medians over rounds, the two
    kernels alternating within each round."""
    dt = _array_dtype(dtype)
    out = []
    for nbytes in sizes:
        n = max(1, nbytes // dt.itemsize)
        x = rng.standard_normal(n, dtype=np.float32).astype(dt)
        y = np.empty_like(x)
        calls = {a: (lambda a=a: _core.run("softmax", a, x, y, None, 1)) for a in ALGS}
        reps = {}
        for a in ALGS:  # warm up, then size the samples
            calls[a]()
            t = _time_per_call(calls[a], 1)
            reps[a] = max(1, min(100000, int(min_sample_s / max(t, 1e-9))))
        samples: Dict[str, List[float]] = {a: [] for a in ALGS}
        for r in range(rounds):
            for a in (ALGS if r % 2 == 0 else ALGS[::-1]):
                samples[a].append(_time_per_call(calls[a], reps[a]))
        med = {a: statistics.median(samples[a]) * 1e9 / n for a in ALGS}
        out.append((n * dt.itemsize, med[RELOAD], med[TWO_PASS]))
    return out


#: The setting that turns software prefetch off (any row is shorter).
PREFETCH_OFF = 1 << 62


def prefetch_workloads() -> List[Tuple[str, Tuple[int, int]]]:
    """What the prefetch choice is measured on (float32, one thread): a batch of rows that
    fit in L2 but not together in the LLC (three-pass reload), and one long row (two-pass)."""
    return [(RELOAD, (64, 1 << 17)), (TWO_PASS, (1, 1 << 25))]


def choose_prefetch(builtin: Sequence[float], off: Sequence[float], margin: float = 0.03) -> Optional[int]:
    """PREFETCH_OFF when no prefetch is faster on every workload and by at least `margin` on
    their total, else None (the built-in rule). builtin, off: times per workload.

    >>> choose_prefetch([1.0, 1.0], [0.9, 0.99]) == PREFETCH_OFF
    True
    >>> choose_prefetch([1.0, 1.0], [0.8, 1.01]) is None
    True
    >>> choose_prefetch([1.0, 1.0], [0.99, 0.99]) is None
    True
    """
    if all(o < b for b, o in zip(builtin, off)) and sum(off) <= (1.0 - margin) * sum(builtin):
        return PREFETCH_OFF
    return None


def measure_prefetch(rounds: int, min_sample_s: float, rng: np.random.Generator) -> List[List[float]]:
    """[elements, built-in ns/element, off ns/element] per workload: medians over rounds, the
    two settings alternating within each round (the setting is restored afterwards)."""
    before = _core.prefetch_min_elements()
    out = []
    try:
        for alg, shape in prefetch_workloads():
            x = rng.standard_normal(shape, dtype=np.float32)
            y = np.empty_like(x)
            settings = {"builtin": None, "off": PREFETCH_OFF}

            def call(alg=alg, x=x, y=y):
                _core.run("softmax", alg, x, y, None, 1)

            call()
            reps = max(1, min(100000, int(min_sample_s / max(_time_per_call(call, 1), 1e-9))))
            samples: Dict[str, List[float]] = {k: [] for k in settings}
            for r in range(rounds):
                for k in (list(settings) if r % 2 == 0 else list(settings)[::-1]):
                    _core.set_prefetch_min_elements(settings[k])
                    samples[k].append(_time_per_call(call, reps))
            n = x.size
            out.append([n, statistics.median(samples["builtin"]) * 1e9 / n,
                        statistics.median(samples["off"]) * 1e9 / n])
    finally:
        _core.set_prefetch_min_elements(before)
    return out


def available_dtypes() -> List[str]:
    names = ["float32", "float64", "float16"]
    try:
        import ml_dtypes  # noqa: F401

        names.append("bfloat16")
    except ImportError:
        pass
    return names


def tune(dtypes: Optional[Sequence[str]] = None, rounds: int = 5, min_sample_s: float = 0.004,
         sizes: Optional[Sequence[int]] = None, seed: int = 0, log=print) -> Dict[str, Any]:
    """Measure and return the profile entry for this machine (not stored)."""
    from .. import __version__

    dtypes = list(dtypes or available_dtypes())
    sizes = list(sizes or ladder())
    rng = np.random.default_rng(seed)
    limits: Dict[str, int] = {}
    measurements: Dict[str, List[List[float]]] = {}
    builtin = {d: _core.auto_reload_limit(d)["builtin_bytes"] for d in dtypes}
    log(f"tuning auto on {_profile.machine_key()}: one thread, {len(sizes)} sizes "
        f"{sizes[0] >> 10} KiB..{sizes[-1] >> 20} MiB, {rounds} interleaved rounds")
    for dtype in dtypes:
        pts = measure_dtype(dtype, sizes, rounds, min_sample_s, rng)
        limit, worst = choose_limit(pts)
        _, worst_builtin = _regret_of(pts, builtin[dtype])
        limits[dtype] = limit
        measurements[dtype] = [[b, round(r, 4), round(t, 4)] for b, r, t in pts]
        log(f"\n{dtype}: input KiB, reload ns/el, two-pass ns/el, reload/two-pass")
        for b, r, t in pts:
            mark = "reload" if b <= limit else "two-pass"
            log(f"  {b >> 10:>9d} {r:8.3f} {t:8.3f} {r / t:6.2f}  {mark}")
        log(f"  limit {limit >> 10} KiB (built-in {_profile.limit_text(builtin[dtype])}): auto's worst ratio to the faster "
            f"kernel {worst:.3f} (built-in {worst_builtin:.3f})")
    pf = measure_prefetch(rounds, max(min_sample_s, 0.02), rng)
    prefetch = choose_prefetch([b for _, b, _ in pf], [o for _, _, o in pf])
    log("\nsoftmax float32, software prefetch: elements, built-in ns/el, off ns/el")
    for n, b, o in pf:
        log(f"  {n:>10d} {b:8.3f} {o:8.3f}")
    log("  prefetch " + ("off (faster on every workload)" if prefetch else "as built in (rows of 2^16 elements or more)"))
    entry_prefetch = {} if prefetch is None else {"prefetch_min_elements": prefetch}
    return {
        **entry_prefetch,
        "prefetch_measurements": {"columns": ["elements", "built-in ns/element", "off ns/element"], "rows": pf},
        "tuned": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fastsoftmax": __version__,
        "cpu": _core.cpu_brand(),
        "tier": _core.active_isa(),
        "cache_sizes": {k: v for k, v in _core.cache_sizes().items() if k != "source"},
        "reload_limit_bytes": limits,
        "builtin_limit_bytes": builtin,
        "measurements": {"columns": ["input bytes", "reload ns/element", "two-pass ns/element"], **measurements},
    }


def _regret_of(points: Sequence[Tuple[int, float, float]], limit: int) -> Tuple[float, float]:
    loss, worst = 0.0, 1.0
    for b, r, t in points:
        ratio = (r if b <= limit else t) / min(r, t)
        loss += ratio - 1.0
        worst = max(worst, ratio)
    return loss, worst


def main(path: Optional[str], dry_run: bool, quick: bool) -> int:
    """--tune: measure, print, store (unless dry_run). Returns the exit status."""
    if path is None and not dry_run:
        path = _profile.profile_path()
        if path is None:
            print("fastsoftmax-bench --tune: FASTSOFTMAX_PROFILE=off; pass --profile PATH or --dry-run")
            return 2
    t0 = time.perf_counter()
    entry = tune(rounds=3 if quick else 5)
    print(f"\nmeasured in {time.perf_counter() - t0:.0f} s")
    if dry_run:
        print("--dry-run: nothing written")
        return 0
    assert path is not None
    key = _profile.save_entry(path, entry)
    print(f"wrote the entry for {key} to {path}; algorithm='auto' uses it from the next import")
    return 0
