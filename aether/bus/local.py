"""`LocalEventBus`: in-process fan-out of events to `Subscription` buffers.

Events are passed by reference (treat them and their ``data`` as immutable). Publishing
checks the namespace, the event's identifiers and version, and that ``data`` is plain
JSON as the wire format defines it (finite numbers, bounded depth, no cycles), so what
the local bus accepts is what `NatsEventBus` accepts; the data is not serialized here.

With `Overflow.BLOCK` a full subscriber makes ``publish`` wait (backpressure); a
subscriber with a dropping policy never makes it wait, so a slow dropping subscriber
never slows the others. Each subscriber sees events in the order ``publish`` was called,
also when several publishers wait on the same full subscriber.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from aether._jsonvalue import shape_ok
from aether.bus.base import (
    DEFAULT_BUFFER,
    Overflow,
    Subscription,
    check_subscribe_args,
    matches,
)
from aether.errors import AetherError, InvalidEventError
from aether.event import Event, validate_event
from aether.subjects import validate_actor_id, validate_event_type, validate_namespace

_CACHE_LIMIT = 65536

_Route = tuple[
    Subscription,
    frozenset[str] | None,
    str | None,
    Callable[[Event], "asyncio.Future[None] | None"] | None,
]


class LocalEventBus:
    """An `EventBus` inside one process (one event loop)."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._routes: dict[str, tuple[_Route, ...]] = {}
        self._types: set[str] = set()
        self._actors: set[str] = set()
        self._closed = False

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The open subscriptions."""
        return tuple(self._subs)

    async def publish(self, namespace: str, event: Event) -> None:
        """Hand `event` to every matching subscriber; wait only for full ``BLOCK`` ones."""
        routes = self._routes.get(namespace)
        if routes is None:
            routes = self._route(namespace)
        if (
            type(event) is not Event
            or event.event_type not in self._types
            or event.actor_id not in self._actors
        ):
            self._check(event)
        v = event.version
        if type(v) is not int or v < 1:
            raise InvalidEventError("version", f"must be an integer >= 1, got {v!r}")
        data = event.data
        if type(data) is not dict or not shape_ok(data):
            validate_event(event)  # names the first broken rule (NaN, depth, a cycle...)
        waits = None
        for sub, types, actor, offer in routes:
            if types is not None and event.event_type not in types:
                continue
            if actor is not None and actor != event.actor_id:
                continue
            if offer is None:
                # Subscription._offer's fast path, inline: a call per subscriber is
                # a fifth of a local publish.
                buf = sub._buf
                if len(buf) < sub.buffer and sub._open and not sub._blocked:
                    buf.append(event)
                    w = sub._waiter
                    if w is not None:
                        sub._waiter = None
                        if not w.done():
                            w.set_result(None)
                    continue
                fut = sub._overflowed(event)
            else:
                fut = offer(event)
            if fut is not None:
                if waits is None:
                    waits = [fut]
                else:
                    waits.append(fut)
        if waits is not None:
            for fut in waits:
                await fut

    async def publish_many(self, namespace: str, events: Iterable[Event]) -> None:
        """Publish `events` in order (one call, the same guarantees as `publish`)."""
        for event in events:
            await self.publish(namespace, event)

    async def subscribe(
        self,
        pattern: str,
        *,
        event_types: Iterable[str] | str | None = None,
        actor_id: str | None = None,
        buffer: int = DEFAULT_BUFFER,
        overflow: Overflow | str = Overflow.BLOCK,
    ) -> Subscription:
        """Subscribe to a namespace or a ``*`` pattern; see `EventBus.subscribe`."""
        if self._closed:
            raise AetherError("the bus is closed")
        pattern, types, actor, buffer, overflow = check_subscribe_args(
            pattern, event_types, actor_id, buffer, overflow
        )
        sub = Subscription(
            pattern,
            event_types=types,
            actor_id=actor,
            buffer=buffer,
            overflow=overflow,
            on_close=self._forget,
            name="local",
        )
        if "*" in pattern:  # buffered as (namespace, event): the consumer learns the namespace
            sub._decode = _namespace_unpacker(sub)
        self._subs.append(sub)
        self._routes.clear()
        return sub

    async def close(self) -> None:
        """Close every subscription; publishing afterwards raises."""
        self._closed = True
        for sub in list(self._subs):
            await sub.close()
        self._subs.clear()
        self._routes.clear()

    async def __aenter__(self) -> LocalEventBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals --

    def _route(self, namespace: str) -> tuple[_Route, ...]:
        if self._closed:
            raise AetherError("the bus is closed")
        validate_namespace(namespace)
        routes = tuple(
            (s, s.event_types, s.actor_id, _offer_with_namespace(s, namespace))
            if "*" in s.pattern
            else (s, s.event_types, s.actor_id, None)
            for s in self._subs
            if matches(s.pattern, namespace)
        )
        if len(self._routes) >= _CACHE_LIMIT:
            self._routes.clear()
        self._routes[namespace] = routes
        return routes

    def _check(self, event: Event) -> None:
        if type(event) is not Event:
            validate_event(event)  # raises the precise error
        for cache, value in (
            (self._types, validate_event_type(event.event_type)),
            (self._actors, validate_actor_id(event.actor_id)),
        ):
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache.add(value)

    async def _forget(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._routes.clear()


def _offer_with_namespace(
    sub: Subscription, namespace: str
) -> Callable[[Event], asyncio.Future[None] | None]:
    offer = sub._offer

    def offer_pair(event: Event) -> asyncio.Future[None] | None:
        return offer((namespace, event))

    return offer_pair


def _namespace_unpacker(sub: Subscription) -> Callable[[tuple[str, Event]], Event]:
    def unpack(item: tuple[str, Event]) -> Event:
        sub.last_namespace = item[0]
        return item[1]

    return unpack
