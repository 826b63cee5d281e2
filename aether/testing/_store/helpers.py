"""Helpers shared by the store contract (protocol only: no store internals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from aether.event import Event
from aether.store.base import Store
from aether.subjects import Slices

WAIT = 10.0
"""Upper bound for one awaited store operation in a test (never reached when it works)."""

StoreFactory = Callable[[], Awaitable[Store]]
"""What the `store_factory` fixture gives: each call opens a store on the same storage."""


class ContractBase:
    """Fixtures every contract class uses; the user provides ``store_factory``.

    ``store_factory`` is a pytest fixture (in the test class or a conftest) whose value
    is an async callable: each call returns a store on the *same* backing storage and
    namespace (a new connection, or the same instance for an in-process store), empty at
    the start of each test. The fixture closes what it opened when the test ends
    (closing twice must be harmless: some tests close a store themselves).
    """

    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def store(self, store_factory: StoreFactory) -> Store:
        """A fresh, empty store of the kind under test."""
        return await store_factory()


def ev(actor_id: str, version: int, event_type: str = "Happened", **data: Any) -> Event:
    """A new event of `actor_id` at `version` with `data`."""
    return Event(event_type=event_type, actor_id=actor_id, version=version, data=data)


async def append_n(store: Store, actor_id: str, n: int, start: int = 1) -> list[Event]:
    """Append versions ``start .. start + n - 1`` one by one; return the stored events."""
    return [await store.save_event(ev(actor_id, v, n=v)) for v in range(start, start + n)]


async def read_all_list(
    store: Store, from_position: int = 0, slices: Slices | None = None
) -> list[Event]:
    """Everything `read_all` yields (`slices` is passed only when given)."""
    if slices is None:
        return [e async for e in store.read_all(from_position)]
    return [e async for e in store.read_all(from_position, slices=slices)]


async def take(it: AsyncIterator[Event], n: int) -> list[Event]:
    """The next `n` items of `it`, each within `WAIT` seconds."""
    return [await asyncio.wait_for(anext(it), WAIT) for _ in range(n)]


async def start_watch(
    store: Store, from_position: int | None = None
) -> tuple[AsyncIterator[Event], asyncio.Task[Event]]:
    """Start `watch` and a task already awaiting its first item (after a short pause)."""
    it = store.watch(from_position)
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.2)
    return it, first


async def assert_nothing_written(store: Store, before: list[Event]) -> None:
    """The store holds exactly `before` (same ids, same positions)."""
    after = await read_all_list(store)
    assert [(e.id, e.position) for e in after] == [(e.id, e.position) for e in before]


async def aclose(it: AsyncIterator[Event]) -> None:
    """Close an async iterator (an async generator, or anything with ``aclose``)."""
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()
