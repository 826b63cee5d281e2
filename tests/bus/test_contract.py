"""aether's own buses against the shipped contract (`aether.testing.bus`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aether.bus import LocalEventBus, NatsEventBus
from aether.bus.base import EventBus
from aether.testing.bus import BusContract, BusFactory
from tests.bus.conftest import settings_for
from tests.servers import NatsServer


class TestLocal(BusContract):
    """The in-process bus: one shared instance plays every "other connection"."""

    @pytest.fixture
    async def bus_factory(self) -> AsyncIterator[BusFactory]:
        shared = LocalEventBus()

        async def factory() -> EventBus:
            return shared

        yield factory
        await shared.close()


class TestNats(BusContract):
    """The NATS bus on one server: each factory call is another NATS connection."""

    @pytest.fixture
    async def bus_factory(self, nats_server: NatsServer) -> AsyncIterator[BusFactory]:
        opened: list[NatsEventBus] = []

        async def factory() -> EventBus:
            bus = await NatsEventBus.open(settings_for(nats_server))
            opened.append(bus)
            return bus

        yield factory
        for bus in opened:
            await bus.close()
