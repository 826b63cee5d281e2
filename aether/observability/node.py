"""`observe_node`: everything ``aether node run`` needs in one call, and the store head.

``aether_store_last_position{namespace}`` is read from the store at scrape time (through
a connection of its own, on a thread of its own), so a node shows the head of the log
even when other processes append; a processor's lag is that head minus its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from aether.observability._http import add_scrape_hook, running_loop
from aether.observability._metrics import metrics
from aether.observability.cluster import NodeInstrumentation, instrument_node
from aether.observability.logs import configure_logging
from aether.observability.processors import (
    ProcessorStatsRegistration,
    StatsProvider,
    register_processor_stats,
)
from aether.observability.serve import MetricsServer, serve_metrics

log = logging.getLogger("aether.store")

HEAD_TIMEOUT = 2.0
"""Seconds a scrape waits for the store's head position before leaving it out."""


class StoreHead:
    """Reads a store's head position (``last_position``) from a private event loop.

    The store is opened from `settings` on first use and closed by `close()`.
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        """The settings the store is opened from."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._store: Any = None
        self._cursor = 0
        self._lock = threading.Lock()
        self._last: int | None = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=loop.run_forever, name="aether-store-head", daemon=True
                )
                self._thread.start()
                self._loop = loop
            return self._loop

    async def _position(self) -> int:
        if self._store is None:
            from aether.store import open_store

            self._store = await open_store(self.settings)
        last = getattr(self._store, "last_position", None)
        if last is not None:
            return int(await last())
        # A store without last_position yet: follow the log with a cursor.
        async for e in self._store.read_all(self._cursor + 1):
            self._cursor = e.position
        return self._cursor

    def position(self, timeout: float = HEAD_TIMEOUT) -> int | None:
        """The head position, or None when the store cannot be read within `timeout`.

        On a thread running an event loop (a loop-served scrape) it does not block: it
        returns what the last `refresh()` read.
        """
        if running_loop() is not None:
            return self._last
        loop = self._ensure_loop()
        fut = asyncio.run_coroutine_threadsafe(self._position(), loop)
        try:
            return fut.result(timeout)
        except Exception as e:
            fut.cancel()
            log.debug("store head not read: %r", e)
            return None

    async def refresh(self) -> None:
        """Read the head for the next loop-served scrape (within `HEAD_TIMEOUT`), without
        blocking this loop."""
        fut = asyncio.run_coroutine_threadsafe(self._position(), self._ensure_loop())
        try:
            self._last = await asyncio.wait_for(asyncio.wrap_future(fut), HEAD_TIMEOUT)
        except Exception as e:
            fut.cancel()
            self._last = None
            log.debug("store head not read: %r", e)

    def close(self) -> None:
        """Close the store and stop the loop."""
        loop = self._loop
        if loop is None:
            return
        if self._store is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._store.close(), loop).result(HEAD_TIMEOUT)
            self._store = None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        loop.close()
        self._loop = None


class _HeadCollector:
    def __init__(self, head: StoreHead, namespace: str) -> None:
        self.head = head
        self.namespace = namespace

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        position = self.head.position()
        g = GaugeMetricFamily(
            "aether_store_last_position",
            "Highest position of the namespace's event log (the head).",
            labels=["namespace"],
        )
        if position is not None:
            g.add_metric([self.namespace], position)
        yield g


class NodeObservability:
    """What `observe_node` started; `close()` stops it (idempotent)."""

    def __init__(self) -> None:
        self.server: MetricsServer | None = None
        """The ``/metrics`` server, when an address was given."""
        self.node: NodeInstrumentation | None = None
        self.head: StoreHead | None = None
        self.log_handler: logging.Handler | None = None
        self.processors: ProcessorStatsRegistration | None = None
        self._head_collector: Any = None
        self._remove_hook: Callable[[], None] | None = None

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port/metrics`` when serving."""
        return self.server.url if self.server is not None else None

    def close(self) -> None:
        """Stop serving, unregister the collectors, remove the log handler."""
        if self.server is not None:
            self.server.close()
            self.server = None
        m = metrics()
        if self._head_collector is not None and m is not None:
            with contextlib.suppress(KeyError):
                m.registry.unregister(self._head_collector)
            self._head_collector = None
        if self._remove_hook is not None:
            self._remove_hook()
            self._remove_hook = None
        if self.head is not None:
            self.head.close()
            self.head = None
        if self.node is not None:
            self.node.close()
            self.node = None
        if self.processors is not None:
            self.processors.close()
            self.processors = None
        if self.log_handler is not None:
            logging.getLogger("aether").removeHandler(self.log_handler)
            self.log_handler = None


def observe_node(
    node: Any,
    *,
    metrics_addr: str | None = None,
    json_logs: bool = False,
    store_head: bool = True,
    processors: StatsProvider | None = None,
) -> NodeObservability:
    """Instrument a `ClusterNode` before it starts: its cluster metrics; with
    `metrics_addr`, serve ``/metrics`` there (plus the store head gauge when
    `store_head` and the store is not the in-memory one, and the processor metrics of
    `processors`, a `ProcessorStatsSource` or callable, see `register_processor_stats`);
    with `json_logs`, the ``aether`` loggers write JSON lines (with the node id and
    term) to stderr. `close()` the result after the node stopped.
    """
    obs = NodeObservability()
    try:
        if json_logs:
            obs.log_handler = configure_logging(json=True, node=node)
        if metrics_addr is None:
            return obs
        obs.server = serve_metrics(metrics_addr)
        obs.node = instrument_node(node)
        settings = node.settings
        m = metrics()
        if store_head and m is not None and settings.resolved_store != "memory":
            obs.head = StoreHead(settings)
            obs._head_collector = _HeadCollector(obs.head, str(node.namespace))
            m.registry.register(obs._head_collector)
            obs._remove_hook = add_scrape_hook(obs.head.refresh)
        if processors is not None:
            obs.processors = register_processor_stats(processors)
        return obs
    except BaseException:
        obs.close()
        raise
