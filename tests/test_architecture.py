"""The package's layering (docs/design.md, "Layers"): every import points down.

Imports are read from the source with ``ast`` — imports inside functions count too — so a
layer cannot reach up by importing late. Only the package root's lazy public names
(``sigma_iml.Annotator`` and friends, resolved on attribute access) are exempt.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "sigma_iml"

#: Rank of each top-level part; a part may import parts of a lower rank only (and its
#: own modules). Parts of equal rank do not import each other.
RANKS = {
    "_version": 0,
    "_lazy": 0,
    "errors": 0,
    "config": 1,
    "registry": 2,
    "device": 1,
    "hub": 1,
    "data": 3,
    "methods": 4,
    "baselines": 5,
    "instruction": 5,
    "models": 6,
    "inference": 7,
    "evaluation": 7,
    "training": 8,
    "annotation": 8,
    "faithfulness": 8,
    "report": 9,
    "finetune": 9,
    "weights": 9,
    "testing": 10,
    "cli": 11,
}

MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``sigma_iml`` module or package this file imports, anywhere in it."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sigma_iml"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("sigma_iml"):
                for alias in node.names:
                    found.add(f"{module}.{alias.name}")
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in _imports(path):
            # ``from pkg import name`` names a module when pkg.name is one, else pkg itself.
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                graph[name].add(target)
    return {name: graph.get(name, set()) for name in modules}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_part_has_a_rank():
    parts = {_part(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {""}
    assert parts <= set(RANKS), f"parts without a layer: {sorted(parts - set(RANKS))}"


def test_imports_point_down():
    wrong = []
    for module, targets in _graph().items():
        source = _part(module)
        if not source:  # the package root re-exports the public API lazily
            continue
        for target in targets:
            destination = _part(target)
            if destination and destination != source and RANKS[destination] >= RANKS[source]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_source_file_is_too_long(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name}: {lines} lines (at most {MAX_LINES})"
