"""Serving the metrics: `registry()` and `serve_metrics(addr)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aether.errors import ConfigError
from aether.observability._http import running_loop, serve_on_loop
from aether.observability._metrics import metrics

MISSING = "metrics need the prometheus-client package (install aether[metrics])"


def registry() -> Any:
    """aether's `prometheus_client.CollectorRegistry` (with the process collectors), to
    mount in your own app, e.g. ``prometheus_client.make_asgi_app(registry())``.
    Raises `ConfigError` without `prometheus-client`."""
    m = metrics()
    if m is None:
        raise ConfigError(MISSING)
    return m.registry


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[::1]:port"``) as (host, port); `ConfigError` if malformed."""
    if not isinstance(addr, str) or ":" not in addr:
        raise ConfigError(f"metrics address: must be HOST:PORT, got {addr!r}")
    host, _, port_text = addr.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"metrics address: must be HOST:PORT with a port 0-65535, got {addr!r}")
    return host, port


class MetricsServer:
    """A running ``/metrics`` HTTP server; `close()` stops it."""

    def __init__(self, stop: Callable[[], None], host: str, port: int) -> None:
        self._stop: Callable[[], None] | None = stop
        self.host = host
        """The address it listens on."""
        self.port = port
        """The port it listens on (the one chosen when 0 was asked for)."""

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def _stop_thread_server(server: Any, thread: Any) -> Callable[[], None]:
    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def serve_metrics(addr: str = "127.0.0.1:9464") -> MetricsServer:
    """Serve aether's registry at ``http://addr/metrics``.

    Called with an event loop running in this thread, it serves from that loop (a busy
    loop starves a serving thread of the GIL: threaded scrapes then take seconds), until
    `close()` or the loop's end; a scrape there must not come from blocking code on the
    same loop. Called elsewhere, it serves from a daemon thread.

    The default is loopback only; port 0 picks a free port (see `MetricsServer.port`).
    Raises `ConfigError` for a malformed address or without `prometheus-client`, and
    `OSError` when the address is taken.
    """
    host, port = parse_addr(addr)
    m = metrics()
    if m is None:
        raise ConfigError(MISSING)
    if running_loop() is not None:
        registry = m.registry
        http, bound = serve_on_loop(
            host, port, lambda: m.pc.generate_latest(registry), m.pc.CONTENT_TYPE_LATEST
        )
        return MetricsServer(http.close, host, bound)
    server, thread = m.pc.start_http_server(port, addr=host, registry=m.registry)
    return MetricsServer(_stop_thread_server(server, thread), host, server.server_address[1])
