"""`watch` follows the namespace through a server restart without gaps or duplicates."""

from __future__ import annotations

import asyncio

from aether.event import Event
from aether.store.jetstream import JetStreamEventStore
from tests.faults.helpers import ev, fault_settings, save_with_retries
from tests.servers import NatsServer, wait_jetstream_ready

BEFORE = 200
AFTER = 200


async def test_watch_survives_a_server_restart(nats_server: NatsServer) -> None:
    settings = fault_settings([nats_server.url])
    writer = await JetStreamEventStore.open(settings)
    watcher = await JetStreamEventStore.open(settings)
    seen: list[Event] = []
    done = asyncio.Event()

    async def follow() -> None:
        async for e in watcher.watch(1):
            seen.append(e)
            if len(seen) == BEFORE + AFTER:
                done.set()
                return

    task = asyncio.create_task(follow())
    written: list[Event] = []
    versions: dict[str, int] = {}

    async def append(i: int) -> None:
        actor = f"a{i % 7}"
        versions[actor] = versions.get(actor, 0) + 1
        written.append((await save_with_retries(writer, ev(actor, versions[actor])))[0])

    for i in range(BEFORE):
        await append(i)
    await asyncio.to_thread(nats_server.restart)
    await asyncio.to_thread(wait_jetstream_ready, [nats_server.url])
    for i in range(BEFORE, BEFORE + AFTER):
        await append(i)
    await asyncio.wait_for(done.wait(), 60)
    await task
    assert [e.id for e in seen] == [e.id for e in written]
    assert [e.position for e in seen] == list(range(1, BEFORE + AFTER + 1))
    await writer.close()
    await watcher.close()
