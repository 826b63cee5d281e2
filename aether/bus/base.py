"""The bus protocol, the overflow policy and `Subscription`, shared by every bus.

A `Subscription` is a bounded buffer between a bus and one consumer. What happens when
it is full is the subscription's `Overflow` policy:

- ``BLOCK`` (the default): nothing is dropped. On `LocalEventBus` the publisher waits
  (backpressure); over NATS the client's pending queue absorbs the surplus, and only
  when that overflows too are events dropped (counted, logged, see `missed`).
- ``DROP_OLDEST``: the oldest buffered event makes room for the new one.
- ``DROP_NEWEST``: the new event is dropped.
- ``ERROR``: the new event is dropped and, once the events buffered before it have been
  consumed, the consumer gets `SubscriptionOverflowError` (the gap is exactly there).

Every drop is counted in `Subscription.dropped` and logged once per burst (a warning
naming the subscription and the count), so ``delivered + dropped`` always equals what
reached the subscription. Each subscription sees events in publish order.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from aether.errors import InvalidIdentifierError, SubscriptionOverflowError, ValidationError
from aether.event import Event
from aether.subjects import validate_actor_id, validate_event_type

log = logging.getLogger("aether.bus")

DEFAULT_BUFFER = 1024
"""Events a subscription buffers before its overflow policy applies."""

DROP_LOG_INTERVAL = 1.0
"""Seconds a burst of drops is summed up before it is logged as one warning."""

_PATTERN_RE = re.compile(r"[A-Za-z0-9_*-]{1,64}")
_ids = itertools.count(1)


class Overflow(enum.Enum):
    """What a full subscription does with the next event."""

    BLOCK = "block"
    """Never drop: the publisher waits (local) or the NATS client queues (NATS)."""
    DROP_OLDEST = "drop_oldest"
    """Drop the oldest buffered event to make room; count and log it."""
    DROP_NEWEST = "drop_newest"
    """Drop the incoming event; count and log it."""
    ERROR = "error"
    """Drop it and raise `SubscriptionOverflowError` to the subscriber after the buffer."""


@runtime_checkable
class EventBus(Protocol):
    """Ephemeral fan-out of events to live subscribers, isolated by namespace."""

    async def publish(self, namespace: str, event: Event) -> None:
        """Deliver `event` to the subscribers of `namespace` (and of patterns matching it)."""
        ...

    async def subscribe(
        self,
        pattern: str,
        *,
        event_types: Iterable[str] | str | None = None,
        actor_id: str | None = None,
        buffer: int = DEFAULT_BUFFER,
        overflow: Overflow | str = Overflow.BLOCK,
    ) -> Subscription:
        """Subscribe to a namespace, or a pattern with ``*`` (admin tools).

        `event_types` and `actor_id` filter; `buffer` bounds the subscription and
        `overflow` says what happens when it is full.
        """
        ...

    async def close(self) -> None:
        """Close every subscription and release the bus."""
        ...


# --- argument checks shared by the buses --------------------------------------------------


def validate_pattern(pattern: object, field: str = "pattern") -> str:
    """A namespace, or a namespace pattern where ``*`` matches any run of characters."""
    if not isinstance(pattern, str):
        raise InvalidIdentifierError(field, "must be a string")
    if not _PATTERN_RE.fullmatch(pattern):
        raise InvalidIdentifierError(
            field, "must be a namespace (1-64 of A-Z, a-z, 0-9, '_', '-') or a pattern with '*'"
        )
    return pattern


def pattern_matcher(pattern: str) -> Callable[[str], bool] | None:
    """None when `pattern` is a plain namespace, else a predicate on namespaces."""
    if "*" not in pattern:
        return None
    if pattern.strip("*") == "":
        return lambda namespace: True
    regex = re.compile(".*".join(re.escape(p) for p in pattern.split("*")))
    return lambda namespace: regex.fullmatch(namespace) is not None


def matches(pattern: str, namespace: str) -> bool:
    """Whether `namespace` is covered by the (validated) `pattern`."""
    m = pattern_matcher(pattern)
    return pattern == namespace if m is None else m(namespace)


def check_subscribe_args(
    pattern: object,
    event_types: Iterable[str] | str | None,
    actor_id: object,
    buffer: object,
    overflow: object,
) -> tuple[str, frozenset[str] | None, str | None, int, Overflow]:
    """Validate `subscribe` arguments; return them normalized."""
    pattern = validate_pattern(pattern)
    types: frozenset[str] | None = None
    if event_types is not None:
        items = [event_types] if isinstance(event_types, str) else event_types
        try:
            types = frozenset(validate_event_type(t, "event_types") for t in items)
        except TypeError:
            raise ValidationError(
                "event_types", "must be a string or an iterable of strings"
            ) from None
        if not types:
            raise ValidationError("event_types", "must not be empty (None means every type)")
    if actor_id is not None:
        validate_actor_id(actor_id)
    if type(buffer) is not int or buffer < 1:
        raise ValidationError("buffer", f"must be an integer >= 1, got {buffer!r}")
    if not isinstance(overflow, Overflow):
        try:
            overflow = Overflow(str(overflow).lower())
        except ValueError:
            names = ", ".join(o.name for o in Overflow)
            raise ValidationError("overflow", f"must be one of {names}, got {overflow!r}") from None
    return pattern, types, actor_id, buffer, overflow  # type: ignore[return-value]


# --- the subscription --------------------------------------------------------------------


class Subscription:
    """A bounded, ordered stream of events for one consumer.

    Iterate it with ``async for``; ``close()`` (or leaving ``async with``) ends it.
    `delivered` counts events handed to the consumer, `dropped` events lost to the
    overflow policy or to the NATS client; `missed()` tells how many were lost since it
    was last called.
    """

    def __init__(
        self,
        pattern: str,
        *,
        event_types: frozenset[str] | None = None,
        actor_id: str | None = None,
        buffer: int = DEFAULT_BUFFER,
        overflow: Overflow = Overflow.BLOCK,
        decode: Callable[[Any], Event | None] | None = None,
        on_close: Callable[[Subscription], Awaitable[None]] | None = None,
        name: str = "bus",
    ) -> None:
        self.id = next(_ids)
        self.pattern = pattern
        self.event_types = event_types
        self.actor_id = actor_id
        self.buffer = buffer
        self.overflow = overflow
        self.delivered = 0
        """Events handed to the consumer."""
        self.dropped = 0
        """Events that reached this subscription but were dropped (never silently)."""
        self.client_dropped = 0
        """Of `dropped`, those the NATS client dropped as a slow consumer."""
        self.interruptions = 0
        """NATS reconnects during this subscription (events published meanwhile are lost)."""
        self._name = name
        self._buf: deque[Any] = deque()
        self._blocked: deque[tuple[Any, asyncio.Future[None]]] = deque()
        self._low = buffer // 2
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: SubscriptionOverflowError | None = None
        self._open = True  # not closed and no ERROR overflow: the fast path may buffer
        self._decode = decode
        self._on_close = on_close
        self._missed_mark = 0
        self._burst = 0
        self._burst_client = 0
        self._burst_timer: asyncio.TimerHandle | None = None
        self.last_namespace: str | None = None if "*" in pattern else pattern
        """The namespace of the event last returned (tells them apart on a ``*`` pattern)."""

    def __repr__(self) -> str:
        parts = [f"#{self.id} {self._name} pattern={self.pattern!r}"]
        if self.event_types is not None:
            parts.append(f"types={sorted(self.event_types)}")
        if self.actor_id is not None:
            parts.append(f"actor={self.actor_id!r}")
        parts.append(f"overflow={self.overflow.name} buffer={self.buffer}")
        return f"<Subscription {' '.join(parts)}>"

    # -- consumer side --

    @property
    def closed(self) -> bool:
        """Whether `close` was called (or the bus closed)."""
        return self._closed

    @property
    def pending(self) -> int:
        """Events buffered (or waiting to be buffered) and not yet consumed."""
        return len(self._buf) + len(self._blocked)

    def missed(self) -> int:
        """How many events were dropped since the last call (0: no gap since then)."""
        n = self.dropped - self._missed_mark
        self._missed_mark = self.dropped
        return n

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            buf = self._buf
            if buf:
                item = buf.popleft()
                if self._blocked and len(buf) <= self._low:
                    self._refill()
                decode = self._decode
                if decode is not None:
                    item = decode(item)
                    if item is None:  # not an event (logged by the decoder)
                        continue
                self.delivered += 1
                return item  # type: ignore[no-any-return]
            await self._wait()

    def get_nowait(self) -> Event | None:
        """The next buffered event, or None when none is buffered (raises like iteration)."""
        while self._buf or self._blocked:
            if not self._buf:
                self._refill()
            item = self._buf.popleft()
            if self._blocked and len(self._buf) <= self._low:
                self._refill()
            if self._decode is not None:
                item = self._decode(item)
                if item is None:
                    continue
            self.delivered += 1
            return item  # type: ignore[no-any-return]
        if self._error is not None:
            raise self._error
        return None

    async def _wait(self) -> None:
        # Called with an empty buffer: move blocked publishers in, or end, or sleep.
        if self._blocked:
            self._refill()
            return
        if self._closed:
            raise StopAsyncIteration
        if self._error is not None:
            raise self._error
        fut = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            if self._waiter is fut:
                self._waiter = None

    async def close(self) -> None:
        """Stop delivery: buffered events are discarded, blocked publishers released."""
        if self._closed:
            return
        self._closed = True
        self._open = False
        self._buf.clear()
        for _, fut in self._blocked:
            if not fut.done():
                fut.set_result(None)
        self._blocked.clear()
        self._wake()
        self._log_burst()
        if self._on_close is not None:
            await self._on_close(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- bus side --

    def _offer(self, item: Any) -> asyncio.Future[None] | None:
        """Buffer `item` or apply the overflow policy; a future means: wait for room."""
        buf = self._buf
        if len(buf) < self.buffer and not self._blocked and self._open:
            buf.append(item)
            w = self._waiter
            if w is not None:
                self._waiter = None
                if not w.done():
                    w.set_result(None)
            return None
        return self._overflowed(item)

    def _overflowed(self, item: Any) -> asyncio.Future[None] | None:
        if self._closed:
            return None
        if self._error is not None:  # ERROR tripped: nothing more is buffered
            self._drop(1)
            return None
        policy = self.overflow
        if policy is Overflow.BLOCK:
            fut = asyncio.get_running_loop().create_future()
            self._blocked.append((item, fut))
            if len(self._buf) < self.buffer:
                self._refill()
            self._wake()
            return None if fut.done() else fut
        if policy is Overflow.DROP_OLDEST:
            self._buf.popleft()
            self._buf.append(item)
        elif policy is Overflow.ERROR:
            self._trip(
                f"overflowed: its buffer of {self.buffer} events was full; "
                "events from here on were dropped"
            )
        self._drop(1)
        return None

    def _refill(self) -> None:
        buf, blocked, cap = self._buf, self._blocked, self.buffer
        while blocked and len(buf) < cap:
            item, fut = blocked.popleft()
            buf.append(item)
            if not fut.done():
                fut.set_result(None)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def _drop(self, n: int, *, by_client: bool = False) -> None:
        """Count `n` lost events; the burst is logged once, `DROP_LOG_INTERVAL` later."""
        self.dropped += n
        if by_client:
            self.client_dropped += n
            self._burst_client += n
        if self._burst == 0 and not self._closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._burst_timer = loop.call_later(DROP_LOG_INTERVAL, self._log_burst)
        self._burst += n
        if self._burst_timer is None:
            self._log_burst()

    def _trip(self, reason: str) -> None:
        """Fail the subscription (``ERROR``): buffered events first, then the error."""
        if self._error is None:
            self._open = False
            self._error = SubscriptionOverflowError(f"subscription {self!r} {reason}")
            self._wake()

    def _log_burst(self) -> None:
        if self._burst_timer is not None:
            self._burst_timer.cancel()
            self._burst_timer = None
        if self._burst:
            extra = (
                f"; {self._burst_client} of them by the NATS client as a slow consumer"
                if self._burst_client
                else ""
            )
            log.warning(
                "subscription %r dropped %d events (total %d)%s",
                self,
                self._burst,
                self.dropped,
                extra,
            )
        self._burst = 0
        self._burst_client = 0
