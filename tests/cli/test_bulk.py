"""``aether append --file``: whole-file validation, auto versions, atomic actor batches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from aether.errors import InvalidLineError
from aether.jsonl import assign_versions, parse_lines, plan_batches
from aether.store import InMemoryEventStore
from tests.cli.conftest import Cli

Versions = Callable[..., dict[str, int]]


def jsonl(*objects: object) -> str:
    """JSON lines of `objects` (strings are taken as raw lines)."""
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def write(tmp_path: Path, *objects: object) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(*objects))
    return str(path)


def test_file_with_auto_versions_and_summary(cli: Cli, tmp_path: Path) -> None:
    assert cli("append", "cart-1", "Created").code == 0  # cart-1 is at version 1 already
    path = write(
        tmp_path,
        {"actor_id": "cart-1", "event_type": "Added", "data": {"sku": "A"}},
        {"actor_id": "cart-1", "event_type": "Added", "data": {"sku": "B", "n": 2}},
        {"actor_id": "cart-2", "event_type": "Added", "data": {"sku": "C"}, "version": 1},
        {
            "actor_id": "cart-1",
            "event_type": "Removed",
            "data": {"sku": "A"},
            "metadata": {"by": "me"},
        },
    )
    out = cli("append", "--file", path)
    assert out.code == 0, out.stderr
    assert out.stdout == "Appended 4 events to 2 actors in 3 batches\n"
    events = cli("replay", "cart-1", "--json").json_lines()
    assert [(e["version"], e["event_type"]) for e in events] == [  # type: ignore[index]
        (1, "Created"),
        (2, "Added"),
        (3, "Added"),
        (4, "Removed"),
    ]
    assert events[2]["data"] == {"sku": "B", "n": 2}  # type: ignore[index]
    assert events[3]["metadata"] == {"by": "me"}  # type: ignore[index]
    assert cli("versions", "--json").json() == {"cart-1": 4, "cart-2": 1}


def test_stdin_and_json_summary(cli: Cli) -> None:
    text = jsonl(
        {"actor_id": "a.b", "event_type": "E"},
        "",
        "   ",
        {"actor_id": "user@example.com", "event_type": "E", "data": {"f": 1.5}},
    )
    out = cli("append", "--file", "-", "--json", input=text)
    assert out.code == 0, out.stderr
    assert out.json() == {"appended": 2, "batches": 2, "actors": {"a.b": 1, "user@example.com": 1}}


def test_explicit_ids_and_versions_make_a_rerun_a_no_op(cli: Cli, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"actor_id": "a", "event_type": "E", "version": 1, "id": "a-1"},
        {"actor_id": "a", "event_type": "E", "version": 2, "id": "a-2"},
        {"actor_id": "b", "event_type": "E", "version": 1, "id": "b-1",
         "timestamp": "2026-01-02T03:04:05.000006+02:00"},
    )  # fmt: skip
    assert cli("append", "-f", path).code == 0
    assert cli("append", "-f", path).code == 0
    assert cli("versions", "--json").json() == {"a": 2, "b": 1}
    b = cli("replay", "b", "--json").json_lines()[0]
    assert b["timestamp"] == "2026-01-02T01:04:05.000006Z"  # type: ignore[index]


@pytest.mark.parametrize(
    ("line3", "named"),
    [
        ("not json", "line 3: is not valid JSON"),
        ('{"actor_id": "a", "event_type": "E", "data": {"x": NaN}}', "line 3: data.x: NaN"),
        ("[1, 2]", "line 3: must be a JSON object"),
        (
            '{"actor_id": "a", "event_type": "E", "data": {"n": 123456789012345678901234567890}}',
            "line 3: data.n: integers must fit in 64 bits",
        ),
        (
            '{"actor_id": "a", "event_type": "E", "data": {"s": "\\ud800"}}',
            "line 3: is not valid JSON",
        ),
        ('{"event_type": "E"}', "line 3: actor_id: is required"),
        ('{"actor_id": "", "event_type": "E"}', "line 3: actor_id: must not be empty"),
        ('{"actor_id": "a", "event_type": "E E"}', "line 3: event_type"),
        (
            '{"actor_id": "a", "event_type": "E", "data": [1]}',
            "line 3: data: must be a JSON object",
        ),
        ('{"actor_id": "a", "event_type": "E", "version": 0}', "line 3: version: must be >= 1"),
        (
            '{"actor_id": "a", "event_type": "E", "version": "2"}',
            "line 3: version: must be an integer",
        ),
        (
            '{"actor_id": "a", "event_type": "E", "position": 9}',
            "line 3: position: is not an event field",
        ),
        ('{"actor_id": "a", "event_type": "E", "timestamp": "yesterday"}', "line 3: timestamp"),
        (
            '{"actor_id": "a", "event_type": "E", "timestamp": "2026-01-02T03:04:05"}',
            "line 3: timestamp",
        ),
        ('{"actor_id": "a", "event_type": "E", "metadata": {"k": 1}}', "line 3: metadata.k"),
        (
            '{"actor_id": "a", "event_type": "E", "id": "x-1"}',
            "line 3: id 'x-1' is already used on line 1",
        ),
        ('{"actor_id": "y", "event_type": "E", "version": 5}', "line 3: version must be 2"),
    ],
)
def test_a_bad_line_names_its_number_and_nothing_is_written(
    cli: Cli, versions: Versions, tmp_path: Path, line3: str, named: str
) -> None:
    path = write(
        tmp_path,
        {"actor_id": "x", "event_type": "E", "id": "x-1"},
        {"actor_id": "y", "event_type": "E"},
        line3,
        {"actor_id": "z", "event_type": "E"},
    )
    out = cli("append", "--file", path)
    assert out.code == 2, (out.stdout, out.stderr)
    line = out.error_line()
    assert line.startswith(f"error: {path}: line 3")
    assert named in line
    assert versions() == {}


def test_a_conflict_stops_at_its_batch(cli: Cli, versions: Versions, tmp_path: Path) -> None:
    assert cli("append", "taken", "E").code == 0
    path = write(
        tmp_path,
        {"actor_id": "first", "event_type": "E"},
        {"actor_id": "first", "event_type": "E"},
        {"actor_id": "taken", "event_type": "E", "version": 1},
        {"actor_id": "taken", "event_type": "E"},
        {"actor_id": "later", "event_type": "E"},
    )
    out = cli("append", "--file", path)
    assert out.code == 3
    line = out.error_line()
    assert "line 3:" in line and "expected latest version 0, store has 1" in line
    assert "2 earlier events written, nothing from line 3 on" in line
    assert versions() == {"taken": 1, "first": 2}


def test_options_that_do_not_go_with_file(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, {"actor_id": "a", "event_type": "E"})
    for extra in (["a"], ["-d", "{}"], ["-m", "{}"], ["-e", "0"]):
        out = cli("append", "--file", path, *extra)
        assert out.code == 2
        assert "--file takes the events from the file" in out.error_line()
    missing = cli("append", "--file", "nope.jsonl")
    assert missing.code == 2
    assert "cannot read 'nope.jsonl'" in missing.error_line()


def test_empty_file_appends_nothing(cli: Cli) -> None:
    out = cli("append", "--file", "-", input="\n\n")
    assert out.code == 0
    assert out.stdout == "Appended 0 events to 0 actors in 0 batches\n"


def test_plan_batches_groups_consecutive_runs_and_splits_long_ones() -> None:
    items = parse_lines(
        jsonl(*({"actor_id": a, "event_type": "E"} for a in "aaabbaaaaa")).encode(), 10_000
    )
    batches = plan_batches(items, max_batch=3)
    assert [[i.event.actor_id for i in b] for b in batches] == [
        ["a", "a", "a"],
        ["b", "b"],
        ["a", "a", "a"],
        ["a", "a"],
    ]
    assert [i.line for i in batches[2]] == [6, 7, 8]


async def test_assign_versions_with_many_actors_reads_the_actor_list_once() -> None:
    store = InMemoryEventStore()
    from aether.event import Event

    await store.save_event(Event("E", "actor-5", 1))
    calls: list[str] = []

    async def latest(actor_id: str) -> int:
        calls.append(actor_id)
        return await store.get_latest_version(actor_id)

    async def actors() -> dict[str, int]:
        calls.append("*")
        return await store.list_actors()

    few = parse_lines(jsonl({"actor_id": "actor-5", "event_type": "E"}).encode(), 10_000)
    await assign_versions(few, latest, actors)
    assert calls == ["actor-5"] and few[0].event.version == 2

    calls.clear()
    many = parse_lines(
        jsonl(*({"actor_id": f"actor-{n}", "event_type": "E"} for n in range(100))).encode(), 10_000
    )
    await assign_versions(many, latest, actors)
    assert calls == ["*"]
    assert [i.event.version for i in many[4:7]] == [1, 2, 1]


def test_bulk_input_error_names_the_line() -> None:
    with pytest.raises(InvalidLineError) as info:
        parse_lines(
            b'{"actor_id": "a", "event_type": "E"}\n\n{"actor_id": 1, "event_type": "E"}', 10_000
        )
    assert info.value.line == 3
    assert str(info.value).startswith("line 3: actor_id")


def test_progress_bar_on_a_terminal_only(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from aether_cli.commands import append as append_cmd

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(append_cmd, "err", terminal)
    path = write(tmp_path, *({"actor_id": f"a{i % 3}", "event_type": "E"} for i in range(30)))
    out = cli("append", "--file", path)
    assert out.code == 0
    assert "appending" in screen.getvalue() and "30/30" in screen.getvalue()
    assert "appending" not in out.stdout  # the bar is on stderr, the summary on stdout
    assert out.stdout == "Appended 30 events to 3 actors in 30 batches\n"

    screen.truncate(0)
    assert cli("append", "--file", path, "--json").code == 0
    assert screen.getvalue() == ""  # no bar in --json mode
