"""The bus contract suite: every aether bus passes it, and so can yours.

Each ``Bus...Contract`` class holds the tests of one part of the `aether.bus.EventBus`
protocol; `BusContract` combines them all: namespace isolation, ``*`` patterns, the
``event_types`` and ``actor_id`` filters, publish order per subscriber (with JSON types
intact), every `Overflow` policy (dropping policies count every drop, ``BLOCK`` never
drops), ``delivered``/``dropped`` counters, and closing.

Subclass one in a pytest module (name the subclass ``Test...`` so pytest collects it)
and provide a ``bus_factory`` fixture: an async callable that returns a bus on the same
medium each time it is called (the same instance for an in-process bus, a new connection
for a networked one), so that one call's subscribers see another call's publishes::

    import pytest_asyncio
    from aether.testing.bus import BusContract

    class TestMyBus(BusContract):
        @pytest_asyncio.fixture
        async def bus_factory(self):
            opened = []
            async def factory():
                bus = await MyBus.connect("mybus://localhost")
                opened.append(bus)
                return bus
            yield factory
            for bus in opened:
                await bus.close()

Delivery may be asynchronous (over a network): the tests wait for what they expect, up
to `WAIT` seconds, and never assert on timing. Importing this module needs ``pytest``
and ``pytest-asyncio`` (aether's ``dev`` extra).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import pytest_asyncio

from aether.bus.base import EventBus, Overflow, Subscription
from aether.errors import AetherError, SubscriptionOverflowError, ValidationError
from aether.event import Event

WAIT = 20.0
"""Upper bound for one awaited delivery in a test (never reached when it works)."""

BusFactory = Callable[[], Awaitable[EventBus]]
"""What the `bus_factory` fixture gives: each call returns a bus on the same medium."""

NESTED = {
    "order": {"lines": [{"sku": "a", "qty": 2, "price": 9.5}], "note": None},
    "ok": True,
    "whole": 3.0,
}


def seq_event(seq: int, actor: str = "order-1", event_type: str = "Seq") -> Event:
    """An event whose data carries its sequence number (an int), a float and nesting."""
    return Event(event_type, actor, seq, {"seq": seq, "ratio": seq / 2 + 0.25, **NESTED})


async def take(sub: Subscription, n: int, limit: float = WAIT) -> list[Event]:
    """The next `n` events of `sub` (fails the test after `limit` seconds)."""
    out: list[Event] = []

    async def collect() -> None:
        async for e in sub:
            out.append(e)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), limit)
    return out


async def take_until(sub: Subscription, marker: str, limit: float = WAIT) -> list[Event]:
    """Events of `sub` up to and including the first of event type `marker`."""
    out: list[Event] = []

    async def collect() -> None:
        async for e in sub:
            out.append(e)
            if e.event_type == marker:
                return

    await asyncio.wait_for(collect(), limit)
    return out


async def wait_arrived(sub: Subscription, n: int, limit: float = WAIT) -> None:
    """Wait (consuming nothing) until `n` events reached `sub`: buffered or dropped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while sub.pending + sub.dropped + sub.delivered < n:
        if loop.time() > deadline:
            raise AssertionError(
                f"only {sub.pending} buffered + {sub.dropped} dropped + {sub.delivered} "
                f"delivered of {n} published events after {limit} s"
            )
        await asyncio.sleep(0.01)


def drain(sub: Subscription) -> list[Event]:
    """Every event buffered in `sub` now, without waiting."""
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def assert_seq_event(e: Event, seq: int) -> None:
    """`e` is `seq_event(seq)` with every JSON type intact."""
    assert e.version == seq
    assert type(e.data["seq"]) is int and e.data["seq"] == seq
    assert type(e.data["ratio"]) is float and e.data["ratio"] == seq / 2 + 0.25
    assert e.data["order"] == NESTED["order"]
    assert type(e.data["order"]["lines"][0]["qty"]) is int
    assert type(e.data["order"]["lines"][0]["price"]) is float
    assert e.data["ok"] is True
    assert type(e.data["whole"]) is float and e.data["whole"] == 3.0


class BusContractBase:
    """Fixtures every bus contract class uses; the user provides ``bus_factory``.

    ``bus_factory`` is a pytest fixture (in the test class or a conftest) whose value is
    an async callable returning a bus on the same medium at each call. The fixture
    closes what it opened when the test ends (closing twice must be harmless: some
    tests close a bus themselves).
    """

    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def buses(self, bus_factory: BusFactory) -> tuple[EventBus, EventBus]:
        """A publishing bus and a subscribing bus (the same one for an in-process bus)."""
        return await bus_factory(), await bus_factory()


class BusIsolationContract(BusContractBase):
    """Contract: namespaces are isolated; ``*`` patterns see the namespaces they match."""

    async def test_a_subscriber_of_one_namespace_never_sees_another(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        a = await bus.subscribe("iso-a")
        b = await bus.subscribe("iso-b")
        for i in range(1, 21):
            await pub.publish("iso-b", seq_event(i, actor="from-b"))
            await pub.publish("iso-ab", seq_event(i, actor="from-ab"))
        await pub.publish("iso-a", Event("End", "end", 1))
        await pub.publish("iso-b", Event("End", "end", 1))
        assert [e.actor_id for e in await take_until(a, "End")] == ["end"]
        got_b = await take_until(b, "End")
        assert [e.actor_id for e in got_b] == ["from-b"] * 20 + ["end"]

    async def test_star_matches_every_namespace_and_prefix_patterns_theirs(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        every = await bus.subscribe("*")
        orders = await bus.subscribe("orders-*")
        for ns in ("pa", "orders-eu", "ordersX", "orders-us"):
            await pub.publish(ns, Event("Hello", ns, 1))
        await pub.publish("pa", Event("End", "end", 1))
        await pub.publish("orders-end", Event("End", "end", 1))
        seen = [e.actor_id for e in await take_until(every, "End")]
        assert seen == ["pa", "orders-eu", "ordersX", "orders-us", "end"]
        assert [e.actor_id for e in await take_until(orders, "End")] == [
            "orders-eu",
            "orders-us",
            "end",
        ]


class BusFilterContract(BusContractBase):
    """Contract: ``event_types`` (a list or one string) and ``actor_id`` filter deliveries."""

    async def test_event_types_and_actor_id_filters(self, buses: tuple[EventBus, EventBus]) -> None:
        pub, bus = buses
        typed = await bus.subscribe("flt", event_types=["Placed", "Paid", "End"])
        single = await bus.subscribe("flt", event_types="Paid")
        actor = await bus.subscribe("flt", actor_id="user@example.com")
        dotted = await bus.subscribe("flt", actor_id="a.b")
        published = [
            ("Placed", "x"),
            ("Shipped", "user@example.com"),
            ("Paid", "user@example.com"),
            ("Paid", "a.b"),
            ("Shipped", "a*b"),
            ("Shipped", "a.b"),
        ]
        for i, (t, a) in enumerate(published, start=1):
            await pub.publish("flt", Event(t, a, i))
        await pub.publish("flt", Event("End", "user@example.com", 99))
        await pub.publish("flt", Event("End", "a.b", 99))
        assert [e.version for e in await take_until(typed, "End")] == [1, 3, 4, 99]
        assert [e.version for e in await take(single, 2)] == [3, 4]
        assert [e.version for e in await take_until(actor, "End")] == [2, 3, 99]
        assert [e.version for e in await take_until(dotted, "End")] == [4, 6, 99]
        await asyncio.sleep(0.05)
        assert single.pending == 0  # nothing else matched


class BusOrderingContract(BusContractBase):
    """Contract: each subscriber gets every event once, in publish order, types intact."""

    async def test_each_subscriber_sees_publish_order_with_types_intact(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        subs = [await bus.subscribe("ord", buffer=1000) for _ in range(3)]
        for i in range(1, 301):
            await pub.publish("ord", seq_event(i))
        for sub in subs:
            got = await take(sub, 300)
            for i, e in enumerate(got, start=1):
                assert_seq_event(e, i)
        original = seq_event(7)
        await pub.publish("ord", original)
        (echo,) = await take(subs[0], 1)
        assert echo == original

    async def test_concurrent_publishers_keep_order_per_actor(
        self, bus_factory: BusFactory
    ) -> None:
        bus = await bus_factory()
        publishers = [await bus_factory() for _ in range(4)]
        sub = await bus.subscribe("conc", buffer=64)
        per = 200

        async def publish(p: int) -> None:
            for v in range(1, per + 1):
                await publishers[p].publish("conc", seq_event(v, actor=f"pub-{p}"))
                if v % 25 == 0:
                    await asyncio.sleep(0)  # interleave the publishers

        consumer = asyncio.create_task(take(sub, 4 * per))
        await asyncio.gather(*(publish(p) for p in range(4)))
        got = await consumer
        by_actor: dict[str, list[int]] = {}
        for e in got:
            by_actor.setdefault(e.actor_id, []).append(e.version)
        assert by_actor == {f"pub-{p}": list(range(1, per + 1)) for p in range(4)}
        assert (sub.delivered, sub.dropped) == (4 * per, 0)


class BusOverflowContract(BusContractBase):
    """Contract: every overflow policy; drops are counted, ``BLOCK`` never drops."""

    N = 2000
    """Events published at a consumer that starts late."""

    async def test_block_never_drops_with_a_late_consumer(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        sub = await bus.subscribe("ovf", buffer=100)  # BLOCK is the default
        assert sub.overflow is Overflow.BLOCK

        async def publish_all() -> None:
            for i in range(1, self.N + 1):
                await pub.publish("ovf", seq_event(i))

        publisher = asyncio.create_task(publish_all())
        await asyncio.sleep(0.2)  # the consumer starts late
        got = await take(sub, self.N)
        await asyncio.wait_for(publisher, WAIT)
        assert [e.data["seq"] for e in got] == list(range(1, self.N + 1))
        assert (sub.delivered, sub.dropped, sub.missed()) == (self.N, 0, 0)

    @pytest.mark.parametrize("policy", [Overflow.DROP_OLDEST, Overflow.DROP_NEWEST])
    async def test_dropping_policies_count_every_drop(
        self, buses: tuple[EventBus, EventBus], policy: Overflow
    ) -> None:
        pub, bus = buses
        sub = await bus.subscribe("ovf", buffer=100, overflow=policy)
        for i in range(1, self.N + 1):
            await pub.publish("ovf", seq_event(i))
        await wait_arrived(sub, self.N)
        got = drain(sub)
        assert sub.delivered == len(got) == 100
        assert sub.delivered + sub.dropped == self.N  # every event accounted for
        assert sub.missed() == self.N - 100 and sub.missed() == 0  # reported once
        seqs = [e.data["seq"] for e in got]
        if policy is Overflow.DROP_NEWEST:
            assert seqs == list(range(1, 101))
        else:
            assert seqs == list(range(self.N - 99, self.N + 1))

    async def test_error_policy_raises_after_the_buffered_events(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        sub = await bus.subscribe("ovf", buffer=50, overflow=Overflow.ERROR)
        for i in range(1, self.N + 1):
            await pub.publish("ovf", seq_event(i))
        await wait_arrived(sub, self.N)
        got = []
        with pytest.raises(SubscriptionOverflowError):
            async for e in sub:
                got.append(e.data["seq"])
        assert got == list(range(1, 51))  # everything before the gap, then the error
        assert sub.delivered + sub.dropped == self.N
        with pytest.raises(SubscriptionOverflowError):  # it stays failed
            await sub.__anext__()

    async def test_a_slow_dropping_subscriber_never_holds_back_the_others(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        stuck = await bus.subscribe("ovf", buffer=10, overflow=Overflow.DROP_NEWEST)
        fast = await bus.subscribe("ovf", buffer=self.N)
        for i in range(1, self.N + 1):
            await pub.publish("ovf", seq_event(i))
        assert [e.data["seq"] for e in await take(fast, self.N)] == list(range(1, self.N + 1))
        await wait_arrived(stuck, self.N)
        assert (stuck.pending, stuck.dropped) == (10, self.N - 10)


class BusCloseContract(BusContractBase):
    """Contract: closing a subscription ends it; closing the bus ends every one of them."""

    async def test_closing_a_subscription_ends_its_iteration(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        sub = await bus.subscribe("cls")
        other = await bus.subscribe("cls")
        waiting = asyncio.create_task(take(sub, 1))
        await asyncio.sleep(0.05)
        await sub.close()
        assert await asyncio.wait_for(waiting, WAIT) == []  # the waiting `async for` ended
        assert sub.closed
        await pub.publish("cls", seq_event(1))
        assert [e.version for e in await take(other, 1)] == [1]
        assert [e async for e in sub] == [] and sub.delivered == 0
        await sub.close()  # twice is harmless

    async def test_async_with_closes_the_subscription(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        async with await bus.subscribe("cls") as sub:
            await pub.publish("cls", seq_event(1))
            assert [e.version for e in await take(sub, 1)] == [1]
        assert sub.closed

    async def test_closing_the_bus_closes_its_subscriptions_and_refuses_publishing(
        self, bus_factory: BusFactory
    ) -> None:
        bus = await bus_factory()
        sub = await bus.subscribe("cls")
        await bus.close()
        assert sub.closed and [e async for e in sub] == []
        with pytest.raises(AetherError):
            await bus.publish("cls", seq_event(1))
        with pytest.raises(AetherError):
            await bus.subscribe("cls")
        await bus.close()  # twice is harmless


class BusCountersContract(BusContractBase):
    """Contract: ``delivered`` counts events handed over, ``dropped`` those lost to it."""

    async def test_delivered_counts_what_the_consumer_got(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        sub = await bus.subscribe("cnt")
        assert (sub.delivered, sub.dropped, sub.pending) == (0, 0, 0)
        for i in range(1, 11):
            await pub.publish("cnt", seq_event(i))
        await take(sub, 4)
        assert sub.delivered == 4
        await wait_arrived(sub, 10)
        assert sub.pending == 6 and sub.dropped == 0
        await take(sub, 6)
        assert (sub.delivered, sub.dropped, sub.pending) == (10, 0, 0)


class BusValidationContract(BusContractBase):
    """Contract: bad arguments are refused with the field named, and nothing is sent."""

    async def test_publish_and_subscribe_refuse_bad_input(
        self, buses: tuple[EventBus, EventBus]
    ) -> None:
        pub, bus = buses
        watcher = await bus.subscribe("*")
        for namespace, event, field in [
            ("bad.ns", seq_event(1), "namespace"),
            ("*", seq_event(1), "namespace"),
            ("val", Event("has space", "a", 1), "event_type"),
            ("val", Event("T", "a", 0), "version"),
            ("val", Event("T", "a", 1, {"x": float("nan")}), "data.x"),
            ("val", Event("T", "", 1), "actor_id"),
        ]:
            with pytest.raises(ValidationError) as info:
                await pub.publish(namespace, event)
            assert info.value.field == field
        with pytest.raises(ValidationError):
            await pub.publish("val", {"event_type": "T"})  # type: ignore[arg-type]
        for kwargs, field in [
            ({"buffer": 0}, "buffer"),
            ({"overflow": "sometimes"}, "overflow"),
            ({"event_types": []}, "event_types"),
            ({"event_types": ["a*"]}, "event_types"),
            ({"actor_id": ""}, "actor_id"),
        ]:
            with pytest.raises(ValidationError) as info:
                await bus.subscribe("val", **kwargs)  # type: ignore[arg-type]
            assert info.value.field == field
        with pytest.raises(ValidationError):
            await bus.subscribe("a.b")
        await pub.publish("val", Event("End", "end", 1))
        assert [e.event_type for e in await take_until(watcher, "End")] == ["End"]


class BusContract(
    BusIsolationContract,
    BusFilterContract,
    BusOrderingContract,
    BusOverflowContract,
    BusCloseContract,
    BusCountersContract,
    BusValidationContract,
):
    """The whole bus contract: subclass it as ``Test<YourBus>`` with a ``bus_factory``."""


__all__ = [
    "WAIT",
    "BusCloseContract",
    "BusContract",
    "BusContractBase",
    "BusCountersContract",
    "BusFactory",
    "BusFilterContract",
    "BusIsolationContract",
    "BusOrderingContract",
    "BusOverflowContract",
    "BusValidationContract",
    "assert_seq_event",
    "seq_event",
    "take",
]
