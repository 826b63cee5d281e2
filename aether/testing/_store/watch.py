"""Contract: watch follows the namespace live, in order, without gaps or duplicates."""

from __future__ import annotations

import asyncio
import itertools

from aether.store.base import Store
from aether.testing._store.helpers import (
    WAIT,
    ContractBase,
    StoreFactory,
    aclose,
    append_n,
    ev,
    start_watch,
    take,
)


class WatchContract(ContractBase):
    """Contract: watch follows the namespace live, in order, without gaps or duplicates."""

    async def test_watch_delivers_only_events_appended_after_it_started(self, store: Store) -> None:
        old = await store.save_event(ev("a", 1))
        it, first = await start_watch(store)
        try:
            new = [await store.save_event(ev("a", v)) for v in (2, 3, 4)]
            got = [await asyncio.wait_for(first, WAIT), *await take(it, 2)]
            assert [e.id for e in got] == [e.id for e in new]
            assert old.id not in {e.id for e in got}
            # no duplicate sneaks in: the next event is the next one appended
            later = await store.save_event(ev("b", 1))
            assert (await take(it, 1))[0].id == later.id
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    async def test_watch_from_position_replays_then_goes_live(self, store: Store) -> None:
        saved = await append_n(store, "a", 4)
        start = saved[1].position
        it = store.watch(start)
        try:
            replay = await take(it, 3)
            assert [e.id for e in replay] == [e.id for e in saved[1:]]
            live = [await store.save_event(ev("b", 1)), await store.save_event(ev("a", 5))]
            got = await take(it, 2)
            assert [e.id for e in got] == [e.id for e in live]
            assert [e.position for e in got] == [e.position for e in live]
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    async def test_watch_from_position_0_replays_everything(self, store: Store) -> None:
        saved = await append_n(store, "x", 3)
        it = store.watch(0)
        try:
            assert [e.id for e in await take(it, 3)] == [e.id for e in saved]
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    async def test_watch_sees_concurrent_writers_in_position_order_exactly_once(
        self,
        store: Store,
    ) -> None:
        it, first = await start_watch(store, 0)

        async def writer(actor: str) -> list[str]:
            ids = []
            for v in range(1, 16):
                ids.append((await store.save_event(ev(actor, v))).id)
            return ids

        try:
            written = await asyncio.gather(*(writer(f"w{i}") for i in range(4)))
            got = [await asyncio.wait_for(first, WAIT), *await take(it, 59)]
            positions = [e.position for e in got]
            assert all(b > a for a, b in itertools.pairwise(positions))  # type: ignore[operator]
            assert sorted(e.id for e in got) == sorted(i for ids in written for i in ids)
            for i, ids in enumerate(written):  # each actor's events in version order
                mine = [e for e in got if e.actor_id == f"w{i}"]
                assert [e.id for e in mine] == ids and [e.version for e in mine] == list(
                    range(1, 16)
                )
            # nothing extra follows: the next event is one appended now
            marker = await store.save_event(ev("marker", 1))
            assert (await take(it, 1))[0].id == marker.id
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    async def test_watch_sees_writes_of_another_store_instance(
        self, store_factory: StoreFactory
    ) -> None:
        reader = await store_factory()
        writer = await store_factory()
        it, first = await start_watch(reader)
        try:
            saved = [await writer.save_event(ev("a", v)) for v in (1, 2)]
            got = [await asyncio.wait_for(first, WAIT), *await take(it, 1)]
            assert [e.id for e in got] == [e.id for e in saved]
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    async def test_two_watchers_see_the_same_sequence(self, store: Store) -> None:
        it1, first1 = await start_watch(store)
        it2, first2 = await start_watch(store)
        try:
            saved = await store.save_events([ev("a", v) for v in (1, 2, 3)])
            got1 = [await asyncio.wait_for(first1, WAIT), *await take(it1, 2)]
            got2 = [await asyncio.wait_for(first2, WAIT), *await take(it2, 2)]
            assert [e.id for e in got1] == [e.id for e in got2] == [e.id for e in saved]
        finally:
            await asyncio.wait_for(aclose(it1), WAIT)
            await asyncio.wait_for(aclose(it2), WAIT)

    async def test_closing_a_watch_is_clean_and_the_store_goes_on(self, store: Store) -> None:
        it, first = await start_watch(store)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(aclose(it), WAIT)
        assert (await store.save_event(ev("a", 1))).version == 1
        it2 = store.watch(0)
        try:
            assert (await take(it2, 1))[0].actor_id == "a"
        finally:
            await asyncio.wait_for(aclose(it2), WAIT)
