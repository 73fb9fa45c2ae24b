"""Time fastsoftmax.sample against fastsoftmax.softmax on the same logits (and against a
sort-based PyTorch sampler when torch is importable: sort, softmax, cumsum, mask,
multinomial -- what servers run on CPU today).

Usage: python tools/bench_sample.py [--rows 1 64] [--dtypes float32 bfloat16] [--repeat 30]
                                    [--threads 1 0]   (0: the library's default)

Every case is timed interleaved with its softmax in one process (median of --repeat calls,
rounds alternating), and reported as the ratio sample / softmax.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastsoftmax as fs

V = 128256


def logits(rows: int, dtype: str, seed: int = 0) -> np.ndarray:
    # LLM-like rows: a few large logits over a Gaussian body.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, V)) * 2.5).astype(np.float32)
    top = rng.integers(0, V, size=(rows, 20))
    np.put_along_axis(x, top, np.take_along_axis(x, top, 1) + 8.0, axis=1)
    if dtype == "bfloat16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


def torch_sampler(torch):
    def run(t, top_k=None, top_p=None, min_p=None, gen=None):
        x = t.float()
        if top_k is not None:
            v, i = torch.topk(x, top_k, dim=-1)
            probs = torch.softmax(v, dim=-1)
            return i.gather(-1, torch.multinomial(probs, 1, generator=gen))
        s, i = torch.sort(x, dim=-1, descending=True)
        probs = torch.softmax(s, dim=-1)
        if top_p is not None:
            cum = torch.cumsum(probs, dim=-1)
            drop = (cum - probs) >= top_p  # keep the token that crosses p
            probs = probs.masked_fill(drop, 0.0)
        if min_p is not None:
            probs = probs.masked_fill(probs < min_p * probs[..., :1], 0.0)
        return i.gather(-1, torch.multinomial(probs, 1, generator=gen))

    return run


def median_times(fns: dict, repeat: int) -> dict:
    times = {k: [] for k in fns}
    for fn in fns.values():  # warm up
        fn()
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass
    cases = {"top_p=0.9": dict(top_p=0.9), "top_k=50": dict(top_k=50), "min_p=0.05": dict(min_p=0.05),
             "plain": dict()}
    print(f"fastsoftmax {fs.__version__}, tier {fs.runtime_info().get('active_isa', '?')}, V={V}, "
          f"median of {args.repeat}, times in us (fastsoftmax-bench --op sample is the harness's version of this)")
    for dtype in args.dtypes:
        for rows in args.rows:
            x = logits(rows, dtype)
            tx = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16 if dtype == "bfloat16" else torch.float32) \
                if torch is not None else None
            for th in args.threads:
                thr = None if th == 0 else th
                tname = "default" if th == 0 else str(th)
                out = np.empty_like(x)
                fns = {"softmax": lambda: fs.softmax(x, axis=-1, out=out, threads=thr)}
                for name, kw in cases.items():
                    fns[name] = (lambda kw=kw: fs.sample(x, seed=1, threads=thr, **kw))
                if tx is not None:
                    run = torch_sampler(torch)
                    gen = torch.Generator().manual_seed(0)
                    prev = torch.get_num_threads()
                    nt = th if th else prev

                    def tfn(kw, nt=nt):
                        torch.set_num_threads(nt)
                        try:
                            run(tx, gen=gen, **kw)
                        finally:
                            torch.set_num_threads(prev)
                    fns["torch top_p=0.9"] = lambda: tfn(dict(top_p=0.9))
                    fns["torch top_k=50"] = lambda: tfn(dict(top_k=50))
                t = median_times(fns, args.repeat)
                sm = t["softmax"]
                parts = [f"softmax {sm * 1e6:8.1f}"]
                for name in cases:
                    parts.append(f"{name} {t[name] * 1e6:8.1f} ({t[name] / sm:4.1f}x)")
                line = f"({rows}, {V}) {dtype:8s} threads={tname:7s} " + "  ".join(parts)
                if tx is not None:
                    line += (f"  torch top_p {t['torch top_p=0.9'] * 1e6:8.1f} (sample {t['torch top_p=0.9'] / t['top_p=0.9']:5.1f}x"
                             f" faster)  torch top_k {t['torch top_k=50'] * 1e6:8.1f}")
                print(line, flush=True)


if __name__ == "__main__":
    main()
