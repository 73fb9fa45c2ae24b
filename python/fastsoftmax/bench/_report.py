"""Presentation: the terminal table and summary, results.json, results.csv, softmax-throughput.png."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from typing import Any, Dict, Iterable, List, Optional

from . import _impls

PNG_NAME = "softmax-throughput.png"
TRAFFIC_MARK = {"real": " ", "effective": "*", "assumed": "~"}
_ALG_ORDER = _impls.ALGORITHMS + ("auto",)
#: Bytes per element of each dtype the harness runs (rows also carry bytes_per_elem; this is for the plot).
ITEMSIZE = _impls.ITEMSIZE
HALF_DTYPES = _impls.HALF_DTYPES
#: The half types' two-pass softmax should take at most this fraction of float32's time out of cache
#: (it moves half the bytes: 0.5x at the memory bound, plus the conversions).
HALF_VS_FLOAT32_TARGET = 0.6
#: On every batch shape (--suite models), auto should be at least this many times as fast as the
#: fastest peer, with one thread and with the default thread count.
MODELS_TARGET = 1.2


def fmt_n(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def fmt_bytes(b: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= scale:
            v = b / scale
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{int(b)} B"


def _g(v: Optional[float], width: int, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-".rjust(width)
    s = f"{v:.{digits}g}"
    if "e" in s:
        s = f"{v:.{max(digits - 2, 1)}f}"
    return s.rjust(width)


def short_label(impl: Any) -> str:
    return f"mem:{impl.algorithm}" if impl.kind == "roofline" else impl.label


def _short(row: Dict[str, Any]) -> str:
    if row["kind"] == "roofline":
        return f"mem:{row['algorithm']}"
    return row["impl"]


def _threads(cfg: Dict[str, Any]) -> List[int]:
    t = cfg.get("threads", 1)
    return [t] if isinstance(t, int) else list(t)


def _label_n(row: Dict[str, Any]) -> str:
    return row.get("shape") or fmt_n(row["n"])


def _single_row(row: Dict[str, Any]) -> bool:
    return row.get("rows", 1) == 1


# ---- terminal ----------------------------------------------------------------------------

def header(doc: Dict[str, Any]) -> str:
    m = doc["machine"]
    c = m["cache_sizes"]
    fd = doc["ftz_daz"]["after_loading_peers"]
    cfg = doc["config"]
    lines = [
        f"fastsoftmax-bench {doc['versions'].get('fastsoftmax')}: {m['cpu_brand']}",
        f"  caches ({c.get('source') or 'unknown'}): L1d {fmt_bytes(c['l1d'])}, L2 {fmt_bytes(c['l2'])}, "
        f"L3 {fmt_bytes(c['l3'])}; tiers: {', '.join(doc['tiers']) or 'none'} "
        f"(runnable: {', '.join(m['runnable_isas'])}); rooflines and input touch on {doc['roofline_isa']}",
        f"  threads {', '.join(str(t) for t in _threads(cfg))} (fastsoftmax threads= per call, "
        f"torch.set_num_threads, ORT intra_op_num_threads; numpy/scipy at 1 only); "
        f"FTZ={fd.get('ftz')} DAZ={fd.get('daz')}; "
        f"input {cfg['input']}; timing {'fastsoftmax.softmax()' if cfg['api'] == 'public' else '_core.run()'}; "
        f"output rotation up to {cfg['buffers'] or cfg['max_buffers']} buffers "
        f"(>= 2 x LLC {fmt_bytes(m['llc_bytes_used'])} when rows are large)",
    ]
    return "\n".join(lines)


def table(rows: List[Dict[str, Any]], show_op: bool = False, header: bool = True, label_width: int = 6) -> str:
    """One block of the terminal table (the rows of one N, dtype, op and thread count)."""
    cols = [("N", label_width), ("dtype", 8)] + ([("op", 11)] if show_op else []) + [
        ("t", 2), ("impl", 28), ("ns/elem", 8), ("min", 8), ("max", 8), ("Gelem/s", 8), ("GB/s", 8), ("x roof", 7)]
    impl_col = 4 if show_op else 3
    out = []
    if header:
        head = "  ".join(name.rjust(w) if i != impl_col else name.ljust(w) for i, (name, w) in enumerate(cols))
        out.append(head)
        out.append("-" * len(head))
    for r in rows:
        cells = [_label_n(r).rjust(label_width), r["dtype"].rjust(8)]
        if show_op:
            cells.append(r["op"].rjust(11))
        cells.append(str(r.get("threads", 1)).rjust(2))
        mark = TRAFFIC_MARK.get(r["traffic_model"], " ")
        flag = "" if r.get("validated") in (None, True) else " !"
        cells += [
            (_short(r) + flag).ljust(28),
            _g(r["ns_per_elem"], 8),
            _g(r["ns_per_elem_min"], 8),
            _g(r["ns_per_elem_max"], 8),
            _g(r["gelem_per_s"], 8),
            _g(r["gb_per_s"], 7) + mark,
            _g(r["x_roofline"], 7, 3),
        ]
        out.append("  ".join(cells))
    out.append("")
    return "\n".join(out)


def footer(doc: Dict[str, Any]) -> str:
    lines = [
        "GB/s: the algorithm's own traffic, write-allocate not counted; * effective (2R+1W minimum), "
        "~ assumed (ONNX Runtime as three-pass reload, 3R+2W); ! output failed validation",
        "x roof: time / time of the memory-only pattern with the same access pattern (mem:*) at the same thread "
        "count t (t slices at once; below 2^17 elements the one-thread pattern); peers: numpy/scipy vs "
        "mem:two-pass, torch/onnxruntime vs mem:three-pass-reload",
        "(new output): called without out=, a fresh result array per call (page faults); not counted as peers",
    ]
    if any(r["dtype"] in HALF_DTYPES for r in doc["rows"]):
        lines.append("validation: float32/float64 rows sum to 1 within 1e-3; float16/bfloat16 elements within 1 ulp "
                     "(fastsoftmax) or 8 ulp (peers) of the float64 reference rounded to the dtype")
    if doc["skipped"]:
        lines.append("skipped:")
        for s in doc["skipped"]:
            parts = [str(s[k]) for k in ("op", "dtype") if k in s]
            if "threads" in s:
                th = s["threads"]
                parts.append(f"t={','.join(map(str, th)) if isinstance(th, list) else th}")
            if "n" in s:
                parts.append(f"N={s['n'] if isinstance(s['n'], str) else fmt_n(s['n'])}")
            where = " ".join(parts)
            lines.append(f"  {s['impl']}{' (' + where + ')' if where else ''}: {s['reason']}")
    missing = doc.get("missing_peers") or []
    if missing:
        from ._impls import install_command
        lines.append(f"peers not measured (not installed): {', '.join(missing)}; add them with: "
                     f"{install_command(missing)}")
    bad = [r for r in doc["rows"] if r.get("validated") is False]
    for r in bad:
        what = "WARNING" if r["kind"] == "fastsoftmax" else "peer result off"
        lines.append(f"{what}: {r['impl']} N={_label_n(r)} {r['dtype']} {r['op']} t={r.get('threads', 1)}: "
                     f"{r['validation_error']}")
    lines.append("")
    for s in doc.get("summary", []):
        lines.extend(s["text"])
    for s in doc.get("scaling", []):
        lines.append("")
        lines.extend(s["text"])
    lines.append(f"wall time: {doc['wall_time_s']:.1f} s")
    return "\n".join(lines)


# ---- analysis ------------------------------------------------------------------------------

def add_ratios(block: List[Dict[str, Any]], fallback: Optional[Dict[str, float]] = None) -> None:
    """Fill roofline_ns and x_roofline of one (N, dtype, op, threads) block from its pattern rows.

    `fallback` (pattern -> median ns, measured on one thread) serves a block without pattern
    rows: t-thread rows of calls too small to split are compared with the one-thread bound.
    """
    pat = {r["algorithm"]: (r["median_ns"], r.get("pattern_threads", 1)) for r in block if r["kind"] == "roofline"}
    if not pat and fallback:
        pat = {k: (v, 1) for k, v in fallback.items()}
    for r in block:
        p = r.get("roofline_pattern")
        if p and p in pat:
            r["roofline_ns"], r["roofline_threads"] = pat[p]
            r["x_roofline"] = r["median_ns"] / pat[p][0]


def _is_peer(r: Dict[str, Any]) -> bool:
    """A peer in the 'best peer' comparisons: the allocating (new output) rows are not."""
    return r["kind"] == "peer" and not r.get("fresh_output")


def _tier_of(grp: List[Dict[str, Any]], tiers: List[str]) -> Optional[str]:
    """The best measured tier (priority order of the build: avx512, avx2, scalar)."""
    from .. import _core

    order = {t: i for i, t in enumerate(_core.compiled_isas())}
    ranked = sorted(tiers, key=lambda t: order.get(t, len(order)))
    return next((t for t in ranked if any(r["isa"] == t and r["kind"] == "fastsoftmax" and not r.get("fresh_output")
                                          for r in grp)), None)


def summary(rows: List[Dict[str, Any]], tiers: List[str]) -> List[Dict[str, Any]]:
    """Per (op, dtype, threads), over the single-row sizes: two-pass against the best three-pass and
    the best peer at the largest N, auto against the fastest peer at every N, and the cost of a
    fresh output array (the "(new output)" rows) at the largest N."""
    out = []
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        if _single_row(r):
            groups.setdefault((r["op"], r["dtype"], r.get("threads", 1)), []).append(r)
    several = len({k[2] for k in groups}) > 1
    for (op, dtype, threads), grp in groups.items():
        tier = _tier_of(grp, tiers)
        n = max(r["n"] for r in grp)
        at_n = [r for r in grp if r["n"] == n]

        def find(alg, rows_=at_n, tier_=tier):
            return next((r for r in rows_ if r["kind"] == "fastsoftmax" and r["algorithm"] == alg
                         and r["isa"] == tier_ and not r.get("fresh_output")), None)

        item: Dict[str, Any] = {"op": op, "dtype": dtype, "threads": threads, "n": n, "isa": tier, "text": []}
        two = find("two-pass")
        three = [r for r in (find("three-pass-reload"), find("three-pass-recompute")) if r]
        peers = [r for r in at_n if _is_peer(r)]
        where = f"at N={fmt_n(n)} ({dtype} {op}, {tier}" + (f", {threads} thread{'s' if threads > 1 else ''})"
                                                          if several or threads > 1 else ")")
        if two:
            parts = []
            if three:
                best3 = min(three, key=lambda r: r["median_ns"])
                item["best_three_pass"] = best3["impl"]
                item["two_pass_vs_best_three_pass"] = best3["median_ns"] / two["median_ns"]
                parts.append(f"two-pass vs best three-pass {where}: "
                             f"{item['two_pass_vs_best_three_pass']:.2f}x ({best3['algorithm']})")
            if peers:
                bestp = min(peers, key=lambda r: r["median_ns"])
                item["best_peer"] = bestp["impl"]
                item["two_pass_vs_best_peer"] = bestp["median_ns"] / two["median_ns"]
                parts.append(("" if parts else f"two-pass {where} ")
                             + f"vs best peer ({bestp['impl']}): {item['two_pass_vs_best_peer']:.2f}x")
            if parts:
                item["text"].append("; ".join(parts))
            if two.get("x_roofline") is not None:
                item["two_pass_x_roofline"] = two["x_roofline"]
                extra = ""
                if three:
                    best3 = min(three, key=lambda r: r["median_ns"])
                    if best3.get("x_roofline") is not None:
                        extra = f"; {best3['algorithm']} at {best3['x_roofline']:.2f}x of its own"
                rt = two.get("roofline_threads") or 1
                item["text"].append(f"  two-pass at {two['x_roofline']:.2f}x of its memory-only bound "
                                    f"(mem:two-pass{f' on {rt} threads' if rt > 1 else ''} "
                                    f"{two['roofline_ns'] / n:.3g} ns/elem){extra}")
        # auto against the fastest peer at every N
        worst = None
        for size in sorted({r["n"] for r in grp}):
            auto = find("auto", [r for r in grp if r["n"] == size])
            ps = [r for r in grp if r["n"] == size and _is_peer(r)]
            if auto and ps:
                bestp = min(ps, key=lambda r: r["median_ns"])
                sp = bestp["median_ns"] / auto["median_ns"]
                if worst is None or sp < worst[0]:
                    worst = (sp, size, bestp["impl"])
        if worst:
            item["auto_min_vs_fastest_peer"] = worst[0]
            item["auto_min_vs_fastest_peer_n"] = worst[1]
            item["auto_min_vs_fastest_peer_impl"] = worst[2]
            item["text"].append(f"  auto vs the fastest peer at every N: at least {worst[0]:.2f}x "
                                f"(the closest: {worst[2]} at N={fmt_n(worst[1])})")
        # a fresh output array per call (labelled: not part of the peer comparisons above)
        new = next((r for r in at_n if r["kind"] == "fastsoftmax" and r.get("fresh_output")), None)
        tnew = next((r for r in at_n if r["kind"] == "peer" and r.get("fresh_output")), None)
        if new or tnew:
            fresh: Dict[str, Any] = {}
            parts = []
            auto = find("auto")
            if new:
                fresh["auto_new_ns_per_elem"] = new["ns_per_elem"]
                txt = f"auto (new output) {new['ns_per_elem']:.3g} ns/elem"
                if auto:
                    fresh["auto_new_minus_out_ns_per_elem"] = new["ns_per_elem"] - auto["ns_per_elem"]
                    txt += f" ({fresh['auto_new_minus_out_ns_per_elem']:+.3g} vs out=)"
                parts.append(txt)
            if tnew:
                fresh["torch_new_ns_per_elem"] = tnew["ns_per_elem"]
                torch_out = next((r for r in at_n if r["impl"] == "torch" and _is_peer(r)), None)
                txt = f"torch (new output) {tnew['ns_per_elem']:.3g} ns/elem"
                if torch_out:
                    fresh["torch_new_minus_out_ns_per_elem"] = tnew["ns_per_elem"] - torch_out["ns_per_elem"]
                    txt += f" ({fresh['torch_new_minus_out_ns_per_elem']:+.3g} vs out=)"
                parts.append(txt)
            if new and tnew:
                fresh["auto_new_vs_torch_new"] = tnew["median_ns"] / new["median_ns"]
                parts.append(f"auto (new output) vs torch (new output): {fresh['auto_new_vs_torch_new']:.2f}x")
            item["new_output"] = fresh
            item["text"].append("  fresh output per call: " + "; ".join(parts))
        if item["text"]:
            out.append(item)
    return out


def _best_common_tier(a: List[Dict[str, Any]], b: List[Dict[str, Any]], tiers: List[str],
                      alg: str = "two-pass") -> Optional[str]:
    """The best tier (build priority order) with an `alg` row in both groups."""
    from .. import _core

    order = {t: i for i, t in enumerate(_core.compiled_isas())}

    def has(grp, t):
        return any(r["kind"] == "fastsoftmax" and r["algorithm"] == alg and r["isa"] == t and not r.get("fresh_output")
                   for r in grp)

    return next((t for t in sorted(tiers, key=lambda t: order.get(t, len(order))) if has(a, t) and has(b, t)), None)


def dtype_summary(rows: List[Dict[str, Any]], tiers: List[str]) -> List[Dict[str, Any]]:
    """Per (op, threads) with float32 and a half type in the run: at the largest single-row N both
    have, the half type's two-pass time relative to float32's two-pass (target: at most
    HALF_VS_FLOAT32_TARGET) and relative to its own memory-only two-pass pattern (its roofline)."""
    out: List[Dict[str, Any]] = []
    singles = [r for r in rows if _single_row(r)]
    several = len({r.get("threads", 1) for r in singles}) > 1
    for op, threads in sorted({(r["op"], r.get("threads", 1)) for r in singles}):
        grp = [r for r in singles if r["op"] == op and r.get("threads", 1) == threads]
        f32 = [r for r in grp if r["dtype"] == "float32"]
        for half in HALF_DTYPES:
            h = [r for r in grp if r["dtype"] == half]
            if not f32 or not h:
                continue
            tier = _best_common_tier(h, f32, tiers)
            if tier is None:
                continue

            def two_pass(grp_, n=None, tier_=tier):
                return [r for r in grp_ if r["kind"] == "fastsoftmax" and r["algorithm"] == "two-pass"
                        and r["isa"] == tier_ and not r.get("fresh_output") and (n is None or r["n"] == n)]

            common = {r["n"] for r in two_pass(h)} & {r["n"] for r in two_pass(f32)}
            if not common:
                continue
            n = max(common)
            th, tf = two_pass(h, n)[0], two_pass(f32, n)[0]
            ratio = th["median_ns"] / tf["median_ns"]
            met = ratio <= HALF_VS_FLOAT32_TARGET
            item: Dict[str, Any] = {
                "comparison": "half_vs_float32", "op": op, "dtype": half, "vs_dtype": "float32", "threads": threads,
                "n": n, "isa": tier, "two_pass_ns_per_elem": th["ns_per_elem"],
                "float32_two_pass_ns_per_elem": tf["ns_per_elem"], "two_pass_vs_float32": ratio,
                "target": HALF_VS_FLOAT32_TARGET, "target_met": met,
                "two_pass_x_roofline": th.get("x_roofline"), "float32_two_pass_x_roofline": tf.get("x_roofline"),
                "text": [],
            }
            where = f"at N={fmt_n(n)} ({op}, {tier}" + (f", {threads} thread{'s' if threads > 1 else ''})"
                                                         if several or threads > 1 else ")")
            item["text"].append(
                f"{half} two-pass vs float32 two-pass {where}: {ratio:.2f}x the time ({th['ns_per_elem']:.3g} vs "
                f"{tf['ns_per_elem']:.3g} ns/elem; target <= {HALF_VS_FLOAT32_TARGET:.1f}x: "
                f"{'met' if met else 'NOT met'})")
            if th.get("x_roofline") is not None:
                rt = th.get("roofline_threads") or 1
                item["roofline_ns_per_elem"] = th["roofline_ns"] / n
                extra = (f"; float32 two-pass at {tf['x_roofline']:.2f}x of its own"
                         if tf.get("x_roofline") is not None else "")
                item["text"].append(f"  {half} two-pass at {th['x_roofline']:.2f}x of its memory-only bound "
                                    f"(mem:two-pass {half}{f' on {rt} threads' if rt > 1 else ''} "
                                    f"{item['roofline_ns_per_elem']:.3g} ns/elem){extra}")
            out.append(item)
    return out


def default_threads_summary(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The library's default thread count against one thread: 'auto (default threads)' over
    'auto@<its tier>' at threads=1, measured in the same interleaved rounds, for every N and
    shape; the worst ratio."""
    from ._impls import DEFAULT_THREADS_LABEL

    one = {(_label_n(r), r["dtype"], r["op"], r.get("isa")): r for r in rows
           if r["kind"] == "fastsoftmax" and r.get("algorithm") == "auto" and r.get("threads", 1) == 1
           and r["impl"] == f"auto@{r.get('isa')}"}
    pairs = []
    for r in rows:
        if r["impl"] != DEFAULT_THREADS_LABEL:
            continue
        base = one.get((_label_n(r), r["dtype"], r["op"], r.get("isa")))
        if base and base.get("median_ns") and r.get("median_ns"):
            pairs.append((r["median_ns"] / base["median_ns"], r, base))
    if not pairs:
        return []
    worst, r, _ = max(pairs, key=lambda p: p[0])
    best = min(p[0] for p in pairs)
    default = r.get("default_threads") or r.get("extra", {}).get("default_threads")
    text = [f"default threads ({default}) vs one thread: worst ratio {worst:.2f}x at N={_label_n(r)} "
            f"({r['dtype']} {r['op']}), best {best:.2f}x, over {len(pairs)} sizes and shapes "
            f"(time with the default / time with threads=1, same rounds)"]
    return [{"kind": "default_threads", "worst_ratio": worst, "best_ratio": best, "at": _label_n(r),
             "dtype": r["dtype"], "op": r["op"], "default_threads": default, "pairs": len(pairs), "text": text,
             "ratios": [{"n": _label_n(b), "dtype": b["dtype"], "op": b["op"], "ratio": q} for q, _, b in pairs]}]


def shapes_summary(rows: List[Dict[str, Any]], tiers: List[str]) -> List[Dict[str, Any]]:
    """Per (dtype, op), with one thread and with the library's default thread count: over every
    shape given as a shape (batches, attention blocks, (1, V) rows), the fastest peer's time over auto's (auto on the best measured tier at
    threads=1; 'auto (default threads)' against the peers at that many threads); the worst
    shape against MODELS_TARGET."""
    from ._impls import DEFAULT_THREADS_LABEL

    batch = [r for r in rows if "x" in (r.get("shape") or "")]  # the shapes, (1, V) included
    out: List[Dict[str, Any]] = []
    for dtype, op in sorted({(r["dtype"], r["op"]) for r in batch}):
        grp = [r for r in batch if r["dtype"] == dtype and r["op"] == op]
        tier = _tier_of(grp, tiers)
        default = next((r.get("default_threads") for r in grp if r["impl"] == DEFAULT_THREADS_LABEL), None)
        settings = [("one thread", 1, f"auto@{tier}")]
        if default:
            settings.append((f"default threads ({default})", default, DEFAULT_THREADS_LABEL))
        for setting, t, auto_label in settings:
            pairs = []
            for shape in dict.fromkeys(_label_n(r) for r in grp):
                auto = [r for r in grp if _label_n(r) == shape and r["impl"] == auto_label
                        and (auto_label == DEFAULT_THREADS_LABEL or r.get("threads", 1) == 1)]
                peers = [r for r in grp if _label_n(r) == shape and _is_peer(r) and r.get("threads", 1) == t
                         and r.get("median_ns")]
                if auto and peers and auto[0].get("median_ns"):
                    best = min(peers, key=lambda r: r["median_ns"])
                    pairs.append((best["median_ns"] / auto[0]["median_ns"], shape, best["impl"], auto[0], best))
            if not pairs:
                continue
            worst = min(pairs, key=lambda p: p[0])
            met = sum(1 for p in pairs if p[0] >= MODELS_TARGET)
            text = [f"{dtype} {op}, {setting}: auto vs the fastest peer over {len(pairs)} shapes: worst "
                    f"{worst[0]:.2f}x at {worst[1]} (vs {worst[2]}), best {max(p[0] for p in pairs):.2f}x; "
                    f"target >= {MODELS_TARGET:.1f}x on every shape: "
                    f"{'met' if met == len(pairs) else f'NOT met ({met} of {len(pairs)})'}"]
            out.append({"comparison": "shapes_vs_peers", "dtype": dtype, "op": op, "setting": setting,
                        "threads": t, "isa": tier, "worst_ratio": worst[0], "worst_shape": worst[1],
                        "worst_peer": worst[2], "target": MODELS_TARGET, "shapes_met": met, "shapes": len(pairs),
                        "ratios": [{"shape": p[1], "peer": p[2], "ratio": p[0],
                                    "auto_ns_per_elem": p[3]["ns_per_elem"], "peer_ns_per_elem": p[4]["ns_per_elem"]}
                                   for p in pairs],
                        "text": text})
    return out


def _scaling_order(r: Dict[str, Any]) -> tuple:
    kind = {"roofline": 0, "fastsoftmax": 1, "peer": 2}.get(r["kind"], 3)
    alg = r.get("algorithm") or r["impl"]
    if r["kind"] == "roofline":
        sub = _impls.PATTERNS.index(alg) if alg in _impls.PATTERNS else 9
    else:
        sub = _ALG_ORDER.index(alg) if alg in _ALG_ORDER else 9
    return (kind, 1 if r.get("fresh_output") else 0, sub, r["impl"])


def scaling(rows: List[Dict[str, Any]], tiers: List[str], threads: List[int]) -> List[Dict[str, Any]]:
    """Per (op, dtype) for the largest single-row N and every batch shape: ns/elem of each
    implementation at each thread count, speedup over the smallest count, and the fraction of
    that count's memory roofline reached (roofline time / time)."""
    ts = sorted(set(threads))
    base = ts[0]
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["op"], r["dtype"]), []).append(r)
    out: List[Dict[str, Any]] = []
    for (op, dtype), grp in groups.items():
        tier = _tier_of(grp, tiers)
        singles = [r for r in grp if _single_row(r)]
        cases = []
        if singles:
            n = max(r["n"] for r in singles)
            cases.append([r for r in singles if r["n"] == n])
        for shape in dict.fromkeys(r["shape"] for r in grp if not _single_row(r)):
            cases.append([r for r in grp if r["shape"] == shape])
        for case in cases:
            r0 = case[0]
            by_impl: Dict[str, Dict[int, Dict[str, Any]]] = {}
            first: Dict[str, Dict[str, Any]] = {}
            for r in case:
                if r["kind"] == "fastsoftmax" and r["isa"] != tier:
                    continue
                if r["kind"] == "roofline" and r.get("pattern_threads", 1) != r.get("threads", 1):
                    continue  # an unsplit pattern filed under t > 1: not a t-thread measurement
                by_impl.setdefault(r["impl"], {})[r.get("threads", 1)] = r
                first.setdefault(r["impl"], r)
            entries = []
            for impl in sorted(by_impl, key=lambda k: _scaling_order(first[k])):
                per_t = by_impl[impl]
                ns = [per_t[t]["ns_per_elem"] if t in per_t else None for t in ts]
                b = per_t.get(base)
                speed = [(b["median_ns"] / per_t[t]["median_ns"]) if (b and t in per_t) else None for t in ts]
                frac = [(per_t[t]["roofline_ns"] / per_t[t]["median_ns"])
                        if t in per_t and per_t[t].get("roofline_ns") else None for t in ts]
                rt = [per_t[t].get("roofline_threads") if t in per_t else None for t in ts]
                e0 = first[impl]
                entries.append({"impl": impl, "kind": e0["kind"], "algorithm": e0.get("algorithm"),
                                "fresh_output": bool(e0.get("fresh_output")),
                                "roofline_pattern": e0.get("roofline_pattern"),
                                "ns_per_elem": ns, "speedup": speed, "roofline_fraction": frac,
                                "roofline_threads": rt})
            label = _label_n(r0)
            item = {"op": op, "dtype": dtype, "shape": label, "n": r0["n"], "rows": r0.get("rows", 1),
                    "elements": r0.get("elements", r0["n"]), "isa": tier, "threads": ts, "base_threads": base,
                    "entries": entries}
            item["text"] = _scaling_text(item)
            out.append(item)
    return out


def _scaling_text(item: Dict[str, Any]) -> List[str]:
    ts = item["threads"]
    base = item["base_threads"]
    more = [t for t in ts if t != base]
    what = f"N={item['shape']}" if item["rows"] == 1 else f"shape {item['shape']} (rows x N)"
    lines = [f"scaling at {what}, {item['dtype']} {item['op']}, {item['isa']}: ns/elem at t threads; speedup = "
             f"time at t={base} / time at t; roof = fraction of the t-thread memory roofline reached "
             f"(roofline time / time; 100% = at the bound)"]
    w_ns, w_sp, w_fr = 8, 8, 7
    g1 = "ns/elem".center(w_ns * len(ts))
    g2 = "speedup".center(w_sp * len(more)) if more else ""
    g3 = "roof".center(w_fr * len(ts))
    lines.append(f"  {'':<28}{g1}  {g2}  {g3}")
    lines.append(f"  {'impl':<28}" + "".join(f"t={t}".rjust(w_ns) for t in ts) + "  "
                 + "".join(f"t={t}".rjust(w_sp) for t in more) + "  "
                 + "".join(f"t={t}".rjust(w_fr) for t in ts))
    for e in item["entries"]:
        label = f"mem:{e['algorithm']}" if e["kind"] == "roofline" else e["impl"]
        ns = "".join(_g(v, w_ns) for v in e["ns_per_elem"])
        sp = "".join(("-" if v is None else f"{v:.2f}x").rjust(w_sp)
                     for t, v in zip(ts, e["speedup"]) if t != base)
        fr = "".join(("-" if v is None else f"{100 * v:.0f}%").rjust(w_fr) for v in e["roofline_fraction"])
        note = ""
        if any(v is None for v in e["ns_per_elem"]):
            note = "  (single-threaded: t=1 only)" if e["kind"] == "peer" else ""
        lines.append(f"  {label:<28}{ns}  {sp}  {fr}{note}")
    unsplit = sorted({t for e in item["entries"] for t, rt in zip(ts, e["roofline_threads"])
                      if rt is not None and rt != t})
    if unsplit:
        lines.append(f"  (t={','.join(map(str, unsplit))}: under 2^17 elements the patterns are not split (fastsoftmax's small calls stay on one thread); "
                     f"roof is against the one-thread patterns)")
    return lines


# ---- files ---------------------------------------------------------------------------------

def write_outputs(doc: Dict[str, Any], out_dir: str, plot: bool = True) -> Dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv")}
    with open(paths["json"], "w") as f:
        json.dump(doc, f, indent=1, default=str)
        f.write("\n")
    write_csv(doc, paths["csv"])
    if plot:
        png = os.path.join(out_dir, PNG_NAME)
        try:
            plot_throughput(doc, png)
            paths["png"] = png
        except ImportError as e:
            print(f"no plot: matplotlib is not importable ({e}); pip install 'fastsoftmax[bench]'", file=sys.stderr)
    return paths


_CSV_CONTEXT = ("cpu_brand", "active_isa", "timestamp")


def write_csv(doc: Dict[str, Any], path: str) -> None:
    rows = doc["rows"]
    keys: List[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    context = {"cpu_brand": doc["machine"]["cpu_brand"], "active_isa": doc["machine"]["active_isa"],
               "timestamp": doc["timestamp"]}
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys + list(_CSV_CONTEXT))
        w.writeheader()
        for r in rows:
            w.writerow({**r, **context})


_COLORS = {
    "two-pass": "tab:red", "online": "tab:purple", "three-pass-reload": "tab:blue",
    "three-pass-recompute": "tab:green", "auto": "black", "read": "0.55", "copy": "0.35",
    "numpy": "tab:olive", "scipy": "tab:brown", "torch": "tab:orange", "onnxruntime": "tab:cyan",
}
_TIER_MARKERS = ["o", "s", "^", "v", "D"]


def _series(rows: Iterable[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    s: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        s.setdefault(r["impl"], []).append(r)
    for v in s.values():
        v.sort(key=lambda r: r["n"])
    return s


def plot_throughput(doc: Dict[str, Any], path: str) -> None:
    """Throughput against N (single rows; batch shapes are in the table only): one panel per
    (op, dtype) and thread count, the thread counts side by side on a shared y axis."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    rows = [r for r in doc["rows"] if _single_row(r)]
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["op"], r["dtype"]), []).append(r)
    if not groups:
        return
    threads = sorted({r.get("threads", 1) for r in rows})
    tiers = doc["tiers"]
    caches = doc["machine"]["cache_sizes"]
    ncols = len(threads)
    size = (3.0 + (9.5 if ncols == 1 else 8.2) * ncols, 6.4 * len(groups))
    fig, axes = plt.subplots(len(groups), ncols, figsize=size, squeeze=False, sharey="row")
    handles: Dict[str, Any] = {}
    for gi, ((op, dtype), grp_all) in enumerate(groups.items()):
        itemsize = ITEMSIZE.get(dtype) or next((r["bytes_per_elem"] // max(1, r["reads"] + r["writes"])
                                                 for r in grp_all if r.get("bytes_per_elem")), 4)
        for ti, t in enumerate(threads):
            ax = axes[gi, ti]
            grp = [r for r in grp_all if r.get("threads", 1) == t]
            if t > 1:  # where the t-thread patterns were not split (small N), the rows' bound is the 1-thread one
                have = {(r["n"], r["algorithm"]) for r in grp if r["kind"] == "roofline"}
                grp += [r for r in grp_all if r.get("threads", 1) == threads[0] and r["kind"] == "roofline"
                        and (r["n"], r["algorithm"]) not in have]
            ns = sorted({r["n"] for r in grp_all})
            _plot_panel(ax, grp, tiers, handles)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            lo, hi = min(ns), max(ns)
            ax.set_xlim(lo / 1.3, hi * 1.3)
            ax.xaxis.set_major_locator(FixedLocator([2.0 ** k for k in range(int(math.log2(lo)),
                                                                             int(math.ceil(math.log2(hi))) + 1)]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"$2^{{{int(round(math.log2(v)))}}}$"))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.grid(True, which="major", alpha=0.3)
            ax.grid(True, which="minor", axis="y", alpha=0.12)
            ax.set_xlabel(f"N (elements per row, {dtype})")
            if ti == 0:
                ax.set_ylabel("throughput (G elements/s, higher is better)")
            where = "one thread" if t == 1 else f"{t} threads (rooflines: {t} slices at once)"
            ax.set_title(f"{op} {dtype}: {where}", fontsize=10.5)
            for name, key in (("L1d", "l1d"), ("L2", "l2"), ("L3", "l3")):
                size = int(caches.get(key) or 0)
                if size <= 0:
                    continue
                n_at = size / (2 * itemsize)  # input + output of one call fill the cache
                if lo / 1.3 <= n_at <= hi * 1.3:
                    ax.axvline(n_at, color="0.3", linestyle=":", linewidth=1.0)
                    ax.text(n_at, 0.985, f" {name} {fmt_bytes(size)}", transform=ax.get_xaxis_transform(),
                            rotation=90, va="top", ha="right", fontsize=8, color="0.25")
    labels = list(handles)
    width, height = fig.get_figwidth(), fig.get_figheight()
    legend_w = 3.0  # inches kept free on the right for the legend
    top = 1.0 - 0.75 / height
    fig.legend([handles[k] for k in labels], labels, loc="upper left", bbox_to_anchor=(1.0 - legend_w / width, top),
               fontsize=8, frameon=False)
    cpu = doc["machine"]["cpu_brand"]
    fig.suptitle(f"fastsoftmax-bench on {cpu} (tiers {', '.join(tiers)})\nhot input, rotating outputs (beyond the LLC "
                 f"for large N); dotted lines: L1d/L2/L3 = size of input + output", fontsize=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout(rect=(0, 0, 1.0 - legend_w / width, top))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_panel(ax, grp: List[Dict[str, Any]], tiers: List[str], handles: Dict[str, Any]) -> None:
    series = _series(grp)

    def order(item):
        r = item[1][0]
        kind = {"fastsoftmax": 0, "peer": 1, "roofline": 2}[r["kind"]]
        alg = r["algorithm"] or r["impl"]
        tier = tiers.index(r["isa"]) if r["isa"] in tiers and r["kind"] == "fastsoftmax" else 0
        return (kind, 1 if r.get("fresh_output") else 0, tier, _ALG_ORDER.index(alg) if alg in _ALG_ORDER else 9,
                r["impl"])

    for label, pts in sorted(series.items(), key=order):
        r0 = pts[0]
        xs = [p["n"] for p in pts]
        ys = [p["gelem_per_s"] for p in pts]
        if r0["kind"] == "roofline":
            color = _COLORS.get(r0["algorithm"], "0.5")
            key = f"memory-only {r0['algorithm']} (roofline)"
            (h,) = ax.plot(xs, ys, linestyle="--", color=color, linewidth=1.4, alpha=0.85, marker=".", markersize=4)
        elif r0.get("fresh_output"):
            base = "torch" if r0["kind"] == "peer" else "auto"
            key = label
            (h,) = ax.plot(xs, ys, linestyle=(0, (5, 2, 1, 2)), color=_COLORS.get(base), linewidth=1.3, marker="+",
                           markersize=7, alpha=0.9)
        elif r0["kind"] == "peer":
            key = f"{label} (peer)"
            (h,) = ax.plot(xs, ys, linestyle="-.", color=_COLORS.get(label, None), linewidth=1.8, marker="x",
                           markersize=6)
        else:
            t = tiers.index(r0["isa"]) if r0["isa"] in tiers else 0
            best = t == 0
            is_auto = r0["algorithm"] == "auto"
            key = label
            (h,) = ax.plot(xs, ys, linestyle=(0, (1, 1.5)) if is_auto else "-",
                           color=_COLORS.get(r0["algorithm"], None),
                           linewidth=(2.0 if is_auto else 2.4) if best else 1.2, alpha=1.0 if best else 0.55,
                           marker=_TIER_MARKERS[t % len(_TIER_MARKERS)], markersize=5 if best else 4)
        handles.setdefault(key, h)
