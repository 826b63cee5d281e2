"""Fault (b): an R3 stream on three servers; the stream leader is killed mid-appends."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from aether.config import Settings
from aether.errors import NatsUnavailableError
from aether.store.jetstream import JetStreamEventStore
from tests.faults.helpers import (
    assert_exactly_acked,
    ev,
    fault_settings,
    save_with_retries,
    stream_leader,
)
from tests.servers import NatsCluster


async def open_when_ready(settings: Settings) -> JetStreamEventStore:
    """Open a store once the cluster answers again (the meta leader may be re-elected)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await JetStreamEventStore.open(settings)
        except NatsUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


ACTORS = 20
PER_ACTOR = 60


async def test_killing_the_stream_leader_loses_nothing_acknowledged(
    nats_cluster: NatsCluster,
) -> None:
    settings = fault_settings(nats_cluster.urls, **{"jetstream.replicas": 3})
    store = await JetStreamEventStore.open(settings)
    acked: dict[str, list[str]] = {f"actor-{i}": [] for i in range(ACTORS)}
    after_kill = 0
    killed = asyncio.Event()
    progress = asyncio.Event()

    async def writer(actor: str) -> None:
        nonlocal after_kill
        for v in range(1, PER_ACTOR + 1):
            event = ev(actor, v, n=v)
            stored, _ = await save_with_retries(store, event)
            assert stored.version == v
            acked[actor].append(event.id)
            if killed.is_set():
                after_kill += 1
            if sum(map(len, acked.values())) >= ACTORS * PER_ACTOR // 3:
                progress.set()

    async def killer() -> str:
        await progress.wait()
        leader = await stream_leader(nats_cluster.urls, store.stream)
        await asyncio.to_thread(nats_cluster.server_named(leader).stop, kill=True)
        killed.set()
        return leader

    results = await asyncio.wait_for(
        asyncio.gather(killer(), *(writer(a) for a in acked)), timeout=120
    )
    leader = results[0]
    assert after_kill > 0, "no append was acknowledged after the fail-over"
    await store.close()

    survivors = [s.url for s in nats_cluster.servers if s.name != leader]
    on_survivors = settings.replace(nats=dataclasses.replace(settings.nats, servers=survivors))
    fresh = await open_when_ready(on_survivors)
    assert await stream_leader(survivors, fresh.stream) != leader
    await assert_exactly_acked(fresh, acked, PER_ACTOR)
    await fresh.close()
