"""Scrape ``/metrics`` of a real ``aether node run --metrics-addr`` over HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aether import Event, Settings
from aether.store import open_store
from tests.observability.helpers import scrape, value
from tests.servers import NatsServer, free_port

CLI = [str(Path(sys.executable).with_name("aether"))]
FAST = ["--heartbeat", "0.2s", "--lease", "1s", "--node-ttl", "1s"]
SHARDS = 8


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


async def append_100(url: str) -> None:
    settings = Settings.load(
        overrides={"nats.servers": [url], "namespace": "obs"}, search_default_files=False
    )
    store = await open_store(settings)
    try:
        for i in range(100):
            await store.save_event(Event("Placed", f"order-{i % 10}", i // 10 + 1, {"i": i}))
    finally:
        await store.close()


def try_scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        return scrape(url)
    except OSError:
        return {}


def test_node_serves_cluster_and_store_metrics(nats_server: NatsServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    node = subprocess.Popen(
        [
            *CLI, "-s", nats_server.url, "-n", "obs", "node", "run", "--node-id", "n1",
            "--shards", str(SHARDS), *FAST, "--json", "--metrics-addr", f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        who = {"namespace": "obs", "node": "n1"}
        state: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

        def settled() -> bool:
            nonlocal state
            state = try_scrape(url)
            return value(state, "aether_cluster_shards_owned", **who) == SHARDS

        wait_for(settled)
        assert value(state, "aether_cluster_leader", **who) == 1
        assert value(state, "aether_cluster_term", **who) >= 1
        assert value(state, "aether_cluster_shard_count", **who) == SHARDS
        assert value(state, "aether_cluster_shard_map_epoch", **who) >= 1
        assert value(state, "aether_cluster_shards_acquired_total", **who) == SHARDS
        owned = [
            s
            for s in range(SHARDS)
            if value(state, "aether_cluster_shard_owned", shard=str(s), **who)
        ]
        assert owned == list(range(SHARDS))
        assert value(state, "process_cpu_seconds_total") > 0
        head = value(state, "aether_store_last_position", namespace="obs")

        asyncio.run(append_100(nats_server.url))
        after = scrape(url)
        assert value(after, "aether_store_last_position", namespace="obs") == head + 100
    finally:
        node.terminate()
        out, err = node.communicate(timeout=30)
    assert node.returncode == 0, err
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[0] == "joined" and events[-1] == "stopped"
    # --json: the library's log lines are JSON objects too, with the node id
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert logs and all({"time", "level", "logger", "message"} <= set(d) for d in logs)
    assert any(d["logger"] == "aether.cluster" and d.get("node") == "n1" for d in logs)


def test_bad_metrics_address_is_a_usage_error(nats_server: NatsServer) -> None:
    r = subprocess.run(
        [*CLI, "-s", nats_server.url, "-n", "obs2", "node", "run", "--metrics-addr", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "HOST:PORT" in r.stderr
