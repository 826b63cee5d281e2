"""``aether append``: one event, versions, --expect-version, input forms, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from aether.config import Settings
from aether.event import Event
from aether.store import InMemoryEventStore
from aether_cli.commands import append as append_cmd
from tests.cli.conftest import Cli

Versions = Callable[..., dict[str, int]]


def test_append_prints_version_and_position(cli: Cli) -> None:
    first = cli("append", "order-1", "OrderPlaced", "--data", '{"total": 99.99, "items": 3}')
    second = cli("append", "order-1", "OrderShipped", "--data", '{"carrier": "FastShip"}')
    assert first.code == 0 and second.code == 0
    assert first.stdout == "Appended OrderPlaced to 'order-1' at version 1 (position 1)\n"
    assert second.stdout == "Appended OrderShipped to 'order-1' at version 2 (position 2)\n"
    assert first.stderr == second.stderr == ""


def test_json_prints_the_stored_event_with_numbers_kept(cli: Cli) -> None:
    out = cli(
        "append", "a", "Counted", "--json", "--data", '{"n": 7, "f": 7.0, "big": 12345678901234}'
    )
    assert out.code == 0, out.stderr
    event = out.json()
    assert isinstance(event, dict)
    assert set(event) == {
        "id", "event_type", "actor_id", "version", "data", "timestamp", "metadata", "position"
    }  # fmt: skip
    assert event["actor_id"] == "a" and event["event_type"] == "Counted"
    assert event["version"] == 1 and event["position"] == 1
    assert event["data"] == {"n": 7, "f": 7.0, "big": 12345678901234}
    assert type(event["data"]["n"]) is int and type(event["data"]["f"]) is float
    assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 27
    replayed = cli("replay", "a", "--json").json_lines()
    assert replayed == [event]


def test_global_json_option_works_too(cli: Cli) -> None:
    out = cli("--json", "append", "a", "X")
    assert out.code == 0
    assert out.json()["data"] == {}  # type: ignore[index]


def test_metadata_is_stored(cli: Cli) -> None:
    out = cli("append", "a", "X", "--json", "-m", '{"correlation_id": "req-1"}')
    assert out.code == 0, out.stderr
    assert out.json()["metadata"] == {"correlation_id": "req-1"}  # type: ignore[index]


def test_data_from_file_and_stdin(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('{"from": "file"}')
    assert cli("append", "a", "X", "--data", "@d.json").code == 0
    assert cli("append", "a", "Y", "--data", "@-", input='{"from": "stdin"}').code == 0
    data = [e["data"] for e in cli("replay", "a", "--json").json_lines()]  # type: ignore[index]
    assert data == [{"from": "file"}, {"from": "stdin"}]


def test_expect_version(cli: Cli, versions: Versions) -> None:
    assert cli("append", "o", "A", "--expect-version", "0").code == 0
    assert cli("append", "o", "B", "--expect-version", "1").code == 0
    out = cli("append", "o", "C", "--expect-version", "1")
    assert out.code == 3
    line = out.error_line()
    assert "'o'" in line and "expected latest version 1" in line and "store has 2" in line
    assert versions() == {"o": 2}
    fresh = cli("append", "new", "A", "--expect-version", "3")
    assert fresh.code == 3
    assert "expected latest version 3" in fresh.error_line() and "store has 0" in fresh.stderr
    assert versions() == {"o": 2}


def test_a_race_between_read_and_write_is_a_conflict(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --expect-version the next version is read first; a writer slipping in
    between makes the append a conflict (exit 3), never an overwrite."""
    store = InMemoryEventStore()
    real_latest = store.get_latest_version

    async def latest_then_someone_appends(actor_id: str) -> int:
        latest = await real_latest(actor_id)
        await store.save_event(Event("Other", actor_id, latest + 1))
        return latest

    monkeypatch.setattr(store, "get_latest_version", latest_then_someone_appends)

    @asynccontextmanager
    async def session(settings: Settings) -> AsyncIterator[InMemoryEventStore]:
        yield store

    monkeypatch.setattr(append_cmd, "store_session", session)
    out = cli("append", "r", "Mine")
    assert out.code == 3
    assert "expected latest version 0, store has 1" in out.error_line()
    assert [e.event_type for e in asyncio.run(store.get_events("r"))] == ["Other"]


def test_special_actor_ids_are_distinct(cli: Cli, versions: Versions) -> None:
    ids = ["user@example.com", "a.b", "a*b", "a>b", "a b", "café", "$sys", "=YS5i", "-dash"]
    for i, actor in enumerate(ids):
        out = cli("append", "--json", "--data", f'{{"i": {i}}}', "--", actor, "Created")
        assert out.code == 0, out.stderr
    assert versions() == dict.fromkeys(ids, 1)
    for i, actor in enumerate(ids):
        events = cli("replay", "--json", "--", actor).json_lines()
        assert [(e["actor_id"], e["data"]) for e in events] == [(actor, {"i": i})]  # type: ignore[index]


BAD_INPUT = [
    pytest.param(["append", "", "X", "--data", "{}"], "actor_id", id="empty-actor"),
    pytest.param(["-n", "bad.ns", "append", "a", "X", "--data", "{}"], "namespace", id="bad-ns"),
    pytest.param(["append", "a", "X", "--data", "not json"], "--data", id="not-json"),
    pytest.param(["append", "a", "X", "--data", '{"x": NaN}'], "NaN", id="nan"),
    pytest.param(["append", "a", "X", "--data", '{"x": [Infinity]}'], "--data.x[0]", id="inf"),
    pytest.param(["append", "a", "X", "--data", "[1, 2]"], "JSON object", id="not-object"),
    pytest.param(["append", "a", "X", "--data", '{"a": 1} {}'], "--data", id="trailing"),
    pytest.param(["append", "a", "X", "--data", "@missing.json"], "missing.json", id="no-file"),
    pytest.param(["append", "a", "X", "-m", '{"k": 1}'], "metadata", id="meta-not-str"),
    pytest.param(["append", "a", "bad type"], "event_type", id="space-in-type"),
    pytest.param(["append", "a", "Ty*pe"], "event_type", id="wildcard-type"),
    pytest.param(["append", "a\x01b", "X"], "control", id="control-char"),
    pytest.param(["append", "x" * 1025, "X"], "1024 bytes", id="actor-too-long"),
    pytest.param(["append", "a", "X", "-e", "-1"], "expect-version", id="negative-expect"),
    pytest.param(["append", "a", "X", "-e", "one"], "expect-version", id="non-int-expect"),
    pytest.param(["append", "a"], "EVENT_TYPE", id="missing-type"),
    pytest.param(["append"], "ACTOR", id="missing-all"),
    pytest.param(["append", "a", "X", "--bogus"], "--bogus", id="unknown-option"),
    pytest.param(["append", "a", "X", "extra"], "extra", id="extra-argument"),
    pytest.param(["append", "a", "X", "--file", "f.jsonl"], "--file", id="file-and-args"),
    pytest.param(["--store", "nosuch", "append", "a", "X"], "store", id="bad-store"),
]


@pytest.mark.parametrize(("args", "named"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli: Cli, versions: Versions, args: list[str], named: str
) -> None:
    out = cli(*args)
    assert out.code == 2, (out.code, out.stdout, out.stderr)
    assert named in out.error_line()
    assert out.stdout == ""
    assert versions() == {}


def test_event_larger_than_the_limit_is_refused(
    cli: Cli, versions: Versions, tmp_path: Path
) -> None:
    (tmp_path / "aether.yaml").write_text("max_event_bytes: 1KB\n")
    out = cli("append", "a", "X", "--data", '{"pad": "' + "x" * 2000 + '"}')
    assert out.code == 2
    assert "exceeds the limit of 1024 bytes" in out.error_line()
    assert versions() == {}


def test_namespaces_are_isolated(cli: Cli, versions: Versions) -> None:
    assert cli("-n", "one", "append", "a", "X").code == 0
    assert cli("-n", "two", "append", "b", "X").code == 0
    assert versions("-n", "one") == {"a": 1}
    assert versions("-n", "two") == {"b": 1}
    assert versions() == {}


def test_memory_store_keeps_nothing_between_runs(cli: Cli, versions: Versions) -> None:
    out = cli("--store", "memory", "append", "a", "X")
    assert out.code == 0
    assert "version 1" in out.stdout
    assert versions("--store", "memory") == {}
    assert not (Path.cwd() / ".aether").exists()


def test_integer_beyond_64_bits_is_refused_not_turned_into_a_float(
    cli: Cli, versions: Versions
) -> None:
    out = cli("append", "a", "X", "--data", '{"n": 123456789012345678901234567890}')
    assert out.code == 2
    assert "--data.n: integers must fit in 64 bits" in out.error_line()
    assert versions() == {}
