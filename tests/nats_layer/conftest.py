"""Fixtures of the NATS layer tests: connections through `aether.connect` or plain nats-py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client as NATS

from aether.config import Settings
from aether.connect import connect
from tests.servers import NatsServer

Connector = Callable[[], Awaitable[NATS]]


def settings_for(server: NatsServer, **overrides: object) -> Settings:
    """Settings that reach `server` (quick reconnects for restart tests)."""
    values: dict[str, object] = {
        "nats.servers": [server.url],
        "nats.reconnect_wait": 0.1,
        "nats.reconnect_attempts": -1,
        **overrides,
    }
    return Settings.load(overrides=values, search_default_files=False)


@pytest.fixture(params=["on", "off"])
def seams(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test with the private seams on, then forced off."""
    monkeypatch.setenv("AETHER_NATS_SEAMS", request.param)
    return str(request.param)


@pytest.fixture
async def aether_nc(nats_server: NatsServer) -> AsyncIterator[Connector]:
    """Opens connections with `aether.connect` and closes them afterwards."""
    opened: list[NATS] = []

    async def factory() -> NATS:
        nc = await connect(settings_for(nats_server))
        opened.append(nc)
        return nc

    yield factory
    for nc in opened:
        if not nc.is_closed:
            await nc.close()


@pytest.fixture
async def plain_nc(nats_server: NatsServer) -> AsyncIterator[Connector]:
    """Opens plain nats-py connections (as a user would before `from_client`)."""
    opened: list[NATS] = []

    async def factory() -> NATS:
        nc = await nats.connect(nats_server.url, reconnect_time_wait=0.1)
        opened.append(nc)
        return nc

    yield factory
    for nc in opened:
        if not nc.is_closed:
            await nc.close()
