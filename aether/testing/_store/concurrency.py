"""Contract: racing writers — exactly one winner per version, no gaps, honest conflicts."""

from __future__ import annotations

import asyncio

from aether.errors import VersionConflictError
from aether.event import Event
from aether.store.base import Store
from aether.testing._store.helpers import ContractBase, StoreFactory, ev, read_all_list

RACERS = 50


ROUNDS = 4


async def _race(stores: list[Store], actor: str, version: int) -> None:
    """RACERS tasks append `version` at once; check one wins and the rest conflict right."""
    candidates = [ev(actor, version, racer=i) for i in range(RACERS)]
    results = await asyncio.gather(
        *(stores[i % len(stores)].save_event(e) for i, e in enumerate(candidates)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Event)]
    losers = [r for r in results if not isinstance(r, Event)]
    assert len(winners) == 1, results
    assert all(isinstance(r, VersionConflictError) for r in losers), losers
    for r in losers:
        assert isinstance(r, VersionConflictError)
        assert (r.actor_id, r.expected, r.actual) == (actor, version - 1, version)
    stored = await stores[0].get_events(actor, version)
    assert [e.id for e in stored] == [winners[0].id]


class ConcurrencyContract(ContractBase):
    """Contract: racing writers — exactly one winner per version, no gaps, honest conflicts."""

    async def test_racing_tasks_one_winner_per_version(self, store: Store) -> None:
        await store.save_event(ev("hot", 1))
        for n in range(1, ROUNDS + 1):
            await _race([store], "hot", n + 1)
        events = await store.get_events("hot")
        assert [e.version for e in events] == list(range(1, ROUNDS + 2))
        assert await store.get_latest_version("hot") == ROUNDS + 1
        assert len(await read_all_list(store)) == ROUNDS + 1

    async def test_racing_for_the_first_version(self, store: Store) -> None:
        await _race([store], "brand-new", 1)
        assert await store.list_actors() == {"brand-new": 1}

    async def test_racing_across_two_store_instances(self, store_factory: StoreFactory) -> None:
        one = await store_factory()
        two = await store_factory()
        await one.save_event(ev("shared", 1))
        for n in range(1, ROUNDS + 1):
            await _race([one, two], "shared", n + 1)
        for s in (one, two):
            assert [e.version for e in await s.get_events("shared")] == list(range(1, ROUNDS + 2))
            assert await s.get_latest_version("shared") == ROUNDS + 1

    async def test_retrying_writers_all_land_without_gaps(self, store: Store) -> None:
        """The documented retry pattern: reload the version, append, retry on conflict."""
        writers = 12

        async def writer(i: int) -> str:
            while True:
                latest = await store.get_latest_version("counter")
                try:
                    return (await store.save_event(ev("counter", latest + 1, writer=i))).id
                except VersionConflictError as e:
                    assert e.actual >= latest + 1

        ids = await asyncio.gather(*(writer(i) for i in range(writers)))
        events = await store.get_events("counter")
        assert [e.version for e in events] == list(range(1, writers + 1))
        assert sorted(e.id for e in events) == sorted(ids)

    async def test_concurrent_writers_on_many_actors(self, store: Store) -> None:
        async def writer(actor: str) -> None:
            for v in range(1, 11):
                await store.save_event(ev(actor, v))

        await asyncio.gather(*(writer(f"actor-{i}") for i in range(20)))
        assert await store.list_actors() == {f"actor-{i}": 10 for i in range(20)}
        events = await read_all_list(store)
        assert len(events) == 200 and len({e.id for e in events}) == 200
