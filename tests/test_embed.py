"""The C API: the example program built against the installed package, and a plain CMake
build (no Python) that installs and is found by find_package."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import fastsoftmax

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "embed"


def _cmake():
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed to build the C API example (pip install cmake)"
    return cmake


def _build_and_run_example(tmp_path, cmake_dir):
    build = tmp_path / "build-embed"
    subprocess.run([_cmake(), "-S", str(EXAMPLE), "-B", str(build), f"-Dfastsoftmax_DIR={cmake_dir}",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True, text=True)
    subprocess.run([_cmake(), "--build", str(build)], check=True, capture_output=True, text=True)
    exe = build / "embed_softmax"
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_installed_package_ships_header_library_and_config():
    assert (pathlib.Path(fastsoftmax.get_include()) / "fastsoftmax" / "fastsoftmax.h").is_file()
    assert (pathlib.Path(fastsoftmax.get_cmake_dir()) / "fastsoftmaxConfig.cmake").is_file()
    assert pathlib.Path(fastsoftmax.get_library()).is_file()


def test_header_is_plain_c(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to check the header"
    src = tmp_path / "check.c"
    src.write_text('#include <fastsoftmax/fastsoftmax.h>\nint main(void) { return fastsoftmax_get_num_threads() > 0 ? 0 : 1; }\n')
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-pedantic", "-fsyntax-only", f"-I{fastsoftmax.get_include()}",
                    str(src)], check=True)


def test_example_against_the_installed_package(tmp_path):
    out = _build_and_run_example(tmp_path, fastsoftmax.get_cmake_dir())
    assert "embed example: OK 256 rows" in out, out
    assert f"tier {fastsoftmax._core.active_isa()}" in out


def test_plain_cmake_build_installs_and_is_found(tmp_path):
    build, prefix = tmp_path / "build-lib", tmp_path / "prefix"
    subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(build), "-DFASTSOFTMAX_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DCMAKE_INSTALL_PREFIX={prefix}"], check=True, capture_output=True, text=True)
    subprocess.run([_cmake(), "--build", str(build), "--parallel", str(os.cpu_count() or 2)], check=True,
                   capture_output=True, text=True)
    subprocess.run([_cmake(), "--install", str(build)], check=True, capture_output=True, text=True)
    configs = list(prefix.glob("lib*/cmake/fastsoftmax/fastsoftmaxConfig.cmake"))
    assert len(configs) == 1, list(prefix.rglob("*"))
    assert (prefix / "include" / "fastsoftmax" / "fastsoftmax.h").is_file()
    out = _build_and_run_example(tmp_path, configs[0].parent)
    assert "embed example: OK 256 rows" in out, out
