"""`aether._nats.raw.flush` is a round trip that follows what was written before it.

nats-py's own ``flush`` writes its PING ahead of a SUB still queued for its flusher, so
its PONG can precede the server's processing of the SUB. A fake server records the
client's bytes in order: the PING answered last must come after the SUB."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest

from aether._nats.raw import flush

INFO = (
    b'INFO {"server_id":"fake","server_name":"fake","version":"2.10.0","proto":1,'
    b'"headers":true,"max_payload":1048576}\r\n'
)


class Recorder:
    """A NATS server that answers PING and records every line a client sends."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.stalled = asyncio.Event()  # set: stop reading (the client's writes back up)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(INFO)
        await writer.drain()
        try:
            while line := await reader.readline():
                if self.stalled.is_set():
                    await asyncio.sleep(3600)
                self.lines.append(line)
                if line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
                    await writer.drain()
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"nats://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    r = Recorder()
    r.server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    try:
        yield r
    finally:
        r.server.close()
        r.stalled.clear()


async def test_the_last_ping_follows_the_sub(recorder: Recorder, seams: str) -> None:
    nc = await nats.connect(recorder.url, allow_reconnect=False)
    try:
        for i in range(20):  # each round: a SUB just queued, then the flush
            await nc.subscribe(f"order.{i}")
            await flush(nc, 5)
            sent = list(recorder.lines)
            sub = sent.index(f"SUB order.{i}  {i + 1}\r\n".encode())
            last_ping = max(k for k, line in enumerate(sent) if line.startswith(b"PING"))
            assert sub < last_ping, sent[-4:]
    finally:
        await nc.close()


async def test_a_server_that_stopped_reading_is_a_flush_timeout(
    recorder: Recorder,
) -> None:
    nc = await nats.connect(recorder.url, allow_reconnect=False)
    try:
        recorder.stalled.set()
        blob = b"x" * 500_000
        for _ in range(3):  # below nats-py's pending limit, which would block publish
            await nc.publish("stuck", blob)
            await asyncio.sleep(0)
        with pytest.raises(nats.errors.TimeoutError):
            await flush(nc, 0.5)
    finally:
        recorder.stalled.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)
