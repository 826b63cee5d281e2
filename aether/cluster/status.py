"""A cluster's state as one value: leader, live nodes, shard map (for code and the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS

from aether.cluster._kv import ClusterBucket, KvEntry, nats_errors
from aether.cluster.election import LEADER_KEY, LeaderLease, decode_lease
from aether.cluster.membership import NodeInfo, live_nodes
from aether.cluster.shards import ShardMap, compact_ranges, decode_shard_map
from aether.errors import ClusterError

SHARDMAP_KEY = "shardmap"
"""The key holding the current `ShardMap`."""


@dataclass(frozen=True)
class NodeStatus:
    """A live node and the age of its last heartbeat (server timestamp)."""

    info: NodeInfo
    heartbeat_age: float


@dataclass(frozen=True)
class ClusterStatus:
    """The leader (or ``None``), the live nodes and the shard map of a namespace."""

    namespace: str
    leader: LeaderLease | None
    nodes: tuple[NodeStatus, ...]
    shard_map: ShardMap | None

    @property
    def lease_left(self) -> float | None:
        """Seconds left on the leader's lease, if there is a leader."""
        return None if self.leader is None else max(0.0, self.leader.lease_left())

    def to_dict(self, *, shards: bool = True) -> dict[str, Any]:
        """A JSON-ready document (``owners``, one entry per shard, only with `shards`)."""
        m = self.shard_map
        doc: dict[str, Any] = {
            "namespace": self.namespace,
            "leader": None
            if self.leader is None
            else {
                "node_id": self.leader.node_id,
                "term": self.leader.term,
                "lease": self.leader.lease,
                "lease_left": round(self.lease_left or 0.0, 3),
            },
            "nodes": [
                {
                    "node_id": n.info.node_id,
                    "host": n.info.host,
                    "pid": n.info.pid,
                    "started": n.info.started.isoformat(),
                    "heartbeat_age": round(n.heartbeat_age, 3),
                    "shards": n.info.shards,
                    "epoch": n.info.epoch,
                    "version": n.info.version,
                    "leader": self.leader is not None and self.leader.node_id == n.info.node_id,
                }
                for n in self.nodes
            ],
            "shard_map": None,
        }
        if m is not None:
            by_node: dict[str, list[int]] = {}
            for s, o in enumerate(m.owners):
                by_node.setdefault(o if o is not None else "", []).append(s)
            doc["shard_map"] = {
                "epoch": m.epoch,
                "term": m.term,
                "shard_count": m.shard_count,
                "settled": m.settled,
                "ranges": {n: compact_ranges(v) for n, v in sorted(by_node.items()) if n},
                "in_handoff": [[h.shard, h.source, h.target] for h in m.handoffs],
            }
            if shards:
                doc["shard_map"]["owners"] = list(m.owners)
        return doc


def status_from_entries(
    namespace: str, entries: Mapping[str, KvEntry], now: datetime | None = None
) -> ClusterStatus:
    """Build a `ClusterStatus` from a bucket view's entries."""
    now = now or datetime.now(UTC)
    nodes = tuple(
        NodeStatus(info, max(0.0, entry.age(now)))
        for _, (info, entry) in sorted(live_nodes(entries).items())
    )
    smap = None
    raw = entries.get(SHARDMAP_KEY)
    if raw is not None and not raw.deleted:
        try:
            smap = decode_shard_map(raw.value)
        except ClusterError:
            smap = None
    return ClusterStatus(namespace, decode_lease(entries.get(LEADER_KEY)), nodes, smap)


async def read_status(nc: NATS, namespace: str) -> ClusterStatus:
    """Read a namespace's cluster state; `ClusterError` if it has no cluster bucket."""
    bucket = await ClusterBucket.open(nc, namespace, create=False)
    with nats_errors(f"reading bucket {bucket.name}"):
        return status_from_entries(namespace, await bucket.snapshot())
