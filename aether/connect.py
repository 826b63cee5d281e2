"""A nats-py connection built from `Settings` (servers, auth, TLS, reconnect)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import NoServersError

from aether.config import NatsSettings, Settings
from aether.errors import AuthError, ConfigError, NatsUnavailableError

log = logging.getLogger("aether.connect")


def _tls_context(ns: NatsSettings) -> ssl.SSLContext | None:
    if not (ns.tls_ca_file or ns.tls_cert_file or any(s.startswith("tls://") for s in ns.servers)):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ns.tls_ca_file)
    if ns.tls_cert_file:
        if not ns.tls_key_file:
            raise ConfigError("nats.tls_key_file: is required with nats.tls_cert_file")
        try:
            ctx.load_cert_chain(ns.tls_cert_file, ns.tls_key_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"nats.tls_cert_file: cannot load the client certificate ({e})") from None
    return ctx


def connect_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for `nats.connect` that `settings` describe."""
    ns = settings.nats
    if not ns.servers:
        raise ConfigError(
            "nats.servers: no NATS server configured (use --server, AETHER_NATS_URL or the "
            "config file; `aether server` starts one)"
        )
    opts: dict[str, Any] = {
        "servers": list(ns.servers),
        "name": ns.name,
        "connect_timeout": ns.connect_timeout,
        "max_reconnect_attempts": ns.reconnect_attempts,
        "reconnect_time_wait": ns.reconnect_wait,
        "allow_reconnect": True,
    }
    if ns.user is not None:
        opts["user"] = ns.user
        opts["password"] = ns.password or ""
    if ns.token is not None:
        opts["token"] = ns.token
    if ns.nkey_seed_file is not None:
        opts["nkeys_seed"] = ns.nkey_seed_file
    if ns.creds_file is not None:
        opts["user_credentials"] = ns.creds_file
    tls = _tls_context(ns)
    if tls is not None:
        opts["tls"] = tls
        if ns.tls_server_name:
            opts["tls_hostname"] = ns.tls_server_name
    return opts


def _describe(servers: list[str]) -> str:
    # Servers may carry user:password@; never echo credentials.
    return ", ".join(s.split("@", 1)[-1] if "@" in s else s for s in servers)


async def connect(settings: Settings, **extra: Any) -> NATS:
    """Connect to NATS as `settings` say; raise `NatsUnavailableError` or `AuthError`.

    The first connection is tried once per server (no retry loop hiding a typo); after
    that the client reconnects as configured.
    """
    opts = connect_options(settings)
    opts.update(extra)
    last_error: list[BaseException] = []

    async def on_error(e: Exception) -> None:
        last_error.append(e)
        log.debug("nats error: %s", type(e).__name__)

    opts.setdefault("error_cb", on_error)
    where = _describe(opts["servers"])
    try:
        return await nats.connect(**opts)
    except (NoServersError, OSError, asyncio.TimeoutError, NatsError) as e:
        cause = last_error[-1] if last_error else e
        text = str(cause).lower()
        if "authorization" in text or "authentication" in text or "permissions" in text:
            raise AuthError(f"cannot reach NATS at {where}: authorization failed") from None
        if isinstance(cause, ssl.SSLError) or "certificate" in text or "ssl" in text:
            raise AuthError(f"cannot reach NATS at {where}: TLS handshake failed") from None
        raise NatsUnavailableError(
            f"cannot reach NATS at {where}: {type(cause).__name__}"
            + (f" ({cause})" if str(cause) and "@" not in str(cause) else "")
        ) from None
