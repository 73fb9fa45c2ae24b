"""Argument normalisation lives in one module (fastsoftmax._args): no module of the package
imports another's private helpers, and every public function names itself in its errors."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import fastsoftmax

PACKAGE = pathlib.Path(fastsoftmax.__file__).resolve().parent


def private_uses(path: pathlib.Path):
    """(line, what) for each `from .mod import _name` and `mod._name` where mod is a sibling
    module imported by `from . import mod` (or `from .. import mod`): private helpers of
    another module. The native module's names and dunders do not count."""
    tree = ast.parse(path.read_text())
    siblings = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            for alias in node.names:
                if node.module is None:  # from . import _stats [as s]
                    siblings.add(alias.asname or alias.name)
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, f"from {'.' * node.level}{node.module} import {alias.name}"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in siblings
                and node.value.id != "_core" and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_no_module_uses_another_modules_private_helpers():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 8
    bad = {str(p.relative_to(PACKAGE)): private_uses(p) for p in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"private helpers imported across modules: {bad}"


def test_the_checker_sees_private_imports(tmp_path):
    """The check above can fail: it finds both spellings."""
    p = tmp_path / "mod.py"
    p.write_text("from ._api import _cast, softmax\nfrom . import _stats as s\ns._lse(1)\ns.merge_stats\n")
    assert [w for _, w in private_uses(p)] == ["from ._api import _cast", "s._lse"]


@pytest.mark.parametrize("module", ["_api.py", "_stats.py", "dask.py"])
def test_the_argument_checks_come_from_args(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = [(n.module, [a.name for a in n.names]) for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.level == 1]
    assert any(mod is None and "_args" in names for mod, names in imported), imported
    # and none of the old copies is left
    source = (PACKAGE / module).read_text()
    for copy in ("def _normalize_axes", "def _check_out", "def _is_bfloat16", "def _cast", "def _check_isa",
                 "operator.index", "shares_memory(out, x)", "zero-size array to reduction"):
        assert copy not in source, f"{module} still has its own {copy!r}"


# ---- every function names itself ------------------------------------------------------------

def calls():
    s = fastsoftmax.softmax_stats(np.zeros((2, 3)))
    return {
        "softmax_stats": lambda x: fastsoftmax.softmax_stats(x),
        "softmax_from_stats": lambda x: fastsoftmax.softmax_from_stats(x, s),
        "log_softmax_from_stats": lambda x: fastsoftmax.log_softmax_from_stats(x, s),
        "logsumexp": lambda x: fastsoftmax.logsumexp(x),
    }


@pytest.mark.parametrize("op", sorted(calls()))
def test_statistics_errors_name_the_function_called(op):
    """softmax_stats and the *_from_stats used to say "softmax of a boolean array"."""
    fn = calls()[op]
    with pytest.raises(TypeError, match=f"^{op} needs real numbers"):
        fn(np.array([["a", "b", "c"]] * 2))
    with pytest.raises(TypeError, match=f"^{op} of complex input"):
        fn(np.ones((2, 3), complex))
    if op != "logsumexp":  # SciPy's logsumexp takes booleans (as float64); softmax does not
        with pytest.raises(TypeError, match=f"^{op} of a boolean array is not supported"):
            fn(np.ones((2, 3), bool))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_dask_errors_name_the_function_called(op):
    da = pytest.importorskip("dask.array")
    import fastsoftmax.dask

    fn = getattr(fastsoftmax.dask, op)
    with pytest.raises(TypeError, match=f"^{op} of a boolean array"):
        fn(da.ones((2, 3), dtype=bool, chunks=1))
    with pytest.raises(ValueError, match=rf"\({op} over an empty axis"):
        fn(da.ones((2, 0), chunks=1), axis=1)
