"""The one mapping of nats-py and JetStream API errors into `aether.errors`.

JetStream answers API requests and publishes with an error object (``code``: an HTTP-like
status, ``err_code``: JetStream's own code, ``description``). Inside the layer such an
answer is a `JsApiError` so that callers can branch on its code (a conflict, "last
sequence not ready", a missing stream...); what must leave aether goes through
`public_error`, which turns it into the `aether.errors` class a user catches. nats-py's
own exceptions are mapped by `map_nats_error` (requests, publishes, subscribes) and
`classify_connect_failure` (the first connect); no nats-py exception type leaves aether.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from aether._nats.info import where
from aether._nats.permissions import denied
from aether.errors import (
    AetherError,
    AuthError,
    ClusterError,
    ConfigError,
    EventTooLargeError,
    NatsUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    TlsRequiredError,
    UnsupportedServerError,
)

# JetStream API error codes (nats-server's errors.json); each defined once, here.
ERR_NO_MESSAGE_FOUND = 10037
ERR_JETSTREAM_NOT_ENABLED = 10039
ERR_STREAM_NAME_IN_USE = 10058
ERR_STREAM_NOT_FOUND = 10059
ERR_SUBJECTS_OVERLAP = 10065
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_JETSTREAM_NOT_ENABLED_ACCOUNT = 10076
ERR_CONSUMER_NOT_FOUND = 10014
ERR_DUPLICATE_IN_PROCESS = 10158
ERR_LAST_SEQ_NOT_READY = 10163
ERR_WRONG_LAST_SEQUENCE_CLUSTERED = 10164
ERR_ATOMIC_DISABLED = 10174
ERR_BATCH_MISSING_SEQ = 10175
ERR_BATCH_INCOMPLETE = 10176

CONFLICT_CODES = frozenset({ERR_WRONG_LAST_SEQUENCE, ERR_WRONG_LAST_SEQUENCE_CLUSTERED})
"""The server refused a write whose expected last sequence did not match."""
NOT_ENABLED_CODES = frozenset({ERR_JETSTREAM_NOT_ENABLED, ERR_JETSTREAM_NOT_ENABLED_ACCOUNT})
NOT_FOUND_CODES = frozenset({ERR_STREAM_NOT_FOUND, ERR_NO_MESSAGE_FOUND, ERR_CONSUMER_NOT_FOUND})


class JsApiError(AetherError):
    """JetStream answered with an error (``code``, ``err_code``, ``description``).

    Internal to aether: code inside the layer branches on it; `public_error` maps it
    before it leaves.
    """

    def __init__(self, code: int, err_code: int, description: str) -> None:
        self.code = code
        self.err_code = err_code
        self.description = description
        super().__init__(f"JetStream error {err_code}: {description}")

    @classmethod
    def from_response(cls, err: dict[str, Any]) -> JsApiError:
        """Build from the ``error`` object of an API response."""
        return cls(
            int(err.get("code", 0)), int(err.get("err_code", 0)), str(err.get("description", ""))
        )

    @property
    def conflict(self) -> bool:
        """A wrong expected last (subject) sequence: somebody else wrote first."""
        return self.err_code in CONFLICT_CODES

    @property
    def busy(self) -> bool:
        """JetStream is busy (503, "duplicate message id is in process"): send again."""
        return self.err_code == ERR_DUPLICATE_IN_PROCESS or (
            self.code == 503 and self.err_code not in NOT_ENABLED_CODES
        )


class CasConflictError(ClusterError):
    """A compare-and-set write of the cluster bucket found another revision.

    Internal: election and membership catch it; it is a `ClusterError` should it ever
    escape.
    """


def public_error(e: JsApiError, what: str, nc: NATS | None = None) -> AetherError:
    """The `aether.errors` error for a JetStream error answer to `what`."""
    at = f" at {where(nc)}" if nc is not None else ""
    if e.err_code in NOT_ENABLED_CODES:
        return UnsupportedServerError(f"JetStream is not enabled for this account{at}")
    if e.busy:
        return NatsUnavailableError(f"JetStream{at} is busy ({e.description}); try again")
    if e.code == 403 or "permission" in e.description.lower():
        return PermissionDeniedError(f"{what}: permission denied ({e.description})")
    if e.err_code in NOT_FOUND_CODES or e.code == 404:
        return NotFoundError(f"{what}: {e.description}")
    return AetherError(f"{what} failed: JetStream error {e.err_code}: {e.description}")


def map_nats_error(nc: NATS, e: BaseException, subject: str, what: str) -> AetherError:
    """An aether error for a nats-py failure of a request or publish to `subject`."""
    refused = denied(nc, subject)
    if refused is not None:
        return refused
    if isinstance(e, JsApiError):
        return public_error(e, what, nc)
    if isinstance(e, AetherError):
        return e
    if isinstance(e, nats.errors.NoRespondersError):
        return NatsUnavailableError(
            f"JetStream at {where(nc)} did not answer {what} (no responders: a stream "
            "leader election or a server restart in progress)"
        )
    if isinstance(
        e,
        nats.errors.ConnectionClosedError
        | nats.errors.ConnectionDrainingError
        | nats.errors.NoServersError,
    ):
        return NatsUnavailableError(f"the connection to NATS at {where(nc)} is closed")
    if isinstance(e, nats.errors.TimeoutError | TimeoutError | asyncio.TimeoutError):
        return NatsUnavailableError(f"NATS at {where(nc)} did not answer {what} in time")
    if isinstance(e, nats.errors.OutboundBufferLimitError):
        return NatsUnavailableError(
            f"NATS at {where(nc)} is unreachable (reconnecting, buffer full); {what} not sent"
        )
    if isinstance(e, nats.errors.MaxPayloadError):
        return EventTooLargeError("event", 0, nc.max_payload)
    if isinstance(e, nats.errors.BadSubjectError):
        return AetherError(f"{what}: {subject!r} is not a valid NATS subject")
    return NatsUnavailableError(
        f"NATS request for {what} at {where(nc)} failed: {type(e).__name__}"
    )


def cluster_failure(e: BaseException, doing: str) -> AetherError:
    """An aether error for a nats-py failure while `doing` a cluster bucket operation."""
    if isinstance(e, JsApiError):
        out = public_error(e, doing)
        if type(out) is AetherError:
            return ClusterError(f"{doing}: JetStream error {e.err_code}: {e.description}")
        return out
    if isinstance(e, AetherError):
        return e
    if isinstance(e, nats.errors.NoRespondersError | nats.errors.TimeoutError | TimeoutError):
        return NatsUnavailableError(
            f"{doing}: JetStream did not answer (is it enabled on the server?)"
        )
    if isinstance(e, nats.errors.ConnectionClosedError | nats.errors.NoServersError):
        return NatsUnavailableError(f"{doing}: {type(e).__name__}")
    return ClusterError(f"{doing}: {type(e).__name__}: {e}")


def is_nats_error(e: BaseException) -> bool:
    """Whether `e` is one of nats-py's exceptions (to be mapped, never passed on)."""
    return isinstance(e, NatsError | nats.errors.Error)


# --- the first connect ------------------------------------------------------------------


class TransportRefused(NatsError):
    """Raised inside nats-py's connect sequence (before CONNECT) so that nats-py treats it
    as a failed attempt at that server; `classify_connect_failure` makes it a
    `TlsRequiredError`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


CONNECTION_REFUSED = "connection refused"
"""The reason in a `NatsUnavailableError` when nothing listens (front ends add hints)."""


def is_fatal_connect_error(e: BaseException) -> bool:
    """Whether a connect attempt failed for a reason retrying will not fix."""
    text = str(e).lower()
    return (
        isinstance(e, ssl.SSLError | nats.errors.AuthorizationError | TransportRefused)
        or "authorization violation" in text
        or "authentication" in text
    )


def classify_connect_failure(errors: list[BaseException], where: str) -> AetherError:
    """One safe error for a failed first connect (no secret, no raw server text)."""
    for e in errors:
        if isinstance(e, TransportRefused):
            return TlsRequiredError(e.message)
    for e in errors:
        text = str(e).lower()
        if isinstance(e, nats.errors.AuthorizationError) or "authorization violation" in text:
            return AuthError(
                f"cannot connect to NATS at {where}: authorization failed "
                "(check the user and password, token, NKey or credentials)"
            )
        if "user authentication expired" in text or "authentication revoked" in text:
            return AuthError(f"cannot connect to NATS at {where}: the credentials have expired")
    for e in errors:
        if isinstance(e, ssl.SSLCertVerificationError):
            why = getattr(e, "verify_message", None) or "certificate verify failed"
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
        if isinstance(e, asyncio.TimeoutError | nats.errors.TimeoutError):
            return NatsUnavailableError(f"cannot reach NATS at {where}: connection timed out")
    last = type(errors[-1]).__name__ if errors else "no server answered"
    return NatsUnavailableError(f"cannot reach NATS at {where}: {last}")
