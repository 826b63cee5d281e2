"""Opening a nats-py connection: TLS enforcement, the first-connect budget, the hooks.

`aether.connect` turns `Settings` into nats-py options and a transport policy (what a
connection must satisfy before credentials go out); `open_connection` applies them.

TLS enforcement runs on the connection itself, immediately before nats-py writes
``CONNECT``, through two seams of nats-py's connect sequence
(``Client._process_connect_init``): ``_process_info`` (the server's INFO was read,
nothing sent yet) upgrades to TLS when the server offers it optionally and the policy
wants it; ``_connect_command`` (about to write CONNECT with the credentials) refuses a
connection that is not TLS when the policy wants TLS. `seams_available` checks they
exist; without them (or with ``AETHER_NATS_SEAMS=off``) `probe` reads each server's INFO
on a separate connection first and refuses by the policy (it cannot upgrade an
optional-TLS server, so it refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any, Protocol
from urllib.parse import urlsplit

from nats.aio.client import Client as NATS

from aether._nats.errors import (
    TransportRefused,
    classify_connect_failure,
    is_fatal_connect_error,
)
from aether._nats.hooks import Hooks, attach
from aether._nats.info import server_info
from aether._nats.permissions import install_guard
from aether._nats.raw import prepare
from aether._nats.seams import seams_enabled
from aether.config import mask_url
from aether.errors import TlsRequiredError

log = logging.getLogger("aether.connect")


class Policy(Protocol):
    """What a connection must satisfy before credentials go out (`aether.connect`)."""

    def wants_tls_to(self, host: str | None) -> bool:
        """Whether a connection to `host` must be TLS (or refused)."""

    def refusal(self, server: str, host: str | None, is_tls: bool) -> str | None:
        """Why a connection to `server` that `is_tls` or not may not go on, or None."""


def _srv_text(srv: Any) -> str:
    uri = getattr(srv, "uri", None)
    return mask_url(uri.geturl()) if uri is not None else "the server"


class _GuardedClient(NATS):
    """nats-py's client with a `Policy` applied during every connect (see the module doc)."""

    _aether_policy: Policy | None = None

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        policy = self._aether_policy
        srv = self._current_server
        upgrade = (
            policy is not None
            and self.is_connecting
            and srv is not None
            and srv.uri.scheme not in ("ws", "wss")
            and policy.wants_tls_to(srv.uri.hostname)
            and not info.get("tls_required")
            and info.get("tls_available")
        )
        if upgrade:
            info["tls_required"] = True  # nats-py upgrades when the INFO says so
        await super()._process_info(info, initial_connection)

    def _connect_command(self) -> bytes:
        policy = self._aether_policy
        srv = self._current_server
        if policy is not None and srv is not None:
            why = policy.refusal(_srv_text(srv), srv.uri.hostname, self._aether_is_tls())
            if why is not None:
                raise TransportRefused(why)
        command: bytes = super()._connect_command()
        return command

    def _aether_is_tls(self) -> bool:
        srv = self._current_server
        if srv is not None and srv.uri.scheme == "wss":
            return True
        if srv is not None and srv.uri.scheme == "ws":
            return False
        writer = getattr(self._transport, "_io_writer", None)
        get_extra = getattr(writer, "get_extra_info", None)
        if callable(get_extra):
            return get_extra("ssl_object") is not None
        return bool(server_info(self).get("tls_required"))  # nats-py upgraded on this


def transport_is_tls(nc: NATS) -> bool:
    """Whether connection `nc` currently runs over TLS."""
    if isinstance(nc, _GuardedClient):
        return nc._aether_is_tls()
    url = nc.connected_url
    return bool(server_info(nc).get("tls_required")) or (
        url is not None and url.scheme in ("tls", "wss")
    )


_SEAMS = ("_process_info", "_connect_command", "_current_server", "_transport")
_seams_cache: list[bool] = []


def seams_available() -> bool:
    """Whether this nats-py has the connect-sequence hooks `_GuardedClient` overrides
    (and ``AETHER_NATS_SEAMS`` does not turn them off)."""
    if not seams_enabled():
        return False
    if not _seams_cache:
        probe = NATS()
        _seams_cache.append(
            all(hasattr(NATS, n) for n in _SEAMS[:2]) and all(hasattr(probe, n) for n in _SEAMS[2:])
        )
    return _seams_cache[0]


MAX_INFO_BYTES = 64 * 1024


async def probe(url: str, policy: Policy, wait: float) -> None:
    """Read the server's INFO on a separate connection (sending nothing) and refuse by the
    policy what the connection would have to do in plain text (the fallback for
    `seams_available` being False)."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        if policy.refusal(mask_url(url), parts.hostname, parts.scheme == "wss"):
            raise TlsRequiredError(str(policy.refusal(mask_url(url), parts.hostname, False)))
        return
    if not policy.wants_tls_to(parts.hostname):
        return
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 4222, limit=MAX_INFO_BYTES),
            wait,
        )
    except (OSError, TimeoutError):
        return  # unreachable: the real connect reports it
    try:
        line = await asyncio.wait_for(reader.readline(), wait)
    except (OSError, TimeoutError, ValueError):
        line = b""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    try:
        info = json.loads(line.split(b" ", 1)[1]) if line.startswith(b"INFO ") else {}
    except (ValueError, IndexError):
        info = {}
    if not (isinstance(info, dict) and info.get("tls_required")):
        why = policy.refusal(mask_url(url), parts.hostname, False)
        if why is not None:
            raise TlsRequiredError(why)


def describe_servers(servers: list[str]) -> str:
    """The server URLs for messages, without any credentials in them."""
    return ", ".join(mask_url(s) for s in servers)


async def open_connection(opts: dict[str, Any], policy: Policy, *, guarded: bool) -> NATS:
    """Connect with nats-py options `opts` under `policy`; raise an `aether.errors` error.

    The first connection is tried briefly (twice per server, no minute-long retry loop
    hiding a typo); after that the client reconnects as `opts` say. The connection gets
    its `Hooks` (the ``*_cb`` options in `opts` are called after the listeners) and a
    `PermissionGuard` (for the reply prefix ``opts["inbox_prefix"]``).
    `guarded`: enforce `policy` on the connection itself (else `probe` first).
    """
    opts = dict(opts)
    if not guarded:
        for url in opts["servers"]:
            await probe(url, policy, opts["connect_timeout"])
    hooks = Hooks()
    hooks.take_options(opts)
    errors: deque[BaseException] = deque(maxlen=20)
    fatal = asyncio.Event()
    connected = False

    def during_connect(e: Exception) -> bool:
        if connected:
            log.debug("nats error: %s", type(e).__name__)
            return False
        errors.append(e)
        if is_fatal_connect_error(e):
            fatal.set()
        log.debug("nats error while connecting: %s", type(e).__name__)
        return False

    hooks.on_error(during_connect)
    where = describe_servers(opts["servers"])
    # nats-py retries the *first* connect max_reconnect_attempts times (nats.py#352): a typo
    # or a down server would hang for a minute. Try each server twice, quickly, then
    # restore the configured reconnect behaviour for the life of the connection.
    reconnect = {k: opts[k] for k in ("max_reconnect_attempts", "reconnect_time_wait")}
    opts["max_reconnect_attempts"] = 1
    opts["reconnect_time_wait"] = min(0.1, reconnect["reconnect_time_wait"])
    if guarded:
        client = _GuardedClient()
        client._aether_policy = policy
        nc: NATS = client
    else:
        nc = NATS()
    attach(nc, hooks)
    attempt = asyncio.ensure_future(nc.connect(**opts))
    # nats-py can hang after a failed TLS verification: stop waiting once a fatal error
    # (bad certificate, refused credentials) was reported and nothing else got through.
    budget = 2.0 * opts["connect_timeout"] * len(opts["servers"]) + 2.0
    fatal_wait = asyncio.ensure_future(fatal.wait())
    try:
        await asyncio.wait({attempt, fatal_wait}, timeout=budget, return_when="FIRST_COMPLETED")
        if not attempt.done() and fatal.is_set():
            await asyncio.wait({attempt}, timeout=min(1.0, opts["connect_timeout"]))
    finally:
        fatal_wait.cancel()
        if not attempt.done():
            attempt.cancel()
    failure: BaseException | None = None
    try:
        await attempt
    except asyncio.CancelledError:
        if not attempt.cancelled():
            raise
        failure = TimeoutError()
    except Exception as e:
        failure = e
    if failure is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 1.0)
        raise classify_connect_failure([*errors, failure], where) from None
    # nats-py reads these options on every reconnect (its public `options` mapping).
    nc.options.update(reconnect)
    connected = True
    errors.clear()
    guard = install_guard(nc, opts.get("inbox_prefix") or "_INBOX")

    def violations(e: Exception) -> None:
        guard.on_error(e)  # recorded; the connection's own error_cb still sees it

    hooks.on_error(violations)
    prepare(nc)
    return nc
