"""JetStream atomic batch publish (ADR-50, nats-server 2.12+): all messages or none.

nats-py has no batch publisher. The protocol is headers on ordinary publishes:
``Nats-Batch-Id`` (one id per batch, at most 64 characters) and ``Nats-Batch-Sequence``
(1, 2, ...) on every message, ``Nats-Batch-Commit: 1`` on the last. The first message
is sent as a request (the server answers an empty message, or an error such as 10174
"atomic publish is disabled"), the middle ones without a reply, the last as a request
whose answer is the pub ack of the whole batch (``seq`` = the last message's sequence,
``count``). The messages of one batch may go to different subjects (a unit of work over
several actors); each may carry its own ``Nats-Expected-Last-Subject-Sequence``, and the
server checks them all, under its lock, at commit: one wrong expectation refuses the
whole batch (10071) and nothing is stored.

Both replies have the publish deadline. A batch the server did not finish (no
responders during a leader election, the connection lost, 10175/10176 incomplete) is
sent again whole under a new batch id within the deadline; that is safe because every
actor's first message carries its expectation: a batch stored earlier makes the copy
fail with 10071, which the store resolves by reading what is stored.

The server takes at most `MAX_BATCH` messages in one batch; larger units are refused
before anything is sent. A server without atomic batches (older than 2.12, or a stream
without ``allow_atomic``) answers the first message with an error, so nothing is ever
stored non-atomically.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aether._nats.errors import (
    ERR_ATOMIC_DISABLED,
    ERR_BATCH_INCOMPLETE,
    ERR_BATCH_MISSING_SEQ,
    JsApiError,
)
from aether.errors import StoreClosedError, UnsupportedServerError
from aether.store._js_publish import (
    CLOSED,
    RESEND,
    TIMED_OUT,
    Pending,
    PubAck,
    Publisher,
    busy,
    parse_ack,
    unknown_outcome,
)

MAX_BATCH = 1000
"""The server's limit of messages per atomic batch."""

MAX_BATCHES_IN_FLIGHT = 32
"""Below the server's limit of 50 open batches per stream."""

_RETRY_CODES = frozenset({ERR_BATCH_MISSING_SEQ, ERR_BATCH_INCOMPLETE})

Message = tuple[str, bytes, dict[str, str]]
"""(subject, payload, headers) of one message of a batch."""


class _Retry(Exception):
    """The batch did not complete for a reason that passes: send it again."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class BatchPublisher:
    """Publishes atomic batches through a `Publisher` (its deadline, its connection)."""

    def __init__(self, publisher: Publisher) -> None:
        self._pub = publisher
        self._open = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)

    async def publish(self, messages: Sequence[Message]) -> PubAck:
        """Publish `messages` as one atomic batch; return the commit's ack.

        Raises `JsApiError` when the server refused the batch (nothing was stored),
        `UnsupportedServerError` when the stream or server has no atomic batches,
        `PublishTimeoutError` when no answer came within the deadline (outcome unknown).
        """
        n = len(messages)
        if not 1 <= n <= MAX_BATCH:
            raise ValueError(f"an atomic batch holds 1..{MAX_BATCH} messages, got {n}")
        pub = self._pub
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pub.timeout
        backoff = 0.02
        why = ""
        async with self._open:
            while True:
                if loop.time() >= deadline:
                    raise unknown_outcome(messages[-1][0], pub.timeout, pub._nc, why)
                try:
                    return await self._once(messages, deadline)
                except _Retry as r:
                    why = r.why
                await asyncio.sleep(min(backoff, max(deadline - loop.time(), 0)))
                backoff = min(backoff * 2, 0.5)

    async def _once(self, messages: Sequence[Message], deadline: float) -> PubAck:
        pub = self._pub
        n = len(messages)
        batch_id = uuid.uuid4().hex
        first: Pending | None = None
        last: Pending | None = None
        try:
            for i, (subject, payload, extra) in enumerate(messages, start=1):
                headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i), **extra}
                if i == n:
                    headers["Nats-Batch-Commit"] = "1"
                want = i == 1 or i == n
                pending = await pub.send(
                    subject, payload, headers, want_reply=want, deadline=deadline
                )
                if i == 1:
                    first = pending
                if i == n:
                    last = pending
            assert first is not None and last is not None
            if n > 1:
                self._check(await pub.wait(first), messages[0][0], deadline)
            return self._check(await pub.wait(last), messages[-1][0], deadline, commit=True)
        finally:
            pub.discard(first)  # no-ops once answered
            pub.discard(last)

    def _check(
        self, reply: tuple[int, bytes], subject: str, deadline: float, *, commit: bool = False
    ) -> PubAck:
        pub = self._pub
        status, data = reply
        if status == TIMED_OUT:
            raise unknown_outcome(subject, pub.timeout, pub._nc)
        if status == CLOSED:
            raise StoreClosedError(
                "the store was closed before the batch was acknowledged; the outcome is unknown"
            )
        if status == RESEND:
            raise _Retry("the connection was lost meanwhile")
        if status == 503:
            raise _Retry("no responders: JetStream busy (leader election or restart)")
        if status:
            raise _Retry(f"status {status}")
        if not data and not commit:
            return PubAck()
        try:
            return parse_ack(data)
        except JsApiError as e:
            if e.err_code == ERR_ATOMIC_DISABLED:
                raise UnsupportedServerError(
                    "the stream does not allow atomic batch publish (allow_atomic, "
                    "nats-server 2.12+); refusing to append a batch non-atomically"
                ) from None
            if e.err_code in _RETRY_CODES or busy(e):
                raise _Retry(e.description) from None
            raise
