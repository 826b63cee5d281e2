"""`observe_node` with a real `ClusterNode` and a toy projection's stats: what the lead
connects when processors run in ``aether node run`` (``processors=`` the runtime)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from aether import Event, Settings
from aether.cluster import ClusterNode, shard_of
from aether.observability import ProcessorStatsRecord, observe_node, process_span
from aether.store import open_store
from tests.observability.helpers import scrape, value
from tests.servers import NatsServer

SHARDS = 4


async def test_counters_and_lag_reflect_100_appends_processed(nats_server: NatsServer) -> None:
    settings = Settings.load(
        overrides={"nats.servers": [nats_server.url], "namespace": "obsin"},
        search_default_files=False,
    )
    node = ClusterNode(settings, "solo", shard_count=SHARDS, heartbeat=0.2, lease=1.0, node_ttl=1.0)
    appended: Counter[int] = Counter()
    handled: Counter[int] = Counter()
    checkpoint: dict[int, int] = dict.fromkeys(range(SHARDS), 0)

    def stats() -> list[ProcessorStatsRecord]:
        return [
            ProcessorStatsRecord(
                "cart-view", s, checkpoint[s], appended[s] - handled[s], 0.0, handled[s]
            )
            for s in sorted(node.shards)
        ]

    obs = observe_node(node, metrics_addr="127.0.0.1:0", processors=stats)
    assert obs.metrics_url is not None
    url = obs.metrics_url
    await node.start()
    store = await open_store(settings)
    try:
        deadline = time.monotonic() + 30
        while len(node.shards) < SHARDS:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for i in range(100):
            actor = f"cart-{i % 20}"
            await store.save_event(Event("ItemAdded", actor, i // 20 + 1, {"i": i}))
            appended[shard_of(actor, SHARDS)] += 1
        before = await asyncio.to_thread(scrape, url)
        assert value(before, "aether_store_last_position", namespace="obsin") == 100
        lag = sum(
            value(before, "aether_processor_lag_events", processor="cart-view", shard=str(s))
            for s in range(SHARDS)
        )
        assert lag == 100
        async for e in store.read_all():  # the toy projection
            s = shard_of(e.actor_id, SHARDS)
            with process_span(e, "cart-view"):
                handled[s] += 1
            assert e.position is not None
            checkpoint[s] = e.position
        after = await asyncio.to_thread(scrape, url)
        who = {"namespace": "obsin", "node": "solo"}
        assert value(after, "aether_cluster_leader", **who) == 1
        assert value(after, "aether_cluster_shards_owned", **who) == SHARDS
        for s in range(SHARDS):
            key = {"processor": "cart-view", "shard": str(s)}
            assert value(after, "aether_processor_lag_events", **key) == 0
            assert value(after, "aether_processor_handled_events_total", **key) == appended[s]
        assert max(checkpoint.values()) == 100
        count = "aether_processor_handler_duration_seconds_count"
        assert value(after, count, processor="cart-view", outcome="ok") >= 100
    finally:
        await store.close()
        await node.stop()
        obs.close()
    with pytest.raises(OSError):  # closed: the port is released
        await asyncio.to_thread(scrape, url)
