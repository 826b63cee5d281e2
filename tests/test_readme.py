"""The README cannot rot: its Python examples run, and print what the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from aether.event import encode_event, event_from_dict
from aether.subjects import encode_token
from aether_cli.bulk import parse_lines

README = Path(__file__).resolve().parents[1] / "README.md"

QUICK_START_OUTPUT = (
    "Order state after replaying 2 events:\nStatus: shipped\nTotal: $99.99\nTracking: FS123456\n"
)


def section(title: str) -> str:
    """The text of the README's ``## title`` section (up to the next ``## ``)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of `language` in `text`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def run_python(code: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_set_up_is_exactly_the_two_commands() -> None:
    [commands] = blocks(section("Set-up"), "sh")
    assert commands.splitlines() == ["pip install -e '.[dev]'", "pytest"]


def test_quick_start_runs_and_prints_the_order_state(tmp_path: Path) -> None:
    text = section("Quick start")
    code = blocks(text, "python")[0]
    assert "InMemoryEventStore" in code and "OrderPlaced" in code and "OrderShipped" in code
    output = run_python(code, tmp_path)
    assert output == QUICK_START_OUTPUT
    assert blocks(text, "text")[0] == output  # the output the README shows


def test_retry_pattern_runs_and_prints_what_the_readme_shows(tmp_path: Path) -> None:
    text = section("Version conflicts and the retry pattern")
    code = blocks(text, "python")[0]
    assert "VersionConflictError" in code
    output = run_python(code, tmp_path)
    assert output == blocks(text, "text")[0]
    assert "conflict: expected 0, store has 1; retrying" in output


def test_wire_format_example_is_a_valid_event() -> None:
    [example] = blocks(section("Event wire format"), "json")
    event = event_from_dict(orjson.loads(example))
    assert orjson.loads(encode_event(event)) == orjson.loads(example)


def test_token_table_matches_the_encoding() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section("Event wire format"), re.M)
    assert len(rows) >= 5
    for actor_id, token in rows:
        assert encode_token(actor_id) == token


@pytest.mark.parametrize(
    "title", ["Event bus", "Cluster", "Benchmarks", "Running a NATS server", "CLI guide"]
)
def test_sections_exist(title: str) -> None:
    section(title)


def test_bulk_example_lines_are_accepted() -> None:
    examples = [b for b in blocks(section("CLI guide"), "json") if "actor_id" in b]
    assert examples
    items = parse_lines(examples[0].encode(), 1 << 20)
    assert len(items) == 3


def test_processor_examples_run_and_print_what_the_readme_shows(tmp_path: Path) -> None:
    """The Processors section's two examples (projection, reactor), as printed: run with
    the repository on the path, as from a clean clone's root (files land in tmp_path)."""
    import os

    text = section("Processors")
    codes, outputs = blocks(text, "python"), blocks(text, "text")
    assert len(codes) == 2 and len(outputs) == 2
    assert "make_projection" in codes[0] and "stock_reservation" in codes[1]
    root = str(README.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    for code, expected in zip(codes, outputs, strict=True):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        assert proc.stdout == expected
