"""`instrument_store`: a store wrapper recording metrics and spans, same protocol.

The wrapper records per append (``save_event`` or a ``save_events`` unit) its duration
and outcome (``ok``, ``conflict``, ``timeout``, ``error``) in
``aether_append_duration_seconds{store,outcome}``, the events appended in
``aether_appended_events_total{store}``, and events read back in
``aether_replayed_events_total{store,read}``. With tracing on, an append opens a
``send`` span (kind PRODUCER) whose W3C context it writes into each event's metadata as
``traceparent`` (unless the event already has one); reads open ``receive`` spans.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left as _bucket
from collections.abc import AsyncIterator, Sequence
from time import perf_counter as _now
from typing import Any

from aether.errors import OutcomeUnknownError, TrackingConflictError, VersionConflictError
from aether.event import Event
from aether.observability._metrics import APPEND_BUCKETS, metrics
from aether.observability._tracing import (
    TRACEPARENT_KEY,
    format_traceparent,
    live_tracer,
    message_attributes,
    trace_api,
)

_BOUNDS = APPEND_BUCKETS
_FLUSH = 256  # replayed events are added to the counter in steps of this many
_KINDS = {
    "InMemoryEventStore": "memory",
    "SQLiteEventStore": "sqlite",
    "JetStreamEventStore": "jetstream",
}


def store_kind(store: object) -> str:
    """The ``store`` label of `store`: memory, sqlite, jetstream, or its class name."""
    name = type(store).__name__
    return _KINDS.get(name, name.lower())


def outcome_of(exc: BaseException) -> str:
    """The ``outcome`` label of an append that raised `exc`."""
    if isinstance(exc, VersionConflictError | TrackingConflictError):
        return "conflict"
    if isinstance(exc, OutcomeUnknownError | TimeoutError):
        return "timeout"
    return "error"


def instrument_store(store: Any, *, kind: str | None = None, namespace: str | None = None) -> Any:
    """`store` wrapped to record metrics and spans; `store` itself when neither
    `prometheus-client` nor `opentelemetry-api` is installed (a no-op costs nothing).

    `kind` is the ``store`` label (default: memory, sqlite or jetstream from the class);
    `namespace` names the span destination (default: the store's ``namespace``
    attribute, else ``default``). The wrapper implements the same protocol as `store`
    (`aether.store.EventStore` and `SnapshotStore`) and is an async context manager;
    other attributes are the wrapped store's.
    """
    if isinstance(store, InstrumentedStore):
        return store
    if metrics() is None and trace_api() is None:
        return store
    return InstrumentedStore(store, kind=kind, namespace=namespace)


class InstrumentedStore:
    """The wrapper `instrument_store` returns (see there)."""

    def __init__(self, store: Any, *, kind: str | None = None, namespace: str | None = None):
        self.wrapped = store
        """The store being instrumented."""
        self.kind = kind or store_kind(store)
        """The ``store`` label."""
        ns = namespace or getattr(store, "namespace", None)
        self.destination = f"aether.{ns if isinstance(ns, str) else 'default'}.events"
        """The ``messaging.destination.name`` of its spans."""
        m = metrics()
        self._m = m
        if m is not None:
            self._stats = m.append_stats(self.kind)
            self._ok = self._stats.buckets["ok"]
            self._replayed = {r: m.replayed.labels(self.kind, r) for r in ("actor", "all", "watch")}
        t = trace_api()
        self._producer = t.SpanKind.PRODUCER if t is not None else None
        self._consumer = t.SpanKind.CONSUMER if t is not None else None

    # --- appends ------------------------------------------------------------------------

    @property
    def max_batch(self) -> int:
        """The wrapped store's `max_batch`."""
        return int(self.wrapped.max_batch)

    async def save_event(self, event: Event) -> Event:
        """`EventStore.save_event`, measured (and traced, with ``traceparent`` injected)."""
        if live_tracer() is not None:
            [stored] = await self._append([event], None, single=True)
            return stored
        # the hot path without spans: time it, count it, nothing else
        start = _now()
        try:
            saved: Event = await self.wrapped.save_event(event)
        except Exception as e:
            self._failed(start, None, e)
            raise
        if self._m is not None:
            d = _now() - start
            self._ok[_bucket(_BOUNDS, d)] += 1
            st = self._stats
            st.sums["ok"] += d
            st.appended += 1
        return saved

    async def save_events(self, events: Sequence[Event], *, tracking: Any = None) -> list[Event]:
        """`EventStore.save_events`, measured (and traced, with ``traceparent`` injected)."""
        return await self._append(events, tracking, single=False)

    async def _append(self, events: Sequence[Event], tracking: Any, *, single: bool) -> list[Event]:
        inner = self.wrapped
        span = None
        sent = events
        injected = False
        tr = live_tracer()
        if tr is not None and _is_unit(events):
            span = tr.start_span(
                "send " + self.destination,
                kind=self._producer,
                attributes=message_attributes("send", self.destination, events, "append"),
            )
            tp = format_traceparent(span.get_span_context())
            if tp is not None:
                sent, injected = _inject(events, tp)
        start = _now()
        try:
            if single:
                stored = [await inner.save_event(sent[0])]
            elif tracking is not None:
                stored = await inner.save_events(sent, tracking=tracking)
            else:
                stored = await inner.save_events(sent)
        except VersionConflictError as e:
            again = await self._resaved(events, e) if injected and tracking is None else None
            if again is None:
                self._failed(start, span, e)
                raise
            stored = again
        except Exception as e:
            self._failed(start, span, e)
            raise
        except BaseException:  # cancelled: the caller's decision, not an outcome
            if span is not None:
                span.end()
            raise
        if self._m is not None:
            d = _now() - start
            st = self._stats
            self._ok[_bucket(_BOUNDS, d)] += 1
            st.sums["ok"] += d
            st.appended += len(stored)
        if span is not None:
            if stored and stored[-1].position is not None:
                span.set_attribute("aether.position", stored[-1].position)
            span.end()
        return list(stored)

    def _failed(self, start: float, span: Any, exc: BaseException) -> None:
        outcome = outcome_of(exc)
        if self._m is not None:
            d = _now() - start
            self._stats.buckets[outcome][_bucket(_BOUNDS, d)] += 1
            self._stats.sums[outcome] += d
        if span is not None:
            t = trace_api()
            span.set_attribute("error.type", type(exc).__name__)
            span.set_attribute("aether.outcome", outcome)
            span.record_exception(exc)
            span.set_status(t.Status(t.StatusCode.ERROR, str(exc)))
            span.end()

    async def _resaved(
        self, events: Sequence[Event], exc: VersionConflictError
    ) -> list[Event] | None:
        """The stored events when `events` were stored earlier (a retried save): the
        ``traceparent`` written then differs from the one written now, and the store
        would see a conflict where the protocol promises an idempotent success."""
        try:
            stored: list[Event] = []
            by_actor: dict[str, list[Event]] = {}
            for e in events:
                if e.actor_id not in by_actor:
                    first = e.version
                    by_actor[e.actor_id] = await self.wrapped.get_events(e.actor_id, first)
            for e in events:
                found = next((s for s in by_actor[e.actor_id] if s.version == e.version), None)
                if found is None or not _same_but_trace(found, e):
                    return None
                stored.append(found)
            return stored
        except Exception:
            return None

    # --- reads --------------------------------------------------------------------------

    async def get_events(self, actor_id: str, from_version: int = 0) -> list[Event]:
        """`EventStore.get_events`, counted as replayed (``read="actor"``)."""
        span = self._read_span("get_events")
        try:
            events: list[Event] = await self.wrapped.get_events(actor_id, from_version)
        except BaseException as e:
            _end_failed(span, e)
            raise
        if self._m is not None and events:
            self._replayed["actor"].inc(len(events))
        if span is not None:
            span.set_attribute("messaging.batch.message_count", len(events))
            span.end()
        return events

    def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        """`EventStore.iter_events`, counted as replayed (``read="actor"``)."""
        it = self.wrapped.iter_events(actor_id, from_version, to_version)
        return self._counted(it, "actor", self._read_span("iter_events"))

    def read_all(self, from_position: int = 0, *, slices: Any = None) -> AsyncIterator[Event]:
        """`EventStore.read_all`, counted as replayed (``read="all"``)."""
        if slices is None:
            it = self.wrapped.read_all(from_position)
        else:
            it = self.wrapped.read_all(from_position, slices=slices)
        return self._counted(it, "all", self._read_span("read_all"))

    def watch(
        self, from_position: int | None = None, *, slices: Any = None
    ) -> AsyncIterator[Event]:
        """`EventStore.watch` (its start fixed when this returns), counted as
        ``read="watch"``; no span (a watch does not end)."""
        if slices is None:
            it = self.wrapped.watch(from_position)
        else:
            it = self.wrapped.watch(from_position, slices=slices)
        return self._counted(it, "watch", None, flush=1)

    def _read_span(self, name: str) -> Any:
        tr = live_tracer()
        if tr is None:
            return None
        return tr.start_span(
            "receive " + self.destination,
            kind=self._consumer,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": self.destination,
                "messaging.operation.type": "receive",
                "messaging.operation.name": name,
            },
        )

    async def _counted(
        self, it: AsyncIterator[Event], read: str, span: Any, flush: int = _FLUSH
    ) -> AsyncIterator[Event]:
        counter = self._replayed[read] if self._m is not None else None
        pending = total = 0
        try:
            async for e in it:
                pending += 1
                if pending >= flush:
                    if counter is not None:
                        counter.inc(pending)
                    total += pending
                    pending = 0
                yield e
        except BaseException as e:
            _end_failed(span, e)
            span = None
            raise
        finally:
            if counter is not None and pending:
                counter.inc(pending)
            total += pending
            closer = getattr(it, "aclose", None)
            if closer is not None:
                await closer()
            if span is not None:
                span.set_attribute("messaging.batch.message_count", total)
                span.end()

    # --- everything else: the wrapped store's -------------------------------------------

    async def get_tracking(self, key: str) -> Any:
        """`EventStore.get_tracking` of the wrapped store."""
        return await self.wrapped.get_tracking(key)

    async def get_latest_version(self, actor_id: str) -> int:
        """`EventStore.get_latest_version` of the wrapped store."""
        return int(await self.wrapped.get_latest_version(actor_id))

    async def last_position(self) -> int:
        """`EventStore.last_position` of the wrapped store."""
        return int(await self.wrapped.last_position())

    async def list_actors(self) -> dict[str, int]:
        """`EventStore.list_actors` of the wrapped store."""
        return dict(await self.wrapped.list_actors())

    async def save_snapshot(self, snapshot: Any) -> None:
        """`SnapshotStore.save_snapshot` of the wrapped store."""
        await self.wrapped.save_snapshot(snapshot)

    async def get_latest_snapshot(self, actor_id: str) -> Any:
        """`SnapshotStore.get_latest_snapshot` of the wrapped store."""
        return await self.wrapped.get_latest_snapshot(actor_id)

    async def close(self) -> None:
        """Close the wrapped store."""
        await self.wrapped.close()

    async def __aenter__(self) -> InstrumentedStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"instrumented({self.wrapped!r})"


def _is_unit(events: object) -> bool:
    return isinstance(events, list | tuple) and all(type(e) is Event for e in events)


def _inject(events: Sequence[Event], traceparent: str) -> tuple[list[Event], bool]:
    out: list[Event] = []
    injected = False
    for e in events:
        if TRACEPARENT_KEY in e.metadata:
            out.append(e)
        else:
            md = dict(e.metadata)
            md[TRACEPARENT_KEY] = traceparent
            out.append(dataclasses.replace(e, metadata=md))
            injected = True
    return out, injected


def _same_but_trace(stored: Event, event: Event) -> bool:
    from aether.store.base import same_event

    if TRACEPARENT_KEY in stored.metadata and TRACEPARENT_KEY not in event.metadata:
        md = {k: v for k, v in stored.metadata.items() if k != TRACEPARENT_KEY}
        stored = dataclasses.replace(stored, metadata=md)
    return same_event(stored, event)


def _end_failed(span: Any, exc: BaseException) -> None:
    if span is None:
        return
    if isinstance(exc, Exception):
        t = trace_api()
        span.set_attribute("error.type", type(exc).__name__)
        span.record_exception(exc)
        span.set_status(t.Status(t.StatusCode.ERROR, str(exc)))
    span.end()
