"""The import contracts of docs/ARCHITECTURE.md, checked on grimp's import graph (every import
of a module counts, at its top or inside a function)."""

from __future__ import annotations

import grimp

__all__ = ["cycles", "forbidden_imports"]


def cycles(package: str) -> list[list[str]]:
    """The strongly connected groups of more than one module (each an import cycle)."""
    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def forbidden_imports(
    package: str, rules: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]
) -> list[str]:
    """Imports that break a rule ``(importers, forbidden, allowed exceptions)``: a module under
    ``importers`` may not import one under ``forbidden`` unless it is under the exceptions."""
    graph = grimp.build_graph(package, cache_dir=None)
    broken = []
    for importer, forbidden, allowed in rules:
        for module in sorted(graph.modules):
            if not _within(module, importer):
                continue
            for target in sorted(graph.find_modules_directly_imported_by(module)):
                inside = _within(target, importer) or _within(target, allowed)
                if _within(target, forbidden) and not inside:
                    broken.append(f"{module} imports {target}")
    return broken
