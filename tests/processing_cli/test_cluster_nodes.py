"""Three ``aether node run --processor examples.order_totals:projection`` processes on a
JetStream namespace: one is SIGKILLed and another joins while orders are appended; the
read model in the shared SQLite file equals the direct fold, ``processors status``
shows every shard owned once, ``processors wait`` exits 0 once caught up."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import Any

import orjson

from aether import Event, Settings
from aether.store import open_store
from examples.order_totals import fold, totals
from tests.processing_cli.helpers import aether, nodes, wait_for
from tests.servers import NatsServer

NS = "shop"
SHARDS = 8
ACTORS = 60
PROCESSOR = "order-totals"


def store_settings(url: str) -> Settings:
    return Settings.load(
        overrides={"nats.servers": [url], "namespace": NS}, env={}, search_default_files=False
    )


class Orders:
    """Appends orders (placed, some cancelled) from a thread of its own."""

    def __init__(self, url: str, seed: int = 7) -> None:
        self.url = url
        self.rng = random.Random(seed)
        self.versions: dict[str, int] = {}
        self.appended = 0

    def next_events(self, n: int) -> list[Event]:
        out = []
        for _ in range(n):
            actor = f"order-{self.rng.randrange(ACTORS)}"
            v = self.versions.get(actor, 0) + 1
            self.versions[actor] = v
            kind = "OrderPlaced" if v % 3 else "OrderCancelled"
            customer = f"customer-{int(actor.split('-')[1]) % 7}"
            out.append(Event(kind, actor, v, {"customer": customer, "total_cents": 100 + v}))
        return out

    async def append(self, n: int, pause: float = 0.0) -> None:
        store = await open_store(store_settings(self.url))
        try:
            for e in self.next_events(n):
                await store.save_event(e)
                self.appended += 1
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await store.close()

    def append_in_thread(self, n: int, pause: float) -> threading.Thread:
        t = threading.Thread(target=lambda: asyncio.run(self.append(n, pause)), daemon=True)
        t.start()
        return t


async def direct_fold(url: str) -> tuple[dict[str, tuple[int, int]], int]:
    store = await open_store(store_settings(url))
    try:
        state: dict[str, tuple[int, int]] = {}
        last = 0
        async for e in store.read_all():
            state = fold(state, e)
            last = e.position or last
        return state, last
    finally:
        await store.close()


def status(url: str) -> list[dict[str, Any]]:
    r = aether("-s", url, "-n", NS, "processors", "status", PROCESSOR, "--json")
    assert r.returncode == 0, r.stderr
    return list(orjson.loads(r.stdout))


def test_three_nodes_sigkill_one_another_joins(nats_server: NatsServer, tmp_path: Path) -> None:
    db = tmp_path / "totals.db"
    url = nats_server.url
    orders = Orders(url)
    asyncio.run(orders.append(300))
    opts = ["--processor", "examples.order_totals:projection"]
    with nodes(tmp_path) as start:
        envdb = {"ORDER_TOTALS_DB": str(db)}
        n1 = start(url, NS, "n1", *opts, shards=SHARDS, **envdb)
        n2 = start(url, NS, "n2", *opts, shards=SHARDS, **envdb)
        n3 = start(url, NS, "n3", *opts, shards=SHARDS, **envdb)
        wait_for(lambda: all(n.saw("joined") for n in (n1, n2, n3)), what="three nodes joined")

        writer = orders.append_in_thread(300, pause=0.005)
        wait_for(lambda: orders.appended >= 100, what="appends under way")
        n2.kill()  # a crash: no release, its shards move after the TTL
        n4 = start(url, NS, "n4", *opts, shards=SHARDS, **envdb)
        writer.join(120)
        assert not writer.is_alive()
        wait_for(lambda: n4.saw("acquired"), what="n4 took shards")

        expected, head = asyncio.run(direct_fold(url))
        assert orders.appended == 600 and head >= 600
        r = aether(
            "-s", url, "-n", NS, "processors", "wait", PROCESSOR, "--position", str(head),
            "--timeout", "90s",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert totals(db) == expected

        live = {"n1", "n3", "n4"}

        def owned_once() -> bool:
            segs = status(url)
            shards = [s["shard"] for s in segs if s["state"] == "running"]
            return sorted(shards) == list(range(SHARDS)) and all(
                s["owner"] in live for s in segs if s["state"] == "running"
            )

        wait_for(owned_once, timeout=30, what="every shard owned once by a live node")
        segs = status(url)
        assert {s["shard"] for s in segs} == set(range(SHARDS))
        for s in segs:
            assert s["checkpoint"] <= head and s["lag_events"] >= 0
            assert s["parked"] == 0 and s["last_error"] is None
        for n in (n1, n3, n4):
            assert n.stop() == 0, n.stderr()
    assert totals(db) == expected  # nothing applied twice by the graceful stops
