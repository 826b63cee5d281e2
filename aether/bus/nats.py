"""`NatsEventBus`: the bus across processes, over core NATS (no persistence).

Events are published on ``aether.<ns>.bus.<type-token>.<actor-token>`` in the wire format
of `aether.event` (integers stay integers, floats stay floats). A subscription is one
nats-py *callback* subscription (callbacks beat iterators) whose callback feeds the
`Subscription`'s bounded buffer under its `Overflow` policy; events are decoded when the
consumer takes them, so dropped ones cost nothing.

Core NATS cannot push back on a publisher in another process. With ``BLOCK`` a full
buffer stalls the callback and the NATS client queues up to ``pending_msgs_limit``
messages (``pending_bytes_limit`` bytes); beyond that the client drops them as a *slow
consumer*. Those drops are never swallowed: they are counted in `Subscription.dropped`
(and `client_dropped`), logged, reported by `Subscription.missed`, and raised with
``ERROR``. For gap-free following use the store's ``watch``.

nats-py reconnects and re-subscribes on its own after a server restart; events
published while the subscriber's connection is down are lost (core NATS semantics):
each reconnect is logged and counted in `Subscription.interruptions`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import SlowConsumerError

from aether._nats.errors import map_nats_error
from aether._nats.hooks import hooks_of
from aether._nats.permissions import denied
from aether._nats.raw import flush, frame_writer, pub_frame, sid_of, subscribe_raw
from aether.bus._wire import WireEncoder, decode_message
from aether.bus.base import (
    DEFAULT_BUFFER,
    Overflow,
    Subscription,
    check_subscribe_args,
    pattern_matcher,
)
from aether.config import Settings
from aether.errors import AetherError, EventTooLargeError, NatsUnavailableError
from aether.event import DEFAULT_MAX_EVENT_BYTES, Event
from aether.subjects import bus_filter

log = logging.getLogger("aether.bus")

DEFAULT_PENDING_MSGS_LIMIT = 65536
"""Messages the NATS client may queue per subscription before it drops (slow consumer)."""
DEFAULT_PENDING_BYTES_LIMIT = 64 * 1024 * 1024
"""Bytes the NATS client may queue per subscription before it drops (slow consumer)."""


class NatsEventBus:
    """An `EventBus` over core NATS subjects; use `open` or pass a nats-py connection."""

    def __init__(
        self,
        nc: NATS,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
        owns_connection: bool = False,
    ) -> None:
        self._nc = nc
        self._owns = owns_connection
        server_max = getattr(nc, "max_payload", 0) or max_event_bytes
        self._encoder = WireEncoder(min(max_event_bytes, server_max))
        self._pending_msgs = pending_msgs_limit
        self._pending_bytes = pending_bytes_limit
        self._subs: dict[int, _Entry] = {}  # nats sid -> our subscription and nats-py's
        self._sids: dict[int, int] = {}  # Subscription.id -> nats sid
        self._closed = False
        self._writer = frame_writer(nc)
        hooks = hooks_of(nc)
        self._remove_hooks = (
            hooks.on_error(self._on_error),
            hooks.on_reconnected(self._on_reconnected),
        )

    @classmethod
    async def open(cls, settings: Settings, **options: Any) -> NatsEventBus:
        """Connect to the NATS servers of `settings`; the bus owns that connection."""
        from aether.connect import connect

        nc = await connect(settings)
        return cls(nc, max_event_bytes=settings.max_event_bytes, owns_connection=True, **options)

    @property
    def connection(self) -> NATS:
        """The nats-py connection in use."""
        return self._nc

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded event accepted (the smaller of settings and server limit)."""
        return self._encoder.max_bytes

    # -- publishing --

    async def publish(self, namespace: str, event: Event) -> None:
        """Validate and publish `event` to the subscribers of `namespace` (fire and forget)."""
        if self._closed:
            raise AetherError("the bus is closed")
        subject, payload = self._encoder.encode_for(namespace, event)
        if self._writer.write(pub_frame(subject.encode(), b"", payload)):
            return
        try:
            await self._nc.publish(subject, payload)
        except Exception as e:
            raise self._publish_error(e, subject, len(payload)) from None

    def _publish_error(self, e: Exception, subject: str, size: int) -> AetherError:
        err = map_nats_error(self._nc, e, subject, "bus publish")
        if isinstance(err, EventTooLargeError):
            return EventTooLargeError("event", size, self._nc.max_payload)
        return err

    async def publish_many(self, namespace: str, events: Iterable[Event]) -> None:
        """Publish `events` in order."""
        for event in events:
            await self.publish(namespace, event)

    async def flush(self, wait: float = 5.0) -> None:
        """Wait (up to `wait` seconds) until the server has everything published so far."""
        try:
            await flush(self._nc, wait)
        except Exception as e:
            raise NatsUnavailableError(
                f"NATS did not confirm the flush: {type(e).__name__}"
            ) from None

    # -- subscribing --

    async def subscribe(
        self,
        pattern: str,
        *,
        event_types: Iterable[str] | str | None = None,
        actor_id: str | None = None,
        buffer: int = DEFAULT_BUFFER,
        overflow: Overflow | str = Overflow.BLOCK,
    ) -> Subscription:
        """Subscribe to a namespace or ``*`` pattern; the server knows it on return."""
        if self._closed:
            raise AetherError("the bus is closed")
        pattern, types, actor, buffer, overflow = check_subscribe_args(
            pattern, event_types, actor_id, buffer, overflow
        )
        ns_match = pattern_matcher(pattern)
        one_type = next(iter(types)) if types is not None and len(types) == 1 else None
        subject = bus_filter("*" if ns_match is not None else pattern, one_type, actor)
        type_tokens = (
            frozenset(self._encoder.type_token(t) for t in types)
            if types is not None and one_type is None
            else None
        )
        sub = Subscription(
            pattern,
            event_types=types,
            actor_id=actor,
            buffer=buffer,
            overflow=overflow,
            decode=decode_message if ns_match is None else None,
            on_close=self._unsubscribe,
            name="nats",
        )
        if ns_match is not None:
            sub._decode = _namespace_decoder(sub)
        entry = _Entry(sub)
        matcher = None if pattern == "*" else ns_match
        try:
            nsub: Any
            if overflow is Overflow.ERROR:
                # ERROR raises where nats-py's queue dropped: it needs that queue.
                cb = _callback(entry, matcher, type_tokens)
                nsub = await self._nc.subscribe(
                    subject,
                    cb=cb,
                    pending_msgs_limit=self._pending_msgs,
                    pending_bytes_limit=self._pending_bytes,
                )
            else:
                handler = _raw_handler(
                    entry, matcher, type_tokens, self._pending_msgs, self._pending_bytes
                )
                nsub = await subscribe_raw(self._nc, subject, handler)
            entry.nsub = nsub
            sid = sid_of(nsub)
            self._subs[sid] = entry
            self._sids[sub.id] = sid
            await flush(self._nc, 5.0)  # the server has the interest before we return
        except Exception as e:
            await sub.close()
            if isinstance(e, AetherError):
                raise
            raise NatsUnavailableError(f"cannot subscribe on NATS: {type(e).__name__}") from None
        refused = denied(self._nc, subject)  # the server's -ERR came before the flush's PONG
        if refused is not None:
            await sub.close()
            raise refused
        return sub

    async def close(self) -> None:
        """Close every subscription; close the connection if the bus opened it."""
        if self._closed:
            return
        self._closed = True
        for remove in self._remove_hooks:
            remove()
        for entry in list(self._subs.values()):
            await entry.sub.close()
        self._subs.clear()
        if self._owns and not self._nc.is_closed:
            with contextlib.suppress(Exception):  # closing anyway
                await flush(self._nc, 2.0)
            await self._nc.close()

    async def __aenter__(self) -> NatsEventBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals --

    async def _unsubscribe(self, sub: Subscription) -> None:
        sid = self._sids.pop(sub.id, None)
        entry = self._subs.pop(sid, None) if sid is not None else None
        if entry is None or self._nc.is_closed:
            return
        try:
            await entry.nsub.unsubscribe()
        except Exception as e:  # connection closing or closed: interest goes with it
            log.debug("unsubscribe failed: %s", type(e).__name__)

    def _on_error(self, e: Exception) -> bool:
        # nats-py reports a subscription's dropped messages only through the connection's
        # error callback (one SlowConsumerError per message): count this bus's own.
        if isinstance(e, SlowConsumerError):
            entry = self._subs.get(e.sid)
            if entry is not None:
                entry.client_dropped()
                return True
        return False

    def _on_reconnected(self) -> None:
        # Core NATS drops what is published while a subscriber is disconnected, and nobody
        # can count it: say so, once per reconnect, on every subscription of this bus.
        subs = self._subs
        if subs:
            for entry in list(subs.values()):
                entry.sub.interruptions += 1
            log.warning(
                "reconnected to NATS: %d bus subscription(s) may have missed events "
                "published while disconnected (the store's watch does not)",
                len(subs),
            )


class _Entry:
    """One bus subscription: ours, nats-py's, and where a client-side gap sits."""

    __slots__ = ("gap_in", "nsub", "sub")

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.nsub: Any = None
        self.gap_in: int | None = None  # messages still ahead of a slow-consumer gap

    def client_dropped(self) -> None:
        """The NATS client dropped a message of this subscription."""
        sub = self.sub
        sub._drop(1, by_client=True)
        if sub.overflow is Overflow.ERROR and self.gap_in is None:
            # The messages still queued in the client precede the gap: raise after them.
            self.gap_in = self.nsub.pending_msgs if self.nsub is not None else 0
            if self.gap_in <= 0:
                self.passed_gap()

    def passed_gap(self) -> None:
        """Every message before the gap reached the buffer: fail the ERROR subscription."""
        self.gap_in = None
        self.sub._trip("missed events: the NATS client dropped them as a slow consumer")


def _callback(
    entry: _Entry,
    ns_match: Callable[[str], bool] | None,
    type_tokens: frozenset[str] | None,
) -> Callable[[Msg], Awaitable[None]]:
    sub = entry.sub
    offer = sub._offer
    if ns_match is None and type_tokens is None and sub.overflow is not Overflow.ERROR:

        async def cb(msg: Msg) -> None:
            fut = offer(msg)
            if fut is not None:
                await fut

        return cb

    async def checking_cb(msg: Msg) -> None:
        if entry.gap_in is not None:
            entry.gap_in -= 1
            if entry.gap_in < 0:
                entry.passed_gap()
        if ns_match is not None or type_tokens is not None:
            tokens = msg.subject.split(".")
            if len(tokens) != 5:
                return
            if ns_match is not None and not ns_match(tokens[1]):
                return
            if type_tokens is not None and tokens[3] not in type_tokens:
                return
        fut = offer(msg)
        if fut is not None:
            await fut

    return checking_cb


class _RawMsg:
    """A bus message as the raw handler got it (what `decode_message` reads)."""

    __slots__ = ("_subject", "data")

    def __init__(self, subject: bytes, data: bytes) -> None:
        self._subject = subject
        self.data = data

    @property
    def subject(self) -> str:
        """The message's subject."""
        return self._subject.decode()


def _raw_handler(
    entry: _Entry,
    ns_match: Callable[[str], bool] | None,
    type_tokens: frozenset[str] | None,
    max_msgs: int,
    max_bytes: int,
) -> Callable[[bytes, bytes, bytes, bytes | None], None]:
    """The raw handler of a ``BLOCK`` or dropping subscription (see `aether._nats.raw`).

    Called by nats-py's reader for each message, it offers the message to the
    subscription's buffer at once. With ``BLOCK`` and a full buffer the messages wait in
    the subscription (in order) as they would in nats-py's queue, and beyond
    `max_msgs` (or about `max_bytes`) waiting they are dropped and counted as the
    client's slow-consumer drops, as nats-py would.
    """
    sub = entry.sub
    offer = sub._offer
    blocked = sub._blocked
    filtered = ns_match is not None or type_tokens is not None

    def on_msg(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if filtered:
            tokens = subject.decode().split(".")
            if len(tokens) != 5:
                return
            if ns_match is not None and not ns_match(tokens[1]):
                return
            if type_tokens is not None and tokens[3] not in type_tokens:
                return
        if blocked:
            waiting = len(blocked)
            if (max_msgs > 0 and waiting >= max_msgs) or (
                max_bytes > 0 and waiting * len(data) >= max_bytes
            ):
                entry.client_dropped()
                return
        offer(_RawMsg(subject, data))

    return on_msg


def _namespace_decoder(sub: Subscription) -> Callable[[Msg], Event | None]:
    def decode(msg: Msg) -> Event | None:
        event = decode_message(msg)
        if event is not None:
            sub.last_namespace = msg.subject.split(".", 2)[1]
        return event

    return decode
