#!/usr/bin/env bash
# The neon tier, tested on an x86-64 machine: cross-builds the C library for AArch64 (GCC),
# then runs tools/aarch64/test_kernels.cpp under qemu-aarch64 -- every registry kernel
# (neon and scalar) against a long-double/double reference with DESIGN.md's bounds, special
# values, misaligned rows, in place, bitwise identity across thread counts, and the C API.
# Installs what it needs from Debian's packages when missing (as root).
# Usage: tools/test_aarch64.sh [BUILD_DIR]   (default: a new directory under $TMPDIR, removed
# at exit). A BUILD_DIR configured from another checkout is emptied first.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
if [ $# -ge 1 ]; then
  build="$1"
  cache="$build/CMakeCache.txt"
  if [ -f "$cache" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$root" "$cache"; then
    echo "== $build was configured from another source tree: emptying it"
    rm -rf "$build"
  fi
else
  build="$(mktemp -d "${TMPDIR:-/tmp}/fastsoftmax-aarch64.XXXXXX")"
  trap 'rm -rf "$build"' EXIT
fi
sysroot=/usr/aarch64-linux-gnu

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v cmake >/dev/null || need+=(cmake)
if ((${#need[@]})); then
  echo "== installing ${need[*]} (apt-get)"
  if [ "$(id -u)" != 0 ]; then echo "test_aarch64.sh: need root to install ${need[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "== $(aarch64-linux-gnu-g++ --version | head -1); $(qemu-aarch64 --version | head -1)"

echo "== cross-building the C library for aarch64 in $build"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root" -B "$build" "${generator[@]}" -DFASTSOFTMAX_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ >/dev/null
cmake --build "$build" -j "$(nproc)" -- >/dev/null
# Release flags as the library's; the driver links the core (registry, run_rows) statically
# and the C API through libfastsoftmax.so.
aarch64-linux-gnu-g++ -std=c++17 -O2 -Wall -Wextra -ffp-contract=off -fno-math-errno \
  -DFASTSOFTMAX_AARCH64=1 -I"$root/csrc" -I"$root/csrc/include" \
  "$root/tools/aarch64/test_kernels.cpp" -o "$build/test_kernels" \
  "$build/libfastsoftmax_core.a" -L"$build" -lfastsoftmax -Wl,-rpath,"$build" -pthread

echo "== aarch64 symbols: neon kernels present"
nm -C "$build/libfastsoftmax.so" | grep -c "fastsoftmax::neon::" | sed 's/^/neon symbols in libfastsoftmax.so: /'

run() { qemu-aarch64 -L "$sysroot" "$@"; }
start=$(date +%s)
echo "== under qemu-aarch64: every kernel, special values, thread counts, C API (tier neon)"
run "$build/test_kernels" neon
echo "== under qemu-aarch64: FASTSOFTMAX_ISA=scalar caps the C API at the scalar tier"
FASTSOFTMAX_ISA=scalar run "$build/test_kernels" scalar --capi-only
echo "== test_aarch64.sh passed ($(( $(date +%s) - start )) s under emulation)"
