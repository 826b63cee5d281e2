"""Fixtures: real nats-server processes on free loopback ports with temporary storage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import NatsCluster, NatsServer, wait_jetstream_ready

# the shipped contract suites assert in aether.testing: rewrite them for readable failures
pytest.register_assert_rewrite("aether.testing")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's AETHER_* variables or ./aether.yaml."""
    import os

    for key in list(os.environ):
        # AETHER_NATS_SEAMS stays: CI runs the NATS tests once with the seams forced off
        if key.startswith("AETHER_") and key != "AETHER_NATS_SEAMS":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A single nats-server with JetStream; `.restart()` keeps its port and storage."""
    base = tmp_path_factory.mktemp("nats")
    server = NatsServer(store_dir=base / "js")
    server.start()
    wait_jetstream_ready([server.url])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """Three routed nats-servers forming a JetStream cluster (R3 streams possible)."""
    base = tmp_path_factory.mktemp("nats-cluster")
    cluster = NatsCluster.create(base)
    cluster.start()
    try:
        wait_jetstream_ready(cluster.urls, timeout=60)
        yield cluster
    finally:
        cluster.stop()
