"""On a three-server NATS cluster: losing the server a node is connected to."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse

from aether.cluster import ClusterNode
from aether.cluster._kv import ClusterBucket
from aether.connect import connect
from tests.cluster.helpers import cluster_settings, describe, leaders, settled_on, wait_until
from tests.servers import NatsCluster

S = 16
LEASE = 2.0


def port_of(node: ClusterNode) -> int | None:
    url = node.nc.connected_url
    return urlparse(url.geturl()).port if url is not None else None


async def test_killing_a_nodes_server_keeps_exactly_one_leader(nats_cluster: NatsCluster) -> None:
    urls = nats_cluster.urls
    nodes: list[ClusterNode] = []
    try:
        for i in range(3):
            # node i connects to server i first (then the others), so each server has one
            rotated = urls[i:] + urls[:i]
            settings = cluster_settings(rotated, namespace="nc", **{"jetstream.replicas": 3})
            nc = await connect(settings, dont_randomize=True)
            node = ClusterNode(
                settings, f"c{i}", shard_count=S, heartbeat=0.25, lease=LEASE, node_ttl=LEASE, nc=nc
            )
            nodes.append(node)
            await node.start()
        await wait_until(lambda: settled_on(nodes, S), 20, "settle", lambda: describe(nodes))
        assert [port_of(n) for n in nodes] == [s.port for s in nats_cluster.servers]

        # Kill the server that leads the bucket's stream: the harder case (the stream must
        # elect a new leader while the node connected there reconnects elsewhere).
        info = await nodes[0].nc.jetstream().stream_info(ClusterBucket(nodes[0].nc, "nc").stream)
        assert info.cluster is not None and info.cluster.leader is not None
        victim = nats_cluster.server_named(info.cluster.leader)
        cut = next(n for n in nodes if port_of(n) == victim.port)

        max_leaders = 0
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal max_leaders
            while not stop.is_set():
                max_leaders = max(max_leaders, len(leaders(nodes)))
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        victim.stop(kill=True)
        await wait_until(
            lambda: cut.nc.is_connected and port_of(cut) not in (None, victim.port),
            20,
            f"{cut.node_id} reconnects to another server",
        )
        await asyncio.sleep(2 * LEASE)  # renewals and heartbeats must go on via the others
        await wait_until(
            lambda: (
                settled_on(nodes, S)
                and len(leaders(nodes)) == 1
                and len(cut.status().nodes) == 3
                and all(x.heartbeat_age < LEASE for x in cut.status().nodes)
                and len({n.leader.term if n.leader else None for n in nodes}) == 1
            ),
            30,
            "one leader (the same term for all), three live nodes, a settled map",
            lambda: (
                describe(nodes),
                [n.leader.term if n.leader else None for n in nodes],
                cut.status().to_dict(shards=False)["nodes"],
                f"max leaders {max_leaders}",
            ),
        )
        stop.set()
        await sampler
        assert max_leaders == 1, f"{max_leaders} nodes believed they led at the same time"
    finally:
        for n in nodes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(n.stop(), 10)
            with contextlib.suppress(Exception):
                await n.nc.close()
