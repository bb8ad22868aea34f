"""The sandbox's modules form layers: each imports only modules listed above it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from onboarding import sandbox

PACKAGE = Path(sandbox.__file__).parent


def listed_order() -> list[str]:
    """The module names of the package docstring's table, top to bottom."""
    return re.findall(r"^``(\w+)``\s", sandbox.__doc__ or "", flags=re.MULTILINE)


def sandbox_imports(module: str) -> set[str]:
    """The sandbox modules that ``module`` imports, under TYPE_CHECKING too."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "onboarding.sandbox":
                found.add("__init__")
            elif node.module.startswith("onboarding.sandbox."):
                found.add(node.module.split(".")[2])
    return found


def test_the_table_lists_every_module_once() -> None:
    """Every module of the package appears in the docstring's table, exactly once."""
    order = listed_order()
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}

    assert sorted(order) == sorted(modules)


def test_every_module_imports_only_modules_above_it() -> None:
    """No module imports the package itself or a module listed at or below it."""
    order = listed_order()
    wrong = {
        module: sorted(
            target
            for target in sandbox_imports(module)
            if target == "__init__" or order.index(target) >= order.index(module)
        )
        for module in order
    }

    assert {module: targets for module, targets in wrong.items() if targets} == {}
