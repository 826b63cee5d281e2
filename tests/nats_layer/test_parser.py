"""aether's inbound parser: frames split across reads, raw and ordinary subscriptions mixed."""

from __future__ import annotations

import asyncio
import os

from nats.aio.msg import Msg

from aether._nats.parser import FastParser
from aether._nats.raw import flush, header_value, subscribe_raw
from tests.nats_layer.conftest import Connector


async def test_big_split_frames_and_mixed_subscriptions(aether_nc: Connector, seams: str) -> None:
    nc = await aether_nc()
    pub = await aether_nc()
    raw_got: list[tuple[bytes, bytes, bytes | None]] = []
    plain_got: list[Msg] = []
    done = asyncio.Event()
    want = 30

    def check() -> None:
        if len(raw_got) + len(plain_got) == want:
            done.set()

    def handler(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        raw_got.append((subject, data, headers))
        check()

    async def cb(msg: Msg) -> None:
        plain_got.append(msg)
        check()

    await subscribe_raw(nc, "mix.raw.>", handler)
    await nc.subscribe("mix.plain.>", cb=cb)
    assert isinstance(nc._ps, FastParser) == (seams == "on")
    await flush(nc, 5)  # nats-py's nc.flush() can return before the server has the SUBs
    blobs = [os.urandom(size) for size in (0, 1, 17, 70_000, 300_000)] * 6
    for i, blob in enumerate(blobs):
        kind = "raw" if i % 2 == 0 else "plain"
        headers = {"N": str(i)} if i % 3 == 0 else None
        await pub.publish(
            f"mix.{kind}.{i}", blob, reply=f"r.{i}" if i % 4 == 0 else "", headers=headers
        )
    await pub.flush()
    await asyncio.wait_for(done.wait(), 20)
    assert len(raw_got) == len(plain_got) == 15
    for subject, data, headers in raw_got:
        i = int(subject.split(b".")[-1])
        assert data == blobs[i]
        assert (header_value(headers, b"N") == str(i).encode()) == (i % 3 == 0)
    for msg in plain_got:
        i = int(msg.subject.split(".")[-1])
        assert msg.data == blobs[i]
        assert msg.reply == (f"r.{i}" if i % 4 == 0 else "")
        assert (msg.headers or {}).get("N") == (str(i) if i % 3 == 0 else None)
    # control frames still work: a flush is a PING answered by a PONG
    await nc.flush(timeout=5)
    assert nc.is_connected
