"""fastsoftmax-bench --op sample: runs, reports each filter beside softmax, summarizes
against the targets, writes its JSON; misuse is a usage error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastsoftmax.bench import _cli, _sample


def test_op_sample_runs_and_summarizes(tmp_path, capsys):
    rc = _cli.main(["--op", "sample", "--top-p", "0.9", "--top-k", "5", "--shape", "2x3000", "--dtype", "float32",
                    "--threads", "1", "--repeat", "2", "--rounds", "1", "--peers", "off", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "(2, 3000) float32" in out and "top_p=0.9" in out and "top_k=5" in out and "combined" in out
    summary = [line for line in out.splitlines() if line.startswith("summary float32 threads=1:")]
    assert len(summary) == 1 and "target <= 3x" in summary[0] and "target <= 2x" in summary[0]
    files = list(tmp_path.glob("sample-*.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    assert doc["op"] == "sample" and len(doc["rows"]) == 1
    case = doc["rows"][0]["cases"]["top_p=0.9"]
    assert case["sample_s"] > 0 and case["x_softmax"] == pytest.approx(case["sample_s"] / doc["rows"][0]["softmax_s"])


def test_op_sample_beside_torch():
    pytest.importorskip("torch")
    lines = []
    doc = _sample.run([(2, 2000)], ["float32"], [1], 0.9, None, None, repeat=1, rounds=1, echo=lines.append)
    c = doc["rows"][0]["cases"]["top_p=0.9"]
    assert c["torch_sort_s"] > 0 and c["torch_over_sample"] == pytest.approx(c["torch_sort_s"] / c["sample_s"])
    assert "faster than sort-based torch" in lines[-1]


def test_sort_based_reference_keeps_the_crossing_token():
    torch = pytest.importorskip("torch")
    x = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    gen = torch.Generator().manual_seed(0)
    drawn = {int(_sample.torch_sampler(torch, top_p=0.6)(x, gen)) for _ in range(200)}
    assert drawn == {0, 1}


def test_op_sample_peaked_logits(tmp_path, capsys):
    rc = _cli.main(["--op", "sample", "--top-p", "0.9", "--logits", "peaked", "--shape", "1x5000", "--dtype",
                    "float32", "--threads", "1", "--repeat", "1", "--rounds", "1", "--peers", "off", "--out",
                    str(tmp_path)])
    assert rc == 0
    assert "peaked logits" in capsys.readouterr().out
    doc = json.loads(next(tmp_path.glob("sample-*.json")).read_text())
    assert doc["logits"] == "peaked"
    # a few tokens hold most of the probability: 5 raised by 20..16 over a sigma-2.5 body
    x = _sample.logits((3, 5000), "float32", 0, "peaked").astype(np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.all(np.sort(p, axis=1)[:, -5:].sum(axis=1) > 0.9)
    llm = _sample.logits((3, 5000), "float32", 0)
    assert llm.dtype == np.float32 and not np.array_equal(llm, x.astype(np.float32))


@pytest.mark.parametrize("argv", [["--op", "sample"], ["--op", "sample", "--top-p", "1.5"],
                                  ["--op", "sample", "--top-k", "0"], ["--top-p", "0.9"],
                                  ["--op", "sample", "--top-p", "0.9", "--logits", "flat"], ["--logits", "peaked"]])
def test_op_sample_usage_errors(argv):
    with pytest.raises(SystemExit) as e:
        _cli.main(argv + ["--peers", "off", "--shape", "1x100"])
    assert e.value.code == 2
