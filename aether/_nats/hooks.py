"""One dispatcher per connection for nats-py's error, disconnect and reconnect callbacks.

nats-py holds one callback of each kind per connection. Several aether parts share a
connection (a store, buses, a cluster node), so each connection gets one `Hooks`: it
owns the connection's three callbacks, calls every listener added with ``on_*`` and
then the callback the connection was opened with; ``on_*`` returns the function that
removes the listener, so nothing is left behind when a bus or store closes. A listener
that raises is logged and never reaches nats-py. Nothing else sets or chains nats-py's
callbacks.

`aether.connect` passes the dispatcher to nats-py as its ordinary ``error_cb``,
``disconnected_cb`` and ``reconnected_cb`` options (no seam). A connection opened
elsewhere (``nats.connect`` by the user, then ``from_client``) gets it through a seam:
``Client._error_cb``, ``_disconnected_cb`` and ``_reconnected_cb`` (private, stable across
nats-py 2.x). Without them (or with ``AETHER_NATS_SEAMS=off``) listeners on such a
connection are kept but never called (`Hooks.installed` is False): slow-consumer drops
are then counted only by nats-py, and reconnects are not reported to bus subscriptions.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS

from aether._nats.seams import seams_enabled

log = logging.getLogger("aether.nats")

ErrorListener = Callable[[Exception], Awaitable[bool | None] | bool | None]
"""Gets every async error; returning True means "handled: do not pass it on"."""
EventListener = Callable[[], Awaitable[None] | None]

_ATTR = "_aether_hooks"
_OPTIONS = ("error_cb", "disconnected_cb", "reconnected_cb")
_PRIVATE = ("_error_cb", "_disconnected_cb", "_reconnected_cb")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result
    except Exception:
        log.exception("a NATS connection listener failed")
        return None


class Hooks:
    """The listeners of one connection (get it with `hooks_of`)."""

    def __init__(self) -> None:
        self.installed = False
        """Whether nats-py calls this dispatcher (False: listeners are never called)."""
        self._error: list[ErrorListener] = []
        self._disconnected: list[EventListener] = []
        self._reconnected: list[EventListener] = []
        self._orig: dict[str, Any] = {}

    def take_options(self, opts: dict[str, Any]) -> None:
        """Put the dispatcher in nats-py connect options; the callbacks given there are
        called after the listeners."""
        for name in _OPTIONS:
            self._orig[name] = opts.pop(name, None)
        opts["error_cb"] = self._on_error
        opts["disconnected_cb"] = self._on_disconnected
        opts["reconnected_cb"] = self._on_reconnected
        self.installed = True

    def _take_connection(self, nc: NATS) -> None:
        # The seam: a connection opened without our options.
        if not (seams_enabled() and all(hasattr(nc, k) for k in _PRIVATE)):
            return
        for opt, attr in zip(_OPTIONS, _PRIVATE, strict=True):
            self._orig[opt] = getattr(nc, attr, None)
        nc._error_cb = self._on_error
        nc._disconnected_cb = self._on_disconnected
        nc._reconnected_cb = self._on_reconnected
        self.installed = True

    async def _on_error(self, e: Exception) -> None:
        for fn in list(self._error):
            if await _call(fn, e) is True:
                return
        orig = self._orig.get("error_cb")
        if orig is not None:
            await _call(orig, e)

    async def _on_disconnected(self) -> None:
        for fn in list(self._disconnected):
            await _call(fn)
        orig = self._orig.get("disconnected_cb")
        if orig is not None:
            await _call(orig)

    async def _on_reconnected(self) -> None:
        for fn in list(self._reconnected):
            await _call(fn)
        orig = self._orig.get("reconnected_cb")
        if orig is not None:
            await _call(orig)

    @staticmethod
    def _adder(items: list[Any], fn: Any) -> Callable[[], None]:
        items.append(fn)

        def remove() -> None:
            if fn in items:
                items.remove(fn)

        return remove

    def on_error(self, fn: ErrorListener) -> Callable[[], None]:
        """Listen to async errors; returns the function that removes the listener."""
        return self._adder(self._error, fn)

    def on_disconnected(self, fn: EventListener) -> Callable[[], None]:
        """Listen to disconnects; returns the function that removes the listener."""
        return self._adder(self._disconnected, fn)

    def on_reconnected(self, fn: EventListener) -> Callable[[], None]:
        """Listen to reconnects; returns the function that removes the listener."""
        return self._adder(self._reconnected, fn)

    def listener_count(self) -> int:
        """How many listeners are registered (for tests of clean removal)."""
        return len(self._error) + len(self._disconnected) + len(self._reconnected)


def attach(nc: NATS, hooks: Hooks) -> None:
    """Make `hooks` the dispatcher of `nc` (whose options it took before connecting)."""
    setattr(nc, _ATTR, hooks)


def hooks_of(nc: NATS) -> Hooks:
    """The connection's `Hooks`; for a connection not opened by `aether.connect`,
    installed through the seam on first use."""
    existing = getattr(nc, _ATTR, None)
    if isinstance(existing, Hooks):
        return existing
    hooks = Hooks()
    hooks._take_connection(nc)
    setattr(nc, _ATTR, hooks)
    return hooks
