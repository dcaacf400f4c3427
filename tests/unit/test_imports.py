"""The import graph: no circles, the layers of docs/architecture.md, pure modules free of the client."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ls_companion", "ml_backend")
#: Modules that must load without the Label Studio SDK or httpx (docs/architecture.md, "Layers").
PURE = (
    "ls_companion",
    "ls_companion.errors",
    "ls_companion.records",
    "ls_companion.settings",
    "ls_companion.files",
    "ls_companion.sources",
    "ls_companion.uncertainty",
    "ls_companion.modelselect",
    "ls_companion.textclassifier",
    "ls_companion.wordvectors",
    "ls_companion.projectdata",
    "ls_companion.quality.records",
    "ls_companion.quality.similarity",
    "ls_companion.quality.agreement",
    "ls_companion.quality.consensus",
    "ls_companion.quality.gold",
    "ls_companion.quality.drift",
    "ls_companion.quality.performance",
    "ls_companion.quality.escalation",
    "ls_companion.quality.engine",
    "ls_companion.selection.pool",
    "ls_companion.selection.strategies",
    "ls_companion.selection.plan",
    "ls_companion.sync.options",
    "ls_companion.sync.state",
    "ls_companion.sync.store",
    "ls_companion.sync.locks",
    "ls_companion.sync.queues",
)
#: What the backend may import of ls_companion: the pure modules, and the client for its trainer.
BACKEND_MAY_IMPORT = {*PURE, "ls_companion.client"}
#: Entry points that do something when imported.
NOT_IMPORTABLE = {"ls_companion.__main__", "ml_backend.wsgi"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(tree: ast.AST, modules: dict[str, Path]) -> Iterator[str]:
    """Every module imported anywhere in ``tree`` (function-level too), except under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in modules else node.module
        yield from _imports(node, modules)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(ast.parse(path.read_text()), modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def _circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (first module repeated at the end), or [] when there is none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_circles_are_found_and_the_tree_has_none() -> None:
    assert len(_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == 4
    assert _circle(_graph()) == []


def test_layers_point_one_way() -> None:
    graph = _graph()
    backend_uses = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith("ml_backend")
        for target in targets
        if target.startswith("ls_companion") and target not in BACKEND_MAY_IMPORT
    }
    assert backend_uses == set()
    companion_uses = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith("ls_companion")
        for target in targets
        if target.startswith("ml_backend")
    }
    assert companion_uses == set()


def test_pure_modules_load_without_the_client_and_every_module_imports() -> None:
    # One fresh interpreter: the pure modules first, each checked as it is imported (the first to load
    # the SDK or httpx is named), then every other module, which catches a circle at import time.
    others = sorted(set(_modules()) - set(PURE) - NOT_IMPORTABLE)
    script = """
import importlib, json, sys
pure, others = json.loads(sys.argv[1])
for name in pure:
    importlib.import_module(name)
    loaded = [m for m in ("label_studio_sdk", "httpx") if m in sys.modules]
    if loaded:
        sys.exit(f"{name} loads {', '.join(loaded)}")
for name in others:
    importlib.import_module(name)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps([PURE, others])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
