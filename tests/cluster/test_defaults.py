"""Cluster timing defaults by replicas, and the `config check` lease warning (pure)."""

from __future__ import annotations

from aether.checks import OK, WARN, lease_check
from aether.cluster import ClusterNode
from aether.cluster.defaults import FAILOVER_BOUND, LEASE, MEASURED_FAILOVER, REPLICATED_LEASE
from aether.config import Settings


def settings(**overrides: object) -> Settings:
    return Settings.load(overrides=overrides, env={}, search_default_files=False)


def test_the_lease_outlives_the_measured_fail_over_when_replicated() -> None:
    assert MEASURED_FAILOVER < FAILOVER_BOUND < REPLICATED_LEASE
    one = ClusterNode(settings(), "a")
    three = ClusterNode(settings(**{"jetstream.replicas": 3}), "a")
    assert (one.lease, one.node_ttl) == (LEASE, LEASE)
    assert (three.lease, three.node_ttl) == (REPLICATED_LEASE, REPLICATED_LEASE)
    # the node's own step-down margin still leaves room for an election
    assert three.lease - min(three.heartbeat / 2, three.lease / 4) > FAILOVER_BOUND


def test_configured_values_win() -> None:
    node = ClusterNode(settings(**{"jetstream.replicas": 3, "cluster.lease": "8s"}), "a")
    assert (node.lease, node.node_ttl) == (8.0, 8.0)
    node = ClusterNode(
        settings(**{"cluster.lease": "8s", "cluster.node_ttl": "4s"}), "a", lease=3.0
    )
    assert (node.lease, node.node_ttl) == (3.0, 4.0)


def test_config_check_warns_when_the_lease_is_within_the_fail_over() -> None:
    assert lease_check(settings()).status == OK
    assert lease_check(settings(**{"jetstream.replicas": 3})).status == OK
    short = lease_check(settings(**{"jetstream.replicas": 3, "cluster.lease": "5s"}))
    assert short.status == WARN and not short.failed
    assert "10s" in short.detail and "cluster.lease" in short.detail
    ttl = lease_check(settings(**{"jetstream.replicas": 3, "cluster.node_ttl": "10s"}))
    assert ttl.status == WARN
    assert lease_check(settings(**{"cluster.lease": "2s"})).status == OK  # R1: no election


def test_ttls_round_up_to_whole_seconds() -> None:
    # nats-server truncates a fractional TTL (1500ms expires after 1s): round up instead,
    # so the server never expires a lease or an entry before its holder's deadline.
    from aether.cluster._kv import ttl_header

    assert [ttl_header(x) for x in (0.2, 1.0, 1.5, 2.0001, 15.0)] == ["1s", "1s", "2s", "3s", "15s"]
