"""Permission violations reported by NATS, turned into prompt `PermissionDeniedError`s.

NATS reports them asynchronously (``-ERR 'Permissions Violation for Publish to "..."'``);
a request to a denied subject would otherwise wait for its timeout. The connection's
`PermissionGuard` (installed by `aether.connect`) records each violation, fails the
requests waiting on that subject at once, and tells listeners.

Seam: ``Client._request_new_style`` (and the reply-inbox state it uses). The guard
replaces it with the same request plus a record of which subject each request waits on.
Without the seam (or with ``AETHER_NATS_SEAMS=off``) requests keep nats-py's own
implementation: a denied request then fails at its timeout, and `denied` still names
the refused subject so the error is the same `PermissionDeniedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from secrets import token_hex
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import ConnectionDrainingError
from nats.errors import TimeoutError as NatsTimeoutError

from aether._nats.seams import seams_enabled
from aether.errors import PermissionDeniedError

log = logging.getLogger("aether.connect")

_VIOLATION_RE = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.I)
_ATTR = "_aether_permission_guard"
_REQUEST_SEAMS = (
    "_request_new_style",
    "_resp_sub_prefix",
    "_init_request_sub",
    "_nuid",
    "_resp_map",
)


def _permission_error(op: str, subject: str) -> PermissionDeniedError:
    verb = "publish to" if op == "publish" else "subscribe to"
    return PermissionDeniedError(f"permission denied: this NATS user may not {verb} {subject!r}")


class PermissionGuard:
    """The permission violations of one connection (see the module doc)."""

    def __init__(self, nc: NATS, inbox_prefix: str = "_INBOX") -> None:
        self._nc = nc
        self.inbox_prefix = inbox_prefix
        self.inbox_denied: PermissionDeniedError | None = None
        """Set when the server refused the subscription to the reply inbox: no request
        on this connection can get an answer then."""
        self._pending: dict[str, tuple[str, asyncio.Future[Msg]]] = {}
        self.violations: deque[tuple[str, str]] = deque(maxlen=100)
        self.listeners: list[Callable[[str, str], None]] = []
        self.fast_requests = seams_enabled() and all(hasattr(nc, a) for a in _REQUEST_SEAMS)
        if self.fast_requests:
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


def install_guard(nc: NATS, inbox_prefix: str) -> PermissionGuard:
    """Give `nc` its `PermissionGuard` (done once, by `aether.connect`)."""
    guard = PermissionGuard(nc, inbox_prefix)
    setattr(nc, _ATTR, guard)
    return guard


def permission_guard(nc: NATS) -> PermissionGuard | None:
    """The `PermissionGuard` `aether.connect` installed on `nc`, if any."""
    guard = getattr(nc, _ATTR, None)
    return guard if isinstance(guard, PermissionGuard) else None


def denied(nc: NATS, subject: str) -> PermissionDeniedError | None:
    """`PermissionDeniedError` for `subject` if the server refused it on `nc`, else None.

    For code that waits on something other than a request (e.g. pub acks) and wants to
    explain a timeout.
    """
    guard = permission_guard(nc)
    return guard.denied(subject) if guard is not None else None


def on_permission_denied(nc: NATS, listener: Callable[[str, str], None]) -> Callable[[], None]:
    """Call ``listener(op, subject)`` (op ``publish`` or ``subscription``) on each
    permission violation NATS reports on `nc`; returns a function that removes it."""
    guard = permission_guard(nc)
    if guard is None:
        return lambda: None
    guard.listeners.append(listener)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            guard.listeners.remove(listener)

    return remove
