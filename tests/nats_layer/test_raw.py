"""Raw subscriptions: the seam and its fallback deliver the same, and a handler that raises
never reaches nats-py's read loop."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.aio.msg import Msg

from aether._nats.raw import (
    header_value,
    raw_seam_active,
    sid_of,
    status_of,
    subscribe_raw,
)
from tests.nats_layer.conftest import Connector

Delivery = tuple[bytes, bytes, bytes, bytes | None]


async def _collect(nc_factory: Connector, n: int) -> list[Delivery]:
    nc = await nc_factory()
    got: list[Delivery] = []
    done = asyncio.Event()

    def handler(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        got.append((subject, reply, data, headers))
        if len(got) == n:
            done.set()

    sub = await subscribe_raw(nc, "raw.>", handler)
    await nc.flush()
    await nc.publish("raw.a", b"one")
    await nc.publish("raw.b", b"two", reply="the.reply")
    await nc.publish("raw.c", b"three", headers={"Nats-Msg-Id": "m-1", "X-Other": "v"})
    await asyncio.wait_for(done.wait(), 10)
    await sub.unsubscribe()
    return got


async def test_seam_and_fallback_deliver_the_same(
    aether_nc: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for mode in ("on", "off"):
        monkeypatch.setenv("AETHER_NATS_SEAMS", mode)
        nc = await aether_nc()
        assert raw_seam_active(nc) == (mode == "on")
        results[mode] = await _collect(lambda nc=nc: asyncio.sleep(0, nc), 3)  # type: ignore[misc]
    for on, off in zip(results["on"], results["off"], strict=True):
        assert on[:3] == off[:3]
        for name in (b"Nats-Msg-Id", b"X-Other"):
            assert header_value(on[3], name) == header_value(off[3], name)
    assert results["on"][1][1] == b"the.reply"
    assert header_value(results["on"][2][3], b"Nats-Msg-Id") == b"m-1"
    assert results["on"][0][3] is None


async def test_a_raising_raw_handler_never_stops_the_connection(
    aether_nc: Connector, seams: str, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await aether_nc()
    assert raw_seam_active(nc) == (seams == "on")
    got: list[bytes] = []

    def handler(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if data == b"boom":
            raise RuntimeError("a handler's bug")
        got.append(data)

    await subscribe_raw(nc, "iso", handler)
    with caplog.at_level(logging.ERROR, logger="aether.nats"):
        for data in (b"1", b"boom", b"2", b"boom", b"3"):
            await nc.publish("iso", data)
        for _ in range(200):
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
    assert got == [b"1", b"2", b"3"]
    assert sum("raw NATS message handler failed" in r.getMessage() for r in caplog.records) == 2

    # the reader still reads: a request round trip on the same connection works
    async def respond(msg: Msg) -> None:
        await msg.respond(msg.data)

    echo = await nc.subscribe("echo", cb=respond)
    reply = await nc.request("echo", b"still alive", timeout=5)
    assert reply.data == b"still alive"
    await echo.unsubscribe()
    assert nc.is_connected


async def test_an_unsubscribed_handler_gets_nothing(aether_nc: Connector, seams: str) -> None:
    nc = await aether_nc()
    got: list[bytes] = []
    sub = await subscribe_raw(nc, "gone", lambda s, r, d, h: got.append(d))
    await nc.publish("gone", b"1")
    await nc.flush()
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    await sub.unsubscribe()
    await sub.unsubscribe()  # twice is harmless
    await nc.publish("gone", b"2")
    await nc.flush()
    await asyncio.sleep(0.1)
    assert got == [b"1"]


async def test_sid_of_is_nats_py_s_subscription_id(plain_nc: Connector) -> None:
    nc = await plain_nc()
    sub = await nc.subscribe("x")
    assert sid_of(sub) == sub._id
    assert sid_of(object()) == -1


def test_header_block_parsing() -> None:
    block = b"NATS/1.0 404 No Messages\r\nNats-Sequence: 42\r\nA: b\r\n\r\n"
    assert status_of(block) == 404
    assert header_value(block, b"Nats-Sequence") == b"42"
    assert header_value(block, b"A") == b"b"
    assert header_value(block, b"Missing") is None
    assert status_of(b"NATS/1.0\r\nA: b\r\n\r\n") == 0
    assert status_of(None) == 0
    assert header_value(None, b"A") is None
