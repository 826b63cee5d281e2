"""`ClusterNode(processors=[...])` on a real server: shards, hand-over, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aether.cluster import ClusterNode
from aether.processing import RetryPolicy, processor_status, wait_for
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
from tests.servers import NatsServer

S = 8
NS = "pc"
FAST = RetryPolicy(attempts=3, base=0.01, max=0.05)
MakeNode = Callable[..., Awaitable[ClusterNode]]


def node_settings(url: str) -> Any:
    return cluster_settings(url, NS, store="jetstream")


@pytest.fixture
async def store(nats_server: NatsServer) -> AsyncIterator[EventStore]:
    """The test's own connection to the nodes' namespace."""
    s = await open_store(node_settings(nats_server.url))
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def make_node(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[MakeNode]:
    started: list[ClusterNode] = []
    db = tmp_path / "read.db"

    async def make(node_id: str, **kw: Any) -> ClusterNode:
        node_store = await open_store(node_settings(nats_server.url))
        procs = [totals_projection(db), LedgerReactor(node_store)]
        node = ClusterNode(
            node_settings(nats_server.url),
            node_id,
            shard_count=S,
            heartbeat=0.2,
            lease=1.0,
            node_ttl=1.0,
            processors=procs,
            store=node_store,
            processor_retry=FAST,
            **kw,
        )
        node._test_store = node_store  # type: ignore[attr-defined]
        await node.start()
        started.append(node)
        return node

    yield make
    for n in started:
        await n.abort()
        await n._test_store.close()  # type: ignore[attr-defined]


def owners(nodes: list[ClusterNode]) -> dict[int, list[str]]:
    held: dict[int, list[str]] = {}
    for n in nodes:
        host = n.processor_host
        assert host is not None
        for (name, segment), r in host.runners.items():
            if name == "order-totals" and r.running:
                held.setdefault(int(segment), []).append(n.node_id)
    return held


async def check_all(store: EventStore, db: Path) -> None:
    head = await store.last_position()
    for name in ("order-totals", "ledger"):
        await wait_for(store, name, head, timeout=60)
    assert read_totals(db) == await direct_fold(store)
    assert sorted(await ledger_sources(store)) == await added_positions(store)


async def test_three_nodes_share_the_shards_and_equal_the_fold(
    make_node: MakeNode, store: EventStore, tmp_path: Path
) -> None:
    nodes = [await make_node(f"n{i}") for i in range(3)]
    await wait_until(lambda: settled_on(nodes, S), 20, "3 nodes settle")
    w = Workload(60)
    await w.append(store, 600)
    await check_all(store, tmp_path / "read.db")
    await wait_until(
        lambda: (
            sorted(owners(nodes)) == list(range(S))
            and all(len(v) == 1 for v in owners(nodes).values())
        ),
        20,
        "every shard runs once",
    )
    statuses = [s for s in await processor_status(store) if s.processor == "order-totals"]
    assert [s.shard for s in statuses] == list(range(S))
    assert all(s.state == "running" and s.owner for s in statuses)
    assert {s.owner for s in statuses} == {"n0", "n1", "n2"}
    host_view = [s for n in nodes for s in n.processor_host.statuses()]  # type: ignore[union-attr]
    assert len(host_view) == 2 * S
    await wait_for(nodes[0], "order-totals", await store.last_position(), timeout=30)


async def test_leave_and_join_while_appending(
    make_node: MakeNode, store: EventStore, tmp_path: Path
) -> None:
    nodes = [await make_node(f"n{i}") for i in range(3)]
    await wait_until(lambda: settled_on(nodes, S), 20, "3 nodes settle")
    w = Workload(80, seed=11)
    stop = asyncio.Event()

    async def appender() -> None:
        while not stop.is_set():
            await w.append(store, 20, unit=10)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(appender())
    try:
        await asyncio.sleep(0.5)
        await nodes[1].stop()  # leaves gracefully: hand-over
        live = [nodes[0], nodes[2]]
        await wait_until(lambda: settled_on(live, S), 20, "2 nodes settle")
        joined = await make_node("n3")
        live.append(joined)
        await wait_until(lambda: settled_on(live, S), 20, "3 nodes settle again")
        await asyncio.sleep(0.5)
        await nodes[2].abort()  # crashes: its shards move after the TTL
        live = [nodes[0], joined]
        await wait_until(lambda: settled_on(live, S), 30, "survivors settle")
    finally:
        stop.set()
        await task
    assert w.appended > 0
    await check_all(store, tmp_path / "read.db")
    held = owners(live)
    assert sorted(held) == list(range(S)) and all(len(v) == 1 for v in held.values())
