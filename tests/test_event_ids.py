"""What an event id guarantees, on every store (the README's "Event ids" says the same).

The id makes a *re-save* idempotent: saving the identical event again (same id, actor,
version, type, data and metadata) returns the stored event and writes nothing, however
long ago it was saved. The id is not a uniqueness key: the same id at another version or
on another actor is another event.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aether.config import Settings
from aether.errors import InvalidEventError, VersionConflictError
from aether.event import Event
from aether.store import InMemoryEventStore, Store, open_store

_ns = itertools.count()


@pytest.fixture(params=["memory", "sqlite", "jetstream"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    overrides: dict[str, Any] = {"namespace": f"ids{next(_ns)}", "store": request.param}
    if request.param == "memory":
        opened: Store = InMemoryEventStore()
    else:
        if request.param == "sqlite":
            overrides["sqlite.path"] = str(tmp_path / "events.db")
        else:
            overrides["nats.servers"] = [request.getfixturevalue("nats_server").url]
        settings = Settings.load(overrides=overrides, search_default_files=False)
        opened = await open_store(settings)
    yield opened
    await opened.close()


def ev(actor: str, version: int, data: dict[str, Any] | None = None, **kw: Any) -> Event:
    return Event("Deposited", actor, version, {"amount": 1} if data is None else data, **kw)


async def test_identical_resave_is_a_no_op(store: Store) -> None:
    first = await store.save_event(ev("a", 1))
    again = await store.save_event(first)
    assert again.position == first.position
    assert [e.id for e in await store.get_events("a")] == [first.id]
    assert await store.last_position() == first.position


async def test_resave_of_an_older_version_is_a_no_op(store: Store) -> None:
    v1 = await store.save_event(ev("a", 1))
    v2 = await store.save_event(ev("a", 2))
    again = await store.save_event(v1)
    assert again.position == v1.position
    assert await store.get_latest_version("a") == 2
    assert await store.last_position() == v2.position


async def test_resave_with_another_timestamp_is_a_no_op(store: Store) -> None:
    first = await store.save_event(ev("a", 1, timestamp=datetime(2026, 1, 1, tzinfo=UTC)))
    rebuilt = ev("a", 1, id=first.id, timestamp=datetime(2026, 6, 1, tzinfo=UTC))
    again = await store.save_event(rebuilt)  # e.g. re-built from the same input
    assert again.position == first.position
    [stored] = await store.get_events("a")
    assert stored.timestamp == first.timestamp  # the stored event keeps its time


async def test_same_id_same_version_other_content_is_a_conflict(store: Store) -> None:
    first = await store.save_event(ev("a", 1))
    with pytest.raises(VersionConflictError) as info:
        await store.save_event(ev("a", 1, {"amount": 2}, id=first.id))
    assert (info.value.expected, info.value.actual) == (0, 1)
    assert [e.data for e in await store.get_events("a")] == [{"amount": 1}]


async def test_other_id_same_content_is_a_conflict(store: Store) -> None:
    await store.save_event(ev("a", 1))
    with pytest.raises(VersionConflictError):
        await store.save_event(ev("a", 1))  # a new id: another event, not a re-save


async def test_same_id_at_the_next_version_is_another_event(store: Store) -> None:
    first = await store.save_event(ev("a", 1))
    second = await store.save_event(ev("a", 2, id=first.id))
    assert second.position != first.position
    assert [(e.version, e.id) for e in await store.get_events("a")] == [
        (1, first.id),
        (2, first.id),
    ]


async def test_same_id_on_another_actor_is_another_event(store: Store) -> None:
    first = await store.save_event(ev("a", 1))
    other = await store.save_event(ev("b", 1, id=first.id))
    assert other.position != first.position
    assert [e.id for e in await store.get_events("b")] == [first.id]
    assert len([e async for e in store.read_all()]) == 2


async def test_identical_unit_resave_is_a_no_op(store: Store) -> None:
    unit = [ev("a", 1), ev("a", 2), ev("b", 1)]
    stored = await store.save_events(unit)
    again = await store.save_events(unit)
    assert [e.position for e in again] == [e.position for e in stored]
    assert len([e async for e in store.read_all()]) == 3


async def test_ids_within_one_unit_must_differ(store: Store) -> None:
    first = ev("a", 1)
    with pytest.raises(InvalidEventError) as info:
        await store.save_events([first, ev("b", 1, id=first.id)])
    assert info.value.field == "events[1].id"
    assert await store.last_position() == 0
