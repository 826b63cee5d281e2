"""Plain JetStream API requests: streams, consumers, direct get; errors mapped to aether's.

nats-py's `JetStreamManager` lags the server (atomic batches, some config fields), so
the store speaks the JSON API itself. Every request has a timeout; a server that does
not answer gives `NatsUnavailableError`, a refused subject `PermissionDeniedError`.

"No responders" (503) means that nothing answers the API subject *now*: during a stream
leader election or a server restart that is normal, so it is a retriable
`NatsUnavailableError`. Whether the server has JetStream at all is checked once, at setup
(`JsApi.check_jetstream`): only that raises `UnsupportedServerError`.

`msg_get` (``$JS.API.STREAM.MSG.GET``) is answered by the stream leader only, so it sees
every acknowledged append; `direct_get` may be answered by any replica.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client as NATS

from aether.connect import denied
from aether.errors import AetherError, NatsUnavailableError, UnsupportedServerError
from aether.store._js_raw import RawHandler, RawSubscription, header_value, subscribe_raw

API = "$JS.API"

ERR_STREAM_NOT_FOUND = 10059
ERR_STREAM_NAME_IN_USE = 10058
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_WRONG_LAST_SEQUENCE_CLUSTERED = 10164
ERR_LAST_SEQ_NOT_READY = 10163
ERR_ATOMIC_DISABLED = 10174
ERR_NO_MESSAGE_FOUND = 10037
ERR_JETSTREAM_NOT_ENABLED = 10039
ERR_JETSTREAM_NOT_ENABLED_ACCOUNT = 10076
ERR_DUPLICATE_IN_PROCESS = 10158
CONFLICT_CODES = frozenset({ERR_WRONG_LAST_SEQUENCE, ERR_WRONG_LAST_SEQUENCE_CLUSTERED})


class JsApiError(AetherError):
    """The JetStream API answered with an error (``code``, ``err_code``, ``description``)."""

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


def where(nc: NATS) -> str:
    """The server the connection is (or was last) connected to, for messages."""
    url = getattr(nc, "connected_url", None) or getattr(nc, "_current_server", None)
    parsed = getattr(url, "uri", url)
    host = getattr(parsed, "hostname", None)
    port = getattr(parsed, "port", None)
    scheme = getattr(parsed, "scheme", None) or "nats"
    if host:
        return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"
    return "the configured NATS server"


def map_nats_error(nc: NATS, e: BaseException, subject: str, what: str) -> AetherError:
    """An aether error for a nats-py failure of a request to `subject`."""
    refused = denied(nc, subject)
    if refused is not None:
        return refused
    if isinstance(e, AetherError):
        return e
    if isinstance(e, nats.errors.NoRespondersError):
        return NatsUnavailableError(
            f"JetStream at {where(nc)} did not answer {what} (no responders: a stream "
            "leader election or a server restart in progress)"
        )
    if isinstance(e, nats.errors.ConnectionClosedError | nats.errors.ConnectionDrainingError):
        return NatsUnavailableError(f"the connection to NATS at {where(nc)} is closed")
    if isinstance(e, nats.errors.TimeoutError | TimeoutError):
        return NatsUnavailableError(f"NATS at {where(nc)} did not answer {what} in time")
    if isinstance(e, nats.errors.OutboundBufferLimitError):
        return NatsUnavailableError(
            f"NATS at {where(nc)} is unreachable (reconnecting, buffer full)"
        )
    return NatsUnavailableError(
        f"NATS request for {what} at {where(nc)} failed: {type(e).__name__}"
    )


async def subscribe(nc: NATS, subject: str, handler: RawHandler) -> RawSubscription:
    """`subscribe_raw` with nats-py's failures (closed connection...) mapped to aether's."""
    try:
        return await subscribe_raw(nc, subject, handler)
    except Exception as e:
        raise map_nats_error(nc, e, subject, "subscribe") from None


@dataclass(slots=True)
class RawMsg:
    """A stored message as direct get returns it."""

    subject: str
    seq: int
    data: bytes


class JsApi:
    """JSON requests to ``$JS.API`` on one connection."""

    def __init__(self, nc: NATS, timeout: float) -> None:
        self.nc = nc
        self.timeout = timeout

    async def request(self, subject: str, body: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """Send `body` to `subject`; return the decoded answer or raise `JsApiError`."""
        payload = orjson.dumps(body) if body is not None else b""
        try:
            msg = await self.nc.request(subject, payload, timeout=self.timeout)
        except Exception as e:
            raise map_nats_error(self.nc, e, subject, what) from None
        try:
            resp = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            raise AetherError(
                f"JetStream answered {what} with something that is not JSON"
            ) from None
        if "error" in resp:
            err = JsApiError.from_response(resp["error"])
            if err.code == 503 and err.err_code not in (
                ERR_JETSTREAM_NOT_ENABLED,
                ERR_JETSTREAM_NOT_ENABLED_ACCOUNT,
            ):
                raise NatsUnavailableError(
                    f"JetStream at {where(self.nc)} is busy ({err.description}); try again"
                )
            raise err
        return resp  # type: ignore[no-any-return]

    async def check_jetstream(self) -> None:
        """Raise `UnsupportedServerError` if the server has no JetStream for this account.

        No responders is retried for a while (a cluster may still elect its meta leader):
        only a server that keeps not answering, or says JetStream is disabled, lacks it.
        """
        deadline = time.monotonic() + max(self.timeout, 2.0)
        subject = f"{API}.INFO"
        while True:
            try:
                msg = await self.nc.request(subject, b"", timeout=self.timeout)
            except nats.errors.NoRespondersError:
                if time.monotonic() > deadline:
                    raise UnsupportedServerError(
                        f"NATS at {where(self.nc)} has no JetStream (nothing answers {subject}); "
                        "enable JetStream on the server"
                    ) from None
                await asyncio.sleep(0.2)
                continue
            except Exception as e:
                raise map_nats_error(self.nc, e, subject, "account info") from None
            try:
                resp = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                return
            err = resp.get("error") if isinstance(resp, dict) else None
            if err and int(err.get("err_code", 0)) in (
                ERR_JETSTREAM_NOT_ENABLED,
                ERR_JETSTREAM_NOT_ENABLED_ACCOUNT,
            ):
                raise UnsupportedServerError(
                    f"JetStream is not enabled for this account at {where(self.nc)}"
                )
            if err and int(err.get("code", 0)) == 503 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                continue
            return

    async def msg_get(self, stream: str, body: dict[str, Any]) -> RawMsg | None:
        """One message read by the stream leader (``STREAM.MSG.GET``), or None if none."""
        try:
            resp = await self.request(f"{API}.STREAM.MSG.GET.{stream}", body, f"get on {stream}")
        except JsApiError as e:
            if e.err_code == ERR_NO_MESSAGE_FOUND or e.code == 404:
                return None
            raise
        m = resp.get("message") or {}
        data = m.get("data")
        return RawMsg(
            str(m.get("subject", "")),
            int(m.get("seq", 0)),
            base64.b64decode(data) if data else b"",
        )

    async def stream_info(self, name: str, **body: Any) -> dict[str, Any] | None:
        """STREAM.INFO, or None when the stream does not exist."""
        try:
            return await self.request(
                f"{API}.STREAM.INFO.{name}", body or None, f"stream info {name}"
            )
        except JsApiError as e:
            if e.err_code == ERR_STREAM_NOT_FOUND:
                return None
            raise

    async def stream_create(self, config: dict[str, Any]) -> dict[str, Any]:
        """STREAM.CREATE with `config`."""
        name = config["name"]
        return await self.request(f"{API}.STREAM.CREATE.{name}", config, f"stream create {name}")

    async def consumer_create(self, stream: str, config: dict[str, Any]) -> dict[str, Any]:
        """Create an ephemeral consumer; the answer holds ``name`` and ``num_pending``."""
        return await self.request(
            f"{API}.CONSUMER.CREATE.{stream}",
            {"stream_name": stream, "config": config},
            f"consumer create on {stream}",
        )

    async def consumer_delete(self, stream: str, name: str) -> None:
        """Delete a consumer; quiet if it is already gone or the server is away."""
        with contextlib.suppress(AetherError):
            await self.request(f"{API}.CONSUMER.DELETE.{stream}.{name}", None, "consumer delete")

    async def direct_get(self, stream: str, body: dict[str, Any]) -> RawMsg | None:
        """One message by direct get (``last_by_subj``, ``seq``+``next_by_subj``...), or None."""
        subject = f"{API}.DIRECT.GET.{stream}"
        try:
            msg = await self.nc.request(subject, orjson.dumps(body), timeout=self.timeout)
        except Exception as e:
            raise map_nats_error(self.nc, e, subject, "direct get") from None
        headers = msg.headers or {}
        status = headers.get("Status")
        if status == "404":
            return None
        if status:
            desc = headers.get("Description", "")
            if status in ("408", "503"):
                raise NatsUnavailableError(f"direct get on {stream} at {where(self.nc)}: {desc}")
            raise AetherError(f"direct get on {stream} failed: {status} {desc}")
        seq = headers.get("Nats-Sequence")
        subj = headers.get("Nats-Subject")
        if seq is None or subj is None:
            raise UnsupportedServerError(
                f"stream {stream} does not answer direct get (allow_direct) at {where(self.nc)}"
            )
        return RawMsg(subj, int(seq), msg.data)


def raw_sequence(headers: bytes | None) -> int:
    """``Nats-Sequence`` of a raw direct-get answer (0 when missing)."""
    v = header_value(headers, b"Nats-Sequence")
    return int(v) if v else 0


def server_version(nc: NATS) -> tuple[int, int, int]:
    """The connected server's version, (0, 0, 0) when unknown."""
    info = getattr(nc, "_server_info", None) or {}
    text = str(info.get("version", "0.0.0")).split("-")[0]
    parts = ([*text.split("."), "0", "0", "0"])[:3]
    try:
        return (int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return (0, 0, 0)
