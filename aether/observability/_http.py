"""``/metrics`` served from the running event loop.

A serving thread needs the GIL for every step of a scrape (accept, each read of
``/proc``, each send), and a busy event loop releases and retakes the GIL around every
``epoll`` call, so the waiting thread can lose the race for seconds: under a saturated
loop a threaded scrape was measured at 0.2 to 9 s (10 s timeouts in CI). Served from the
loop itself, a scrape is one more callback in the loop's fair queue.

Collectors run on the loop, so they must not block: collectors that read something slow
register an async hook (`add_scrape_hook`) awaited before each render.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger("aether.observability")

REQUEST_LIMIT = 16 * 1024
"""Bytes a request head may take."""
REQUEST_TIMEOUT = 10.0
"""Seconds a client has to send its request head and to take the response."""
HOOK_TIMEOUT = 5.0
"""Seconds the scrape hooks together may take before the page is rendered anyway."""
MAX_CONNECTIONS = 64
"""Connections served at once; more are closed at once."""

ScrapeHook = Callable[[], Awaitable[None]]
"""An async callable awaited before each render (it refreshes what a collector shows)."""

_hooks: list[ScrapeHook] = []


def add_scrape_hook(hook: ScrapeHook) -> Callable[[], None]:
    """Await `hook` before each loop-served render; returns the function removing it."""
    _hooks.append(hook)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _hooks.remove(hook)

    return remove


async def run_scrape_hooks() -> None:
    """Await every hook, at most `HOOK_TIMEOUT` in all; a failing hook is logged."""
    hooks = list(_hooks)
    if not hooks:
        return
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(h() for h in hooks), return_exceptions=True), HOOK_TIMEOUT
        )
    except TimeoutError:
        log.warning("metrics: scrape hooks took over %.1fs; rendering without them", HOOK_TIMEOUT)
        return
    for r in results:
        if isinstance(r, BaseException):
            log.warning("metrics: a scrape hook failed: %r", r)


def _response(status: str, body: bytes, content_type: str, head_only: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + body


class LoopMetricsHTTP:
    """The listening socket and the asyncio server serving `render()` on it."""

    def __init__(self, sock: socket.socket, render: Callable[[], bytes], content_type: str) -> None:
        self._sock = sock
        self._render = render
        self._content_type = content_type
        self._active = 0
        self._server: asyncio.AbstractServer | None = None
        self._loop = asyncio.get_running_loop()
        self._starting: asyncio.Task[None] | None = self._loop.create_task(self._start())

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, sock=self._sock, limit=REQUEST_LIMIT
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= MAX_CONNECTIONS:
            writer.close()
            return
        self._active += 1
        try:
            reply = await self._reply(reader)
            if reply:
                writer.write(reply)
                await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._active -= 1
            writer.close()

    async def _reply(self, reader: asyncio.StreamReader) -> bytes:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return _response("400 Bad Request", b"bad request\n", "text/plain")
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return _response("405 Method Not Allowed", b"GET or HEAD\n", "text/plain")
        if target.split(b"?", 1)[0] == b"/favicon.ico":
            return _response("404 Not Found", b"not found\n", "text/plain")
        await run_scrape_hooks()
        try:
            body = self._render()
        except Exception as e:  # a user's collector: the page fails, the server stays
            log.warning("metrics: rendering failed: %r", e)
            return _response("500 Internal Server Error", b"render failed\n", "text/plain")
        return _response("200 OK", body, self._content_type, head_only=method == b"HEAD")

    def close(self) -> None:
        """Stop listening; from another thread while the loop runs, on the loop soon after."""
        if self._loop.is_running() and running_loop() is not self._loop:
            self._loop.call_soon_threadsafe(self.close)
            return
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        self._starting = None
        if self._server is not None:
            self._server.close()
            self._server = None
        self._sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); `OSError` when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    sock.setblocking(False)
    return sock


def serve_on_loop(
    host: str, port: int, render: Callable[[], bytes], content_type: str
) -> tuple[LoopMetricsHTTP, int]:
    """Serve `render()` on the running loop at (host, port); the server and its port."""
    sock = listen(host, port)
    try:
        http = LoopMetricsHTTP(sock, render, content_type)
    except BaseException:
        sock.close()
        raise
    return http, int(sock.getsockname()[1])


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
