"""`instrument_bus`: a bus wrapper counting publishes, deliveries and drops, with spans.

``aether_bus_published_events_total{bus}`` and
``aether_bus_publish_duration_seconds{bus}`` per publish;
``aether_bus_delivered_events_total{bus,overflow}`` and
``aether_bus_dropped_events_total{bus,overflow}`` per subscription (drops are read from
`Subscription.dropped` as the consumer reads and when it closes). With tracing on, a
publish opens a ``send`` span and writes its ``traceparent`` into the event's metadata
(unless it has one); each delivery opens a short ``receive`` span linked to it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from aether.event import Event
from aether.observability._metrics import metrics
from aether.observability._tracing import (
    TRACEPARENT_KEY,
    format_traceparent,
    link_to,
    live_tracer,
    message_attributes,
    trace_api,
)

_BUS_KINDS = {"LocalEventBus": "local", "NatsEventBus": "nats"}


def instrument_bus(bus: Any, *, kind: str | None = None) -> Any:
    """`bus` wrapped to record metrics and spans (`bus` itself without either extra).

    `kind` is the ``bus`` label (default: local or nats from the class). The wrapper
    implements `aether.bus.EventBus`; its subscriptions behave as the wrapped bus's
    (iterate, ``get_nowait``, ``close``, ``delivered``, ``dropped``, ...).
    """
    if isinstance(bus, InstrumentedBus):
        return bus
    if metrics() is None and trace_api() is None:
        return bus
    return InstrumentedBus(bus, kind=kind)


class InstrumentedBus:
    """The wrapper `instrument_bus` returns (see there)."""

    def __init__(self, bus: Any, *, kind: str | None = None) -> None:
        self.wrapped = bus
        """The bus being instrumented."""
        self.kind = kind or _BUS_KINDS.get(type(bus).__name__, type(bus).__name__.lower())
        """The ``bus`` label."""
        m = metrics()
        self._m = m
        if m is not None:
            self._published = m.bus_published.labels(self.kind)
            self._duration = m.bus_publish_duration.labels(self.kind)
        t = trace_api()
        self._producer = t.SpanKind.PRODUCER if t is not None else None

    async def publish(self, namespace: str, event: Event) -> None:
        """`EventBus.publish`, counted and timed (and traced)."""
        span = None
        tr = live_tracer()
        if tr is not None and type(event) is Event:
            dest = f"aether.{namespace}"
            span = tr.start_span(
                "send " + dest,
                kind=self._producer,
                attributes=message_attributes("send", dest, [event], "publish"),
            )
            tp = format_traceparent(span.get_span_context())
            if tp is not None and TRACEPARENT_KEY not in event.metadata:
                event = dataclasses.replace(event, metadata={**event.metadata, TRACEPARENT_KEY: tp})
        start = time.perf_counter()
        try:
            await self.wrapped.publish(namespace, event)
        except BaseException as e:
            if span is not None:
                if isinstance(e, Exception):
                    span.record_exception(e)
                    span.set_attribute("error.type", type(e).__name__)
                span.end()
            raise
        if self._m is not None:
            self._duration.observe(time.perf_counter() - start)
            self._published.inc()
        if span is not None:
            span.end()

    async def publish_many(self, namespace: str, events: Iterable[Event]) -> None:
        """Publish each of `events` (through `publish`, so each is counted)."""
        for e in events:
            await self.publish(namespace, e)

    async def subscribe(self, pattern: str, **options: Any) -> InstrumentedSubscription:
        """`EventBus.subscribe`; the subscription counts deliveries and drops."""
        sub = await self.wrapped.subscribe(pattern, **options)
        return InstrumentedSubscription(sub, self.kind)

    async def close(self) -> None:
        """Close the wrapped bus."""
        await self.wrapped.close()

    async def __aenter__(self) -> InstrumentedBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class InstrumentedSubscription:
    """A `Subscription` whose deliveries and drops are counted (attributes pass through)."""

    def __init__(self, sub: Any, kind: str) -> None:
        self.wrapped = sub
        """The subscription being instrumented."""
        overflow = getattr(sub.overflow, "value", str(sub.overflow))
        m = metrics()
        self._delivered = m.bus_delivered.labels(kind, overflow) if m is not None else None
        self._dropped = m.bus_dropped.labels(kind, overflow) if m is not None else None
        self._seen_dropped = 0
        t = trace_api()
        self._consumer = t.SpanKind.CONSUMER if t is not None else None
        self._dest = f"aether.{sub.pattern}"

    def __aiter__(self) -> InstrumentedSubscription:
        return self

    async def __anext__(self) -> Event:
        try:
            event: Event = await self.wrapped.__anext__()
        except BaseException:
            self._count_drops()
            raise
        self._got(event)
        return event

    def get_nowait(self) -> Event | None:
        """`Subscription.get_nowait`, counted."""
        event: Event | None = self.wrapped.get_nowait()
        if event is not None:
            self._got(event)
        return event

    def _got(self, event: Event) -> None:
        if self._delivered is not None:
            self._delivered.inc()
            self._count_drops()
        tr = live_tracer()
        if tr is not None:
            span = tr.start_span(
                "receive " + self._dest,
                kind=self._consumer,
                links=link_to(event),
                attributes=message_attributes("receive", self._dest, [event], "deliver"),
            )
            span.end()

    def _count_drops(self) -> None:
        if self._dropped is None:
            return
        now = int(self.wrapped.dropped)
        if now > self._seen_dropped:
            self._dropped.inc(now - self._seen_dropped)
            self._seen_dropped = now

    async def close(self) -> None:
        """Close the subscription (its last drops are counted)."""
        try:
            await self.wrapped.close()
        finally:
            self._count_drops()

    async def __aenter__(self) -> InstrumentedSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
