"""Cluster nodes on three routed servers with an R3 bucket, through network and server faults.

(a) a node cut off behind a TCP proxy (black-holed ~5 s, then only its client side reset,
    the server keeping a half-open connection) never acquires a shard the server's
    current map gives to another node, and no shard ever has two owners;
(b) SIGKILL of the server leading the bucket's stream, with the default (replicated)
    lease: no node releases anything, every shard stays owned;
(c) a leader frozen (SIGSTOP) inside a shard-map write gets `StaleTermError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from aether.cluster import ClusterNode
from aether.cluster._kv import KvEntry
from aether.cluster.defaults import REPLICATED_LEASE
from aether.cluster.shards import decode_shard_map
from aether.cluster.status import SHARDMAP_KEY
from aether.subjects import cluster_bucket
from tests.cluster.helpers import Ownership, cluster_settings, describe, settled_on, wait_until
from tests.faults.helpers import stream_leader
from tests.proxy import TcpProxy
from tests.servers import NatsCluster

S = 16
ROOT = str(Path(__file__).resolve().parents[2])


def r3_settings(urls: list[str], namespace: str, **extra: object) -> Any:
    """Cluster settings on `urls` with an R3 bucket and quick reconnects."""
    return cluster_settings(
        urls,
        namespace,
        **{
            "jetstream.replicas": 3,
            "nats.reconnect_wait": "100ms",
            "nats.reconnect_attempts": -1,
            **extra,
        },
    )


async def server_map(nc: Client, namespace: str) -> Any:
    """The shard map the stream leader holds now."""
    js = nc.jetstream(timeout=5)
    msg = await js.get_msg(
        f"KV_{cluster_bucket(namespace)}", subject=f"$KV.{cluster_bucket(namespace)}.{SHARDMAP_KEY}"
    )
    return decode_shard_map(msg.data or b"")


class CurrentMapCheck:
    """A listener: every acquired shard must be this node's (or in hand-off from it) in the
    map the server holds at that moment."""

    def __init__(self, nc: Client, namespace: str, node_id: str) -> None:
        self.nc, self.namespace, self.node_id = nc, namespace, node_id
        self.violations: list[str] = []
        self.acquired = 0

    async def on_acquired(self, shards: frozenset[int]) -> None:
        self.acquired += 1
        m = await server_map(self.nc, self.namespace)
        for s in sorted(shards):
            owner = m.owner(s)
            src = next((h.source for h in m.handoffs if h.shard == s), None)
            if owner != self.node_id and not (owner is None and src == self.node_id):
                self.violations.append(
                    f"{self.node_id} acquired {s}; server map epoch {m.epoch} gives it to {owner}"
                )

    def on_released(self, shards: frozenset[int]) -> None:
        pass


async def test_a_cut_off_node_rejoins_on_the_current_map(nats_cluster: NatsCluster) -> None:
    urls = nats_cluster.urls
    ns = "cut"
    timing = {"cluster.heartbeat": "250ms", "cluster.lease": "2s", "cluster.node_ttl": "2s"}
    direct = r3_settings(urls, ns, **timing)
    own = Ownership()
    checker = await nats.connect(servers=urls)
    proxy = TcpProxy(nats_cluster.servers[0].port).start()
    nodes: list[ClusterNode] = []
    try:
        for i in range(3):
            nodes.append(
                await ClusterNode(direct, f"n{i}", shard_count=S, **own.callbacks(f"n{i}")).start()
            )
        check = CurrentMapCheck(checker, ns, "cut")
        victim = ClusterNode(
            r3_settings([proxy.url], ns, **timing),
            "cut",
            shard_count=S,
            listeners=[check],
            **own.callbacks("cut"),
        )
        await victim.start()
        everyone = [*nodes, victim]
        await wait_until(
            lambda: settled_on(everyone, S), 30, "4 nodes settle", lambda: describe(everyone)
        )
        assert victim.shards

        # The victim's view may come back stale (an ordered consumer stalled on the
        # half-open connection): make it so, deterministically, until well after the
        # reconnect. Acquisitions must then still follow the server's current map.
        assert victim._view is not None
        view, deliver = victim._view, victim._view.listener
        stalled = True

        def stale_view(entry: KvEntry) -> None:
            if not (stalled and entry.key == SHARDMAP_KEY) and deliver is not None:
                deliver(entry)

        view.listener = stale_view
        proxy.blackhole()
        cut = time.monotonic()
        await wait_until(lambda: not victim.shards, 10, "the cut-off node releases its shards")
        assert not victim.in_contact
        await wait_until(
            lambda: settled_on(nodes, S), 20, "the others take over", lambda: describe(nodes)
        )
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - cut)))
        stale = victim.shard_map
        assert stale is not None and stale.shards_of("cut")  # the view still shows the old map

        proxy.restore()
        proxy.reset_clients()  # the server keeps its end of the old connection
        await wait_until(lambda: victim.in_contact, 20, "the victim is back in contact")
        await asyncio.sleep(1.0)  # it acts on the stale view meanwhile, if it would
        stalled = False
        await view.restart()
        await wait_until(
            lambda: settled_on(everyone, S), 30, "4 nodes settle again", lambda: describe(everyone)
        )
        assert check.acquired >= 2
        assert not check.violations, check.violations
        assert not own.violations, own.violations
    finally:
        for n in nodes:
            await n.stop()
        with contextlib.suppress(Exception):
            await victim.stop()
        proxy.stop()
        await checker.close()


async def test_killing_the_bucket_stream_leader_drops_no_shard(nats_cluster: NatsCluster) -> None:
    urls = nats_cluster.urls
    ns = "kvkill"
    settings = r3_settings(urls, ns)  # default timing: the replicated lease
    own = Ownership()
    nodes = [
        await ClusterNode(settings, f"k{i}", shard_count=S, **own.callbacks(f"k{i}")).start()
        for i in range(3)
    ]
    try:
        assert nodes[0].lease == REPLICATED_LEASE
        await wait_until(lambda: settled_on(nodes, S), 30, "settle", lambda: describe(nodes))
        released_before = sum(len(v) for v in own.released.values())
        leader = await stream_leader(urls, f"KV_{cluster_bucket(ns)}")
        victim = nats_cluster.server_named(leader)
        await asyncio.to_thread(victim.stop, kill=True)
        killed = time.monotonic()
        # Watch for longer than the lease: any drop would show within it.
        while time.monotonic() - killed < REPLICATED_LEASE + 3:
            held = [s for n in nodes for s in n.shards]
            assert sorted(held) == list(range(S)), describe(nodes)
            await asyncio.sleep(0.1)
        new_leader = await stream_leader(
            [s.url for s in nats_cluster.servers if s is not victim], f"KV_{cluster_bucket(ns)}"
        )
        assert new_leader != leader
        assert sum(len(v) for v in own.released.values()) == released_before, own.released
        assert all(n.is_leader for n in nodes if n.term is not None)
        assert len([n for n in nodes if n.is_leader]) == 1
        assert not own.violations
    finally:
        for n in nodes:
            await n.stop()


FROZEN = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from aether.cluster import ClusterNode
    from aether.config import Settings

    async def main() -> None:
        settings = Settings.load(overrides=json.loads(sys.argv[1]), env={},
                                 search_default_files=False)
        node = ClusterNode(settings, "frozen", shard_count=16)
        await node.start()
        while not (node.is_leader and node.shard_map is not None):
            await asyncio.sleep(0.05)
        bucket, election = node._bucket, node._election
        original_publish, original_write = bucket._publish, election.write
        armed = True

        async def publish(key, value, headers):
            nonlocal armed
            if key != "shardmap" or not armed:
                return await original_publish(key, value, headers)
            armed = False
            task = asyncio.ensure_future(original_publish(key, value, headers))
            await asyncio.sleep(0)  # the publish is queued, not yet flushed
            print(json.dumps({"frozen": True}), flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
            return await task

        async def write(key, value, term):
            try:
                rev = await original_write(key, value, term)
            except BaseException as e:
                print(json.dumps({"write": type(e).__name__, "msg": str(e)}), flush=True)
                raise
            print(json.dumps({"write": "ok", "revision": rev}), flush=True)
            return rev

        bucket._publish, election.write = publish, write
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


async def test_a_leader_frozen_in_a_map_write_gets_stale_term(nats_cluster: NatsCluster) -> None:
    urls = nats_cluster.urls
    ns = "frozen"
    timing = {"cluster.heartbeat": "250ms", "cluster.lease": "1500ms", "cluster.node_ttl": "1500ms"}
    overrides = {"nats.servers": urls, "namespace": ns, "jetstream.replicas": 3, **timing}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, read through a thread
        [sys.executable, "-c", FROZEN, json.dumps(overrides)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT},
        text=True,
    )
    lines: list[dict[str, Any]] = []

    async def read_until(key: str, limit: float) -> dict[str, Any]:
        assert proc.stdout is not None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), limit)
            if not line:
                break
            lines.append(json.loads(line))
            if key in lines[-1]:
                return lines[-1]
        raise AssertionError(f"no {key!r} from the frozen leader: {lines}")

    other: ClusterNode | None = None
    try:
        await read_until("ready", 30)
        other = await ClusterNode(r3_settings(urls, ns, **timing), "other", shard_count=S).start()
        await read_until("frozen", 20)  # it planned the hand-off and froze inside the write
        await wait_until(lambda: _stopped(proc.pid), 5, "the leader is stopped")
        await wait_until(lambda: other.is_leader, 20, "the other node takes over")
        await wait_until(lambda: len(other.shards) == S, 20, "and takes every shard")
        os.kill(proc.pid, signal.SIGCONT)
        outcome = await read_until("write", 30)
        assert outcome["write"] == "StaleTermError", lines
        nc = await nats.connect(servers=urls)
        try:
            m = await server_map(nc, ns)
        finally:
            await nc.close()
        assert m.nodes == {"other"} and m.term == other.term
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        if other is not None:
            await other.stop()
