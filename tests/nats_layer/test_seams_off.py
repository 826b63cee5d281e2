"""The same store and bus behaviour with the seams on and forced off."""

from __future__ import annotations

import asyncio

import pytest

from aether._nats.connection import seams_available
from aether._nats.permissions import permission_guard
from aether._nats.raw import raw_seam_active
from aether.bus import NatsEventBus
from aether.event import Event
from aether.store.jetstream import JetStreamEventStore
from tests.nats_layer.conftest import settings_for
from tests.servers import NatsServer


def test_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AETHER_NATS_SEAMS", "off")
    assert not seams_available()
    monkeypatch.setenv("AETHER_NATS_SEAMS", "on")
    assert seams_available()


async def _store_story(server: NatsServer, ns: str) -> tuple[object, ...]:
    store = await JetStreamEventStore.open(settings_for(server, namespace=ns))
    try:
        await store.save_event(Event("Opened", "a", 1, data={"n": 1}))
        await asyncio.gather(*(store.save_event(Event("Hit", f"p{i}", 1)) for i in range(50)))
        await store.save_events([Event("Hit", "a", 2), Event("Hit", "b", 1)])
        replay = [(e.actor_id, e.version, e.data) for e in await store.get_events("a")]
        everything = [(e.actor_id, e.version, e.position) async for e in store.read_all()]
        latest = await store.get_latest_version("a")
        last = await store.last_position()
        return replay, len(everything), latest, last, store.replicated
    finally:
        await store.close()


async def test_a_store_behaves_the_same_with_the_seams_off(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AETHER_NATS_SEAMS", "on")
    on = await _store_story(nats_server, "seams_on")
    monkeypatch.setenv("AETHER_NATS_SEAMS", "off")
    off = await _store_story(nats_server, "seams_off")
    assert on == off
    assert on[1] == 53 and on[2] == 2


async def test_a_bus_behaves_the_same_with_the_seams_off(
    nats_server: NatsServer, seams: str
) -> None:
    bus = await NatsEventBus.open(settings_for(nats_server))
    try:
        nc = bus.connection
        assert raw_seam_active(nc) == (seams == "on")
        guard = permission_guard(nc)
        assert guard is not None and guard.fast_requests == (seams == "on")
        sub = await bus.subscribe("demo")
        for v in range(1, 101):
            await bus.publish("demo", Event("T", "a", v))
        got = [(await asyncio.wait_for(anext(sub), 5)).version for _ in range(100)]
        assert got == list(range(1, 101))
        await sub.close()
    finally:
        await bus.close()
