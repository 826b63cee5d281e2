"""Contract: the start of `watch`, `last_position`, and what a closed store does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aether.errors import StoreClosedError
from aether.event import Snapshot
from aether.store.base import Store, Tracking
from aether.testing._store.helpers import (
    WAIT,
    ContractBase,
    StoreFactory,
    aclose,
    append_n,
    ev,
    read_all_list,
    take,
)


class WatchStartContract(ContractBase):
    """Contract: `watch()` fixes its start when it returns, not at the first iteration."""

    async def test_an_event_saved_before_the_first_iteration_is_delivered(
        self, store: Store
    ) -> None:
        old = await store.save_event(ev("a", 1))
        w = store.watch()
        e = await store.save_event(ev("a", 2))
        try:
            first = await asyncio.wait_for(anext(w), WAIT)
            assert first.id == e.id and first.id != old.id
        finally:
            await asyncio.wait_for(aclose(w), WAIT)

    async def test_on_an_empty_store_too(self, store: Store) -> None:
        w = store.watch()
        saved = await store.save_events([ev("a", 1), ev("b", 1)])
        try:
            assert [e.id for e in await take(w, 2)] == [e.id for e in saved]
        finally:
            await asyncio.wait_for(aclose(w), WAIT)


class LastPositionContract(ContractBase):
    """Contract: `last_position()` is the highest position, 0 when empty."""

    async def test_last_position_follows_appends(self, store: Store) -> None:
        assert await store.last_position() == 0
        saved = await append_n(store, "a", 3)
        assert await store.last_position() == saved[-1].position
        unit = await store.save_events([ev("b", 1), ev("a", 4)])
        assert await store.last_position() == unit[-1].position
        everything = await read_all_list(store)
        assert everything[-1].position == await store.last_position()


def _calls(store: Store) -> dict[str, Callable[[], Awaitable[Any]]]:
    async def drain(it: Any) -> None:
        async for _ in it:
            pass

    return {
        "save_event": lambda: store.save_event(ev("a", 2)),
        "save_events": lambda: store.save_events([ev("a", 2), ev("b", 1)]),
        "get_events": lambda: store.get_events("a"),
        "iter_events": lambda: drain(store.iter_events("a")),
        "get_latest_version": lambda: store.get_latest_version("a"),
        "read_all": lambda: drain(store.read_all()),
        "last_position": lambda: store.last_position(),
        "list_actors": lambda: store.list_actors(),
        "get_tracking": lambda: store.get_tracking("k"),
        "tracking": lambda: store.save_events([], tracking=Tracking("k", 1, 0)),
        "save_snapshot": lambda: store.save_snapshot(Snapshot("a", 1, {})),
        "get_latest_snapshot": lambda: store.get_latest_snapshot("a"),
        "watch": lambda: drain(store.watch(0)),
    }


CALLS = list(_calls(None).keys())  # type: ignore[arg-type]


class CloseContract(ContractBase):
    """Contract: after `close()` every call raises `StoreClosedError` and watches end."""

    @pytest.mark.parametrize("call", CALLS)
    async def test_calls_after_close_are_refused(
        self, store_factory: StoreFactory, call: str
    ) -> None:
        store = await store_factory()
        await store.save_event(ev("a", 1))
        await store.close()
        with pytest.raises(StoreClosedError):
            await asyncio.wait_for(_calls(store)[call](), WAIT)

    async def test_close_ends_a_running_watch(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        w = store.watch()
        pending = asyncio.ensure_future(anext(w))
        await asyncio.sleep(0.1)
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, WAIT)
        with contextlib.suppress(StoreClosedError):
            await aclose(w)

    async def test_close_right_after_watch_ends_it(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        w = store.watch()  # its start may not be known yet when the store closes
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(w), WAIT)
        with contextlib.suppress(StoreClosedError):
            await aclose(w)

    async def test_close_twice_is_harmless(self, store_factory: StoreFactory) -> None:
        store = await store_factory()
        await store.close()
        await store.close()

    async def test_a_store_is_an_async_context_manager(self, store_factory: StoreFactory) -> None:
        async with await store_factory() as store:
            await store.save_event(ev("a", 1))
        with pytest.raises(StoreClosedError):
            await store.get_latest_version("a")
