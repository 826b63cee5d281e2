"""The library/CLI boundary (issue 12 item 4): library messages name settings and fields,
never command-line flags or commands; the CLI adds the hints, and never reaches into the
library's private modules or attributes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from aether.errors import NotFoundError
from aether_cli.context import hint_for

ROOT = Path(__file__).resolve().parents[1]

CLI_WORDS = re.compile(
    r"--[a-z]|\baether (server|node|config|append|replay|tail|versions|bench|snapshot|"
    r"cluster status|processors)\b"
)

# Messages in modules other parts of the work own, still to lose their CLI hint (the
# CLI's `hint_for` already adds it). An entry that no longer matches is fine.
PENDING_MESSAGES = {"aether/cluster/kv.py"}

# The CLI's own state, not the library's: `CliState._settings` (commands/bench.py should
# call `CliState.override`) and a marker the CLI sets on its own parser function.
PENDING_PRIVATE = {
    ("aether_cli/commands/bench.py", "_settings"),
    ("aether_cli/main.py", "_aether_ints"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            out.update(
                id(stmt.value)
                for stmt in body
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            )
    return out


def test_library_messages_name_no_cli_flags() -> None:
    found = []
    for path in sorted((ROOT / "aether").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and CLI_WORDS.search(node.value)
                and rel not in PENDING_MESSAGES
            ):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_cli_uses_no_private_library_module() -> None:
    found = []
    for path in sorted((ROOT / "aether_cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("aether.")
            ):
                if any(part.startswith("_") for part in node.module.split(".")):
                    found.append(f"{path.name}: from {node.module}")
                found += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []


def test_the_cli_reads_no_private_attribute() -> None:
    found = set()
    for path in sorted((ROOT / "aether_cli").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.add((rel, node.attr))
    assert found <= PENDING_PRIVATE, sorted(found - PENDING_PRIVATE)


def test_the_cli_hints_how_to_start_a_cluster() -> None:
    bare = NotFoundError("no cluster in namespace 'x' (bucket aethercluster_x does not exist)")
    assert "`aether node run`" in hint_for(bare)
    hinted = NotFoundError("no cluster in namespace 'x'; start a node with `aether node run`")
    assert hint_for(hinted) == ""  # never twice
