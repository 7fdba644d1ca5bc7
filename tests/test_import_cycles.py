"""No import cycle in the package: every import counts, TYPE_CHECKING and deferred ones too.

A cycle that only type checking or a function-level import hides is still a two-way dependency
between modules (the review's `connection` <-> `runtime` and `config` <-> `model_rules`): the
graph here is read with `ast` from the sources, without importing anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "ocpp_gateway"

#: Edges allowed to close a cycle, each with its reason; each must still exist.
ALLOWED: Mapping[tuple[str, str], str] = {}


def modules(root: Path, name: str) -> dict[str, Path]:
    """Module name -> source file, for every module of the package at `root`."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, is_package: bool, tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    """Each import of a module, at any depth of its code: (the module named, the names taken
    from it)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            yield target, [alias.name for alias in node.names]


def import_graph(root: Path, name: str) -> dict[str, set[str]]:
    """The package's import graph: module -> the package's modules it imports.

    `from a import b` counts as an import of the module `a.b` when there is one, else of `a`;
    importing `a.b.c` also runs the packages `a.b` above it, which count unless the importer
    is inside them (a package's own modules importing each other do not loop through it).
    """
    found = modules(root, name)
    graph: dict[str, set[str]] = {}
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets: set[str] = set()
        for target, names in _imported(module, path.name == "__init__.py", tree):
            submodules = {f"{target}.{n}" for n in names} & found.keys()
            targets |= submodules
            if len(submodules) < len(names) or not names:
                targets.add(target)
        edges: set[str] = set()
        for target in targets & found.keys():
            parts = target.split(".")
            for depth in range(2, len(parts) + 1):
                ancestor = ".".join(parts[:depth])
                inside = module == ancestor or module.startswith(ancestor + ".")
                if ancestor in found and (ancestor == target or not inside):
                    edges.add(ancestor)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

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
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_finder_sees_type_checking_and_deferred_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg import a\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
    )
    (package / "b.py").write_text("from pkg import a\nB = 1\n")
    (package / "c.py").write_text("def f():\n    from .sub import d\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "d.py").write_text("from ..c import f\nfrom . import e\n")
    (package / "sub" / "e.py").write_text("from pkg.sub import d\n")
    graph = import_graph(package, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.c"] == {"pkg.sub", "pkg.sub.d"}
    assert graph["pkg.sub.d"] == {"pkg.c", "pkg.sub.e"}
    assert graph["pkg.sub.e"] == {"pkg.sub.d"}  # its own package is not a way round
    assert cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.d", "pkg.sub.e"]]


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE, "ocpp_gateway")
    assert "ocpp_gateway.relay" in graph and "ocpp_gateway.config.sections" in graph
    for edge, reason in ALLOWED.items():
        assert edge[1] in graph[edge[0]], f"allowed edge no longer there, drop it: {reason}"
        graph[edge[0]].discard(edge[1])
    found = cycles(graph)
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_configuration_is_a_leaf() -> None:
    """STYLE #8: the configuration imports none of the gateway's machinery."""
    graph = import_graph(PACKAGE, "ocpp_gateway")
    reach: set[str] = set()
    todo = [m for m in graph if m.startswith("ocpp_gateway.config.")]
    while todo:
        module = todo.pop()
        for nxt in graph[module] - reach:
            reach.add(nxt)
            todo.append(nxt)
    machinery = ("routing", "security", "model_rules", "runtime", "server", "relay", "admission")
    for name in machinery:
        assert not any(
            m == f"ocpp_gateway.{name}" or m.startswith(f"ocpp_gateway.{name}.") for m in reach
        ), (name, sorted(reach))
