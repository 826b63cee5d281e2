"""`serve_metrics` inside a running event loop serves from that loop: a scrape gets through
while the loop is saturated, bad requests get a status and no render, and closing
releases the port."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading

import pytest

from aether import Event, InMemoryEventStore
from aether.observability import instrument_store, registry, serve_metrics
from aether.observability._http import REQUEST_LIMIT, add_scrape_hook
from tests.observability.helpers import parse

SCRAPE = (
    "import sys, urllib.request as u\nprint(u.urlopen(sys.argv[1], timeout=20).read().decode())\n"
)


async def request(port: int, raw: bytes) -> bytes:
    """Send `raw` and read the whole reply (the server closes after one response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


async def test_a_scrape_gets_through_a_saturated_loop() -> None:
    store = instrument_store(InMemoryEventStore())
    server = serve_metrics("127.0.0.1:0")
    stop = False

    async def writer(actor: str) -> None:
        version = 0
        while not stop:  # never waits for I/O: only the loop's own yield
            version += 1
            await store.save_event(Event("Tick", actor, version))
            await asyncio.sleep(0)

    class WhereRendered:
        def __init__(self) -> None:
            self.threads: list[str] = []

        def collect(self) -> list[object]:
            self.threads.append(threading.current_thread().name)
            return []

        def describe(self) -> list[object]:
            return []

    where = WhereRendered()
    registry().register(where)
    writers = [asyncio.create_task(writer(f"w-{i}")) for i in range(4)]
    try:
        await asyncio.sleep(0.2)
        scraper = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SCRAPE, server.url, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(scraper.communicate(), 60)
        assert scraper.returncode == 0
        samples = parse(out.decode())
        assert samples[("aether_appended_events_total", (("store", "memory"),))] > 0
        assert where.threads == [threading.current_thread().name]  # the loop's own thread
    finally:
        registry().unregister(where)
        stop = True
        await asyncio.gather(*writers)
        server.close()
        await store.close()


async def test_head_and_bad_requests() -> None:
    server = serve_metrics("127.0.0.1:0")
    try:
        got = await request(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Content-Type: text/plain" in head
        assert b"process_cpu_seconds_total" in body
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert length == len(body)

        got = await request(server.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\n")

        assert (await request(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 405 "
        )
        assert (await request(server.port, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        assert (await request(server.port, b"GET /favicon.ico HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 404 "
        )
        # A head without end is cut off at the limit, with no reply.
        endless = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (REQUEST_LIMIT + 10)
        assert await request(server.port, endless) == b""
        # ... and the server still serves.
        assert (await request(server.port, b"GET / HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    finally:
        server.close()


async def test_a_failing_collector_fails_the_page_not_the_server() -> None:
    class Broken:
        def collect(self) -> list[object]:
            raise RuntimeError("boom")

        def describe(self) -> list[object]:
            return []

    server = serve_metrics("127.0.0.1:0")
    broken = Broken()
    registry().register(broken)
    try:
        got = await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 500 ")
    finally:
        registry().unregister(broken)
    try:
        got = await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ")
    finally:
        server.close()


async def test_scrape_hooks_run_before_the_render_and_a_failing_one_is_skipped() -> None:
    calls: list[str] = []

    async def good() -> None:
        await asyncio.sleep(0)
        calls.append("good")

    async def bad() -> None:
        raise RuntimeError("hook down")

    remove_good, remove_bad = add_scrape_hook(good), add_scrape_hook(bad)
    server = serve_metrics("127.0.0.1:0")
    try:
        got = await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ") and calls == ["good"]
        remove_good()
        await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert calls == ["good"]
    finally:
        remove_good(), remove_bad()  # removing twice is harmless
        server.close()


async def test_close_releases_the_port_and_a_taken_port_is_an_oserror() -> None:
    server = serve_metrics("127.0.0.1:0")
    port = server.port
    await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
    with pytest.raises(OSError):
        serve_metrics(f"127.0.0.1:{port}")
    server.close()
    server.close()  # idempotent
    await asyncio.sleep(0)
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_a_server_outlived_by_its_loop_closes_quietly() -> None:
    async def start() -> object:
        return serve_metrics("127.0.0.1:0")

    server = asyncio.run(start())
    server.close()  # type: ignore[attr-defined]


def test_outside_a_loop_it_serves_from_a_thread() -> None:
    server = serve_metrics("127.0.0.1:0")
    try:
        out = subprocess.run(
            [sys.executable, "-c", SCRAPE, server.url], capture_output=True, text=True, timeout=60
        )
        assert "process_cpu_seconds_total" in out.stdout
    finally:
        server.close()


async def test_close_from_another_thread_stops_serving_on_the_loop() -> None:
    server = serve_metrics("127.0.0.1:0")
    await asyncio.to_thread(server.close)
    for _ in range(100):
        await asyncio.sleep(0.01)
        try:
            await request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        except OSError:
            return
    raise AssertionError("still serving after close() from another thread")
