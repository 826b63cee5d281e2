"""Processors on a three-server NATS cluster with R3 streams: a server paused (SIGSTOP)
and resumed, then another restarted, while events are appended; the read model equals
the fold and the reactor's outputs exist exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aether.cluster import ClusterNode
from aether.errors import TransientError
from aether.processing import RetryPolicy, wait_for
from aether.store import open_store
from aether.store.base import EventStore
from tests.cluster.helpers import cluster_settings, settled_on, wait_until
from tests.processing.helpers import (
    LedgerReactor,
    Workload,
    added_positions,
    direct_fold,
    ledger_sources,
    read_totals,
    totals_projection,
)
from tests.servers import NatsCluster

S = 4
NS = "pr3"


def settings(urls: list[str]) -> Any:
    return cluster_settings(urls, NS, store="jetstream", **{"jetstream.replicas": 3})


async def test_paused_and_restarted_servers(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    db = tmp_path / "read.db"
    urls = nats_cluster.urls
    store = await open_store(settings(urls))
    started: list[tuple[ClusterNode, EventStore]] = []
    try:
        for i in range(3):
            s = await open_store(settings(urls))
            node = ClusterNode(
                settings(urls),
                f"n{i}",
                shard_count=S,
                heartbeat=0.5,
                lease=4.0,
                node_ttl=4.0,
                processors=[totals_projection(db), LedgerReactor(s, sparse=True)],
                store=s,
                processor_retry=RetryPolicy(attempts=3, base=0.01, max=0.05),
            )
            await node.start()
            started.append((node, s))
        nodes = [n for n, _ in started]
        await wait_until(lambda: settled_on(nodes, S), 60, "3 nodes settle")
        w = Workload(50, seed=5)

        async def append(n: int) -> None:
            for _ in range(n // 10):
                unit = [w.event() for _ in range(10)]
                while True:
                    try:
                        await store.save_events(unit)
                        break
                    except TransientError:
                        await asyncio.sleep(0.2)

        await append(200)
        server = nats_cluster.servers[1]
        server.pause()  # for 3 s, whoever is connected to it (the writer may be)
        resume = asyncio.get_running_loop().call_later(3.0, server.resume)
        try:
            await append(200)
            await asyncio.sleep(3.0)
        finally:
            resume.cancel()
            server.resume()
        await append(100)
        await asyncio.to_thread(nats_cluster.servers[2].restart)
        await append(200)
        head = await store.last_position()
        for name in ("order-totals", "ledger"):
            await wait_for(store, name, head, timeout=120)
        assert read_totals(db) == await direct_fold(store)
        assert sorted(await ledger_sources(store)) == await added_positions(store, sparse=True)
    finally:
        for n, s in started:
            await n.abort()
            await s.close()
        await store.close()
