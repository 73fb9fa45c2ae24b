#!/usr/bin/env python3
"""The measurements of issue 6 that the harness does not make: small calls, batched short
rows against one long row, softmax along a non-last axis, and the fresh-output cost of a
plain loop. One thread, float32 unless said; ns per element (small calls: µs per call).

    python tools/measure_extras.py [--quick]

Each figure is the best of several rounds of back-to-back calls on the same buffers (in
cache where the arrays fit), so the ratios printed beside them compare like with like.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

import fastsoftmax


def best_ns_per_element(f, n_elements: int, number: int, rounds: int) -> float:
    return min(timeit.repeat(f, number=number, repeat=rounds)) / number / n_elements * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    args = ap.parse_args()
    rounds = 5 if args.quick else 15
    rng = np.random.default_rng(0)
    fastsoftmax.show_runtime()
    print()

    # Small calls: (1, 128) float32 against a trivial ufunc on the same array.
    x = rng.standard_normal((1, 128)).astype(np.float32)
    y = np.empty_like(x)
    number = 20000
    t_neg = min(timeit.repeat(lambda: np.negative(x, out=y), number=number, repeat=rounds)) / number * 1e6
    t_soft = min(timeit.repeat(lambda: fastsoftmax.softmax(x), number=number, repeat=rounds)) / number * 1e6
    t_out = min(timeit.repeat(lambda: fastsoftmax.softmax(x, out=y), number=number, repeat=rounds)) / number * 1e6
    t_axis = min(timeit.repeat(lambda: fastsoftmax.softmax(x, axis=-1), number=number, repeat=rounds)) / number * 1e6
    print(f"small call (1, 128) float32, best of {rounds} x {number} calls, µs per call:")
    print(f"  np.negative(x, out=y)          {t_neg:.3f}")
    print(f"  softmax(x)                     {t_soft:.3f}  ({t_soft / t_neg:.2f}x np.negative; target <= 2x)")
    print(f"  softmax(x, out=y)              {t_out:.3f}  ({t_out / t_neg:.2f}x)")
    print(f"  softmax(x, axis=-1)            {t_axis:.3f}  ({t_axis / t_neg:.2f}x)")
    print()

    # Batched short rows against one long row of the same total size, in cache.
    print("batched rows vs one row of the same size (same buffers, in cache), ns/element:")
    for rows, n in ((4096, 128), (64, 1000)):
        xb = rng.standard_normal((rows, n)).astype(np.float32)
        yb = np.empty_like(xb)
        x1 = xb.reshape(-1)
        y1 = yb.reshape(-1)
        number = 50
        tb = best_ns_per_element(lambda: fastsoftmax.softmax(xb, axis=-1, out=yb), xb.size, number, 9)
        t1 = best_ns_per_element(lambda: fastsoftmax.softmax(x1, out=y1), x1.size, number, 9)
        print(f"  ({rows}, {n}): {tb:.3f} vs one row of {x1.size}: {t1:.3f}  ({tb / t1:.2f}x; target <= 1x)")
    print()

    # Softmax along a non-last axis against the last axis of an array of the same size.
    print("non-last axis vs last axis (same size, out= given), ns/element:")
    for shape, axis in (((1, 3072, 1024), 1), ((8, 512, 768), 1), ((4, 128, 8192), 1)):
        xs = rng.standard_normal(shape).astype(np.float32)
        ys = np.empty_like(xs)
        xl = np.ascontiguousarray(np.moveaxis(xs, axis, -1))
        yl = np.empty_like(xl)
        number = 10
        ta = best_ns_per_element(lambda: fastsoftmax.softmax(xs, axis=axis, out=ys), xs.size, number, 7)
        tl = best_ns_per_element(lambda: fastsoftmax.softmax(xl, axis=-1, out=yl), xl.size, number, 7)
        print(f"  {shape} axis={axis}: {ta:.3f} vs last axis {tl:.3f}  ({ta / tl:.2f}x; target <= 1.5x)")
    print()

    # A fresh result per call (how most people call it) against out=, 2^26 elements.
    print("fresh output vs out=, one row of 2^26 elements, ns/element (best of 5 calls; first call apart):")
    for dt in (np.float32, np.float64):
        xf = rng.standard_normal(1 << 26).astype(dt)
        yf = np.empty_like(xf)
        first = timeit.timeit(lambda: fastsoftmax.softmax(xf), number=1) / xf.size * 1e9
        tn = best_ns_per_element(lambda: fastsoftmax.softmax(xf), xf.size, 1, 5)
        to = best_ns_per_element(lambda: fastsoftmax.softmax(xf, out=yf), xf.size, 1, 5)
        print(f"  {np.dtype(dt).name}: softmax(x) {tn:.3f} (first call {first:.3f}), with out= {to:.3f}  (+{tn - to:.3f})")


if __name__ == "__main__":
    main()
