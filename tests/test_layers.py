"""The layer order of the code: a module may import its own package and the layers below it, never above.

Every `import` and `from ... import` is read from the source with `ast` (those inside functions too), so an
upward import fails here whether or not it would run. The order is the one in docs/architecture.md and in each
package's `__init__`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A layer may import any layer before it in this list.
LAYERS: list[set[str]] = [
    {"outreach.core"},
    {"outreach.channels"},
    {"outreach.store"},
    {"outreach.customers"},
    {"outreach.segments"},
    {"outreach.campaigns"},
    {"outreach.planning"},
    {"outreach.delivery"},
    {"outreach.reports"},
    {"outreach.inbound"},
    {"outreach.journeys"},
    {"workers"},
    {"outreach.web"},
    {"outreach.cli", "outreach.demo", "outreach.__main__"},
]


def layer_of(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        for name in layer:
            if module == name or module.startswith(name + "."):
                return index
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            # `from outreach import audit` imports outreach.audit
            found.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return found


def sources() -> list[Path]:
    return sorted([*ROOT.glob("outreach/**/*.py"), *ROOT.glob("workers/**/*.py")])


def test_every_module_has_a_layer() -> None:
    homeless = [module_name(p) for p in sources() if layer_of(module_name(p)) is None]
    # The package itself (outreach/__init__.py, its version) is the only module above no layer.
    assert homeless == ["outreach"]


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in sources():
        own = layer_of(module_name(path))
        if own is None:
            continue
        for target, line in imported(ast.parse(path.read_text(encoding="utf-8"))):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                upward.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
    assert upward == []


def test_the_check_sees_an_upward_import() -> None:
    # The check itself can fail: a store module importing the planner is found.
    tree = ast.parse("def f():\n    from outreach.planning.planner import plan_campaign\n")
    found = [target for target, _ in imported(tree)]
    assert "outreach.planning.planner" in found
    store, planning = layer_of("outreach.store.ledger"), layer_of("outreach.planning.planner")
    assert store is not None and planning is not None and planning > store


def test_each_package_says_what_it_owns_and_may_import() -> None:
    for init in sorted(ROOT.glob("outreach/*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert doc, f"{init.relative_to(ROOT)} has no docstring"
        assert "May import" in doc, f"{init.relative_to(ROOT)} does not say what it may import"
