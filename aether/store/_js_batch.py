"""JetStream atomic batch publish (ADR-50, nats-server 2.12+): all messages or none.

nats-py has no batch publisher. The protocol is headers on ordinary publishes:
``Nats-Batch-Id`` (one id per batch, at most 64 characters) and ``Nats-Batch-Sequence``
(1, 2, ...) on every message, ``Nats-Batch-Commit: 1`` on the last. The first message
is sent as a request (the server answers an empty message, or an error such as 10174
"atomic publish is disabled"), the middle ones without a reply, the last as a request
whose answer is the pub ack of the whole batch (``seq`` = the last message's sequence,
``count``). Expectation headers (``Nats-Expected-Last-Subject-Sequence``) go on the first
message only and are checked by the server, under its lock, at commit.

The server takes at most `MAX_BATCH` messages in one batch; callers split larger inputs.
A server without atomic batches (older than 2.12, or a stream without ``allow_atomic``)
answers the first message with an error, so nothing is ever stored non-atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence

from aether.errors import UnsupportedServerError
from aether.store._js_api import ERR_ATOMIC_DISABLED, JsApiError
from aether.store._js_publish import PubAck, Publisher, parse_ack

MAX_BATCH = 1000
"""The server's limit of messages per atomic batch."""

MAX_BATCHES_IN_FLIGHT = 32
"""Below the server's limit of 50 open batches per stream."""


class BatchPublisher:
    """Publishes atomic batches through a `Publisher` (its deadline, its connection)."""

    def __init__(self, publisher: Publisher) -> None:
        self._pub = publisher
        self._open = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)

    async def publish(
        self, subject: str, payloads: Sequence[bytes], first_headers: dict[str, str]
    ) -> PubAck:
        """Publish `payloads` to `subject` as one atomic batch; return the commit's ack.

        Raises `JsApiError` when the server refused the batch (nothing was stored),
        `UnsupportedServerError` when the stream or server has no atomic batches,
        `PublishTimeoutError` when the commit was not acknowledged in time (unknown).
        """
        n = len(payloads)
        if not 1 <= n <= MAX_BATCH:
            raise ValueError(f"an atomic batch holds 1..{MAX_BATCH} messages, got {n}")
        batch_id = uuid.uuid4().hex
        pub = self._pub
        async with self._open:
            first = None
            last = None
            for i, payload in enumerate(payloads, start=1):
                headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i)}
                if i == 1:
                    headers.update(first_headers)
                if i == n:
                    headers["Nats-Batch-Commit"] = "1"
                want = i == 1 or i == n
                pending = await pub.send(subject, payload, headers, want_reply=want)
                if i == 1:
                    first = pending
                if i == n:
                    last = pending
            assert first is not None and last is not None
            if n > 1:
                first_reply = await pub.wait(first, subject)
                if first_reply:
                    try:
                        parse_ack(first_reply)
                    except JsApiError as e:
                        # The rest of the batch is rejected too; collect the commit's answer.
                        await _quietly(pub, last, subject)
                        raise _unsupported(e) from None
            try:
                return parse_ack(await pub.wait(last, subject))
            except JsApiError as e:
                raise _unsupported(e) from None


async def _quietly(
    pub: Publisher, pending: tuple[bytes, asyncio.Future[bytes]], subject: str
) -> None:
    with contextlib.suppress(Exception):
        await pub.wait(pending, subject)


def _unsupported(e: JsApiError) -> Exception:
    if e.err_code == ERR_ATOMIC_DISABLED:
        return UnsupportedServerError(
            "the stream does not allow atomic batch publish (allow_atomic, nats-server 2.12+); "
            "refusing to append a batch non-atomically"
        )
    return e
