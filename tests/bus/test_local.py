"""LocalEventBus specifics: backpressure, drop logging, pattern namespaces.

What every bus must do is `aether.testing.bus.BusContract`, run in test_contract.py.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from aether.bus import LocalEventBus, Overflow
from tests.bus.helpers import seq_event, take

N = 10_000


async def test_high_throughput_block_loses_none_with_a_late_consumer() -> None:
    bus = LocalEventBus()
    sub = await bus.subscribe("demo")  # BLOCK, buffer 1024

    async def publish_all() -> None:
        for i in range(1, N + 1):
            await bus.publish("demo", seq_event(i))

    publisher = asyncio.create_task(publish_all())
    for _ in range(100_000):  # until the publisher waits on the full buffer
        if sub.pending > sub.buffer:
            break
        await asyncio.sleep(0)
    assert not publisher.done()
    got = await take(sub, N)
    await publisher
    assert [e.data["seq"] for e in got] == list(range(1, N + 1))
    assert (sub.delivered, sub.dropped, sub.missed()) == (N, 0, 0)
    await bus.close()


@pytest.mark.parametrize("policy", [Overflow.DROP_OLDEST, Overflow.DROP_NEWEST])
async def test_high_throughput_dropping_policies_count_every_drop(
    policy: Overflow, caplog: pytest.LogCaptureFixture
) -> None:
    bus = LocalEventBus()
    sub = await bus.subscribe("demo", overflow=policy)
    for i in range(1, N + 1):  # never waits: the consumer starts only afterwards
        await bus.publish("demo", seq_event(i))
    got = [e async for e in _drain(sub)]
    assert sub.delivered + sub.dropped == N
    assert (sub.delivered, sub.dropped) == (1024, N - 1024)
    expected = range(N - 1023, N + 1) if policy is Overflow.DROP_OLDEST else range(1, 1025)
    assert [e.data["seq"] for e in got] == list(expected)
    assert sub.missed() == N - 1024 and sub.missed() == 0
    with caplog.at_level(logging.WARNING, logger="aether.bus"):
        await sub.close()  # flushes the burst's log line
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 1, lines  # once per burst, not once per event
    assert f"#{sub.id}" in lines[0] and f"dropped {N - 1024} events" in lines[0]


async def _drain(sub):  # type: ignore[no-untyped-def]
    while (e := sub.get_nowait()) is not None:
        yield e


async def test_block_makes_the_publisher_wait_until_the_subscriber_reads() -> None:
    bus = LocalEventBus()
    sub = await bus.subscribe("demo", buffer=4)
    for i in range(1, 5):
        await bus.publish("demo", seq_event(i))
    blocked = asyncio.create_task(bus.publish("demo", seq_event(5)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done()
    assert [e.version for e in await take(sub, 3)] == [1, 2, 3]
    await asyncio.wait_for(blocked, 5)
    assert [e.version for e in await take(sub, 2)] == [4, 5]


async def test_blocked_publishers_keep_publish_order_per_subscriber() -> None:
    bus = LocalEventBus()
    sub = await bus.subscribe("demo", buffer=2)
    other = await bus.subscribe("demo", buffer=100)
    tasks = [asyncio.create_task(bus.publish("demo", seq_event(i))) for i in range(1, 41)]
    got = await take(sub, 40)
    await asyncio.gather(*tasks)
    assert [e.version for e in got] == list(range(1, 41))
    assert [e.version for e in await take(other, 40)] == list(range(1, 41))


async def test_closing_a_subscription_releases_its_blocked_publishers() -> None:
    bus = LocalEventBus()
    sub = await bus.subscribe("demo", buffer=1)
    await bus.publish("demo", seq_event(1))
    blocked = asyncio.create_task(bus.publish("demo", seq_event(2)))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await sub.close()
    await asyncio.wait_for(blocked, 5)
    assert sub.closed and [e async for e in sub] == []
    await bus.publish("demo", seq_event(3))  # nobody listens: fine
    assert bus.subscriptions == ()


async def test_namespace_isolation_and_patterns() -> None:
    bus = LocalEventBus()
    a = await bus.subscribe("a")
    b = await bus.subscribe("b")
    every = await bus.subscribe("*")
    orders = await bus.subscribe("orders-*")
    for ns in ("a", "b", "orders-eu", "ordersX", "a"):
        await bus.publish(ns, seq_event(1, actor=ns))
    assert [e.actor_id for e in await take(a, 2)] == ["a", "a"] and a.pending == 0
    assert [e.actor_id for e in await take(b, 1)] == ["b"] and b.pending == 0
    got = []
    for _ in range(5):
        e = await every.__anext__()
        got.append((every.last_namespace, e.actor_id))
    assert got == [
        ("a", "a"),
        ("b", "b"),
        ("orders-eu", "orders-eu"),
        ("ordersX", "ordersX"),
        ("a", "a"),
    ]
    assert [e.actor_id for e in await take(orders, 1)] == ["orders-eu"] and orders.pending == 0
    assert orders.last_namespace == "orders-eu" and a.last_namespace == "a"
