"""The version is written once and every artefact reports it; the type stub of the native
module names exactly what the module has."""

from __future__ import annotations

import ast
import ctypes
import importlib.metadata
import pathlib
import re

import fastsoftmax
from fastsoftmax import _core

PACKAGE = pathlib.Path(fastsoftmax.__file__).parent


def test_version_is_the_same_everywhere():
    text = (PACKAGE / "_version.py").read_text()
    (written,) = re.findall(r'^__version__ = "([0-9]+\.[0-9]+\.[0-9]+)"$', text, re.M)
    assert fastsoftmax.__version__ == written
    assert importlib.metadata.version("fastsoftmax") == written
    lib = ctypes.CDLL(fastsoftmax.get_library())
    lib.fastsoftmax_version.restype = ctypes.c_char_p
    assert lib.fastsoftmax_version().decode() == written


def test_version_is_written_in_one_source_file():
    root = pathlib.Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        return  # an installed copy of the tests without the source tree
    version = fastsoftmax.__version__
    holders = [p.relative_to(root).as_posix() for p in [root / "pyproject.toml", root / "CMakeLists.txt",
                                                        *(root / "python").rglob("*.py"), *(root / "csrc").rglob("*")]
               if p.is_file() and version in p.read_text(errors="replace")]
    assert holders == ["python/fastsoftmax/_version.py"]


def stub_names() -> set:
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_core_stub_names_exactly_the_module_public_names():
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert stub_names() == public
