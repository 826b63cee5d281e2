"""The hostile-input sweep from code: `aether.jsonl.import_lines` on all three stores and
`Settings.load`. Every refusal is a `ValidationError`/`ConfigError` naming the line or the
key, and the store holds exactly what it held before."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from aether.config import Settings
from aether.errors import ConfigError, InvalidLineError, VersionConflictError
from aether.event import Event
from aether.jsonl import ImportProgress, import_lines
from aether.store import InMemoryEventStore, open_store
from aether.store.base import EventStore
from tests.servers import NatsServer

GOOD = {"actor_id": "bulk-1", "event_type": "Bulk", "data": {}}


@pytest.fixture(params=["memory", "sqlite", "jetstream"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """Each store kind with one event in it."""
    kind = request.param
    if kind == "memory":
        s: EventStore = InMemoryEventStore()
    else:
        overrides: dict[str, object] = {"store": kind, "namespace": "sweep"}
        if kind == "sqlite":
            overrides["sqlite.path"] = str(tmp_path / "events.db")
        else:
            server: NatsServer = request.getfixturevalue("nats_server")
            overrides["nats.servers"] = server.url
        s = await open_store(Settings.load(overrides=overrides, env={}, search_default_files=False))
    await s.save_event(Event(event_type="Seed", actor_id="bulk-1", version=1, data={"n": 0}))
    try:
        yield s
    finally:
        await s.close()


async def _state(store: EventStore) -> list[tuple[str, int, str]]:
    return [(e.actor_id, e.version, e.id) async for e in store.read_all()]


def _lines(*objects: object) -> bytes:
    return b"".join(
        (o.encode() if isinstance(o, str) else orjson.dumps(o)) + b"\n" for o in objects
    )


BAD_SECOND_LINES: list[tuple[object, str]] = [
    ({**GOOD, "id": 0}, "id"),
    ({**GOOD, "id": ""}, "id"),
    ({**GOOD, "id": False}, "id"),
    ({**GOOD, "timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
    ({**GOOD, "timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
    ({**GOOD, "version": 1.0}, "version"),
    ({**GOOD, "version": 7}, "version"),  # not the next version after line 1
    ({**GOOD, "event_type": "a b"}, "event_type"),
    ({**GOOD, "actor_id": ""}, "actor_id"),
    ({**GOOD, "data": [1]}, "data"),
    ('{"actor_id": "bulk-1", "event_type": "Bulk", "data": {"x": NaN}}', "data"),
    ("{not json", "JSON"),
    ('{"actor_id": "bulk-1", "event_type": "Bulk", "data": {"x": "' + "y" * 5000 + '"}}', "max"),
]


@pytest.mark.parametrize(("bad", "word"), BAD_SECOND_LINES, ids=lambda v: repr(v)[:30])
async def test_import_refuses_a_bad_line_and_writes_nothing(
    store: EventStore, bad: object, word: str
) -> None:
    before = await _state(store)
    payload = _lines(GOOD, bad)
    for source in (payload, io.BytesIO(payload), payload.splitlines(keepends=True)):
        with pytest.raises(InvalidLineError) as e:
            await import_lines(store, source, max_event_bytes=4096)  # type: ignore[arg-type]
        assert e.value.line == 2 and word in str(e.value), str(e.value)
    assert await _state(store) == before


async def test_import_of_an_endless_line_ends_at_once(store: EventStore) -> None:
    before = await _state(store)

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            b[:] = b"x" * len(b)
            return len(b)

    with pytest.raises(InvalidLineError, match="longer than max_event_bytes") as e:
        await import_lines(store, io.BufferedReader(Endless()), max_event_bytes=2048)
    assert e.value.line == 1
    assert await _state(store) == before


async def test_import_appends_and_reports_progress(store: EventStore) -> None:
    progress = ImportProgress()
    result = await import_lines(
        store,
        _lines(GOOD, {**GOOD, "id": "my-id"}, {**GOOD, "actor_id": "bulk-2"}),
        progress=progress,
    )
    assert (result.appended, result.batches, result.actors) == (3, 2, {"bulk-1": 3, "bulk-2": 1})
    assert progress.appended == 3 and progress.failed_line is None
    events = await store.get_events("bulk-1")
    assert [e.version for e in events] == [1, 2, 3] and events[2].id == "my-id"
    # a conflict on a later unit: the earlier units stay, progress says where it stopped
    progress = ImportProgress()
    with pytest.raises(VersionConflictError):
        await import_lines(
            store,
            _lines({**GOOD, "actor_id": "bulk-3"}, {**GOOD, "version": 2}),
            progress=progress,
        )
    assert progress.appended == 1 and progress.failed_line == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_event_bytes", -1),
        ("max_event_bytes", 2**70),
        ("jetstream.max_age", float("inf")),
        ("jetstream.max_age", 10**400),
        ("jetstream.max_bytes", 2**70),
        ("jetstream.duplicate_window", "1e400"),
        ("jetstream.publish_timeout", 0),
        ("jetstream.replicas", 3.0),
        ("nats.connect_timeout", 10**9),
        ("nats.connect_timeout", float("nan")),
        ("nats.reconnect_wait", -1),
        ("nats.inbox_prefix", "a..b"),
        ("nats.inbox_prefix", "_INBOX.>"),
        ("nats.servers", ["nats://h:1"] * 65),
        ("nats.tls_required", "perhaps"),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_settings_refuse_out_of_range_values(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(overrides={key: value}, env={}, search_default_files=False)
    text = str(e.value)
    assert text.startswith(key + ":") and len(text) < 300, text
