"""``aether node run --processor ... --metrics-addr``: after 100 appends processed by the
projection, ``/metrics`` (parsed with ``prometheus_client.parser``) shows a checkpoint
per shard at the last event, no lag, and 100 events handled."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aether import Event, Settings
from aether.store import open_store
from tests.observability.helpers import scrape
from tests.processing_cli.helpers import nodes, wait_for
from tests.servers import NatsServer

NS = "metered"
SHARDS = 4
PROCESSOR = "order-totals"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def per_shard(samples: Samples, name: str) -> dict[str, float]:
    """`name`'s samples of the projection, by shard label."""
    out = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == name and d.get("processor") == PROCESSOR:
            out[d["shard"]] = v
    return out


async def append_100(url: str) -> int:
    settings = Settings.load(
        overrides={"nats.servers": [url], "namespace": NS}, env={}, search_default_files=False
    )
    store = await open_store(settings)
    try:
        last = 0
        for i in range(100):
            data = {"customer": f"c-{i % 5}", "total_cents": 100 + i}
            e = await store.save_event(Event("OrderPlaced", f"order-{i % 20}", i // 20 + 1, data))
            last = e.position or 0
        return last  # the last event's position (the log may hold checkpoints after it)
    finally:
        await store.close()


def try_scrape(url: str) -> Samples:
    try:
        return scrape(url)
    except OSError:
        return {}


def test_processor_metrics_follow_the_appends(nats_server: NatsServer, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with nodes(tmp_path) as start:
        node = start(
            nats_server.url, NS, "m1",
            "--processor", "examples.order_totals:projection",
            "--metrics-addr", f"127.0.0.1:{port}",
            shards=SHARDS, ORDER_TOTALS_DB=str(tmp_path / "totals.db"),
        )  # fmt: skip
        wait_for(
            lambda: (
                len(per_shard(try_scrape(url), "aether_processor_checkpoint_position")) == SHARDS
            ),
            what="a checkpoint gauge per shard",
        )
        before = try_scrape(url)
        assert sum(per_shard(before, "aether_processor_handled_events_total").values()) == 0

        last = asyncio.run(append_100(nats_server.url))
        samples: Samples = {}

        def caught_up() -> bool:
            nonlocal samples
            samples = try_scrape(url)
            handled = per_shard(samples, "aether_processor_handled_events_total")
            checkpoints = per_shard(samples, "aether_processor_checkpoint_position")
            # the checkpoint gauge follows the committed checkpoint (batched commits)
            return (
                sum(handled.values()) == 100
                and all(v == 0 for v in per_shard(samples, "aether_processor_lag_events").values())
                and max(checkpoints.values(), default=0) >= last
            )

        wait_for(caught_up, what="100 events handled and checkpointed, no lag")
        checkpoints = per_shard(samples, "aether_processor_checkpoint_position")
        assert set(checkpoints) == {str(s) for s in range(SHARDS)}
        # the last event's shard is checkpointed at it (or past: positions of other
        # shards and of checkpoint records count too)
        assert max(checkpoints.values()) >= last
        lag_s = per_shard(samples, "aether_processor_lag_seconds")
        assert lag_s and all(v == 0 for v in lag_s.values())
        assert sum(per_shard(samples, "aether_processor_parked_events_total").values()) == 0
        handler = [
            v
            for (n, labels), v in samples.items()
            if n == "aether_processor_handler_duration_seconds_count"
            and dict(labels).get("processor") == PROCESSOR
        ]
        assert sum(handler) >= 100
        assert node.stop() == 0, node.stderr()
