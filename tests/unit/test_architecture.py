"""The layering in ``vivified/__init__.py``: no import cycles, and a pure core without I/O."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "operator"
PACKAGE = ROOT / "vivified"

#: The pure core: top-level modules and subpackages (everything under them counts).
PURE = (
    "vivified.admission",
    "vivified.audit",
    "vivified.crd",
    "vivified.dependencies",
    "vivified.diff",
    "vivified.event_types",
    "vivified.health",
    "vivified.manifest",
    "vivified.names",
    "vivified.objects",
    "vivified.peering",
    "vivified.plan",
    "vivified.policy",
    "vivified.registry",
    "vivified.render",
    "vivified.resource",
    "vivified.schedule",
    "vivified.schema_fast",
    "vivified.settings",
    "vivified.status",
    "vivified.tokens",
    "vivified.violations",
    "vivified.workqueue",
)
#: Libraries that do I/O, and the package's own I/O layers.
IO = (
    "aiohttp",
    "http",
    "httpx",
    "kopf",
    "kubernetes",
    "nats",
    "requests",
    "socket",
    "ssl",
    "subprocess",
    "urllib.request",
    "urllib3",
    "vivified.cli",
    "vivified.dataplane",
    "vivified.shell",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import that runs (TYPE_CHECKING blocks excluded)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in MODULES else base), node.lineno


def graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _ in imports(name) if target in MODULES and target != name}
        for name in MODULES
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def in_layer(module: str, layer: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in layer)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if in_layer(n, PURE)))
def test_the_pure_core_imports_no_io(name: str) -> None:
    offending = [f"{t} (line {line})" for t, line in imports(name) if in_layer(t, IO)]
    assert not offending, f"{name} imports {', '.join(offending)}"


def test_every_module_has_a_layer() -> None:
    layers = (*PURE, "vivified.shell", "vivified.dataplane")
    cli = {
        "vivified",
        "vivified.cli",
        "vivified.cli_events",
        "vivified.loader",
        "vivified.scaffold",
        "vivified.__main__",
    }
    unplaced = sorted(n for n in MODULES if n not in cli and not in_layer(n, layers))
    assert not unplaced, f"say in vivified/__init__.py which layer these are in: {unplaced}"
