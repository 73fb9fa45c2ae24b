"""Presentation: the terminal table and summary, results.json, results.csv, softmax-throughput.png."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from typing import Any, Dict, Iterable, List, Optional

PNG_NAME = "softmax-throughput.png"
TRAFFIC_MARK = {"real": " ", "effective": "*", "assumed": "~"}
_ALG_ORDER = ("two-pass", "online", "three-pass-reload", "three-pass-recompute", "auto")


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


def _short_label(impl: Any) -> str:
    return f"mem:{impl.algorithm}" if impl.kind == "roofline" else impl.label


def _short(row: Dict[str, Any]) -> str:
    if row["kind"] == "roofline":
        return f"mem:{row['algorithm']}"
    return row["impl"]


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
        f"  fastsoftmax on one thread, peers pinned to {cfg['threads']} thread{'s' if cfg['threads'] > 1 else ''}; "
        f"FTZ={fd.get('ftz')} DAZ={fd.get('daz')}; "
        f"input {cfg['input']}; timing {'fastsoftmax.softmax()' if cfg['api'] == 'public' else '_core.run()'}; "
        f"output rotation up to {cfg['buffers'] or cfg['max_buffers']} buffers "
        f"(>= 2 x LLC {fmt_bytes(m['llc_bytes_used'])} when rows are large)",
    ]
    return "\n".join(lines)


def table(rows: List[Dict[str, Any]], show_op: bool = False, header: bool = True) -> str:
    """One block of the terminal table (the rows of one N, dtype and op)."""
    cols = [("N", 6), ("dtype", 7)] + ([("op", 11)] if show_op else []) + [
        ("impl", 28), ("ns/elem", 8), ("min", 8), ("max", 8), ("Gelem/s", 8), ("GB/s", 8), ("x roof", 7)]
    out = []
    if header:
        head = "  ".join(name.rjust(w) if i != (3 if show_op else 2) else name.ljust(w)
                         for i, (name, w) in enumerate(cols))
        out.append(head)
        out.append("-" * len(head))
    for r in rows:
        cells = [fmt_n(r["n"]).rjust(6), r["dtype"].rjust(7)]
        if show_op:
            cells.append(r["op"].rjust(11))
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
        "x roof: time / time of the memory-only pattern with the same access pattern (mem:*); peers: "
        "numpy/scipy vs mem:two-pass, torch/onnxruntime vs mem:three-pass-reload",
    ]
    if doc["skipped"]:
        lines.append("skipped:")
        for s in doc["skipped"]:
            where = " ".join(str(s[k]) for k in ("op", "dtype") if k in s)
            if "n" in s:
                where += f" N={fmt_n(s['n'])}"
            lines.append(f"  {s['impl']}{' (' + where + ')' if where else ''}: {s['reason']}")
    bad = [r for r in doc["rows"] if r.get("validated") is False]
    for r in bad:
        lines.append(f"WARNING: {r['impl']} N={fmt_n(r['n'])} {r['dtype']} {r['op']}: {r['validation_error']}")
    lines.append("")
    for s in doc.get("summary", []):
        lines.extend(s["text"])
    lines.append(f"wall time: {doc['wall_time_s']:.1f} s")
    return "\n".join(lines)


# ---- analysis ------------------------------------------------------------------------------

def add_ratios(block: List[Dict[str, Any]]) -> None:
    """Fill roofline_ns and x_roofline of one (N, dtype, op) block from its pattern rows."""
    pat = {r["algorithm"]: r["median_ns"] for r in block if r["kind"] == "roofline"}
    for r in block:
        p = r.get("roofline_pattern")
        if p and p in pat:
            r["roofline_ns"] = pat[p]
            r["x_roofline"] = r["median_ns"] / pat[p]


def summary(rows: List[Dict[str, Any]], tiers: List[str]) -> List[Dict[str, Any]]:
    """Per (op, dtype): speedup of two-pass over the best three-pass and the best peer at the largest N."""
    out = []
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["op"], r["dtype"]), []).append(r)
    for (op, dtype), grp in groups.items():
        tier = next((t for t in tiers if any(r["isa"] == t and r["kind"] == "fastsoftmax" for r in grp)), None)
        n = max(r["n"] for r in grp)
        at_n = [r for r in grp if r["n"] == n]

        def find(alg, rows_=at_n, tier_=tier):
            return next((r for r in rows_ if r["kind"] == "fastsoftmax" and r["algorithm"] == alg
                         and r["isa"] == tier_), None)

        item: Dict[str, Any] = {"op": op, "dtype": dtype, "n": n, "isa": tier, "text": []}
        two = find("two-pass")
        three = [r for r in (find("three-pass-reload"), find("three-pass-recompute")) if r]
        peers = [r for r in at_n if r["kind"] == "peer"]
        where = f"at N={fmt_n(n)} ({dtype} {op}, {tier})"
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
                item["text"].append(f"  two-pass at {two['x_roofline']:.2f}x of its memory-only bound "
                                    f"(mem:two-pass {two['roofline_ns'] / n:.3g} ns/elem){extra}")
        # auto against the fastest peer at every N
        worst = None
        for size in sorted({r["n"] for r in grp}):
            auto = find("auto", [r for r in grp if r["n"] == size])
            ps = [r for r in grp if r["n"] == size and r["kind"] == "peer"]
            if auto and ps:
                bestp = min(ps, key=lambda r: r["median_ns"])
                s = bestp["median_ns"] / auto["median_ns"]
                if worst is None or s < worst[0]:
                    worst = (s, size, bestp["impl"])
        if worst:
            item["auto_min_vs_fastest_peer"] = worst[0]
            item["auto_min_vs_fastest_peer_n"] = worst[1]
            item["text"].append(f"  auto vs the fastest peer at every N: at least {worst[0]:.2f}x "
                                f"(the closest: {worst[2]} at N={fmt_n(worst[1])})")
        if item["text"]:
            out.append(item)
    return out


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
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    rows = doc["rows"]
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["op"], r["dtype"]), []).append(r)
    if not groups:
        return
    tiers = doc["tiers"]
    caches = doc["machine"]["cache_sizes"]
    fig, axes = plt.subplots(len(groups), 1, figsize=(12.5, 5.6 * len(groups)), squeeze=False)
    for ax, ((op, dtype), grp) in zip(axes[:, 0], groups.items()):
        itemsize = 4 if dtype == "float32" else 8
        series = _series(grp)
        ns = sorted({r["n"] for r in grp})

        def order(item):
            r = item[1][0]
            kind = {"fastsoftmax": 0, "peer": 1, "roofline": 2}[r["kind"]]
            alg = r["algorithm"] or r["impl"]
            tier = tiers.index(r["isa"]) if r["isa"] in tiers and r["kind"] == "fastsoftmax" else 0
            return (kind, tier, _ALG_ORDER.index(alg) if alg in _ALG_ORDER else 9, r["impl"])

        for label, pts in sorted(series.items(), key=order):
            r0 = pts[0]
            xs = [p["n"] for p in pts]
            ys = [p["gelem_per_s"] for p in pts]
            if r0["kind"] == "roofline":
                color = _COLORS.get(r0["algorithm"], "0.5")
                ax.plot(xs, ys, linestyle="--", color=color, linewidth=1.4, alpha=0.85,
                        label=f"memory-only {r0['algorithm']} (roofline)")
            elif r0["kind"] == "peer":
                ax.plot(xs, ys, linestyle="-.", color=_COLORS.get(label, None), linewidth=1.8, marker="x",
                        markersize=6, label=f"{label} (peer)")
            else:
                t = tiers.index(r0["isa"]) if r0["isa"] in tiers else 0
                best = t == 0
                is_auto = r0["algorithm"] == "auto"
                ax.plot(xs, ys, linestyle=(0, (1, 1.5)) if is_auto else "-", color=_COLORS.get(r0["algorithm"], None),
                        linewidth=(2.0 if is_auto else 2.4) if best else 1.2, alpha=1.0 if best else 0.55,
                        marker=_TIER_MARKERS[t % len(_TIER_MARKERS)], markersize=5 if best else 4,
                        label=label)
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
        ax.set_ylabel("throughput (G elements/s, higher is better)")
        ax.set_title(f"{op} {dtype}: one thread, hot input, rotating outputs (beyond the LLC for large N)")
        for name, key, style in (("L1d", "l1d", ":"), ("L2", "l2", ":"), ("L3", "l3", ":")):
            size = int(caches.get(key) or 0)
            if size <= 0:
                continue
            n_at = size / (2 * itemsize)  # input + output of one call fill the cache
            if lo / 1.3 <= n_at <= hi * 1.3:
                ax.axvline(n_at, color="0.3", linestyle=style, linewidth=1.0)
                ax.text(n_at, 0.985, f" {name} {fmt_bytes(size)}", transform=ax.get_xaxis_transform(),
                        rotation=90, va="top", ha="right", fontsize=8, color="0.25")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    cpu = doc["machine"]["cpu_brand"]
    fig.suptitle(f"fastsoftmax-bench on {cpu} (tiers {', '.join(tiers)}); dotted lines: L1d/L2/L3 = size "
                 f"of input + output", fontsize=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
