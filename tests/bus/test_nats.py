"""NatsEventBus specifics on a real nats-server: client-side drops, other processes,
restarts, the max payload, byte-identical round trips.

What every bus must do is `aether.testing.bus.BusContract`, run in test_contract.py.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest

from aether.bus import NatsEventBus, Overflow
from aether.errors import (
    EventTooLargeError,
    InvalidEventError,
    InvalidIdentifierError,
    SubscriptionOverflowError,
)
from aether.event import Event, encode_event
from tests.bus.conftest import BusFactory
from tests.bus.helpers import ROOT, assert_seq_event, drain_until_accounted, seq_event, take
from tests.servers import NatsServer, wait_jetstream_ready

N = 10_000


async def test_event_ordering_over_nats_keeps_ints_floats_and_nesting(nats_bus: BusFactory) -> None:
    pub, sub_bus = await nats_bus(), await nats_bus()
    sub = await sub_bus.subscribe("demo")
    for i in range(1, 1001):
        await pub.publish("demo", seq_event(i))
    got = await take(sub, 1000)
    for i, e in enumerate(got, start=1):
        assert_seq_event(e, i)
    original = seq_event(7)
    await pub.publish("demo", original)
    (echo,) = await take(sub, 1)
    assert encode_event(echo) == encode_event(original)  # byte-identical round trip
    assert echo == original


async def test_slow_consumer_drops_are_counted_logged_and_reported(
    nats_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pub = await nats_bus()
    sub_bus = await nats_bus(pending_msgs_limit=50)
    sub = await sub_bus.subscribe("demo", buffer=10)  # BLOCK: the client queue overflows
    failing = await sub_bus.subscribe("demo", buffer=10, overflow=Overflow.ERROR)
    with caplog.at_level(logging.WARNING, logger="aether.bus"):
        for i in range(1, 1001):
            await pub.publish("demo", seq_event(i))
        await pub.flush()
        for _ in range(2000):  # nobody reads yet: the client must drop (up to 20 s)
            if sub.dropped:
                break
            await asyncio.sleep(0.01)
        got = await drain_until_accounted(sub, 1000)
        await sub.close()
    assert sub.client_dropped > 0 and sub.dropped == sub.client_dropped
    assert len(got) + sub.dropped == 1000
    assert sub.missed() == sub.dropped
    seqs = [e.data["seq"] for e in got]
    assert seqs[:10] == list(range(1, 11)) and seqs == sorted(seqs)
    lines = [r.getMessage() for r in caplog.records if f"#{sub.id} " in r.getMessage()]
    assert lines and "slow consumer" in lines[-1]
    assert sum(int(x.split("dropped ")[1].split()[0]) for x in lines) == sub.dropped
    with pytest.raises(SubscriptionOverflowError):
        async for _ in failing:
            pass
    assert failing.delivered == 10


PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    from aether.bus import NatsEventBus
    from aether.config import Settings
    from tests.bus.helpers import seq_event

    async def main():
        settings = Settings.load(overrides={"nats.servers": [sys.argv[1]]})
        async with await NatsEventBus.open(settings) as bus:
            for i in range(1, int(sys.argv[2]) + 1):
                await bus.publish("xproc", seq_event(i, actor="remote"))
            await bus.flush()

    asyncio.run(main())
    """
)


async def test_cross_process_publisher(nats_bus: BusFactory, nats_server: NatsServer) -> None:
    sub = await (await nats_bus()).subscribe("xproc")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PUBLISHER,
        nats_server.url,
        "2000",
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    got = await take(sub, 2000)
    for i, e in enumerate(got, start=1):
        assert_seq_event(e, i)
        assert e.actor_id == "remote"


async def test_keeps_delivering_after_a_server_restart(
    nats_bus: BusFactory, nats_server: NatsServer
) -> None:
    pub, sub_bus = await nats_bus(), await nats_bus()
    sub = await sub_bus.subscribe("demo", event_types="Real")
    probe = await sub_bus.subscribe("demo", event_types="Probe")
    await pub.publish("demo", Event("Real", "x", 1))
    assert [e.version for e in await take(sub, 1)] == [1]
    await asyncio.to_thread(nats_server.restart)
    await asyncio.to_thread(wait_jetstream_ready, [nats_server.url])
    # Core NATS loses what is published before both sides are back: probe until it flows.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while probe.get_nowait() is None:
        assert loop.time() < deadline, "no delivery after the restart"
        await pub.publish("demo", Event("Probe", "x", 1))
        await asyncio.sleep(0.1)
    for v in range(2, 102):
        await pub.publish("demo", Event("Real", "x", v))
    assert [e.version for e in await take(sub, 100)] == list(range(2, 102))
    assert sub.interruptions >= 1  # told that events may have been missed meanwhile


async def test_publish_validates_and_respects_max_payload(nats_bus: BusFactory) -> None:
    bus = await nats_bus()
    small = NatsEventBus(bus.connection, max_event_bytes=500)
    with pytest.raises(EventTooLargeError):
        await small.publish("demo", Event("T", "a", 1, {"blob": "x" * 600}))
    assert bus.max_event_bytes == min(1024 * 1024, bus.connection.max_payload)
    with pytest.raises(EventTooLargeError):
        await bus.publish("demo", Event("T", "a", 1, {"blob": "x" * (bus.max_event_bytes + 1)}))
    with pytest.raises(InvalidEventError) as e1:
        await bus.publish("demo", Event("T", "a", 1, {"x": float("nan")}))
    assert e1.value.field == "data.x"
    with pytest.raises(InvalidEventError):
        await bus.publish("demo", Event("T", "a", 1, {"x": (1, 2)}))  # type: ignore[dict-item]
    with pytest.raises(InvalidIdentifierError) as e2:
        await bus.publish("a.b", Event("T", "a", 1))
    assert e2.value.field == "namespace"
    with pytest.raises(InvalidIdentifierError):
        await bus.publish("*", Event("T", "a", 1))
    with pytest.raises(InvalidIdentifierError):
        await bus.subscribe("a.>")
