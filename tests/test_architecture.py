"""The house's rules, checked on the source: no import cycle among seqlab's modules.

Every `import` and `from ... import` statement counts, at module level or inside a
function (a function-level import that hides a cycle is still a cycle), except
those under `if TYPE_CHECKING:`. An import of `a.b.c` names module `a.b.c` (or
package `a.b`'s `__init__` when `c` is a name defined there); the parents that
Python initializes on the way are not counted, as import-linter does not count
them. `lint-imports` (pyproject.toml) checks which way the imports point.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "seqlab"


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The seqlab modules that `name`'s source imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If) and _is_type_checking(guard.test)
               for node in ast.walk(guard)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {target for target in targets if target in known and target != name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_and_passes_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_and_absolute_imports_are_resolved(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from . import core\nfrom .core import Dense\nimport seqlab.kernels.fused\n"
                      "if TYPE_CHECKING:\n    from seqlab.model import Sequential\n"
                      "def f():\n    from seqlab.saving import load_model\n")
    known = {"seqlab.layers", "seqlab.layers.core", "seqlab.kernels.fused", "seqlab.model", "seqlab.saving"}
    found = imported_modules("seqlab.layers.m", source, known)
    assert found == {"seqlab.layers.core", "seqlab.kernels.fused", "seqlab.saving"}


def test_no_import_cycle_among_seqlab_modules():
    found = cycles(import_graph())
    assert not found, "import cycles (each line one cycle): " + "; ".join(" <-> ".join(c) for c in found)

