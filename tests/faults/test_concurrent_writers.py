"""Fault (c): 20 concurrent writers on one actor across two connections."""

from __future__ import annotations

import asyncio
import random

from aether.errors import VersionConflictError
from aether.store.jetstream import JetStreamEventStore
from tests.faults.helpers import ev, fault_settings
from tests.servers import NatsServer

WRITERS = 20
TARGET = 300


async def test_every_version_has_exactly_one_event(nats_server: NatsServer) -> None:
    settings = fault_settings([nats_server.url], **{"jetstream.publish_timeout": "5s"})
    stores = [await JetStreamEventStore.open(settings) for _ in range(2)]
    acked: dict[int, tuple[int, str]] = {}  # version -> (writer, event id)
    conflicts = 0

    async def writer(w: int) -> None:
        nonlocal conflicts
        store = stores[w % 2]
        version = await store.get_latest_version("hot") + 1
        while version <= TARGET:
            event = ev("hot", version, writer=w)
            try:
                stored = await store.save_event(event)
            except VersionConflictError as e:
                conflicts += 1
                assert e.expected == version - 1 and e.actual >= version
                version = e.actual + 1  # learn from the conflict: no extra read
                continue
            assert stored.version == version
            assert version not in acked, f"version {version} acknowledged twice"
            acked[version] = (w, event.id)
            version += 1
            # The winner knows the next version without a round trip, the losers learn it
            # from their conflict: on a loaded machine the winner would keep winning unless
            # it gives the others a head start of a few round trips.
            await asyncio.sleep(0.002 + random.random() / 100)

    await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(WRITERS))), timeout=120)
    assert conflicts > 0
    events = await stores[0].get_events("hot")
    assert [e.version for e in events] == list(range(1, TARGET + 1))
    assert sorted(acked) == list(range(1, TARGET + 1))
    assert [e.id for e in events] == [acked[v][1] for v in range(1, TARGET + 1)]
    assert [e.data["writer"] for e in events] == [acked[v][0] for v in range(1, TARGET + 1)]
    assert len({w for w, _ in acked.values()}) > 1
    for s in stores:
        await s.close()
