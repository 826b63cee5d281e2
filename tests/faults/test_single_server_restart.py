"""Fault (a): the single server restarts while 10,000 appends run with retries."""

from __future__ import annotations

import asyncio

from aether.store.jetstream import JetStreamEventStore
from tests.faults.helpers import assert_exactly_acked, ev, fault_settings, save_with_retries
from tests.servers import NatsServer

ACTORS = 100
PER_ACTOR = 100  # 10,000 appends


async def test_restart_during_appends_loses_and_duplicates_nothing(
    nats_server: NatsServer,
) -> None:
    settings = fault_settings([nats_server.url])
    store = await JetStreamEventStore.open(settings)
    acked: dict[str, list[str]] = {f"actor-{i}": [] for i in range(ACTORS)}
    retried = 0
    progress = asyncio.Event()

    async def writer(actor: str) -> None:
        nonlocal retried
        for v in range(1, PER_ACTOR + 1):
            event = ev(actor, v, n=v)
            stored, retries = await save_with_retries(store, event)
            assert stored.version == v and stored.id == event.id
            acked[actor].append(event.id)
            retried += retries
            if sum(map(len, acked.values())) >= ACTORS * PER_ACTOR // 3:
                progress.set()

    restarted_at: list[int] = []

    async def restarter() -> None:
        await progress.wait()
        await asyncio.to_thread(nats_server.restart)
        restarted_at.append(sum(map(len, acked.values())))

    await asyncio.wait_for(asyncio.gather(restarter(), *(writer(a) for a in acked)), timeout=120)
    # Publishes issued during the restart are re-sent by the store once reconnected, so
    # a short restart may need no retry by the caller at all.
    assert restarted_at[0] < ACTORS * PER_ACTOR, "the restart came after the appends"
    assert store._nc.stats["reconnects"] >= 1
    await store.close()

    fresh = await JetStreamEventStore.open(settings)
    await assert_exactly_acked(fresh, acked, PER_ACTOR)
    assert await fresh.list_actors() == dict.fromkeys(acked, PER_ACTOR)
    await fresh.close()
