#!/usr/bin/env bash
# Builds fastsoftmax with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) into a venv of
# its own and runs the whole test suite under them.
#
#   tools/sanitize.sh                 # build + full test suite
#   tools/sanitize.sh -k bad_input    # extra arguments go to pytest
#
# Environment: FASTSOFTMAX_SANITIZE (default address,undefined), SANITIZE_VENV (default
# $TMPDIR/fastsoftmax-sanitize-venv, created afresh), SANITIZE_REUSE=1 keeps an existing venv
# and its build (for iterating by hand).
#
# The Python interpreter is not instrumented, so the sanitizer runtimes are preloaded
# (LD_PRELOAD) into the test process only; pip and the build run normally.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

sanitizers="${FASTSOFTMAX_SANITIZE:-address,undefined}"
venv="${SANITIZE_VENV:-${TMPDIR:-/tmp}/fastsoftmax-sanitize-venv}"
build_dir="$venv/build"

if [[ "${SANITIZE_REUSE:-0}" != 1 || ! -x "$venv/bin/python" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi

echo "== sanitizer build (-fsanitize=$sanitizers)"
# A regular (non-editable) install, as CI's: the tests import the installed package.
# RelWithDebInfo: optimised as the release build, with line numbers in the reports.
"$venv/bin/python" -m pip install --quiet \
  -C "cmake.define.FASTSOFTMAX_SANITIZE=$sanitizers" \
  -C cmake.build-type=RelWithDebInfo \
  -C "build-dir=$build_dir" \
  "$repo[test]"

# The runtimes the extension was linked against, preloaded so that they come first.
preload=""
if [[ "$sanitizers" == *address* ]]; then preload="$(gcc -print-file-name=libasan.so)"; fi
if [[ "$sanitizers" == *undefined* ]]; then preload="$preload $(gcc -print-file-name=libubsan.so)"; fi
preload="${preload# }"
for lib in $preload; do
  [[ -f "$lib" ]] || { echo "sanitize.sh: runtime $lib not found (gcc -print-file-name)" >&2; exit 2; }
done
ldd "$(find "$venv/lib" -name '_core*.so' | head -1)" | grep -E 'libasan|libubsan' || {
  echo "sanitize.sh: the extension is not linked against the sanitizer runtime: not instrumented?" >&2
  exit 2
}

echo "== test suite under $sanitizers"
# detect_leaks=0: CPython keeps interned objects and arenas alive at exit by design.
# allocator_may_return_null=1: an allocation that cannot be satisfied returns NULL (NumPy
# then raises MemoryError, as the tests expect) instead of being reported as an error.
# halt_on_error / -fno-sanitize-recover: the first report aborts the run (non-zero exit).
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=1:detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# Tests that cannot run under a sanitizer (see tests/conftest.py) skip themselves.
export FASTSOFTMAX_SANITIZED="$sanitizers"
cd "$repo"
start=$(date +%s)
# --capture=sys: a sanitizer report is written to file descriptor 2 just before the process
# exits; pytest's default fd-level capture would swallow it with the dying process.
LD_PRELOAD="$preload" "$venv/bin/python" -m pytest -q -p no:cacheprovider --capture=sys "$@"
echo "== sanitizer test run passed in $(( $(date +%s) - start )) s"
