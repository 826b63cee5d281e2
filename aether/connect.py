"""A nats-py connection built from `Settings` (servers, auth, TLS, reconnect).

Secrets (password, token, NKey seed, credentials) are handed to nats-py and never appear
in an error message or a log line: errors name the setting and the server, not the value.

TLS is never downgraded. When TLS is configured (a ``tls://`` or ``wss://`` URL, a CA, a
client certificate or ``nats.tls_required``) every connection, first or reconnect, is TLS
or it fails with `TlsRequiredError` before anything but the server's INFO was exchanged:
a server that offers TLS only optionally (``tls_available``) is upgraded, one that does
not offer it is refused. A password or token is never sent in plain text to a server that
is not on the loopback interface unless ``nats.allow_plaintext_auth`` is set (NKey and
JWT credentials sign a nonce and send no secret). Both checks run on the connection
itself, immediately before nats-py writes ``CONNECT``; the client uses the namespace's
own reply prefix (`Settings.inbox_prefix`) so replies are private to the namespace.

NATS reports permission violations asynchronously (``-ERR 'Permissions Violation for
Publish to "..."'``); a request to a denied subject would otherwise wait for its timeout.
`connect` installs a `PermissionGuard` that fails such a request at once with
`PermissionDeniedError` naming the subject.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nats.aio.client import Client as NATS

from aether._nats.connection import (
    describe_servers,
    open_connection,
    seams_available,
    transport_is_tls,
)
from aether._nats.errors import CONNECTION_REFUSED
from aether._nats.info import server_info
from aether._nats.permissions import (
    PermissionGuard,
    denied,
    on_permission_denied,
    permission_guard,
)
from aether.config import NatsSettings, Settings, mask_url
from aether.errors import ConfigError

log = logging.getLogger("aether.connect")


class _QuietSslEof(logging.Filter):
    """Drops asyncio's harmless "eof_received() has no effect when using ssl" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSslEof())


def _check_file(path: str, key: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key}: {p} does not exist or is not a file")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{key}: {p} cannot be read")
    return str(p)


MAX_SECRET_FILE_BYTES = 64 * 1024
"""Secret, seed and credentials files larger than this are refused."""


def _read_text(path: str, key: str) -> str:
    p = _check_file(path, key)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_SECRET_FILE_BYTES + 1)
        if len(raw) > MAX_SECRET_FILE_BYTES:
            raise ConfigError(f"{key}: {p} is larger than {MAX_SECRET_FILE_BYTES} bytes")
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{key}: {p} cannot be read as UTF-8 text") from None


def _read_secret(path: str, key: str) -> str:
    """The secret in file `path` (first line, surrounding whitespace stripped)."""
    p = _check_file(path, key)
    text = _read_text(p, key)
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError(f"{key}: {p} is empty")
    return lines[0].strip()


_CREDS_BLOCK_RE = re.compile(
    r"-{3,}BEGIN ([A-Z ]+)-{3,}\s*\n\s*([^\s-][^\n]*?)\s*\n\s*-{3,}END \1-{3,}"
)


def _check_seed(text: str, key: str, path: str) -> None:
    import nkeys  # nats-py's own dependency for NKey auth

    seed = text.strip().encode()
    try:
        if not seed.startswith(b"SU"):
            raise ValueError
        nkeys.from_seed(bytearray(seed))
    except Exception:
        raise ConfigError(f"{key}: {path} does not hold a valid user NKey seed (SU...)") from None


def _check_nkey_file(path: str, key: str) -> str:
    p = _check_file(path, key)
    text = _read_text(p, key)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("SU")]
    _check_seed(lines[0] if lines else text, key, p)
    return p


def _check_creds_file(path: str, key: str) -> str:
    """`path` if it holds a user JWT and an NKey seed block, else a `ConfigError` (a
    truncated file would otherwise fail deep inside nats-py with a TypeError)."""
    p = _check_file(path, key)
    text = _read_text(p, key)
    blocks = {name.strip(): body for name, body in _CREDS_BLOCK_RE.findall(text)}
    jwt = blocks.get("NATS USER JWT", "")
    if jwt.count(".") != 2:
        raise ConfigError(f"{key}: {p} holds no complete user JWT (truncated or not a .creds file)")
    seed = blocks.get("USER NKEY SEED")
    if seed is None:
        raise ConfigError(f"{key}: {p} holds no NKey seed (truncated or not a .creds file)")
    _check_seed(seed, key, p)
    return p


def is_loopback(host: str | None) -> bool:
    """Whether `host` (a URL's host) is on the loopback interface: ``localhost``,
    127.0.0.0/8 or ``::1``. Plain-text credentials are allowed only there by default."""
    if not host:
        return False
    h = host.strip("[]").rstrip(".").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _tls_context(ns: NatsSettings) -> ssl.SSLContext | None:
    if not (ns.wants_tls or ns.tls_server_name):
        return None
    cafile = _check_file(ns.tls_ca_file, "nats.tls_ca_file") if ns.tls_ca_file else None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError):
        raise ConfigError(f"nats.tls_ca_file: {cafile} is not a PEM CA certificate") from None
    if ns.tls_cert_file or ns.tls_key_file:
        if not (ns.tls_cert_file and ns.tls_key_file):
            raise ConfigError("nats.tls_cert_file and nats.tls_key_file: give both or neither")
        cert = _check_file(ns.tls_cert_file, "nats.tls_cert_file")
        key = _check_file(ns.tls_key_file, "nats.tls_key_file")
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError):
            raise ConfigError(
                "nats.tls_cert_file: cannot load the client certificate and key "
                f"({cert}, {key}); they must be PEM and belong together"
            ) from None
    return ctx


def connect_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for `nats.connect` that `settings` describe.

    Reads the secret files (password, token) and checks that every named file exists;
    raises `ConfigError` naming the setting (never its value).
    """
    ns = settings.nats
    if not ns.servers:
        raise ConfigError(NO_SERVERS)
    if ns.wants_tls:
        plain_ws = [s for s in ns.servers if s.startswith("ws://")]
        if plain_ws:
            raise ConfigError(
                f"nats.servers: {mask_url(plain_ws[0])} is a plain-text WebSocket URL but TLS "
                "is configured: use wss://"
            )
    opts: dict[str, Any] = {
        "servers": list(ns.servers),
        "name": ns.name,
        "connect_timeout": ns.connect_timeout,
        "max_reconnect_attempts": ns.reconnect_attempts,
        "reconnect_time_wait": ns.reconnect_wait,
        "allow_reconnect": True,
    }
    opts["inbox_prefix"] = settings.inbox_prefix
    password = ns.password
    if ns.password_file is not None:
        if password is not None:
            raise ConfigError("nats.password_file: give nats.password or nats.password_file")
        password = _read_secret(ns.password_file, "nats.password_file")
    token = ns.token
    if ns.token_file is not None:
        if token is not None:
            raise ConfigError("nats.token_file: give nats.token or nats.token_file")
        token = _read_secret(ns.token_file, "nats.token_file")
    if password is not None and ns.user is None:
        raise ConfigError("nats.password: needs nats.user")
    methods = [
        name
        for name, on in (
            ("nats.user", ns.user is not None),
            ("nats.token", token is not None),
            ("nats.nkey_seed_file", ns.nkey_seed_file is not None),
            ("nats.creds_file", ns.creds_file is not None),
        )
        if on
    ]
    if len(methods) > 1:
        raise ConfigError(f"{' and '.join(methods)}: choose one authentication method")
    if ns.user is not None:
        opts["user"] = ns.user
        opts["password"] = password or ""
    if token is not None:
        opts["token"] = token
    if ns.nkey_seed_file is not None:
        opts["nkeys_seed"] = _check_nkey_file(ns.nkey_seed_file, "nats.nkey_seed_file")
    if ns.creds_file is not None:
        opts["user_credentials"] = _check_creds_file(ns.creds_file, "nats.creds_file")
    tls = _tls_context(ns)
    if tls is not None:
        opts["tls"] = tls
        if ns.tls_server_name:
            opts["tls_hostname"] = ns.tls_server_name
        if ns.tls_handshake_first:
            opts["tls_handshake_first"] = True
    return opts


NO_SERVERS = "nats.servers: no NATS server configured"
"""The message of the `ConfigError` for settings without a server (front ends add hints)."""


@dataclass(frozen=True)
class TransportPolicy:
    """What a connection must satisfy before credentials go out (see the module doc)."""

    tls: bool
    """TLS is configured: every connection must be TLS."""
    plaintext_secret: bool
    """A password or token would be sent (the server decides whether it asks for it)."""
    allow_plaintext_auth: bool

    @classmethod
    def of(cls, settings: Settings, opts: dict[str, Any]) -> TransportPolicy:
        """The policy for `settings` and the options `connect_options` built from them."""
        in_url = any(urlsplit(s).username for s in opts["servers"])
        return cls(
            tls=settings.nats.wants_tls,
            plaintext_secret=bool(opts.get("password") or opts.get("token") or in_url),
            allow_plaintext_auth=settings.nats.allow_plaintext_auth,
        )

    def wants_tls_to(self, host: str | None) -> bool:
        """Whether a connection to `host` must be TLS (or refused)."""
        return self.tls or (
            self.plaintext_secret and not self.allow_plaintext_auth and not is_loopback(host)
        )

    def refusal(self, server: str, host: str | None, is_tls: bool) -> str | None:
        """Why a connection to `server` that `is_tls` or not may not go on, or None."""
        if is_tls:
            return None
        if self.tls:
            return (
                f"cannot connect to NATS at {server}: the server does not offer TLS, and TLS "
                "is configured (a tls:// URL, nats.tls_ca_file, a client certificate or "
                "nats.tls_required); nothing was sent"
            )
        if self.wants_tls_to(host):
            return (
                f"refusing to send a password or token to NATS at {server} in plain text: "
                "the server does not offer TLS (configure TLS, or set "
                "nats.allow_plaintext_auth: true to allow it); nothing was sent"
            )
        return None


USE_SEAMS = True
"""Tests set this False to exercise the probe that replaces the seams on another nats-py."""


async def connect(settings: Settings, **extra: Any) -> NATS:
    """Connect to NATS as `settings` say; raise `NatsUnavailableError`, `AuthError`,
    `TlsRequiredError` or `ConfigError` (bad file names, bad combination of settings).

    `extra` are further nats-py connect options (``error_cb`` and the other callbacks are
    called after aether's own listeners). The first connection is tried briefly (twice
    per server, no minute-long retry loop hiding a typo); after that the client
    reconnects as configured. The connection carries a `PermissionGuard`.
    """
    opts = connect_options(settings)
    policy = TransportPolicy.of(settings, opts)
    opts.update(extra)
    return await open_connection(opts, policy, guarded=USE_SEAMS and seams_available())


__all__ = [
    "CONNECTION_REFUSED",
    "NO_SERVERS",
    "PermissionGuard",
    "TransportPolicy",
    "connect",
    "connect_options",
    "denied",
    "describe_servers",
    "is_loopback",
    "on_permission_denied",
    "permission_guard",
    "seams_available",
    "server_info",
    "transport_is_tls",
]
