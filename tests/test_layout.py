"""The package layout holds: no import cycle, and arrows point one way.

The import graph is read from the source (``ast``), every import counted, function-local ones
included, except those under ``if TYPE_CHECKING:``. The layers, outermost first:

* entry points: ``onboarding.web``, ``onboarding.cli``, ``onboarding.demo`` — the only modules of
  ``onboarding`` that import ``tasks``;
* ``tasks``: thin Celery wrappers, one module per queue;
* the domain: every other module of ``onboarding`` (never ``tasks``, ``celery`` or an entry
  point); within it, ``onboarding.sandbox`` stands alone (nothing else from ``onboarding``);
* ``models``, then ``config``, which import nothing above them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "models", "onboarding", "tasks")
ENTRY_POINTS = ("onboarding.web", "onboarding.cli", "onboarding.demo")

Graph = Mapping[str, set[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    """Every module of the project's packages, migrations excluded."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Every dotted name ``module`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (the most specific module each name names)."""
    modules = sources()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for target in imported_names(tree, name, path.name == "__init__.py"):
            if target in modules and target != name:
                edges.add(target)
        # ``from a import b`` where ``a.b`` is a module depends on ``a.b``, not on ``a``.
        graph[name] = {t for t in edges if not any(o.startswith(t + ".") for o in edges)}
    return graph


def external_imports(module: str) -> set[str]:
    """The top-level distributions a module imports (``celery``, ``httpx``...)."""
    path = sources()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.split(".")[0] for n in imported_names(tree, module, path.name == "__init__.py") if n}


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def in_layer(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def forbidden_edges(graph: Graph) -> list[str]:
    """Every import that points the wrong way, as ``importer -> imported (rule)``."""
    wrong: list[str] = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            rule = _broken_rule(module, target)
            if rule:
                wrong.append(f"{module} -> {target} ({rule})")
    return wrong


def _broken_rule(module: str, target: str) -> str | None:
    entry = in_layer(module, ENTRY_POINTS)
    domain = in_layer(module, ("onboarding",)) and not entry
    if in_layer(module, ("config",)) and not in_layer(target, ("config",)):
        return "config imports nothing of coexist's above it"
    if in_layer(module, ("models",)) and not in_layer(target, ("models", "config")):
        return "models import only config"
    if in_layer(module, ("tasks",)) and in_layer(target, ENTRY_POINTS):
        return "tasks never import an entry point"
    if domain and in_layer(target, ("tasks", *ENTRY_POINTS)):
        return "the domain never imports tasks or an entry point"
    if (
        in_layer(module, ("onboarding.sandbox",))
        and in_layer(target, ("onboarding",))
        and not in_layer(target, ("onboarding.sandbox",))
    ):
        return "the sandbox stands alone"
    return None


def test_the_project_has_no_import_cycle() -> None:
    """No two modules import each other, directly or through others."""
    assert cycles(import_graph()) == []


def test_every_import_points_the_way_the_layers_go() -> None:
    """Entry points → tasks → domain → models → config; the sandbox imports no other domain."""
    assert forbidden_edges(import_graph()) == []


@pytest.mark.parametrize(
    "module", sorted(m for m in sources() if m.startswith(("onboarding", "models", "config")))
)
def test_only_tasks_and_the_entry_points_use_celery(module: str) -> None:
    """Celery is the task layer's business; the domain, models and config never import it."""
    if in_layer(module, ENTRY_POINTS):
        return
    assert "celery" not in external_imports(module)


def test_the_checks_catch_a_cycle_and_a_wrong_way_import() -> None:
    """The cycle finder and the layer rules fail on a graph that breaks them."""
    broken = {
        "onboarding.ingest.history": {"onboarding.sync.trigger"},
        "onboarding.sync.trigger": {"onboarding.ingest.history", "tasks.sync"},
        "onboarding.sandbox.model": {"onboarding.meta.graph"},
        "tasks.sync": {"onboarding.sync.trigger"},
    }
    assert cycles(broken) == [
        ["onboarding.ingest.history", "onboarding.sync.trigger", "tasks.sync"]
    ]
    assert forbidden_edges(broken) == [
        "onboarding.sandbox.model -> onboarding.meta.graph (the sandbox stands alone)",
        "onboarding.sync.trigger -> tasks.sync (the domain never imports tasks or an entry point)",
    ]
