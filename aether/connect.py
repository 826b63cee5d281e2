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

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import os
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any
from urllib.parse import urlsplit

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import AuthorizationError as NatsAuthorizationError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from aether.config import NatsSettings, Settings, mask_url
from aether.errors import (
    AetherError,
    AuthError,
    ConfigError,
    NatsUnavailableError,
    PermissionDeniedError,
    TlsRequiredError,
)

log = logging.getLogger("aether.connect")


class _QuietSslEof(logging.Filter):
    """Drops asyncio's harmless "eof_received() has no effect when using ssl" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSslEof())

_VIOLATION_RE = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.I)


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
    import nkeys  # type: ignore[import-untyped]  # nats-py's own dependency for NKey auth

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


def describe_servers(servers: list[str]) -> str:
    """The server URLs for messages, without any credentials in them."""
    return ", ".join(mask_url(s) for s in servers)


CONNECTION_REFUSED = "connection refused"
"""The reason in a `NatsUnavailableError` when nothing listens (front ends add hints)."""


def _classify(errors: list[BaseException], where: str) -> AetherError:
    """One safe error for a failed first connect (no secret, no raw server text)."""
    for e in errors:
        if isinstance(e, _TransportRefused):
            return TlsRequiredError(e.message)
    for e in errors:
        text = str(e).lower()
        if isinstance(e, NatsAuthorizationError) or "authorization violation" in text:
            return AuthError(
                f"cannot connect to NATS at {where}: authorization failed "
                "(check the user and password, token, NKey or credentials)"
            )
        if "user authentication expired" in text or "authentication revoked" in text:
            return AuthError(f"cannot connect to NATS at {where}: the credentials have expired")
    for e in errors:
        if isinstance(e, ssl.SSLCertVerificationError):
            why = e.verify_message or "certificate verify failed"
            return AuthError(
                f"cannot connect to NATS at {where}: TLS certificate of the server not trusted "
                f"({why}; check nats.tls_ca_file and nats.tls_server_name)"
            )
        if isinstance(e, ssl.SSLError):
            reason = getattr(e, "reason", None) or "handshake failed"
            return AuthError(
                f"cannot connect to NATS at {where}: TLS handshake failed ({reason}; the server "
                "may require a client certificate: nats.tls_cert_file and nats.tls_key_file)"
            )
        text = str(e).lower()
        if "tls" in text and ("required" in text or "handshake" in text):
            return AuthError(
                f"cannot connect to NATS at {where}: the server requires TLS "
                "(use tls:// URLs or set nats.tls_ca_file)"
            )
    for e in errors:
        if type(e).__name__.startswith("ErrInvalid"):  # nkeys: bad seed or creds file
            return ConfigError(
                "nats.nkey_seed_file / nats.creds_file: the file does not hold a valid NKey "
                "seed or credentials"
            )
    for e in reversed(errors):
        if isinstance(e, ConnectionRefusedError):
            return NatsUnavailableError(f"cannot reach NATS at {where}: {CONNECTION_REFUSED}")
        if isinstance(e, OSError) and e.strerror:
            return NatsUnavailableError(f"cannot reach NATS at {where}: {e.strerror}")
    for e in reversed(errors):
        if isinstance(e, asyncio.TimeoutError | NatsTimeoutError):
            return NatsUnavailableError(f"cannot reach NATS at {where}: connection timed out")
    last = type(errors[-1]).__name__ if errors else "no server answered"
    return NatsUnavailableError(f"cannot reach NATS at {where}: {last}")


# --- TLS and plain-text credentials, enforced on the connection itself ----------------------


class _TransportRefused(NatsError):
    """Raised inside nats-py's connect sequence (before CONNECT) so that nats-py treats it
    as a failed attempt at that server; `connect` turns it into `TlsRequiredError`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


def _srv_text(srv: Any) -> str:
    uri = getattr(srv, "uri", None)
    return mask_url(uri.geturl()) if uri is not None else "the server"


class _GuardedClient(NATS):
    """nats-py's client with the `TransportPolicy` applied during every connect.

    Two seams of nats-py's connect sequence (``_process_connect_init``): `_process_info`
    (the server's INFO was read, nothing sent yet) upgrades to TLS when the server offers
    it optionally and the policy wants it; `_connect_command` (about to write CONNECT with
    the credentials) refuses a connection that is not TLS when the policy wants TLS.
    `seams_available` checks they exist; otherwise `connect` probes each server first.
    """

    _aether_policy: TransportPolicy | None = None

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
                raise _TransportRefused(why)
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
        return bool(self._server_info.get("tls_required"))  # nats-py upgraded on this


def server_info(nc: NATS) -> dict[str, Any]:
    """The INFO the server sent on connection `nc` (version, max_payload, jetstream...)."""
    info = getattr(nc, "_server_info", None)
    return dict(info) if isinstance(info, dict) else {}


def transport_is_tls(nc: NATS) -> bool:
    """Whether connection `nc` currently runs over TLS."""
    if isinstance(nc, _GuardedClient):
        return nc._aether_is_tls()
    url = nc.connected_url
    return bool(server_info(nc).get("tls_required")) or (
        url is not None and url.scheme in ("tls", "wss")
    )


_SEAMS = ("_process_info", "_connect_command", "_current_server", "_transport")


@functools.cache
def seams_available() -> bool:
    """Whether this nats-py has the connect-sequence hooks `_GuardedClient` overrides."""
    probe = NATS()
    return all(hasattr(NATS, n) for n in _SEAMS[:2]) and all(hasattr(probe, n) for n in _SEAMS[2:])


USE_SEAMS = True
"""Tests set this False to exercise the probe that replaces the seams on another nats-py."""

MAX_INFO_BYTES = 64 * 1024


async def _probe(url: str, policy: TransportPolicy, wait: float) -> None:
    """Read the server's INFO on a separate connection (sending nothing) and refuse by the
    policy what the connection would have to do in plain text. The fallback when
    `seams_available` is False; it cannot upgrade an optional-TLS server, so it refuses."""
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


class PermissionGuard:
    """Turns NATS permission violations into prompt `PermissionDeniedError`s.

    Installed on a connection by `connect`. Requests (`nc.request`, hence every JetStream
    API call and `js.publish`) to a subject the server then refuses fail at once instead
    of waiting for their timeout. Denied subjects are remembered (the last 100) so other
    code can ask `denied(subject)` when something times out.
    """

    def __init__(self, nc: NATS, inbox_prefix: str = "_INBOX") -> None:
        self._nc = nc
        self.inbox_prefix = inbox_prefix
        self.inbox_denied: PermissionDeniedError | None = None
        """Set when the server refused the subscription to the reply inbox: no request
        on this connection can get an answer then."""
        self._pending: dict[str, tuple[str, asyncio.Future[Msg]]] = {}
        self.violations: deque[tuple[str, str]] = deque(maxlen=100)
        self.listeners: list[Callable[[str, str], None]] = []
        nc._request_new_style = self._request_new_style  # type: ignore[method-assign]

    def denied(self, subject: str) -> PermissionDeniedError | None:
        """The error for `subject` if the server refused it on this connection."""
        wanted = subject.lower()  # nats-py lowercases the server's error text
        for op, subj in reversed(self.violations):
            if subj == wanted:
                return _permission_error(op, subject)
        return self.inbox_denied

    def on_error(self, e: BaseException) -> bool:
        """Handle a connection error; True if it was a permission violation."""
        m = _VIOLATION_RE.search(str(e))
        if m is None:
            return False
        # nats-py lowercases the error text: compare subjects case-insensitively
        op, subject = m.group(1).lower(), m.group(2).lower()
        self.violations.append((op, subject))
        log.debug("permission denied: %s to %s", op, subject)
        for listener in list(self.listeners):
            try:
                listener(op, subject)
            except Exception:  # a listener's bug must not break the connection
                log.exception("permission listener failed")
        if op == "publish":
            for tok, (subj, fut) in list(self._pending.items()):
                if subj.lower() == subject and not fut.done():
                    fut.set_exception(_permission_error(op, subj))
                    self._pending.pop(tok, None)
        elif subject.startswith(self.inbox_prefix.lower() + "."):
            self.inbox_denied = PermissionDeniedError(
                f"permission denied: this NATS user may not subscribe to its reply inbox "
                f"{self.inbox_prefix + '.>'!r} (nats.inbox_prefix; by default the namespace's "
                "own), so no request can be answered"
            )
            for tok, (_, fut) in list(self._pending.items()):
                if not fut.done():
                    fut.set_exception(self.inbox_denied)
                    self._pending.pop(tok, None)
        return True

    async def _request_new_style(
        self,
        subject: str,
        payload: bytes,
        timeout: float = 1,  # noqa: ASYNC109 - nats-py's signature
        headers: dict[str, Any] | None = None,
    ) -> Msg:
        # nats-py's own new-style request, plus a record of which subject each waits on.
        nc = self._nc
        if nc.is_draining_pubs:
            from nats.errors import ConnectionDrainingError

            raise ConnectionDrainingError
        if not nc._resp_sub_prefix:
            await nc._init_request_sub()
        assert nc._resp_sub_prefix
        token = nc._nuid.next()
        token.extend(token_hex(2).encode())
        tok = token.decode()
        inbox = nc._resp_sub_prefix[:]
        inbox.extend(token)
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        pending = self._pending

        def done(_: asyncio.Future[Msg]) -> None:
            nc._resp_map.pop(tok, None)
            pending.pop(tok, None)

        future.add_done_callback(done)
        nc._resp_map[tok] = future
        pending[tok] = (subject, future)
        await nc.publish(subject, payload, reply=inbox.decode(), headers=headers)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise NatsTimeoutError from None


def _permission_error(op: str, subject: str) -> PermissionDeniedError:
    verb = "publish to" if op == "publish" else "subscribe to"
    return PermissionDeniedError(f"permission denied: this NATS user may not {verb} {subject!r}")


def permission_guard(nc: NATS) -> PermissionGuard | None:
    """The `PermissionGuard` `connect` installed on `nc`, if any."""
    guard = getattr(nc, "_aether_permission_guard", None)
    return guard if isinstance(guard, PermissionGuard) else None


def denied(nc: NATS, subject: str) -> PermissionDeniedError | None:
    """`PermissionDeniedError` for `subject` if the server refused it on `nc`, else None.

    For code that waits on something other than a request (e.g. ``publish_async`` acks)
    and wants to explain a timeout.
    """
    guard = permission_guard(nc)
    return guard.denied(subject) if guard is not None else None


def on_permission_denied(nc: NATS, listener: Callable[[str, str], None]) -> Callable[[], None]:
    """Call ``listener(op, subject)`` (op ``publish`` or ``subscription``) on each
    permission violation NATS reports on `nc`; returns a function that removes it.

    For code that waits on replies outside ``nc.request`` (``publish_async``-style
    pipelines, subscriptions) and wants to fail its waiters with `denied(nc, subject)`
    at once instead of at their timeout.
    """
    guard = permission_guard(nc)
    if guard is None:
        return lambda: None
    guard.listeners.append(listener)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            guard.listeners.remove(listener)

    return remove


async def connect(settings: Settings, **extra: Any) -> NATS:
    """Connect to NATS as `settings` say; raise `NatsUnavailableError`, `AuthError` or
    `ConfigError` (bad file names, bad combination of settings).

    The first connection is tried briefly (twice per server, no minute-long retry loop
    hiding a typo); after that the client reconnects as configured. The connection
    carries a `PermissionGuard`.
    """
    opts = connect_options(settings)
    policy = TransportPolicy.of(settings, opts)
    seams = USE_SEAMS and seams_available()
    if not seams:
        for url in opts["servers"]:
            await _probe(url, policy, opts["connect_timeout"])
    user_error_cb: Callable[[Exception], Awaitable[None]] | None = extra.pop("error_cb", None)
    opts.update(extra)
    errors: deque[BaseException] = deque(maxlen=20)
    guard_box: list[PermissionGuard] = []

    fatal = asyncio.Event()

    async def on_error(e: Exception) -> None:
        if not (guard_box and guard_box[0].on_error(e)):
            errors.append(e)
            if not guard_box and _is_fatal(e):
                fatal.set()
            log.debug("nats error: %s", type(e).__name__)
        if user_error_cb is not None:
            await user_error_cb(e)

    opts["error_cb"] = on_error
    where = describe_servers(opts["servers"])
    # nats-py retries the *first* connect max_reconnect_attempts times (nats.py#352): a typo
    # or a down server would hang for a minute. Try each server twice, quickly, then
    # restore the configured reconnect behaviour for the life of the connection.
    reconnect = {k: opts[k] for k in ("max_reconnect_attempts", "reconnect_time_wait")}
    opts["max_reconnect_attempts"] = 1
    opts["reconnect_time_wait"] = min(0.1, reconnect["reconnect_time_wait"])
    if seams:
        guarded = _GuardedClient()
        guarded._aether_policy = policy
        nc: NATS = guarded
    else:
        nc = NATS()
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
        raise _classify([*errors, failure], where) from None
    nc.options.update(reconnect)
    guard = PermissionGuard(nc, opts["inbox_prefix"])
    guard_box.append(guard)
    nc._aether_permission_guard = guard  # type: ignore[attr-defined]
    errors.clear()
    return nc


def _is_fatal(e: BaseException) -> bool:
    text = str(e).lower()
    return (
        isinstance(e, ssl.SSLError | NatsAuthorizationError | _TransportRefused)
        or "authorization violation" in text
        or "authentication" in text
    )
