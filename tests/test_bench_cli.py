"""fastsoftmax-bench's command line and packaging: --version, --help says how long a run
takes, the extras bring the peers, and the summary says which peers were skipped and the
one command that adds them. (The harness itself is exercised by running it.)"""

from __future__ import annotations

import io
import pathlib
import re
import subprocess
import sys

import pytest

import fastsoftmax
from fastsoftmax.bench import _impls, _report
from fastsoftmax.bench._cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = [sys.executable, "-m", "fastsoftmax.bench"]


def test_version():
    proc = subprocess.run(BENCH + ["--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fastsoftmax-bench (fastsoftmax {fastsoftmax.__version__})"


def test_help_says_how_long_the_runs_take():
    text = " ".join(build_parser().format_help().split())
    assert "--quick (the README's run) takes a few minutes" in text
    assert re.search(r"the default run without options .* about \d+ minutes where --quick takes one", text), text


def test_summary_names_the_missing_peers_and_the_command_that_adds_them():
    doc = {"rows": [], "skipped": [{"impl": "torch", "reason": "torch is not importable (No module named 'torch')"},
                                   {"impl": "onnxruntime", "reason": "onnxruntime is not importable (...)"}],
           "missing_peers": ["torch", "onnxruntime"], "wall_time_s": 1.0}
    text = _report.footer(doc)
    line = [s for s in text.splitlines() if s.startswith("peers not measured")]
    assert line == ["peers not measured (not installed): torch, onnxruntime; add them with: "
                    "pip install onnxruntime onnx torch"]
    doc["missing_peers"] = []
    assert "peers not measured" not in _report.footer(doc)


def test_missing_peer_is_recorded_by_the_runner(monkeypatch):
    """A peer whose load() skips lands in doc['missing_peers'] (what the footer reads)."""
    from fastsoftmax.bench import _runner
    from fastsoftmax.bench._cli import make_config

    def no_torch(self):
        raise _impls.Skip("torch is not importable (faked)")

    monkeypatch.setattr(_impls.TorchPeer, "load", no_torch)
    argv = ["--sizes", "1024", "--algorithms", "two-pass", "--isa", "active", "--peers", "torch",
            "--no-rooflines", "--no-new-output", "--no-default-threads", "--min-time", "0.001",
            "--rounds", "1", "--min-reps", "1", "--no-plot"]
    cfg = make_config(build_parser().parse_args(argv), argv)
    cfg.out_dir = None  # nothing written
    doc = _runner.run_benchmark(cfg, out=io.StringIO())
    assert doc["missing_peers"] == ["torch"]


def test_extras_bring_the_peers():
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("an installed copy of the tests without the source tree")
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    names = {extra: {re.split(r"[<>=\[ ;]", req)[0] for req in reqs} for extra, reqs in extras.items()}
    assert {"onnxruntime", "onnx"} <= names["bench"]  # what OrtPeer imports
    assert "torch" not in names["bench"] and "torch" in names["peers"]
    for peer, packages in _impls.PEER_PACKAGES.items():
        assert set(packages) <= names["bench"] | names["peers"], peer
