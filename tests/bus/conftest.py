"""Fixtures of the bus tests: NatsEventBus instances on the test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aether.bus import NatsEventBus
from aether.config import Settings
from tests.servers import NatsServer

BusFactory = Callable[..., Awaitable[NatsEventBus]]


def settings_for(server: NatsServer, **overrides: object) -> Settings:
    """Settings that reach `server` (quick reconnects for restart tests)."""
    values: dict[str, object] = {
        "nats.servers": [server.url],
        "nats.reconnect_wait": 0.1,
        "nats.reconnect_attempts": -1,
        **overrides,
    }
    return Settings.load(overrides=values, search_default_files=False)


@pytest.fixture
async def nats_bus(nats_server: NatsServer) -> AsyncIterator[BusFactory]:
    """Opens `NatsEventBus`es (each with its own connection) and closes them afterwards."""
    opened: list[NatsEventBus] = []

    async def factory(**options: Any) -> NatsEventBus:
        bus = await NatsEventBus.open(settings_for(nats_server), **options)
        opened.append(bus)
        return bus

    yield factory
    for bus in opened:
        await bus.close()
