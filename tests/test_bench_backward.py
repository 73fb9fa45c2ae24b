"""fastsoftmax-bench --op softmax_backward,log_softmax_backward (bench/_backward.py): the rows
it times, the ratios it reports, and its argument errors. (Correctness, not speed.)"""

from __future__ import annotations

import json

import pytest

from fastsoftmax.bench import _backward
from fastsoftmax.bench._cli import main

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def test_backward_run_reports_every_row_and_ratio(tmp_path, capsys):
    rc = main(["--op", "softmax_backward,log_softmax_backward", "--sizes", "2^12", "--shape", "8x1000",
               "--threads", "1,2", "--min-time", "0.001", "--rounds", "1", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "backward-results.json").read_text())
    assert "failures" not in doc
    impls = {r["impl"] for r in doc["rows"]}
    want = {f"{op}: {k}" for op in _backward.BACKWARD_OPS for k in ("fastsoftmax", "memory-only pattern")}
    if HAVE_TORCH:
        want |= {f"{op}: torch" for op in _backward.BACKWARD_OPS}
        want |= {"softmax forward: fastsoftmax.torch", "softmax forward: fastsoftmax.softmax (NumPy, same memory)"}
    assert impls == want
    cases = {(tuple(r["shape"]), r["threads"]) for r in doc["rows"]}
    assert cases == {((1, 4096), 1), ((1, 4096), 2), ((8, 1000), 1), ((8, 1000), 2)}
    assert all(r["seconds"] > 0 and r["calls"] >= 1 for r in doc["rows"])
    items = [i for i in doc["summary"]["items"] if i["op"] in _backward.BACKWARD_OPS]
    assert len(items) == 8 and all(i["vs_pattern"] > 0 for i in items)
    if HAVE_TORCH:
        assert all(i["torch_over_ours"] > 0 for i in items)
    out = capsys.readouterr().out
    assert "the pattern" in out and "shape 8x1000 float32, threads=2" in out


def test_backward_run_refuses_other_dtypes_and_ops():
    with pytest.raises(SystemExit):
        main(["--op", "softmax_backward", "--dtype", "float64"])
    with pytest.raises(SystemExit):
        main(["--op", "softmax_backward,log_softmax"])
