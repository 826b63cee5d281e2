"""A loopback TCP proxy for fault tests: forward, black-hole both ways, reset the client side.

`TcpProxy(target_port)` listens on a free 127.0.0.1 port and forwards every connection to
``127.0.0.1:target_port``. It runs its own asyncio loop in a daemon thread, so it keeps
working whatever the test's event loop does. Faults:

- `blackhole()`: bytes in both directions are read and dropped; connections stay open
  (new ones are accepted and black-holed too). Neither side notices anything but
  silence, like a cut cable or a dropped route.
- `restore()`: forward again (what was dropped stays lost).
- `reset_clients()`: abort only the client-side sockets (RST, no FIN); the server-side
  sockets stay open, so the server keeps a half-open connection until its own ping
  timeout. The client reconnects through the proxy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from tests.servers import free_port


@dataclass
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in a thread of its own (see the module doc)."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.blackholed = False
        self.dropped = 0
        self.connections = 0
        self._pairs: list[_Pair] = []
        self._orphans: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The client URL to connect to."""
        return f"nats://127.0.0.1:{self.port}"

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            fut.result(timeout=10)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def start(self) -> TcpProxy:
        """Listen and forward."""
        self._thread.start()
        self._run(self._start())
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        self.connections += 1
        pair = _Pair(cw, sw)
        pair.tasks = [
            asyncio.create_task(self._pump(cr, sw)),
            asyncio.create_task(self._pump(sr, cw)),
        ]
        self._pairs.append(pair)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.blackholed:
                    self.dropped += len(data)
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing() and writer not in self._orphans:
                writer.close()

    def blackhole(self) -> None:
        """Drop everything in both directions from now on (connections stay open)."""
        self.blackholed = True

    def restore(self) -> None:
        """Forward again."""
        self.blackholed = False

    def reset_clients(self) -> None:
        """RST the client side of every connection; keep the server side open."""
        self._run(self._reset_clients())

    async def _reset_clients(self) -> None:
        pairs, self._pairs = self._pairs, []
        for p in pairs:
            self._orphans.append(p.server)  # never closed by us: the server's half-open end
            for t in p.tasks:
                t.cancel()
            sock = p.client.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            p.client.transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        """Close everything and stop the thread."""
        if not self._thread.is_alive():
            return
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for p in self._pairs:
            for t in p.tasks:
                t.cancel()
            p.client.transport.abort()
            p.server.transport.abort()
        for w in self._orphans:
            w.transport.abort()
        self._pairs, self._orphans = [], []

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
