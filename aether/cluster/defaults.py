"""Cluster timing defaults and the JetStream fail-over they must outlive (measured).

A replicated cluster bucket (``jetstream.replicas`` > 1) is a Raft group: when the server
leading its stream dies, the others elect a new leader after their election timeout
(nats-server: random 4–9 s). Until then no write lands: no lease renewal, no heartbeat.
A lease or node TTL shorter than that makes every node give up its shards on each
stream-leader change. Measured on the 3-server test fixture (nats-server 2.15.1, leader
SIGKILLed, time until a write to the bucket is acknowledged again): 4.2–6.9 s, median
6.3 s over 10 runs (see docs/cluster.md and ``python -m benchmarks.cluster --failover``).
"""

from __future__ import annotations

from aether.config import Settings

LEASE = 5.0
"""Default lease (and node TTL) on a single-replica bucket, seconds."""

REPLICATED_LEASE = 15.0
"""Default lease (and node TTL) when the bucket is replicated (``jetstream.replicas`` > 1)."""

MEASURED_FAILOVER = 7.0
"""Slowest stream-leader change of an R3 bucket measured on the 3-server fixture, seconds."""

FAILOVER_BOUND = 10.0
"""What a lease on a replicated bucket must exceed: nats-server's longest election timeout
(9 s) plus a heartbeat; a lease at or below it gets a `config check` warning."""


def failover_for(replicas: int) -> float:
    """How long a stream-leader change of the cluster bucket can take with `replicas`."""
    return FAILOVER_BOUND if replicas > 1 else 0.0


def default_lease(settings: Settings) -> float:
    """The lease a node uses when none is given: ``cluster.lease``, or if that is 0,
    `LEASE` on a single-replica bucket and `REPLICATED_LEASE` on a replicated one."""
    if settings.cluster.lease > 0:
        return settings.cluster.lease
    return REPLICATED_LEASE if settings.jetstream.replicas > 1 else LEASE


def default_node_ttl(settings: Settings, lease: float) -> float:
    """The node TTL when none is given: ``cluster.node_ttl``, or if that is 0, `lease`."""
    if settings.cluster.node_ttl > 0:
        return settings.cluster.node_ttl
    return lease
