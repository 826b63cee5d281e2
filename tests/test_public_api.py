"""The public API is what the README's "Public API" documents, and nothing more."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import aether
import aether.cluster
import aether.errors
from tests.test_readme import section

ROOT = Path(__file__).resolve().parents[1]

# Public exceptions still defined outside aether/errors.py, in modules other parts of the
# work own (issue 12): each is to move into aether/errors.py (or become private). An
# entry that no longer exists is fine; a new exception outside errors.py is not.
PENDING = {
    ("aether/store/_js_api.py", "JsApiError"),
    ("aether/cluster/kv.py", "CasConflictError"),
}


def _documented_top_level() -> set[str]:
    text = section("Public API").split("Everything else", 1)[0]
    return set(re.findall(r"`([A-Za-z_]+)`", text)) - {"aether", "__all__"}


def _documented_cluster() -> set[str]:
    text = section("Public API").split("`aether.cluster`,", 1)[1]
    return set(re.findall(r"`([A-Za-z_]+)`", text.split("(the bucket", 1)[0]))


def test_aether_all_is_exactly_the_documented_list() -> None:
    assert set(aether.__all__) == _documented_top_level()
    assert len(aether.__all__) == len(set(aether.__all__))


def test_cluster_all_is_exactly_the_documented_list() -> None:
    assert set(aether.cluster.__all__) == _documented_cluster()
    for internal in ("xxh64", "plan_next", "BucketView", "ClusterBucket", "Election"):
        assert not hasattr(aether.cluster, internal)


def test_every_exported_name_resolves() -> None:
    for name in aether.__all__:
        assert getattr(aether, name) is not None, name
    for name in aether.cluster.__all__:
        assert getattr(aether.cluster, name) is not None, name


def test_exported_errors_are_the_ones_of_errors_py() -> None:
    exported = [getattr(aether, n) for n in aether.__all__ if n.endswith("Error")]
    assert exported
    for cls in exported:
        assert getattr(aether.errors, cls.__name__) is cls
        assert issubclass(cls, aether.errors.AetherError)


def test_import_aether_stays_light() -> None:
    """The lazy names (nats-py, sqlite3, the cluster, the state helpers) load on use."""
    code = (
        "import sys, aether\n"
        "heavy = [m for m in ('nats', 'sqlite3', 'aether.cluster', 'aether.state', "
        "'aether.bus.nats') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _exception_classes(path: Path) -> list[str]:
    """Public classes in `path` whose bases look like exceptions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        for base in node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            if name.endswith(("Error", "Exception")):
                found.append(node.name)
                break
    return found


def test_every_public_exception_lives_in_errors_py() -> None:
    outside = {
        (str(path.relative_to(ROOT)), name)
        for path in sorted((ROOT / "aether").rglob("*.py"))
        if path.name != "errors.py"
        for name in _exception_classes(path)
    }
    assert outside <= PENDING, sorted(outside - PENDING)
