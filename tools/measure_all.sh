#!/usr/bin/env bash
# Everything issue 6 asks to be measured, on one machine, into one folder (in this order,
# each step under its own time limit so that a slow machine still returns what it got):
#   the machine, a build, the harness run of the README's Results section, the
#   measurements the harness does not make (tools/measure_extras.py), the test suite.
# Used for runs on a borrowed machine with the build tools and peers preinstalled:
#   bash tools/measure_all.sh OUTDIR [harness seconds] [test seconds]
# Writes OUTDIR/run.log and the harness's files under OUTDIR/bench_large/ and bench_small/.
set -uo pipefail
out="${1:?usage: measure_all.sh OUTDIR [harness seconds] [test seconds]}"
bench_s="${2:-300}"
test_s="${3:-75}"
mkdir -p "$out"
log="$out/run.log"
export PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
{
  step machine
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Socket|L1d|L2|L3|NUMA node0|Flags' | cut -c1-400
  free -g | head -2
  cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null
  "$py" -c "import sys, numpy; print(sys.version.split()[0], 'numpy', numpy.__version__)"
  "$py" -c "import torch; print('torch', torch.__version__)" 2>&1 | tail -1
  "$py" -c "import onnxruntime; print('onnxruntime', onnxruntime.__version__)" 2>&1 | tail -1

  step build
  if ! "$py" -m pip install --no-build-isolation --no-deps . > "$out/install.log" 2>&1; then
    tail -40 "$out/install.log"
    exit 1
  fi
  rm -f "$out/install.log"
  "$py" -c "import fastsoftmax; fastsoftmax.show_runtime()"

  # Out of cache first (targets 1 and 4), then the in-cache sizes and the batched shapes
  # (target 2 at every N, target 3): a run cut short still has the sizes that matter most.
  common=(--dtype float32,float64 --op softmax,log_softmax --isa active --rounds 2 --min-reps 5
          --min-time 0.1 --max-time 1.5 --no-progress)
  step "harness, out of cache (limit ${bench_s} s)"
  timeout "$bench_s" "$py" -m fastsoftmax.bench --sizes 2^22,2^24,2^26 "${common[@]}" --out "$out/bench_large"
  echo "harness exit: $?"
  step "harness, in cache and batched rows (limit 150 s)"
  timeout 150 "$py" -m fastsoftmax.bench --sizes 2^10,2^12,2^14,2^16,2^18,2^20 \
    --shape 4096x128 --shape 64x1000 "${common[@]}" --out "$out/bench_small"
  echo "harness exit: $?"

  step "small calls, batched rows, non-last axis, fresh output"
  timeout 120 "$py" tools/measure_extras.py
  echo "extras exit: $?"

  step "tests (limit ${test_s} s)"
  timeout "$test_s" "$py" -m pytest -q -p no:cacheprovider -x tests 2>&1 | tail -25
  echo "tests exit: $?"
  step done
} 2>&1 | tee "$log"
