"""Pipelined JetStream publishing: many publishes in flight, each awaited on its own.

Like nats-py's ``publish_async`` (one reply subscription, a future per message), but an
ack is handled synchronously by a raw handler (no queue, no callback task), every
publish has its own deadline (`PublishTimeoutError`, never a hang) and at most
``max_in_flight`` publishes wait for acks at once (the rest wait for a slot).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from aether.connect import denied
from aether.errors import (
    AetherError,
    EventTooLargeError,
    PublishTimeoutError,
    UnsupportedServerError,
)
from aether.store._js_api import JsApiError, map_nats_error, subscribe, where
from aether.store._js_raw import RawSubscription, status_of

Pending = tuple[bytes, "asyncio.Future[bytes]"]
"""A publish waiting for its reply: (reply token, future)."""


class PubAck(dict[str, Any]):
    """A decoded pub ack (``stream``, ``seq``, maybe ``duplicate``, ``batch``, ``count``)."""


class Publisher:
    """Publishes to JetStream with a reply and resolves each ack as it arrives."""

    def __init__(self, nc: NATS, *, timeout: float, max_in_flight: int) -> None:
        self._nc = nc
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: dict[bytes, asyncio.Future[bytes]] = {}
        self._deadlines: dict[bytes, float] = {}  # insertion order is deadline order
        self._sweeper: asyncio.TimerHandle | None = None
        self._ids = itertools.count(1)
        self._prefix = ""
        self._prefix_len = 0
        self._sub: RawSubscription | None = None
        self._starting = asyncio.Lock()

    async def _start(self) -> None:
        async with self._starting:
            if self._sub is not None:
                return
            prefix = self._nc.new_inbox() + "."
            self._prefix_len = len(prefix)
            self._sub = await subscribe(self._nc, prefix + "*", self._on_reply)
            self._prefix = prefix

    def _on_reply(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        fut = self._pending.pop(subject[self._prefix_len :], None)
        if fut is None or fut.done():
            return
        if headers is not None and not data:
            status = status_of(headers)
            if status == 503:
                fut.set_exception(
                    UnsupportedServerError(
                        f"no stream answered at {where(self._nc)} (no responders): "
                        "is JetStream enabled and the stream there?"
                    )
                )
                return
            if status:
                fut.set_exception(AetherError(f"JetStream publish answered status {status}"))
                return
        fut.set_result(data)

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str], *, want_reply: bool = True
    ) -> Pending | None:
        """Publish; return the pending reply (None when `want_reply` is false)."""
        if not self._prefix:
            await self._start()
        if not want_reply:
            try:
                await self._nc.publish(subject, payload, headers=headers)
            except Exception as e:
                raise map_nats_error(self._nc, e, subject, "publish") from None
            return None
        if len(payload) + 512 > self._nc.max_payload:
            # nats-py refuses it anyway; say why in aether's terms (headers take ~200 bytes)
            raise EventTooLargeError("event", len(payload), self._nc.max_payload - 512)
        token = str(next(self._ids)).encode()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        try:
            await self._nc.publish(
                subject, payload, reply=self._prefix + token.decode(), headers=headers
            )
        except Exception as e:
            self._pending.pop(token, None)
            raise map_nats_error(self._nc, e, subject, "publish") from None
        return token, fut

    def _sweep(self) -> None:
        # One timer for all publishes (a timer each costs more than the publish): every
        # publish has the same timeout, so the oldest deadlines come first in the dict.
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        while deadlines:
            token, deadline = next(iter(deadlines.items()))
            if deadline > now:
                break
            del deadlines[token]
            fut = self._pending.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_exception(TimeoutError())
        if deadlines:
            self._sweeper = loop.call_later(min(self.timeout / 4, 0.25), self._sweep)

    async def wait(self, pending: Pending, subject: str) -> bytes:
        """Await a reply within the publish deadline; raise `PublishTimeoutError` if none."""
        token, fut = pending
        loop = asyncio.get_running_loop()
        self._deadlines[token] = loop.time() + self.timeout
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(self.timeout / 4, 0.25), self._sweep)
        try:
            return await fut
        except TimeoutError:
            refused = denied(self._nc, subject)
            if refused is not None:
                raise refused from None
            raise PublishTimeoutError(
                f"publish to {subject} was not acknowledged within {self.timeout:g}s by NATS "
                f"at {where(self._nc)}; its outcome is unknown (save the same event again "
                "to settle it)"
            ) from None
        finally:
            self._deadlines.pop(token, None)
            if not fut.done():  # cancelled by the caller
                self._pending.pop(token, None)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> PubAck:
        """Publish one message and return its ack; `JsApiError` if the stream refused it."""
        async with self._slots:
            pending = await self.send(subject, payload, headers)
            assert pending is not None
            data = await self.wait(pending, subject)
        return parse_ack(data)

    async def close(self) -> None:
        """Fail every waiting publish and drop the reply subscription."""
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(PublishTimeoutError("the store was closed before the ack came"))
        self._pending.clear()
        self._deadlines.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
            self._prefix = ""


def parse_ack(data: bytes) -> PubAck:
    """Decode a pub ack; raise `JsApiError` for an error answer."""
    try:
        resp = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise AetherError(f"JetStream answered a publish with {data[:80]!r}") from None
    err = resp.get("error")
    if err is not None:
        raise JsApiError.from_response(err)
    return PubAck(resp)
