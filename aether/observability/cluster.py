"""Cluster metrics: a Prometheus collector reading a `ClusterNode` at scrape time.

Per node (labels ``namespace``, ``node``): ``aether_cluster_leader`` (1 while this node
leads), ``aether_cluster_term`` (the term it leads, else the term of the leader it
sees, 0 when none), ``aether_cluster_shards_owned``, ``aether_cluster_shard_count``,
``aether_cluster_shard_map_epoch``, ``aether_cluster_shard_owned{shard}`` (1 per owned
shard: ownership over time), and the hand-over counters
``aether_cluster_shards_acquired_total`` / ``aether_cluster_shards_released_total``
(counted by wrapping the node's ``on_acquired``/``on_released`` callbacks).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from aether.observability._metrics import metrics


class NodeInstrumentation:
    """What `instrument_node` set up; `close()` removes the collector."""

    def __init__(self, node: Any, collector: Any) -> None:
        self.node = node
        """The instrumented node."""
        self._collector = collector

    def close(self) -> None:
        """Stop reporting this node's gauges (the counters stay)."""
        m = metrics()
        if m is not None and self._collector is not None:
            with contextlib.suppress(KeyError):
                m.registry.unregister(self._collector)
            self._collector = None


def instrument_node(node: Any) -> NodeInstrumentation:
    """Report `node`'s role, term, shards and map epoch at scrape time, and count its
    hand-overs. Call it before ``node.start()`` so the first acquisition is counted.
    A no-op without `prometheus-client`."""
    m = metrics()
    if m is None:
        return NodeInstrumentation(node, None)
    labels = (str(node.namespace), str(node.node_id))
    acquired = m.shard_acquired.labels(*labels)
    released = m.shard_released.labels(*labels)
    node.on_acquired = _counting(node.on_acquired, acquired)
    node.on_released = _counting(node.on_released, released)
    collector = _NodeCollector(node, labels)
    m.registry.register(collector)
    return NodeInstrumentation(node, collector)


def _counting(cb: Any, counter: Any) -> Any:
    def counted(shards: frozenset[int]) -> Any:
        counter.inc(len(shards))
        if cb is None:
            return None
        result = cb(shards)
        return result if inspect.isawaitable(result) else None

    return counted


class _NodeCollector:
    def __init__(self, node: Any, labels: tuple[str, str]) -> None:
        self.node = node
        self.labels = labels

    def describe(self) -> list[Any]:
        return []  # unchecked collector: several nodes may report the same families

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        node = self.node
        names = ["namespace", "node"]

        def gauge(name: str, doc: str, value: float) -> Any:
            g = GaugeMetricFamily(name, doc, labels=names)
            g.add_metric(list(self.labels), value)
            return g

        leading = bool(node.is_leader)
        term = node.term
        if term is None:
            lease = node.leader
            term = getattr(lease, "term", None) if lease is not None else None
        shards = frozenset(node.shards)
        shard_map = node.shard_map
        yield gauge(
            "aether_cluster_leader", "1 while this node is the leader.", 1 if leading else 0
        )
        yield gauge("aether_cluster_term", "The leader's term as this node sees it.", term or 0)
        yield gauge("aether_cluster_shards_owned", "Shards this node owns.", len(shards))
        yield gauge("aether_cluster_shard_count", "Shards of the namespace.", node.shard_count)
        yield gauge(
            "aether_cluster_shard_map_epoch",
            "Epoch of the shard map this node applied.",
            shard_map.epoch if shard_map is not None else 0,
        )
        owned = GaugeMetricFamily(
            "aether_cluster_shard_owned",
            "1 for each shard this node owns.",
            labels=[*names, "shard"],
        )
        for s in sorted(shards):
            owned.add_metric([*self.labels, str(s)], 1)
        yield owned
