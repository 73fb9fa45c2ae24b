#!/usr/bin/env python3
"""Derive and measure the table-driven float64 exp of the AVX-512 tier (exp.h, TableExp).

Scheme (exactly what the kernel does, FMA emulated exactly):

    k = fma(x, LOG2E, 1.5 * 2^48)       # x log2e rounded to a multiple of 1/16
    n = k - 1.5 * 2^48                  # exact
    t = fma(n, -LN2_HI, x)              # exact
    t = fma(n, -LN2_LO, t)              # |t| <= ln2/32 (+ a hair)
    T = TABLE[bits(k) & 15]             # RN(2^(j/16)), j = 16 n mod 16
    p = Horner(c6 .. c2, t); p = fma(p, t, 1)
    m = fma(T * t, p, T)                # T e^t, rounded once at the end
    e^x = scalef(m, n) = m * 2^floor(n)

1. Minimax of the relative error of e^t on [-ln2/32, ln2/32] (+2^-40) for degrees 5..7
   with c0 = c1 = 1 (derive_exp_f64.derive_coefficients: Remez, then rounding to double
   one coefficient at a time with re-optimisation of the rest).
2. The table, RN(2^(j/16)) from mpmath.
3. Max ULP error of the whole scheme (degree 6) against e^x from mpmath on random x in
   [-745, 709] and on x next to the rounding boundaries of k (|t| near ln2/32), for
   normal results, with the constants the C++ code holds.

Usage:  /work/venv/bin/python tools/derive_exp_f64_table.py [--samples N] [--jobs J]
"""

import argparse
import os
import sys

import numpy as np
import mpmath
from mpmath import mp, mpf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import derive_exp_f64 as base  # noqa: E402  (exact fma, mpmath reference, ULP errors, Remez)

LOG2E = float.fromhex("0x1.71547652b82fep+0")
LN2_HI = -float.fromhex("-0x1.62e42ff000000p-1")
LN2_LO = -float.fromhex("0x1.718432a1b0e26p-35")
BIAS = float.fromhex("0x1.8p48")
CHOSEN_DEGREE = 6


def scheme(x, table, coefs, corr=None):
    """coefs: c0..cK (c0 = c1 = 1); corr: RN((2^(j/16) - T_j) / T_j), or None."""
    k = base.fma(x, LOG2E, BIAS)
    n = k - BIAS
    t = base.fma(n, -LN2_HI, x)
    t = base.fma(n, -LN2_LO, t)
    T = table[k.view(np.int64) & 15]
    p = np.full_like(t, coefs[-1])
    for c in coefs[-2:1:-1]:
        p = base.fma(p, t, c)
    p = base.fma(p, t, 1.0)
    if corr is None:
        m = base.fma(T * t, p, T)
    else:
        m = base.fma(T, base.fma(t, p, corr[k.view(np.int64) & 15]), T)
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(m, np.floor(n).astype(np.int64)), t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=400_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    mp.prec = base.REMEZ_PREC

    a = mpmath.log(2) / 32 + mpf(2) ** -40
    polys = {}
    print("Relative error of e^t on [-ln2/32, ln2/32], c0 = c1 = 1:")
    for K in (5, 6, 7):
        dbl, E0, err_seq, err_naive = base.derive_coefficients(K, a)
        polys[K] = dbl
        print("  K=%d: minimax 2^%.2f, double coefficients 2^%.2f: %s" % (
            K, float(mpmath.log(E0, 2)), float(mpmath.log(min(err_seq, err_naive), 2)),
            ", ".join(c.hex() for c in dbl[:1:-1])))
    exact = [mpf(2) ** (mpf(j) / 16) for j in range(16)]
    table = np.array([float(v) for v in exact])
    corr = np.array([float((v - mpf(float(v))) / mpf(float(v))) for v in exact])
    print("table T_j = RN(2^(j/16)):", ", ".join(v.hex() for v in table))
    print("corrections RN((2^(j/16) - T_j) / T_j):", ", ".join(v.hex() for v in corr))

    xa = rng.uniform(-745.0, 709.0, args.samples)
    # x next to the points where k changes: 16 x log2e = m + 1/2, |t| ~ ln2/32.
    m = np.arange(-745 * 16 * 1.45, 709 * 16 * 1.44, 7.0)
    c = (m + 0.5) / 16 / LOG2E
    xb = (c[:, None] + rng.uniform(-2.0 ** -12, 2.0 ** -12, (len(c), 8))).ravel()
    xb = xb[(xb >= -745.0) & (xb <= 709.0)]
    print("samples: %d random in [-745, 709], %d near the rounding boundaries of k" % (len(xa), len(xb)))
    for name, xs in (("random", xa), ("boundaries", xb)):
        ref = base.reference("exp", xs, jobs=args.jobs)
        normal = ref[3] >= np.finfo(np.float64).tiny
        for K in (6, 7):
            for label, cj in (("T_j alone", None), ("T_j + correction", corr)):
                y, t = scheme(xs, table, polys[K], cj)
                u = base.ulp_error(y, ref)
                print("  %-10s K=%d %-16s: max %.3f ULP (normal results), %.3f (subnormal), max |t| = ln2/32 * %.6f" % (
                    name, K, label, u[normal].max(), u[~normal].max() if (~normal).any() else 0.0,
                    np.abs(t).max() / (np.log(2) / 32)))


if __name__ == "__main__":
    main()
