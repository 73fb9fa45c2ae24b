"""Fail if AVX code leaked outside the ISA kernel files.

Disassembles the built extension and reports every function that uses ymm or zmm
registers but is not in the fastsoftmax::avx2, ::avx512 or ::avx512_bf16 namespace. Such a
function (say an inline helper instantiated in an AVX2 file and picked by the linker for
everybody) would crash the library on CPUs without AVX2.

Usage: python tools/check_isa_leaks.py [path/to/_core*.so]   (default: the installed one)
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys

ALLOWED = ("fastsoftmax::avx2::", "fastsoftmax::avx512::", "fastsoftmax::avx512_bf16::")
FUNC = re.compile(r"^[0-9a-f]+ <(.*)>:$")
WIDE = re.compile(r"%[yz]mm\d+")


def leaks(disassembly: str) -> dict:
    found: dict = {}
    func = None
    for line in disassembly.splitlines():
        m = FUNC.match(line)
        if m:
            func = m.group(1)
            continue
        if func is None or not WIDE.search(line):
            continue
        if not any(a in func for a in ALLOWED):
            found.setdefault(func, line.strip())
    return found


def main(argv: list) -> int:
    if len(argv) > 1:
        return max(check(path) for path in argv[1:])
    import fastsoftmax  # the installed extension and the C API library beside it

    return max(check(fastsoftmax._core.__file__), check(fastsoftmax.get_library()))


def check(path: str) -> int:
    objdump = shutil.which("objdump")
    if objdump is None:
        print("check_isa_leaks: objdump not found (install binutils)", file=sys.stderr)
        return 2
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", path], check=True,
                         capture_output=True, text=True).stdout
    nfuncs = sum(1 for line in out.splitlines() if FUNC.match(line))
    wide_ok = sum(1 for line in out.splitlines() if FUNC.match(line) and any(a in line for a in ALLOWED))
    bad = leaks(out)
    if bad:
        print(f"AVX instructions outside the ISA namespaces in {path}:")
        for func, insn in sorted(bad.items()):
            print(f"  {func}\n      e.g. {insn}")
        return 1
    if wide_ok == 0 and platform.machine().lower() in ("x86_64", "amd64"):
        print(f"check_isa_leaks: no fastsoftmax::avx2/avx512 functions found in {path}: was the SIMD tier built?")
        return 1
    print(f"check_isa_leaks: OK: {nfuncs} functions, {wide_ok} in ISA namespaces, no ymm/zmm use elsewhere ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
