"""LocalEventBus: the Go original's scenarios and what it got wrong (silent drops)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aether.bus import LocalEventBus, Overflow
from aether.errors import (
    AetherError,
    InvalidEventError,
    InvalidIdentifierError,
    SubscriptionOverflowError,
    ValidationError,
)
from aether.event import Event
from tests.bus.helpers import assert_seq_event, seq_event, take

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


async def test_high_throughput_error_policy_raises_after_the_buffer() -> None:
    bus = LocalEventBus()
    sub = await bus.subscribe("demo", overflow=Overflow.ERROR, buffer=100)
    for i in range(1, N + 1):
        await bus.publish("demo", seq_event(i))
    got = []
    with pytest.raises(SubscriptionOverflowError):
        async for e in sub:
            got.append(e.data["seq"])
    assert got == list(range(1, 101))  # everything before the gap, then the error
    assert sub.delivered + sub.dropped == N
    with pytest.raises(SubscriptionOverflowError):  # it stays failed
        await sub.__anext__()
    await sub.close()
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()


async def test_slow_dropping_subscriber_never_slows_the_others() -> None:
    bus = LocalEventBus()
    stuck_new = await bus.subscribe("demo", buffer=10, overflow=Overflow.DROP_NEWEST)
    stuck_old = await bus.subscribe("demo", buffer=10, overflow="drop_oldest")
    fast = await bus.subscribe("demo", buffer=N)
    for i in range(1, N + 1):
        await bus.publish("demo", seq_event(i))  # never waits on the stuck ones
    assert fast.pending == N
    assert [e.data["seq"] for e in await take(fast, N)] == list(range(1, N + 1))
    for s in (stuck_new, stuck_old):
        assert (s.pending, s.dropped) == (10, N - 10)
    await bus.close()


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


async def test_event_ordering_keeps_ints_floats_and_nesting() -> None:
    bus = LocalEventBus()
    async with await bus.subscribe("demo") as sub:
        for i in range(1, 501):
            await bus.publish("demo", seq_event(i))
        for i, e in enumerate(await take(sub, 500), start=1):
            assert_seq_event(e, i)
    assert sub.closed


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


async def test_filters_by_event_types_and_actor() -> None:
    bus = LocalEventBus()
    typed = await bus.subscribe("demo", event_types=["Placed", "Paid"])
    single = await bus.subscribe("demo", event_types="Paid")
    actor = await bus.subscribe("demo", actor_id="user@example.com")
    for i, (t, a) in enumerate(
        [
            ("Placed", "x"),
            ("Shipped", "user@example.com"),
            ("Paid", "user@example.com"),
            ("Paid", "y"),
        ],
        start=1,
    ):
        await bus.publish("demo", Event(t, a, i))
    assert [e.version for e in await take(typed, 3)] == [1, 3, 4] and typed.pending == 0
    assert [e.version for e in await take(single, 2)] == [3, 4] and single.pending == 0
    assert [e.version for e in await take(actor, 2)] == [2, 3] and actor.pending == 0


async def test_concurrent_publish_subscribe_8_by_8() -> None:
    bus = LocalEventBus()
    per_publisher = 500
    namespaces = ["ns-a", "ns-b"]
    subs = {ns: [await bus.subscribe(ns, buffer=64) for _ in range(4)] for ns in namespaces}

    async def publisher(p: int) -> None:
        ns = namespaces[p % 2]
        for v in range(1, per_publisher + 1):
            await bus.publish(ns, seq_event(v, actor=f"pub-{p}"))
            if v % 50 == 0:
                await asyncio.sleep(0)  # interleave the publishers

    async def subscriber(ns: str, sub) -> None:  # type: ignore[no-untyped-def]
        got = await take(sub, 4 * per_publisher)
        by_actor: dict[str, list[int]] = {}
        for e in got:
            by_actor.setdefault(e.actor_id, []).append(e.version)
        mine = {f"pub-{p}" for p in range(8) if namespaces[p % 2] == ns}
        assert set(by_actor) == mine
        for versions in by_actor.values():
            assert versions == list(range(1, per_publisher + 1))  # once each, in order

    await asyncio.wait_for(
        asyncio.gather(
            *(publisher(p) for p in range(8)),
            *(subscriber(ns, s) for ns in namespaces for s in subs[ns]),
        ),
        60,
    )
    for ns in namespaces:
        for s in subs[ns]:
            assert (s.delivered, s.dropped, s.pending) == (4 * per_publisher, 0, 0)


async def test_bad_input_is_refused_with_the_field_named() -> None:
    bus = LocalEventBus()
    with pytest.raises(InvalidIdentifierError) as e1:
        await bus.publish("bad.ns", seq_event(1))
    assert e1.value.field == "namespace"
    with pytest.raises(InvalidEventError):
        await bus.publish("demo", {"event_type": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidIdentifierError) as e2:
        await bus.publish("demo", Event("has space", "a", 1))
    assert e2.value.field == "event_type"
    with pytest.raises(InvalidEventError) as e3:
        await bus.publish("demo", Event("T", "a", 0))
    assert e3.value.field == "version"
    for kwargs, field in [
        ({"buffer": 0}, "buffer"),
        ({"overflow": "sometimes"}, "overflow"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["a*"]}, "event_types"),
        ({"actor_id": ""}, "actor_id"),
    ]:
        with pytest.raises(ValidationError) as ei:
            await bus.subscribe("demo", **kwargs)  # type: ignore[arg-type]
        assert ei.value.field == field
    with pytest.raises(InvalidIdentifierError):
        await bus.subscribe("a.b")
    await bus.close()
    with pytest.raises(AetherError):
        await bus.publish("demo", seq_event(1))
