"""Command line of fastsoftmax-bench."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List, Optional, Tuple

from . import _impls, _suites

QUICK_SIZES = "2^10,2^14,2^18,2^22,2^26"
DEFAULT_SIZES = "2^10..2^26"
_ALGS = _impls.ALGORITHMS + ("auto",)
_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _parse_count(s: str) -> int:
    t = s.strip().lower().replace(" ", "")
    m = re.fullmatch(r"2(?:\^|\*\*)(\d+)", t)
    if m:
        return 1 << int(m.group(1))
    m = re.fullmatch(r"(\d+)([kmg])i?", t)
    if m:
        return int(m.group(1)) * _SUFFIX[m.group(2)]
    if re.fullmatch(r"\d+", t):
        return int(t)
    m = re.fullmatch(r"\d+(\.\d+)?e\d+", t)
    if m and float(t) == int(float(t)):
        return int(float(t))
    raise ValueError(f"cannot read a size from {s!r} (use 1024, 64K, 1M, 2^20 or 2**20)")


def parse_sizes(spec: str) -> List[int]:
    """Row lengths from a spec like "2^10..2^26", "2^10..2^26:2", "1024,4096", "64K,1M,2^24".

    ``A..B`` is A, 2A, 4A, ... up to B; ``A..B:s`` steps by a factor 2^s.

    >>> parse_sizes("2^10..2^13")
    [1024, 2048, 4096, 8192]
    >>> parse_sizes("2^10..2^16:3,100")
    [100, 1024, 8192, 65536]
    """
    sizes = set()
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if ".." in item:
            a, b = item.split("..", 1)
            step = 1
            if ":" in b:
                b, st = b.split(":", 1)
                step = int(st)
                if step < 1:
                    raise ValueError(f"the step in {item!r} must be >= 1")
            lo, hi = _parse_count(a), _parse_count(b)
            if lo < 1 or hi < lo:
                raise ValueError(f"bad size range {item!r}")
            v = lo
            while v <= hi:
                sizes.add(v)
                v <<= step
        else:
            v = _parse_count(item)
            if v < 1:
                raise ValueError(f"sizes must be >= 1, got {item!r}")
            sizes.add(v)
    if not sizes:
        raise ValueError(f"no sizes in {spec!r}")
    return sorted(sizes)


def parse_threads(spec: str) -> List[int]:
    """Thread counts from "1", "1,2" or "1,2,4" ("scaling": 1, 2, 4, ... and the CPU count); sorted, without repeats.

    >>> parse_threads("2,1,2")
    [1, 2]
    """
    out = set()
    for item in str(spec).split(","):
        item = item.strip()
        if not item:
            continue
        if item == "scaling":  # 1, 2, 4, ... up to the CPUs this process may run on, and that count
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            t = 1
            while t < cpus:
                out.add(t)
                t *= 2
            out.add(cpus)
            continue
        if not re.fullmatch(r"\d+", item) or int(item) < 1:
            raise ValueError(f"--threads takes counts >= 1 separated by commas (e.g. 1,2) or 'scaling', got {item!r}")
        out.add(int(item))
    if not out:
        raise ValueError(f"no thread counts in {spec!r}")
    return sorted(out)


def parse_shapes(spec: str) -> List[Tuple[int, int]]:
    """Batch shapes from "4096x32000" or "64x2^20,4096x128" (rows x N, comma-separated).

    >>> parse_shapes("4096x32000, 64x2^20")
    [(4096, 32000), (64, 1048576)]
    """
    out: List[Tuple[int, int]] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        parts = re.split(r"[x*]", item.lower())
        if len(parts) != 2:
            raise ValueError(f"a --shape is ROWSxN, e.g. 4096x32000; got {item!r}")
        rows, n = (_parse_count(p) for p in parts)
        if rows < 1 or n < 1:
            raise ValueError(f"shape dimensions must be >= 1, got {item!r}")
        if (rows, n) not in out:
            out.append((rows, n))
    return out


def _list(spec: str, allowed, what: str) -> List[str]:
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if item not in allowed:
            raise ValueError(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
        if item not in out:
            out.append(item)
    if not out:
        raise ValueError(f"no {what} given")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastsoftmax-bench",
        description="Reproduce the out-of-cache comparison of Dukhan & Ablavatski, 'The Two-Pass Softmax "
                    "Algorithm' (2020) on this machine: every algorithm and tier, the importable peers "
                    "(NumPy, SciPy, PyTorch, ONNX Runtime) and memory-only roofline kernels, at one or "
                    "more thread counts.",
        epilog="Writes results.json, results.csv and softmax-throughput.png into --out. "
               "How long: --quick (the README's run) takes a few minutes at most on 2 cores (57 s measured "
               "on a 2-core VM with 3 tiers); the default run without options (17 sizes up to 2^26, every "
               "algorithm on every tier, all peers, 3 rounds of at least 0.5 s per measurement) has about "
               "13 times as much to measure: about 15 minutes where --quick takes one, more with PyTorch "
               "and ONNX Runtime installed -- narrow it with --sizes, --algorithms, --isa, --peers. "
               "Exit status 1 when a fastsoftmax result fails validation (a peer's failure is reported "
               "and marked '!', but does not change the exit status).")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"fastsoftmax-bench (fastsoftmax {__version__})")
    p.add_argument("--quick", action="store_true",
                   help=f"short run: sizes {QUICK_SIZES} (in and out of cache), float32 softmax, the active "
                        "tier, peers, the (new output) rows and rooflines, 0.25 s per measurement")
    p.add_argument("--sizes", help=f"row lengths, e.g. '2^10..2^26' (default; --quick: '{QUICK_SIZES}'), "
                                   "'2^10..2^26:2' (every other power), '1024,4096', '64K,1M'")
    p.add_argument("--suite", choices=sorted(_suites.SUITES),
                   help="a preset workload instead of single rows: 'models' = " + _suites.SUITES["models"]
                        + "; auto only, no rooflines, 0.25 s per measurement (each of those can be overridden by its "
                          "option; --sizes adds single rows); a summary line per dtype compares auto with the "
                          "fastest peer on every shape")
    p.add_argument("--dtype", default=None,
                   help=f"comma list of {', '.join(_impls.DTYPES)} (default float32; --suite models: "
                        "float32, bfloat16, float16); bfloat16 needs the "
                        "optional ml_dtypes package (listed as skipped without it). Half-type inputs are the float32 "
                        "input rounded to the type; with float32 in the run a summary compares their two-pass time "
                        "with float32's")
    p.add_argument("--op", default="softmax",
                   help="softmax, log_softmax or both comma-separated (default softmax); or softmax_backward, "
                        "log_softmax_backward (comma-separated): the backward kernels beside PyTorch's CPU backward "
                        "and the memory-only pattern of the same traffic, and the forward through fastsoftmax.torch "
                        "beside the NumPy call (float32; default --sizes 2^24, --shape 256x32000, --threads 1 and "
                        "the default count, --min-time 0.25); or 'sample': fastsoftmax.sample beside softmax and a "
                        "sort-based torch sampler (--top-p, --top-k, --min-p; shapes from --shape, default 1x128256 "
                        "and 64x128256; threads 1 and the default)")
    p.add_argument("--top-p", type=float, default=None, help="--op sample: time top_p=P (alone, and combined)")
    p.add_argument("--top-k", type=int, default=None, help="--op sample: time top_k=K (alone, and combined)")
    p.add_argument("--min-p", type=float, default=None, help="--op sample: time min_p=M (alone, and combined)")
    p.add_argument("--logits", default=None, metavar="{llm,peaked}",
                   help="--op sample: the rows timed: llm (default; a Gaussian body, sigma 2.5, with 20 tokens per "
                        "row raised by 8) or peaked (5 tokens raised by 20, 19, ..., 16: a few tokens hold most of "
                        "the probability)")
    p.add_argument("--algorithms", default=None,
                   help=f"comma list of {', '.join(_ALGS)} (default: all; --suite: auto)")
    p.add_argument("--isa", help="tier(s): 'all' (default), 'active', or a comma list of scalar, avx2, avx512 "
                                 "(--quick: the active tier)")
    p.add_argument("--peers", default=None,
                   help="on (default), off, or a comma list of numpy, scipy, torch, onnxruntime "
                        "(--suite: torch, onnxruntime)")
    p.add_argument("--no-rooflines", dest="patterns", action="store_false", default=None,
                   help="skip the memory-only patterns (no x roofline column; --suite: skipped unless --rooflines)")
    p.add_argument("--rooflines", dest="patterns", action="store_true", help="time the memory-only patterns")
    p.add_argument("--threads", default=None, metavar="T[,T...]",
                   help="thread counts, e.g. 1,2, or 'scaling' for 1,2,4,...,nproc (default 1; --suite: 1 and the "
                        "library's default thread count): every row is measured at each (fastsoftmax threads=t "
                        "per call, torch.set_num_threads(t), an ONNX Runtime session with intra_op_num_threads=t; "
                        "NumPy and SciPy are single-threaded and run at 1 only); the memory-only patterns run on t "
                        "slices at once; with more than one count a scaling summary is printed")
    p.add_argument("--no-default-threads", dest="default_threads", action="store_false",
                   help="skip the 'auto (default threads)' row (fastsoftmax with no threads=, the library's default "
                        "thread count, timed beside the one-thread rows, and its summary line)")
    p.add_argument("--shape", action="append", metavar="ROWSxN",
                   help="also time a batch of rows, e.g. 4096x32000 (repeatable or comma-separated; "
                        "softmax over the last axis); in the table and the scaling summary, not in the plot")
    p.add_argument("--no-new-output", dest="new_output", action="store_false",
                   help="skip the 'auto (new output)' and 'torch (new output)' rows (calls without out=, a fresh "
                        "result array per call)")
    p.add_argument("--out", default="bench-results", metavar="DIR", help="output folder (default ./bench-results)")
    p.add_argument("--repeat", type=int, help="timed calls per measurement (default: enough for --min-time)")
    p.add_argument("--min-time", type=float,
                   help="seconds of timed calls per measurement (default 0.5; --quick 0.25)")
    p.add_argument("--min-reps", type=int, default=9,
                   help="timed calls per measurement, at least (default 9; fewer only when --max-time says so)")
    p.add_argument("--max-time", type=float,
                   help="seconds per measurement at most, for huge slow calls (default 10; --quick 2.5); "
                        "at least one call per round is timed")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds over the implementations per N (default 3; spreads noise evenly)")
    p.add_argument("--max-reps", type=int, default=None, help="cap on timed calls per measurement (default 10000)")
    p.add_argument("--max-buffers", type=int, default=4,
                   help="most output buffers to rotate through (default 4: enough for 2 x LLC once a row "
                        "is a quarter of the LLC or more)")
    p.add_argument("--buffers", type=int, help="rotate through exactly this many output buffers")
    p.add_argument("--max-memory", type=float, default=4.0, metavar="GIB",
                   help="most GiB of rotating output buffers (default 4)")
    p.add_argument("--input", choices=("normal", "uniform"), default="normal",
                   help="input values: N(0,1) (default) or U(-1000,1000) as in XNNPACK's benchmarks "
                        "(gives subnormal outputs: slow unless FTZ/DAZ)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api", choices=("public", "core"), default="public",
                   help="time fastsoftmax.softmax() (default, what users call) or the bare _core.run()")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="do not write the PNG")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="do not check that each output sums to 1")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--tune", action="store_true",
                   help="instead of the benchmark: measure three-pass reload against two-pass on this machine "
                        "(one thread, single rows 32 KiB..128 MiB, every dtype; about a minute) and store the "
                        "crossover that algorithm='auto' uses in the machine profile (see --profile)")
    p.add_argument("--profile", metavar="PATH",
                   help="the profile --tune writes (default: $FASTSOFTMAX_PROFILE, else "
                        "~/.config/fastsoftmax/profile.json); fastsoftmax reads the same file at import")
    p.add_argument("--dry-run", action="store_true", help="with --tune: measure and print, write nothing")
    return p


def make_config(args: argparse.Namespace, argv: Optional[List[str]]):
    from .. import _core
    from . import _impls, _machine
    from ._runner import BenchConfig

    suite = args.suite
    if suite:
        sizes = parse_sizes(args.sizes) if args.sizes else []
    else:
        sizes = parse_sizes(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    dtypes = _list(args.dtype or ("float32,bfloat16,float16" if suite else "float32"), _impls.DTYPES, "dtype")
    ops = _list(args.op, ("softmax", "log_softmax"), "op")
    algorithms = _list(args.algorithms or ("auto" if suite else ",".join(_ALGS)), _ALGS, "algorithm")
    compiled = list(_core.compiled_isas())
    isa_spec = args.isa or ("active" if args.quick or suite else "all")
    if isa_spec == "all":
        isas = [i for i in compiled if _core.isa_runnable(i)]
    elif isa_spec == "active":
        isas = [_core.active_isa()]
    else:
        isas = _list(isa_spec, tuple(_core.compiled_isas()), "isa")
    if args.repeat is not None and args.repeat < 1:
        raise ValueError("--repeat must be >= 1")
    threads = parse_threads(thread_spec(args))
    shapes: List[Tuple[int, ...]] = []
    causal: List[Tuple[int, ...]] = []
    for case in (_suites.models() if suite == "models" else []):
        (causal if case.causal else shapes).append(tuple(case))
    for spec in args.shape or []:
        for shp in parse_shapes(spec):
            if shp not in shapes:
                shapes.append(shp)
    short = args.quick or bool(suite)
    min_time = args.min_time if args.min_time is not None else (0.25 if short else 0.5)
    max_time = args.max_time if args.max_time is not None else (2.5 if short else 10.0)
    patterns = args.patterns if args.patterns is not None else not suite
    return BenchConfig(
        sizes=sizes, dtypes=dtypes, ops=ops, algorithms=algorithms, isas=isas, patterns=patterns,
        peers=_impls.peer_list(args.peers or ("torch,onnxruntime" if suite else "on")), threads=threads,
        shapes=shapes, causal_shapes=causal, suite=suite, new_output=args.new_output,
        default_threads=args.default_threads,
        out_dir=args.out, repeat=args.repeat,
        min_time=min_time, min_reps=max(1, args.min_reps), max_time=max_time, max_reps=args.max_reps or 10000,
        max_buffers=args.max_buffers, max_memory=int(args.max_memory * (1 << 30)), buffers=args.buffers,
        input=args.input, seed=args.seed, api=args.api, rounds=max(1, args.rounds), validate=args.validate,
        plot=args.plot, progress=args.progress, quick=args.quick,
        command_line=_machine.command_line(argv),
    )


def thread_spec(args: argparse.Namespace) -> str:
    """--threads as given, else 1 (--suite: 1 and the library's default thread count)."""
    if args.threads is not None:
        return args.threads
    if args.suite:
        from .. import _core

        return f"1,{_core.get_num_threads()}"
    return "1"


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line, run the benchmark, write the results; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tune:
        from . import _tune

        return _tune.main(args.profile, args.dry_run, args.quick)
    if args.profile or args.dry_run:
        parser.error("--profile and --dry-run go with --tune")
    if "_backward" in args.op:
        return _backward_main(parser, args)
    if args.op.strip() == "sample":
        from . import _sample

        try:
            return _sample.main(args, argv)
        except ValueError as e:
            parser.error(str(e))
    if args.top_p is not None or args.top_k is not None or args.min_p is not None or args.logits is not None:
        parser.error("--top-p, --top-k, --min-p and --logits go with --op sample")
    # Cap the peers' thread pools before anything imports them.
    from . import _machine

    try:
        _machine.set_thread_env(max(parse_threads(thread_spec(args))))
    except ValueError as e:
        parser.error(str(e))
    try:
        cfg = make_config(args, argv)
    except ValueError as e:
        parser.error(str(e))
    from ._runner import run_benchmark

    try:
        doc = run_benchmark(cfg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # Peers' results can be off (float32 sums of 2^28 terms, half-type arithmetic): reported, not an error.
    bad = [r for r in doc["rows"] if r.get("validated") is False and r["kind"] == "fastsoftmax"]
    return 1 if bad else 0


def _backward_main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """--op softmax_backward,log_softmax_backward (bench/_backward.py)."""
    from .. import _core
    from . import _backward

    try:
        ops = _list(args.op, _backward.BACKWARD_OPS, "op")
        sizes = parse_sizes(args.sizes) if args.sizes else ([] if args.shape else _backward.DEFAULT_SIZES)
        shapes = [s for spec in args.shape or [] for s in parse_shapes(spec)]
        if not args.shape and not args.sizes:
            shapes = list(_backward.DEFAULT_SHAPES)
        threads = parse_threads(args.threads or f"1,{_core.get_num_threads()}")
        if args.dtype not in (None, "float32"):
            raise ValueError("the backward benchmark runs float32 only")
    except ValueError as e:
        parser.error(str(e))
    doc = _backward.run(ops, sizes, shapes, threads, args.min_time if args.min_time is not None else 0.25,
                        max(1, args.rounds), args.out, seed=args.seed, min_reps=max(1, min(args.min_reps, 5)))
    return 1 if doc.get("failures") else 0
