"""Shared helpers of the cluster tests: settings, bounded waits, ownership tracking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aether.cluster import ClusterNode
from aether.config import Settings

HEARTBEAT = 0.2
LEASE = 1.0
NODE_TTL = 1.0
# Generous: the machine is shared with other test runs; nothing here measures speed.
SLACK = 6.0


def cluster_settings(urls: str | Sequence[str], namespace: str = "ct", **extra: object) -> Settings:
    """Settings for a test cluster on `urls`."""
    servers = [urls] if isinstance(urls, str) else list(urls)
    overrides: dict[str, object] = {"nats.servers": servers, "namespace": namespace}
    overrides.update(extra)
    return Settings.load(overrides=overrides, env={}, search_default_files=False)


async def wait_until(
    cond: Callable[[], bool], limit: float, what: str, describe: Callable[[], object] = lambda: ""
) -> float:
    """Poll `cond` every 20 ms; return the seconds it took, or fail naming `what`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > limit:
            raise AssertionError(f"{what}: not reached within {limit:.1f}s; state: {describe()}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Ownership:
    """Records acquire/release callbacks of many nodes and checks no shard has two owners."""

    def __init__(self) -> None:
        self.owner: dict[int, str] = {}
        self.violations: list[str] = []
        self.acquired: dict[str, list[frozenset[int]]] = {}
        self.released: dict[str, list[frozenset[int]]] = {}

    def callbacks(self, node_id: str) -> dict[str, Callable[[frozenset[int]], None]]:
        """``on_acquired``/``on_released`` for `node_id`."""

        def acquired(shards: frozenset[int]) -> None:
            self.acquired.setdefault(node_id, []).append(shards)
            for s in shards:
                if s in self.owner and self.owner[s] != node_id:
                    self.violations.append(f"{node_id} acquired {s} held by {self.owner[s]}")
                self.owner[s] = node_id

        def released(shards: frozenset[int]) -> None:
            self.released.setdefault(node_id, []).append(shards)
            for s in shards:
                if self.owner.get(s) == node_id:
                    del self.owner[s]

        return {"on_acquired": acquired, "on_released": released}

    def forget(self, node_id: str) -> None:
        """A crashed node cannot release: drop what it held."""
        for s in [s for s, o in self.owner.items() if o == node_id]:
            del self.owner[s]


def settled_on(nodes: Sequence[ClusterNode], shard_count: int) -> bool:
    """Every node sees the same settled map over exactly these nodes and holds its part."""
    ids = {n.node_id for n in nodes}
    maps = [n.shard_map for n in nodes]
    if any(m is None or not m.settled or m.nodes != ids for m in maps):
        return False
    if len({m.epoch for m in maps if m is not None}) != 1:
        return False
    m = maps[0]
    assert m is not None
    held = [n.shards for n in nodes]
    if any(n.shards != m.shards_of(n.node_id) for n in nodes):
        return False
    return sum(len(h) for h in held) == shard_count and len(set().union(*held)) == shard_count


def leaders(nodes: Sequence[ClusterNode]) -> list[ClusterNode]:
    """The nodes that believe they lead."""
    return [n for n in nodes if n.is_leader]


def describe(nodes: Sequence[ClusterNode]) -> object:
    """A compact picture of the nodes for failure messages."""
    return [
        (
            n.node_id,
            "L" if n.is_leader else "-",
            n.term,
            len(n.shards),
            n.shard_map.epoch if n.shard_map else None,
        )
        for n in nodes
    ]
