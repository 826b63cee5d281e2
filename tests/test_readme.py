"""The README cannot rot: its Python examples run, and print what the README says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import aether.errors
from aether._xxh64 import xxh64
from aether.cluster import shard_of, slices_of_shard
from aether.event import encode_event, event_from_dict
from aether.jsonl import parse_lines
from aether.observability._tracing import TRACEPARENT_KEY
from aether.store._js_streams import tracking_wildcard
from aether.subjects import (
    bus_filter,
    cluster_bucket,
    encode_token,
    events_subject,
    events_wildcard,
    inbox_prefix,
    node_rpc_subject,
    processor_bucket,
    processor_stream_name,
    slice_of,
    snapshot_stream_name,
    snapshots_wildcard,
    stream_name,
)
from aether.typed import SCHEMA_KEY, SNAPSHOT_TYPE
from tests.servers import NatsServer

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


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=None if env is None else {**os.environ, **env},
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
    "title",
    [
        "Event ids",
        "Read-your-writes",
        "Errors",
        "Upgrading from aether 0.1",
        "Public API",
        "Event bus",
        "Cluster",
        "Benchmarks",
        "Running a NATS server",
        "CLI guide",
    ],
)
def test_sections_exist(title: str) -> None:
    section(title)


def test_bulk_example_lines_are_accepted() -> None:
    examples = [b for b in blocks(section("CLI guide"), "json") if "actor_id" in b]
    assert examples
    items = parse_lines(examples[0].encode(), 1 << 20)
    assert len(items) == 3


def test_slice_vectors_match_the_code() -> None:
    """The README's slice table: XXH64(utf8(actor_id), seed 0) mod 1024, the default
    64 shards and the events subject."""
    rows = re.findall(
        r"^\| `([^`]+)` \| `([0-9a-f]{16})` \| (\d+) \| (\d+) \| `([^`]+)` \|$",
        section("Event wire format"),
        re.M,
    )
    assert len(rows) >= 5
    for actor_id, digest, slice_, shard, subject in rows:
        assert f"{xxh64(actor_id.encode()):016x}" == digest
        assert slice_of(actor_id) == int(slice_)
        assert shard_of(actor_id, 64) == int(slice_) * 64 // 1024 == int(shard)
        assert int(slice_) in slices_of_shard(int(shard), 64)
        assert events_subject("shop", actor_id) == subject


def test_names_of_streams_buckets_and_subjects_match_the_code() -> None:
    text = section("Event wire format")
    ns = "<ns>"
    names = [
        stream_name(ns),
        snapshot_stream_name(ns),
        cluster_bucket(ns),
        processor_stream_name(ns),
        processor_bucket(ns),
        tracking_wildcard(ns),
        events_wildcard(ns),
        f"{inbox_prefix(ns)}.>",
        f"{node_rpc_subject(ns, '<node-id>')}.>",
    ]
    for name in names:
        assert f"`{name}`" in text, name
    wild = {
        events_wildcard(ns): "aether.<ns>.events.<slice>.<actor-token>",
        snapshots_wildcard(ns): "aether.<ns>.snapshots.<actor-token>",
        bus_filter(ns): "aether.<ns>.bus.<event-type-token>.<actor-token>",
    }
    for pattern, documented in wild.items():
        assert f"`{documented}`" in text
        assert pattern.split(".")[:3] == documented.split(".")[:3]
        assert pattern.count(".") == documented.count(".")


def test_metadata_keys_are_the_ones_aether_uses() -> None:
    text = section("Event wire format")
    for key in (TRACEPARENT_KEY, SCHEMA_KEY):
        assert f"| `{key}` |" in text
    assert f'"{SNAPSHOT_TYPE}": name, "{SCHEMA_KEY}": version' in text


def _readme_tree() -> str:
    [tree] = blocks(section("Errors"), "text")[:1]
    return tree


def test_error_tree_is_the_one_in_errors_py() -> None:
    doc = aether.errors.__doc__ or ""
    drawn = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    assert _readme_tree() == "\n".join(line[4:] for line in drawn.splitlines()) + "\n"


def test_error_tree_matches_the_classes() -> None:
    """Each drawn class exists with the drawn parent; every error class is drawn."""
    parents: list[tuple[int, str]] = []
    drawn: dict[str, str | None] = {}
    for line in _readme_tree().splitlines():
        match = re.match(r"^([│├└─ ]*)([A-Za-z]+)", line)
        assert match, line
        depth = len(match.group(1)) // 4
        name = match.group(2)
        parents = [p for p in parents if p[0] < depth]
        drawn[name] = parents[-1][1] if parents else None
        parents.append((depth, name))
    classes = {
        name: cls
        for name, cls in vars(aether.errors).items()
        if isinstance(cls, type) and issubclass(cls, aether.errors.AetherError)
    }
    assert set(drawn) == set(classes)
    for name, parent in drawn.items():
        cls = classes[name]
        bases = [b for b in cls.__bases__ if issubclass(b, aether.errors.AetherError)]
        assert [b.__name__ for b in bases] == ([parent] if parent else []), name
        assert cls.retriable == issubclass(cls, aether.errors.TransientError), name


def test_errors_example_runs_as_printed(tmp_path: Path) -> None:
    text = section("Errors")
    [code] = blocks(text, "python")
    assert run_python(code, tmp_path) == blocks(text, "text")[1]


def test_bus_example_runs_as_printed(tmp_path: Path) -> None:
    text = section("Event bus")
    [code] = blocks(text, "python")
    assert run_python(code, tmp_path) == blocks(text, "text")[0]


def test_cluster_example_runs_as_printed(tmp_path: Path, nats_server: NatsServer) -> None:
    text = section("Cluster")
    [code] = blocks(text, "python")
    env = {"AETHER_NATS_URL": nats_server.url, "AETHER_NAMESPACE": "readme"}
    assert run_python(code, tmp_path, env) == blocks(text, "text")[0]


def test_cli_guide_first_commands_run_as_printed(tmp_path: Path) -> None:
    """Each line of the CLI guide's first block exits 0 on a fresh directory, and a
    JSON comment is what the command prints."""
    import shlex

    aether_cli = str(Path(sys.executable).with_name("aether"))
    [first, *_] = blocks(section("CLI guide"), "sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    for line in first.splitlines():
        command, _, comment = line.partition("#")
        args = shlex.split(command)
        assert args[0] == "aether"
        proc = subprocess.run(
            [aether_cli, *args[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, (line, proc.stderr)
        if comment.strip().startswith("{"):
            assert orjson.loads(proc.stdout) == orjson.loads(comment.strip())


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
