"""Pipelined JetStream publishing: many publishes in flight, each awaited on its own.

Like nats-py's ``publish_async`` (one reply subscription, a future per message), but an
ack is handled synchronously by a raw handler (no queue, no callback task), the frame
is prebuilt and appended to nats-py's outbound buffer, every publish has its own
deadline (`PublishTimeoutError`, never a hang) and at most ``max_in_flight`` publishes
wait for acks at once (the rest wait for a slot).

Honest transient errors. Within one deadline (``jetstream.publish_timeout``) a publish
is re-sent, identical (same ``Nats-Msg-Id``, same expectations), when the answer says
JetStream is busy: no responders (a stream leader election or a server restart), a
``10158`` "duplicate message id is in process", or a 503 error; and when the connection
came back after a reconnect (a publish written before the disconnect may be lost, one
written while disconnected is buffered by nats-py and sent on reconnect; re-sending is
safe either way: the server drops the copy by its message id or refuses it by its
expected sequence). When the deadline passes without an answer: `PublishTimeoutError`
(an `OutcomeUnknownError`: re-saving the same events is safe).

Futures are only ever given results (a reply, or a marker for timeout, re-send and
close), never exceptions, so nothing is logged as "exception was never retrieved" when
nobody awaits a reply (e.g. the first reply of a failed atomic batch).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from aether._nats.errors import JsApiError, map_nats_error
from aether._nats.info import where
from aether._nats.jsapi import parse_ack as _parse_ack
from aether._nats.jsapi import subscribe
from aether._nats.permissions import denied
from aether._nats.raw import (
    FrameWriter,
    RawSubscription,
    frame_writer,
    header_block,
    hpub_frame,
    status_of,
)
from aether.errors import AetherError, EventTooLargeError, PublishTimeoutError, StoreClosedError

Reply = tuple[int, bytes]
"""A reply: (status, data). Status 0 is a normal answer; >0 an inline NATS status
(503 no responders); <0 one of the markers below."""

TIMED_OUT = -1
RESEND = -2
CLOSED = -3

Pending = tuple[bytes, "asyncio.Future[Reply]"]
"""A publish waiting for its reply: (reply token, future)."""

_BACKOFF_FIRST = 0.02
_BACKOFF_MAX = 0.5


PubAck = dict[str, Any]
"""A decoded pub ack (``stream``, ``seq``, maybe ``duplicate``, ``batch``, ``count``)."""


def busy(err: JsApiError) -> bool:
    """Whether a JetStream error answer means "busy, send the same message again"."""
    return err.busy


def unknown_outcome(subject: str, timeout: float, nc: NATS, why: str = "") -> PublishTimeoutError:
    """The error for a publish whose outcome is unknown once its deadline passed."""
    extra = f" ({why})" if why else ""
    return PublishTimeoutError(
        f"publish to {subject} was not acknowledged within {timeout:g}s by NATS at "
        f"{where(nc)}{extra}; the outcome is unknown: saving the same events again is safe "
        "(a no-op if they were stored)"
    )


class Publisher:
    """Publishes to JetStream with a reply and resolves each ack as it arrives.

    Per publish: one future and one entry in one dict (token -> future, deadline); the
    frame goes straight into nats-py's outbound buffer (`aether._nats.raw.FrameWriter`,
    nats-py's ``publish`` when the seam is off); one timer sweeps every deadline; a
    counter (not a semaphore) bounds the publishes in flight.
    """

    def __init__(self, nc: NATS, *, timeout: float, max_in_flight: int) -> None:
        self._nc = nc
        self.timeout = timeout
        self._max_in_flight = max(1, max_in_flight)
        self._in_flight = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._pending: dict[bytes, tuple[asyncio.Future[Reply], float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._next_id = 0
        self._prefix = ""
        self._prefix_b = b""
        self._prefix_len = 0
        self._sub: RawSubscription | None = None
        self._writer: FrameWriter | None = None
        self._starting = asyncio.Lock()
        # The connection's loop, learnt on the first publish. On Python 3.11 every
        # asyncio.get_running_loop() is a getpid() system call, which profiles showed at
        # a fifth of a pipelined append's client CPU on a busy machine.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconnects = self._reconnect_count()
        self._closed = False

    def _reconnect_count(self) -> int:
        stats = getattr(self._nc, "stats", None) or {}
        return int(stats.get("reconnects", 0))

    async def _start(self) -> None:
        async with self._starting:
            if self._sub is not None:
                return
            self._loop = asyncio.get_running_loop()
            prefix = self._nc.new_inbox() + "."
            self._prefix_len = len(prefix)
            self._sub = await subscribe(self._nc, prefix + "*", self._on_reply)
            self._writer = frame_writer(self._nc)
            self._prefix_b = prefix.encode()
            self._prefix = prefix

    def _on_reply(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        entry = self._pending.pop(subject[self._prefix_len :], None)
        if entry is None:
            return
        fut = entry[0]
        if not fut.done():
            fut.set_result((status_of(headers) if headers is not None and not data else 0, data))

    def _write(self, subject: str, reply: bytes, payload: bytes, headers: dict[str, str]) -> bool:
        """Put the frame into nats-py's buffer; False if nats-py's ``publish`` must send it."""
        writer = self._writer
        if writer is None or not writer.active:
            return False
        block = header_block(headers)
        if block is None:
            return False
        return writer.write(hpub_frame(subject.encode(), reply, block, payload))

    async def send(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        *,
        want_reply: bool = True,
        deadline: float | None = None,
        token: bytes | None = None,
    ) -> Pending | None:
        """Publish; return the pending reply (None when `want_reply` is false).

        The reply gets a deadline at once (`deadline`, loop time; default now + timeout),
        so it never waits forever even if nobody awaits it.
        """
        if self._closed:
            raise StoreClosedError("the JetStream store is closed")
        if not self._prefix:
            await self._start()
        if not want_reply:
            if not self._write(subject, b"", payload, headers):
                try:
                    await self._nc.publish(subject, payload, headers=headers)
                except Exception as e:
                    raise map_nats_error(self._nc, e, subject, "publish") from None
            return None
        if len(payload) + 512 > self._nc.max_payload:
            # nats-py refuses it anyway; say why in aether's terms (headers take ~200 bytes)
            raise EventTooLargeError("event", len(payload), self._nc.max_payload - 512)
        loop = self._loop or asyncio.get_running_loop()
        if token is None:
            self._next_id += 1
            token = b"%d" % self._next_id
        fut = self._register(
            loop, token, loop.time() + self.timeout if deadline is None else deadline
        )
        reply = self._prefix_b + token
        if not self._write(subject, reply, payload, headers):
            try:
                await self._nc.publish(subject, payload, reply=reply.decode(), headers=headers)
            except Exception as e:
                self._pending.pop(token, None)
                raise map_nats_error(self._nc, e, subject, "publish") from None
        return token, fut

    def _send_now(
        self, subject: str, payload: bytes, headers: dict[str, str], deadline: float
    ) -> Pending | None:
        """`send`'s common case without a coroutine: started, open, the frame written into
        nats-py's buffer. None when `send` must do it (nothing was sent)."""
        writer = self._writer
        loop = self._loop
        if (
            self._closed
            or writer is None
            or loop is None
            or not self._prefix
            or not writer.active
            or len(payload) + 512 > self._nc.max_payload
        ):
            return None
        block = header_block(headers)
        if block is None:
            return None
        token = b"%d" % (self._next_id + 1)
        if not writer.write(hpub_frame(subject.encode(), self._prefix_b + token, block, payload)):
            return None
        self._next_id += 1
        return token, self._register(loop, token, deadline)

    def _register(
        self, loop: asyncio.AbstractEventLoop, token: bytes, deadline: float
    ) -> asyncio.Future[Reply]:
        """The future of the reply to `token`, swept at `deadline` (loop time)."""
        fut: asyncio.Future[Reply] = loop.create_future()
        self._pending[token] = (fut, deadline)
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(self.timeout / 4, 0.25), self._sweep)
        return fut

    def _sweep(self) -> None:
        # One timer for all publishes (a timer each costs more than the publish).
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        reconnects = self._reconnect_count()
        reconnected = reconnects != self._reconnects and self._nc.is_connected
        if reconnected:
            self._reconnects = reconnects
        expired = [t for t, (_, d) in self._pending.items() if d <= now]
        for token in expired:
            self._resolve(token, TIMED_OUT)
        if reconnected:
            # Replies to what was sent before the disconnect are lost: send again now.
            for token in list(self._pending):
                self._resolve(token, RESEND)
        if self._pending:
            self._sweeper = loop.call_later(min(self.timeout / 4, 0.25), self._sweep)

    def _resolve(self, token: bytes, marker: int) -> None:
        entry = self._pending.pop(token, None)
        if entry is not None and not entry[0].done():
            entry[0].set_result((marker, b""))

    async def wait(self, pending: Pending) -> Reply:
        """Await a reply (or a marker: `TIMED_OUT`, `RESEND`, `CLOSED`)."""
        token, fut = pending
        try:
            return await fut
        finally:
            if not fut.done():  # cancelled by the caller
                self._pending.pop(token, None)

    def discard(self, pending: Pending | None) -> None:
        """Stop waiting for a reply nobody will await (it is dropped when it comes)."""
        if pending is not None:
            self._resolve(pending[0], CLOSED)

    def _unknown(self, subject: str, why: str) -> AetherError:
        refused = denied(self._nc, subject)
        if refused is not None:
            return refused
        return unknown_outcome(subject, self.timeout, self._nc, why)

    async def _slot(self) -> None:
        loop = asyncio.get_running_loop()
        while self._in_flight >= self._max_in_flight:
            fut: asyncio.Future[None] = loop.create_future()
            self._slot_waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done():  # woken and cancelled at once: pass the slot on
                    self._release_waiter()
                raise

    def _release_waiter(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> PubAck:
        """Publish one message and return its ack; `JsApiError` if the stream refused it.

        Busy answers (10158, 503) and lost connections are retried with the identical
        message within the deadline; then `PublishTimeoutError`.
        """
        if self._in_flight >= self._max_in_flight:
            await self._slot()
        self._in_flight += 1
        try:
            deadline = (self._loop or asyncio.get_running_loop()).time() + self.timeout
            pending = self._send_now(subject, payload, headers, deadline)
            if pending is None:
                pending = await self.send(subject, payload, headers, deadline=deadline)
                assert pending is not None
            token, fut = pending
            try:  # `wait`, inline: a coroutine less per append
                status, data = await fut
            finally:
                if not fut.done():
                    self._pending.pop(token, None)
            if status == 0 and data[:1] == b"{" and b'"error"' not in data:
                ack: PubAck = orjson.loads(data)  # the common case: one send, one ack
                return ack
            return await self._publish_slowly(
                subject, payload, headers, deadline, pending[0], (status, data)
            )
        finally:
            self._in_flight -= 1
            if self._slot_waiters:
                self._release_waiter()

    async def _publish_slowly(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        deadline: float,
        token: bytes,
        reply: Reply,
    ) -> PubAck:
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_FIRST
        why = ""
        while True:
            status, data = reply
            if status == 0:
                try:
                    return parse_ack(data)
                except JsApiError as e:
                    if not busy(e):
                        raise
                    why = e.description
            elif status == CLOSED:
                raise StoreClosedError(
                    f"the store was closed before {subject} was acknowledged; "
                    "the outcome is unknown"
                )
            elif status == TIMED_OUT:
                raise self._unknown(subject, why)
            elif status == RESEND:
                why = "the connection was lost meanwhile"
                backoff = 0.0
            elif status == 503:
                why = "no responders: JetStream busy (leader election or restart)"
            else:
                raise AetherError(f"JetStream publish to {subject} answered status {status}")
            if loop.time() + backoff >= deadline:
                raise self._unknown(subject, why)
            if backoff:
                await asyncio.sleep(backoff)
            backoff = min(max(backoff, _BACKOFF_FIRST) * 2, _BACKOFF_MAX)
            pending = await self.send(subject, payload, headers, deadline=deadline, token=token)
            assert pending is not None
            reply = await self.wait(pending)

    async def close(self) -> None:
        """Resolve every waiting publish as closed and drop the reply subscription."""
        self._closed = True
        for token in list(self._pending):
            self._resolve(token, CLOSED)
        self._pending.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
            self._prefix = ""


def parse_ack(data: bytes) -> PubAck:
    """Decode a pub ack; raise `JsApiError` for an error answer."""
    return _parse_ack(data)
