"""Small helpers shared by the contract tests (protocol-only: no store internals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aether.event import Event
from aether.store.base import EventStore

WAIT = 10.0
"""Upper bound for one awaited store operation in a test (never reached when it works)."""


def ev(actor_id: str, version: int, event_type: str = "Happened", **data: Any) -> Event:
    """A new event of `actor_id` at `version` with `data`."""
    return Event(event_type=event_type, actor_id=actor_id, version=version, data=data)


async def append_n(store: EventStore, actor_id: str, n: int, start: int = 1) -> list[Event]:
    """Append versions ``start .. start + n - 1`` one by one; return the stored events."""
    return [await store.save_event(ev(actor_id, v, n=v)) for v in range(start, start + n)]


async def read_all_list(store: EventStore, from_position: int = 0) -> list[Event]:
    """Everything `read_all` yields."""
    return [e async for e in store.read_all(from_position)]


async def take(it: AsyncIterator[Event], n: int) -> list[Event]:
    """The next `n` items of `it`, each within `WAIT` seconds."""
    return [await asyncio.wait_for(anext(it), WAIT) for _ in range(n)]


async def start_watch(
    store: EventStore, from_position: int | None = None
) -> tuple[AsyncIterator[Event], asyncio.Task[Event]]:
    """Start `watch` and wait a moment so it is surely following before the test appends.

    Returns the iterator and a task already awaiting its first item.
    """
    it = store.watch(from_position)
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.2)
    return it, first


async def assert_nothing_written(store: EventStore, before: list[Event]) -> None:
    """The store holds exactly `before` (same ids, same positions)."""
    after = await read_all_list(store)
    assert [(e.id, e.position) for e in after] == [(e.id, e.position) for e in before]
