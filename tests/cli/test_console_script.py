"""The issue's "Done when" lines, run literally through the installed ``aether`` script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def aether_command() -> list[str]:
    """The console script of this environment (next to the interpreter, else on PATH)."""
    beside = Path(sys.executable).with_name("aether")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("aether")
    return [found] if found else [sys.executable, "-m", "aether_cli.main"]


def aether(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``aether ARGS`` in `cwd` with no AETHER_* settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    env["COLUMNS"] = "160"
    return subprocess.run(
        [*aether_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    return lines[0]


def test_help_works(tmp_path: Path) -> None:
    proc = aether("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("append", "replay", "versions"):
        assert command in proc.stdout


def test_order_flow_conflict_and_versions(tmp_path: Path) -> None:
    placed = aether(
        "append", "order-1", "OrderPlaced", "--data", '{"total": 99.99, "items": 3}', cwd=tmp_path
    )
    assert placed.returncode == 0, placed.stderr
    assert "version 1" in placed.stdout
    shipped = aether(
        "append", "order-1", "OrderShipped", "--data", '{"carrier": "FastShip"}', cwd=tmp_path
    )
    assert shipped.returncode == 0, shipped.stderr
    assert "version 2" in shipped.stdout
    assert (tmp_path / ".aether" / "events.db").is_file()

    state = aether("replay", "order-1", "--state", "--json", cwd=tmp_path)
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout) == {"total": 99.99, "items": 3, "carrier": "FastShip"}
    assert state.stdout.count("\n") == 1

    conflict = aether("append", "order-1", "X", "--expect-version", "1", cwd=tmp_path)
    assert conflict.returncode == 3
    line = one_error_line(conflict)
    assert "version conflict" in line and "expected latest version 1" in line
    assert "store has 2" in line

    listed = aether("versions", "--json", cwd=tmp_path)
    assert listed.returncode == 0
    assert json.loads(listed.stdout) == {"order-1": 2}


@pytest.mark.parametrize(
    "args",
    [
        ["append", "", "X", "--data", "{}"],
        ["-n", "bad.ns", "append", "a", "X", "--data", "{}"],
        ["append", "a", "X", "--data", "not json"],
        ["append", "a", "X", "--data", '{"x": NaN}'],
    ],
    ids=["empty-actor", "bad-namespace", "not-json", "nan"],
)
def test_bad_input_one_line_nonzero_nothing_written(tmp_path: Path, args: list[str]) -> None:
    proc = aether(*args, cwd=tmp_path)
    assert proc.returncode != 0
    one_error_line(proc)
    assert proc.stdout == ""
    assert not (tmp_path / ".aether").exists()  # the store was never even opened


def test_special_actor_ids_are_three_distinct_actors(tmp_path: Path) -> None:
    ids = ["user@example.com", "a.b", "a*b"]
    for actor in ids:
        proc = aether("append", actor, "X", "--data", "{}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    for actor in ids:
        proc = aether("replay", actor, "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [(e["actor_id"], e["version"]) for e in events] == [(actor, 1)]


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args in (["nosuch"], ["append", "a", "X", "--bogus"]):
        proc = aether(*args, cwd=tmp_path)
        assert proc.returncode == 2, args
        one_error_line(proc)
