#!/usr/bin/env python3
"""Derive and validate the exp that softmax uses for float16 / bfloat16 outputs.

A 16-bit result keeps 11 (float16) or 8 (bfloat16) significant bits, so its softmax does
not need float32's exp (degree 5). The scheme derived here (passes.h,
Exp16):

    n = rint(x * LOG2E)                 # fma(x, LOG2E, 1.5*2^23) - 1.5*2^23, float32
    t = fma(n, -LN2, x)                 # ONE ln2 constant: t = x - n*LN2, rounded once
    p = 1 + t*(c1 + t*(c2 + t*c3))      # Horner with FMA in float32
    exp(x) ~ p * 2^n

With one constant, t carries n*(ln2 - LN2) more than x - n*ln2: every exp of a row is
off by the factor e^(n*D), D = LN2 - ln2 ~ 1.9e-9. Both passes of a softmax use the same
scheme, so only the differences of n between elements of a row remain -- and an element
e^(n_i - n_max) below 2^-60 of the row's largest (|n_i - n_max| > 60) rounds to zero
in 16 bits anyway: at most 60 * |D| ~ 2^-23 relative, below float32's own rounding.

Steps:
1. Lawson's weighted least squares (converges to the minimax) for the relative error of
   e^t ~ 1 + t q(t), q of degree 2, on |t| <= T_MAX, where T_MAX covers the reduced
   arguments of every input of the fast path (|x| <= 65536: n is x*LOG2E rounded, and
   LOG2E's own rounding moves x*LOG2E by up to 65536*|LOG2E - log2(e)| ~ 0.0013).
2. c1..c3 rounded to float32; the 5x5x5 neighbouring float32 triples searched for the
   smallest measured error.
3. Exhaustive check over every float16 and every bfloat16 input x with |x| <= 65536
   (and every float32 t on a dense grid of |t| <= T_MAX): each fma rounded once, exactly
   (Python integers), against e^(x - n*LN2) from mpmath at 80 bits. Prints the maximum
   relative error: the bound that tests/test_accuracy.py uses for 16-bit softmax.

Run: python tools/derive_exp_16.py   (needs numpy, mpmath; about a minute)
"""
from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

mpmath.mp.prec = 80
F32 = np.float32
LOG2E = F32(1.4426950408889634)
LN2 = F32(0.6931471805599453)
T_MAX = (0.5 + 65536 * abs(float(LOG2E) - math.log2(math.e))) * math.log(2) + 1e-4


def lawson(deg: int, t_max: float, iters: int = 400) -> np.ndarray:
    t = np.cos(np.linspace(0, np.pi, 6001)) * t_max
    t = t[t != 0]
    target = np.expm1(t) / t
    w_row = np.abs(t) * np.exp(-t)  # relative error of e^t = |t| e^-t |q(t) - target|
    a = np.vstack([t**k for k in range(deg)]).T * w_row[:, None]
    b = target * w_row
    w = np.full(t.size, 1.0 / t.size)
    for _ in range(iters):
        s = np.sqrt(w)
        c = np.linalg.lstsq(a * s[:, None], b * s, rcond=None)[0]
        err = np.abs(a @ c - b)
        w = w * err
        w /= w.sum()
    return c  # c1, c2, c3


def rnd32(q: Fraction) -> Fraction:
    """q rounded to the nearest float32 (ties to even), exactly."""
    if q == 0:
        return q
    e = math.floor(math.log2(abs(q)))
    while abs(q) >= Fraction(2) ** (e + 1):
        e += 1
    while abs(q) < Fraction(2) ** e:
        e -= 1
    ulp = Fraction(2) ** (max(e, -126) - 23)
    k = q / ulp
    f = math.floor(k)
    r = k - f
    f = f + 1 if r > Fraction(1, 2) or (r == Fraction(1, 2) and f % 2) else f
    return f * ulp


def fma32(a: Fraction, b: Fraction, c: Fraction) -> Fraction:
    return rnd32(a * b + c)


def scheme(x: Fraction, coef: list) -> tuple:
    """(p, n, t) as the kernel computes them."""
    n = Fraction(round(x * Fraction(float(LOG2E))))  # the bias trick rounds the exact product once (half-even)
    t = fma32(n, -Fraction(float(LN2)), x)
    p = coef[2]
    p = fma32(p, t, coef[1])
    p = fma32(p, t, coef[0])
    p = fma32(p, t, Fraction(1))
    return p, n, t


def max_rel_error(xs: list, coef: list) -> float:
    worst = 0.0
    for x in xs:
        p, n, t = scheme(x, coef)
        exact_t = x - n * Fraction(float(LN2))  # the reduced argument before rounding
        ref = mpmath.exp(mpmath.mpf(exact_t.numerator) / exact_t.denominator)
        err = abs(mpmath.mpf(p.numerator) / p.denominator / ref - 1)
        worst = max(worst, float(err))
    return worst


def inputs_16bit() -> list:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    f16 = bits.view(np.float16).astype(np.float64)
    with np.errstate(invalid="ignore"):  # the NaN patterns
        bf16 = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        vals = np.concatenate([f16, bf16])
        vals = vals[np.isfinite(vals) & (np.abs(vals) <= 65536)]
    return [Fraction(v) for v in np.unique(vals)]


def main() -> None:
    c = lawson(3, T_MAX)
    print(f"T_MAX = {T_MAX:.6f}; minimax (float64 coefficients): "
          f"{[float(v) for v in c]}")
    grid = [Fraction(float(F32(v))) for v in np.linspace(-T_MAX, T_MAX, 4001)]
    base = [F32(v) for v in c]
    best = None
    for d1 in range(-2, 3):
        for d2 in range(-2, 3):
            for d3 in range(-2, 3):
                cand = [F32(base[i]) for i in range(3)]
                for i, d in enumerate((d1, d2, d3)):
                    for _ in range(abs(d)):
                        cand[i] = np.nextafter(cand[i], F32(np.inf) if d > 0 else F32(-np.inf))
                coef = [Fraction(float(v)) for v in cand]
                err = max_rel_error(grid[::8], coef)
                if best is None or err < best[0]:
                    best = (err, cand)
    cand = best[1]
    coef = [Fraction(float(v)) for v in cand]
    print("float32 coefficients c1, c2, c3:", ", ".join(float(v).hex() for v in cand))
    print(f"dense grid of t (4001 points, |t| <= T_MAX): max relative error 2^{math.log2(max_rel_error(grid, coef)):.2f}")
    xs = inputs_16bit()
    err = max_rel_error(xs, coef)
    print(f"every float16 and bfloat16 x with |x| <= 65536 ({len(xs)} values): max relative error "
          f"{err:.3e} = 2^{math.log2(err):.2f} (against e^(x - n*LN2))")


if __name__ == "__main__":
    main()
