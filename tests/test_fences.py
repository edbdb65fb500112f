"""The house's import fences (../shared/STYLE.md), checked on every module of the package.

The modules are found with ``pkgutil.walk_packages``, so a new module is fenced the day it is added: every module
except the torch engine imports without torch, every module except the Qt widget modules without Qt, the engine
without napari, and the package's modules import one another without a cycle. The import checks run in a fresh
interpreter each, so earlier imports cannot hide a leak; the cycle check reads the sources (imports inside
functions included), so it also sees the imports a module makes only when called.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pkgutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import napari_unet

QT = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari.qt", "magicgui")

# The torch engine: these modules, and every module inside them when they are packages.
ENGINE = (
    "napari_unet.model",
    "napari_unet.device",
    "napari_unet.checkpoint",
    "napari_unet.bioimageio",
    "napari_unet.predict",
    "napari_unet.train",
)
# The only modules that may import Qt (magicgui, napari.qt): the widgets and their Qt helpers. The widgets' worker
# jobs (_jobs, _train_job, _segment_job) are not among them: they run, and are tested, without Qt.
QT_WIDGETS = (
    "napari_unet._widgets.train",
    "napari_unet._widgets.segment",
    "napari_unet._widgets._runner",
    "napari_unet._widgets._plot",
    "napari_unet._widgets._layers",
    "napari_unet._widgets._train_controls",
    "napari_unet._widgets._dock",
    "napari_unet._widgets._objects_controls",
    "napari_unet._widgets._next_slices",
    "napari_unet._widgets._segment_layers",
)


def _raise(name: str) -> None:
    raise  # walk_packages calls this inside its ``except``: a package that fails to import fails the test


def _walk() -> list[tuple[str, bool]]:
    """(name, is_package) of napari_unet and every module below it."""
    found = pkgutil.walk_packages(napari_unet.__path__, "napari_unet.", onerror=_raise)
    return [("napari_unet", True)] + sorted((info.name, info.ispkg) for info in found)


MODULES = [name for name, _ in _walk()]


def _in(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


ENGINE_MODULES = [m for m in MODULES if _in(m, ENGINE)]
LIGHT_MODULES = [m for m in MODULES if not _in(m, ENGINE) and m not in QT_WIDGETS]


@cache
def _loaded_after_import(module: str) -> frozenset[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return frozenset(json.loads(out.stdout.strip().splitlines()[-1]))


def _hits(loaded: frozenset[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if _in(m, roots))


def test_the_fence_lists_name_existing_modules():
    """A renamed or removed module must leave the lists above too (else its replacement is not fenced)."""
    assert set(QT_WIDGETS) <= set(MODULES), set(QT_WIDGETS) - set(MODULES)
    assert all(root in MODULES for root in ENGINE), [root for root in ENGINE if root not in MODULES]
    assert {"napari_unet.io", "napari_unet.cli", "napari_unet._reader", "napari_unet._widgets"} <= set(
        LIGHT_MODULES
    )


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_modules_import_neither_torch_nor_qt(module):
    loaded = _loaded_after_import(module)
    assert not _hits(loaded, ("torch",)), f"{module} imports torch"
    assert not _hits(loaded, QT), f"{module} imports Qt: {_hits(loaded, QT)[:5]}"


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_imports_no_qt_and_no_napari(module):
    loaded = _loaded_after_import(module)
    assert not _hits(loaded, QT + ("napari",)), f"{module} imports {_hits(loaded, QT + ('napari',))[:5]}"


def test_the_engine_is_torch():
    assert "torch" in _loaded_after_import("napari_unet.model")


@pytest.mark.parametrize("module", [m for m in MODULES if _in(m, ("napari_unet._widgets",))])
def test_widget_modules_import_no_torch(module):
    loaded = _loaded_after_import(module)
    assert not _hits(loaded, ("torch",)), f"{module} imports torch at module load"


# --------------------------------------------------------------------------------------------------- cycles
def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every import statement, at any depth (functions, methods, try blocks), except under ``if TYPE_CHECKING``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _is_type_checking(node):
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]))
        else:
            yield from _import_nodes(node)


def _targets(name: str, is_package: bool, tree: ast.AST, known: set[str]) -> set[str]:
    """The package modules that importing (or calling into) module ``name`` imports."""
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{parent}.{base}" if base else parent
        for alias in node.names:
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` runs mod
            targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    edges = set()
    for target in targets & known:
        edges.add(target)
        # importing pkg.sub from outside pkg runs pkg/__init__ first
        parts = target.split(".")
        for i in range(2, len(parts)):
            ancestor = ".".join(parts[:i])
            if not _in(name, (ancestor,)):
                edges.add(ancestor)
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, read from the sources with ``ast``."""
    known = set(MODULES)
    graph = {}
    for name, is_package in _walk():
        source = Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8")
        graph[name] = _targets(name, is_package, ast.parse(source), known)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path whose first and last nodes are the same, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_names_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_imports_inside_functions_and_packages_are_edges():
    known = {"p", "p.cli", "p.demo", "p.sub", "p.sub.x", "p.sub.y"}
    code = "from . import demo\ndef f():\n    from .sub.x import g\n"
    assert _targets("p.cli", False, ast.parse(code), known) == {"p.demo", "p.sub.x", "p.sub"}
    code = "from . import y\nfrom .. import cli\nif TYPE_CHECKING:\n    from ..demo import D\n"
    assert _targets("p.sub.x", False, ast.parse(code), known) == {"p.sub.y", "p.cli"}
    assert _targets("p.sub", True, ast.parse("from .x import g"), known) == {"p.sub.x"}


def test_no_import_cycle_between_the_package_modules():
    graph = import_graph()
    assert "napari_unet.demo" in graph["napari_unet.cli._demo"]  # imported inside cmd_demo: seen too
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
