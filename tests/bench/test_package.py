"""The shape of `aether.bench`: a registry of workloads, no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import aether.bench
from aether.bench import PRIMARY_LATENCY, WORKLOADS
from aether.bench.workloads import REGISTRY

PACKAGE = Path(aether.bench.__file__).parent


def test_registry_lists_every_workload_once_with_one_target() -> None:
    assert tuple(REGISTRY) == WORKLOADS
    assert set(PRIMARY_LATENCY) == set(WORKLOADS)
    for name, workload in REGISTRY.items():
        assert workload.name == name
        assert (workload.store is None) != (workload.bus is None)
        assert workload.__class__.__module__ == "aether.bench.workloads"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The aether.bench modules `path` imports at module level (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("aether.bench")}


def test_no_import_cycle_inside_the_package() -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # A package's __init__ re-exports its modules; a module importing its own package's
    # __init__ would be the cycle, so edges into a package are kept.
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 2:
            return
        assert state.get(m) != 1, f"import cycle: {' -> '.join([*path, m])}"
        state[m] = 1
        for dep in sorted(graph[m]):
            visit(dep, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])
    assert "aether.bench.workloads" in graph and len(modules) >= 12


def test_the_old_modules_are_gone() -> None:
    root = PACKAGE.parent
    assert not (root / "bench.py").exists() and not (root / "_bench_workloads.py").exists()
