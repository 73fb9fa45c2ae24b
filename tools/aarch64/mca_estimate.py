"""Cycles per element of the neon tier's inner loops, estimated by llvm-mca (no AArch64
hardware here). Compiles csrc/kernels/neon/kernels_neon.cpp to assembly with the cross
compiler and the library's flags, takes the hottest loop of each pass (the backward branch
whose body has the most FMLA/FMUL/FADD), and runs llvm-mca on it for each CPU model.
Elements per iteration: bytes of the row's vector loads (read passes) or stores (write
passes) per iteration over the storage size. An ESTIMATE of a steady state with all data
in L1: no cache misses, no memory bandwidth, no front-end effects.

Usage: python3 tools/aarch64/mca_estimate.py [--cxx aarch64-linux-gnu-g++] [--mcpu neoverse-n1,neoverse-v1]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (label, demangled function name fragment, storage bytes, counts loads (read pass) or stores)
F32 = "Passes<fastsoftmax::neon::Vec<float>, float>::"
F64 = "Passes<fastsoftmax::neon::Vec<double>, double>::"
BF16 = "Passes<fastsoftmax::neon::Vec<float>, fastsoftmax::BFloat16>::"
F16 = "Passes<fastsoftmax::neon::Vec<float>, fastsoftmax::Half>::"
# (label, fragments a function's demangled name must contain (the hottest loop of all such
# functions is taken), storage bytes, whether the row is counted by its loads or stores)
PASSES = [
    ("f32 two-pass pass 1 (pair sum of e^x)", [F32 + "PairAcc::State"], 4, "load"),
    ("f32 two-pass pass 2 (y = m 2^(n-e) / s)", [F32 + "write_row<", "prim_write_pair"], 4, "store"),
    ("f32 max pass", [F32 + "MaxAcc::State"], 4, "load"),
    ("f32 sum of e^(x-max)", [F32 + "SumExpAcc<false>::State", "prim_sum_exp"], 4, "load"),
    ("f32 online pass 1", [F32 + "OnlineAcc::State"], 4, "load"),
    ("f32 three-pass pass 3 (e^(x-max) / s)", [F32 + "write_row<", "prim_write_exp_scaled"], 4, "store"),
    ("f64 two-pass pass 1", [F64 + "PairAcc::State"], 8, "load"),
    ("f64 two-pass pass 2", [F64 + "write_row<", "prim_write_pair"], 8, "store"),
    ("bf16 two-pass pass 1", [BF16 + "PairAcc::State"], 2, "load"),
    ("bf16 two-pass pass 2", [BF16 + "write_row<", "prim_write_pair"], 2, "store"),
    ("f16 two-pass pass 1", [F16 + "PairAcc::State"], 2, "load"),
]

VEC_MEM = re.compile(r"^\s*(ldr|ldp|ldur|str|stp|stur|ld1|st1)\s+([qd])\d+")


def functions(asm: str):
    """{mangled name: [lines]} for every function in the assembly."""
    out, cur, name = {}, None, None
    for line in asm.splitlines():
        m = re.match(r"^([_A-Za-z][\w.$]*):", line)
        if m and not m.group(1).startswith(".L"):
            name, cur = m.group(1), []
            out[name] = cur
        elif cur is not None:
            cur.append(line)
    return out


def hottest_loop(lines):
    """The innermost loop doing the pass's arithmetic: among backward branches whose body has
    no function epilogue, the shortest one with at least half the most FP operations seen."""
    labels, loops = {}, []
    for i, line in enumerate(lines):
        m = re.match(r"^(\.L\w+):", line)
        if m:
            labels[m.group(1)] = i
            continue
        m = re.match(r"^\s*(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+(?:.*,\s*)?(\.L\w+)\s*$", line)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            body = [l for l in lines[labels[m.group(2)] + 1:i + 1]
                    if l.strip() and not l.strip().startswith((".", "//")) and not re.match(r"^\.L\w+:", l)]
            if any(re.match(r"^\s*ret\b", l) or "x29, x30" in l for l in body):
                continue
            score = sum(1 for l in body if re.match(r"^\s*f(mla|mul|add|sub|max|cm)", l))
            loops.append((score, body))
    if not loops:
        return []
    top = max(sc for sc, _ in loops)
    return min((b for sc, b in loops if sc >= max(1, top / 2)), key=len, default=[])


def splice_calls(body, funcs):
    """GCC keeps exp_shifted out of line in some loops: put the callee's straight-line body
    in place of the call (without its ret), as the cost of the call less the branch."""
    out = []
    for l in body:
        m = re.match(r"^\s*bl\s+(\S+)", l)
        if not m:
            out.append(l)
            continue
        callee = funcs.get(m.group(1))
        if callee is None:
            return None
        out += [c for c in callee if c.strip() and not c.strip().startswith((".", "//"))
                and not re.match(r"^\.L\w+:", c) and not re.match(r"^\s*ret\b", c)]
    return out


def bytes_moved(body, kind):
    total = 0
    for l in body:
        m = VEC_MEM.match(l)
        if not m or ":lo12:" in l or "=" in l or "[sp" in l:  # constants and spills are not the row
            continue
        op, width = m.group(1), 16 if m.group(2) == "q" else 8
        if (kind == "load") != op.startswith("ld"):
            continue
        total += width * (2 if op in ("ldp", "stp") else 1)
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxx", default="aarch64-linux-gnu-g++")
    ap.add_argument("--mcpu", default="neoverse-n1,neoverse-v1,apple-m1")
    ap.add_argument("--mca", default="llvm-mca")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = os.path.join(tmp, "neon.s")
        subprocess.run([args.cxx, "-std=c++17", "-O3", "-DNDEBUG", "-ffp-contract=off", "-fno-math-errno",
                        "-fno-loop-interchange", "-DFASTSOFTMAX_AARCH64=1", "-I", os.path.join(ROOT, "csrc"),
                        "-I", os.path.join(ROOT, "csrc/include"), "-S",
                        os.path.join(ROOT, "csrc/kernels/neon/kernels_neon.cpp"), "-o", s], check=True)
        asm = open(s).read()
        funcs = functions(asm)
        names = list(funcs)
        demangled = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                                   check=True).stdout.splitlines()
        cpus = args.mcpu.split(",")
        print(f"{'pass':44s} {'elem/iter':>9s} " + " ".join(f"{c:>12s}" for c in cpus) + "   (cycles per element)")
        for label, frag, size, kind in PASSES:
            hits = [n for n, d in zip(names, demangled) if all(f in d for f in frag)]
            if not hits:
                print(f"{label:44s} (function not found)")
                continue
            loops = [hottest_loop(funcs[h]) for h in hits]
            body = max(loops, key=lambda b: sum(1 for l in b if re.match(r"^\s*f(mla|mul|add|sub)", l)))
            body = splice_calls(body, funcs)
            if body is None:
                print(f"{label:44s} (loop calls a library function: not estimated)")
                continue
            elems = bytes_moved(body, kind) / size
            if not body or elems == 0:
                print(f"{label:44s} (no loop found)")
                continue
            loop = os.path.join(tmp, "loop.s")
            with open(loop, "w") as f:
                f.write("\n".join(body) + "\n")
            cols = []
            for cpu in cpus:
                r = subprocess.run([args.mca, "-mtriple=aarch64", f"-mcpu={cpu}", "-iterations=200", loop],
                                   capture_output=True, text=True)
                m = re.search(r"Total Cycles:\s+(\d+)", r.stdout)
                cols.append(f"{int(m.group(1)) / 200 / elems:12.2f}" if m else f"{'n/a':>12s}")
            print(f"{label:44s} {elems:9.0f} " + " ".join(cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
