"""A nats-py connection built from `Settings` (servers, auth, TLS, reconnect).

Secrets (password, token, NKey seed, credentials) are handed to nats-py and never appear
in an error message or a log line: errors name the setting and the server, not the value.

NATS reports permission violations asynchronously (``-ERR 'Permissions Violation for
Publish to "..."'``); a request to a denied subject would otherwise wait for its timeout.
`connect` installs a `PermissionGuard` that fails such a request at once with
`PermissionDeniedError` naming the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from secrets import token_hex
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import AuthorizationError as NatsAuthorizationError
from nats.errors import TimeoutError as NatsTimeoutError

from aether.config import NatsSettings, Settings, mask_url
from aether.errors import AuthError, ConfigError, NatsUnavailableError, PermissionDeniedError

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


def _read_secret(path: str, key: str) -> str:
    """The secret in file `path` (first line, surrounding whitespace stripped)."""
    p = _check_file(path, key)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{key}: {p} cannot be read as UTF-8 text") from None
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError(f"{key}: {p} is empty")
    return lines[0].strip()


def _tls_context(ns: NatsSettings) -> ssl.SSLContext | None:
    wants_tls = (
        ns.tls_ca_file
        or ns.tls_cert_file
        or ns.tls_key_file
        or ns.tls_server_name
        or any(s.startswith(("tls://", "wss://")) for s in ns.servers)
    )
    if not wants_tls:
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
    if ns.inbox_prefix != "_INBOX":
        opts["inbox_prefix"] = ns.inbox_prefix
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
        opts["nkeys_seed"] = _check_file(ns.nkey_seed_file, "nats.nkey_seed_file")
    if ns.creds_file is not None:
        opts["user_credentials"] = _check_file(ns.creds_file, "nats.creds_file")
    tls = _tls_context(ns)
    if tls is not None:
        opts["tls"] = tls
        if ns.tls_server_name:
            opts["tls_hostname"] = ns.tls_server_name
    return opts


def describe_servers(servers: list[str]) -> str:
    """The server URLs for messages, without any credentials in them."""
    return ", ".join(mask_url(s) for s in servers)


def _classify(errors: list[BaseException], where: str) -> NatsUnavailableError | ConfigError:
    """One safe error for a failed first connect (no secret, no raw server text)."""
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
            return NatsUnavailableError(
                f"cannot reach NATS at {where}: connection refused "
                "(is nats-server running? `aether server` starts one)"
            )
        if isinstance(e, OSError) and e.strerror:
            return NatsUnavailableError(f"cannot reach NATS at {where}: {e.strerror}")
    for e in reversed(errors):
        if isinstance(e, asyncio.TimeoutError | NatsTimeoutError):
            return NatsUnavailableError(f"cannot reach NATS at {where}: connection timed out")
    last = type(errors[-1]).__name__ if errors else "no server answered"
    return NatsUnavailableError(f"cannot reach NATS at {where}: {last}")


class PermissionGuard:
    """Turns NATS permission violations into prompt `PermissionDeniedError`s.

    Installed on a connection by `connect`. Requests (`nc.request`, hence every JetStream
    API call and `js.publish`) to a subject the server then refuses fail at once instead
    of waiting for their timeout. Denied subjects are remembered (the last 100) so other
    code can ask `denied(subject)` when something times out.
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
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
        return None

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
    return PermissionDeniedError(
        f"permission denied: this NATS user may not {verb} {subject!r} "
        "(see `aether config permissions NAMESPACE`)"
    )


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
    guard = PermissionGuard(nc)
    guard_box.append(guard)
    nc._aether_permission_guard = guard  # type: ignore[attr-defined]
    errors.clear()
    return nc


def _is_fatal(e: BaseException) -> bool:
    text = str(e).lower()
    return (
        isinstance(e, ssl.SSLError | NatsAuthorizationError)
        or "authorization violation" in text
        or "authentication" in text
    )
