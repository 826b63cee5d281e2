"""The one typed JetStream API: streams, consumers, message gets, publishes and KV buckets.

nats-py's `JetStreamManager` lags the server (atomic batches, per-message TTLs, some
config fields), so aether speaks the JSON API (``$JS.API.>``) itself, for the store, the
cluster bucket, ``aether config check`` and the benchmarks alike. Every request has a
timeout; a server that does not answer gives `NatsUnavailableError`, a refused subject
`PermissionDeniedError`; an error answer is a `JsApiError` (see `aether._nats.errors`).

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
from datetime import UTC, datetime
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client as NATS

from aether._nats.errors import (
    ERR_NO_MESSAGE_FOUND,
    ERR_STREAM_NOT_FOUND,
    NOT_ENABLED_CODES,
    JsApiError,
    map_nats_error,
)
from aether._nats.info import where
from aether._nats.raw import RawHandler, RawSubscription, header_value, subscribe_raw
from aether.errors import AetherError, NatsUnavailableError, UnsupportedServerError

API = "$JS.API"

NS = 1_000_000_000
"""Nanoseconds a second (JetStream durations)."""


async def subscribe(nc: NATS, subject: str, handler: RawHandler) -> RawSubscription:
    """`subscribe_raw` with nats-py's failures (closed connection...) mapped to aether's."""
    try:
        return await subscribe_raw(nc, subject, handler)
    except Exception as e:
        raise map_nats_error(nc, e, subject, "subscribe") from None


@dataclass(slots=True)
class RawMsg:
    """A stored message as a get returns it (`headers`: the raw header block, if any)."""

    subject: str
    seq: int
    data: bytes
    headers: bytes | None = None
    time: str = ""

    def header(self, name: str) -> str | None:
        """The value of header `name` (exact case), or None."""
        v = header_value(self.headers, name.encode())
        return v.decode() if v is not None else None

    def stored_at(self) -> datetime:
        """When the server stored the message (now, if it did not say)."""
        return parse_time(self.time) or datetime.now(UTC)


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time with nanoseconds, as JetStream writes it, or None."""
    if not text:
        return None
    t = text.rstrip("Z")
    if "." in t:
        head, frac = t.split(".", 1)
        t = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(t).replace(tzinfo=UTC)
    except ValueError:
        return None


def raw_sequence(headers: bytes | None) -> int:
    """``Nats-Sequence`` of a raw direct-get answer (0 when missing)."""
    v = header_value(headers, b"Nats-Sequence")
    return int(v) if v else 0


def parse_ack(data: bytes) -> dict[str, Any]:
    """Decode a pub ack; raise `JsApiError` for an error answer."""
    try:
        resp = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise AetherError(f"JetStream answered a publish with {data[:80]!r}") from None
    if not isinstance(resp, dict):
        raise AetherError(f"JetStream answered a publish with {data[:80]!r}")
    err = resp.get("error")
    if err is not None:
        raise JsApiError.from_response(err)
    return resp


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
            if err.code == 503 and err.err_code not in NOT_ENABLED_CODES:
                raise NatsUnavailableError(
                    f"JetStream at {where(self.nc)} is busy ({err.description}); try again"
                )
            raise err
        return resp  # type: ignore[no-any-return]

    async def account_info(self) -> dict[str, Any]:
        """``$JS.API.INFO``: the account's JetStream limits and usage."""
        return await self.request(f"{API}.INFO", None, "account info")

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
            if err and int(err.get("err_code", 0)) in NOT_ENABLED_CODES:
                raise UnsupportedServerError(
                    f"JetStream is not enabled for this account at {where(self.nc)}"
                )
            if err and int(err.get("code", 0)) == 503 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                continue
            return

    # -- streams -------------------------------------------------------------------------

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

    async def stream_delete(self, name: str) -> bool:
        """STREAM.DELETE; False when there was no such stream."""
        try:
            await self.request(f"{API}.STREAM.DELETE.{name}", None, f"stream delete {name}")
        except JsApiError as e:
            if e.err_code == ERR_STREAM_NOT_FOUND:
                return False
            raise
        return True

    async def stream_names(self, subject: str | None = None) -> list[str]:
        """Every stream's name (of those listening on `subject`, if given)."""
        names: list[str] = []
        while True:
            body: dict[str, Any] = {"offset": len(names)}
            if subject is not None:
                body["subject"] = subject
            resp = await self.request(f"{API}.STREAM.NAMES", body, "stream names")
            page = resp.get("streams") or []
            names.extend(page)
            if not page or len(names) >= int(resp.get("total", 0)):
                return names

    # -- consumers -----------------------------------------------------------------------

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

    # -- single messages -----------------------------------------------------------------

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
        hdrs = m.get("hdrs")
        return RawMsg(
            str(m.get("subject", "")),
            int(m.get("seq", 0)),
            base64.b64decode(data) if data else b"",
            base64.b64decode(hdrs) if hdrs else None,
            str(m.get("time", "")),
        )

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
        return RawMsg(subj, int(seq), msg.data, None, headers.get("Nats-Time-Stamp", ""))

    # -- publishing (one at a time; the store's hot path pipelines its own) ---------------

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Publish to a stream and return its ack; `JsApiError` if the stream refused it."""
        try:
            msg = await self.nc.request(subject, payload, timeout=self.timeout, headers=headers)
        except Exception as e:
            raise map_nats_error(self.nc, e, subject, f"publish to {subject}") from None
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            raise NatsUnavailableError(
                f"JetStream at {where(self.nc)} did not answer the publish to {subject} "
                "(no responders)"
            )
        return parse_ack(msg.data)

    # -- KV buckets ----------------------------------------------------------------------

    async def kv_create(
        self,
        bucket: str,
        *,
        description: str = "",
        history: int = 1,
        replicas: int = 1,
        marker_ttl: float | None = None,
    ) -> dict[str, Any]:
        """Create KV bucket `bucket` (stream ``KV_<bucket>``) as nats-py's
        ``create_key_value`` does, with per-message TTLs and, given `marker_ttl`, the
        markers the server places when a key's TTL expires (nats-server 2.11+)."""
        config: dict[str, Any] = {
            "name": f"KV_{bucket}",
            "description": description,
            "subjects": [f"$KV.{bucket}.>"],
            "retention": "limits",
            "max_msgs_per_subject": history,
            "max_bytes": -1,
            "max_age": 0,
            "max_msg_size": -1,
            "storage": "file",
            "num_replicas": replicas,
            "discard": "new",
            "duplicate_window": 120 * NS,
            "allow_rollup_hdrs": True,
            "deny_delete": True,
            "deny_purge": False,
            "allow_direct": True,
            "mirror_direct": False,
        }
        if marker_ttl is not None:
            config["allow_msg_ttl"] = True
            config["subject_delete_marker_ttl"] = int(marker_ttl * NS)
        return await self.stream_create(config)

    async def kv_last(self, bucket: str, key: str) -> RawMsg | None:
        """The last message of `key` in `bucket` (maybe a delete marker), from the leader."""
        return await self.msg_get(f"KV_{bucket}", {"last_by_subj": f"$KV.{bucket}.{key}"})
