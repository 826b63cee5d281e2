"""Processor metrics: a collector reading whatever exposes processor stats, and
`process_span` for the processing of one event.

Connecting a processor runtime: give `register_processor_stats` an object with a
``processor_stats()`` method (`ProcessorStatsSource`) or a plain callable, returning an
iterable of `ProcessorStats`-like objects (any object with those attributes; the
`ProcessorStatsRecord` dataclass is one). It is called at every scrape, from the
metrics server's thread: it must be quick, must not block on I/O, and should read
values the runtime keeps up to date (plain attribute reads are thread-safe enough).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aether.observability._metrics import metrics
from aether.observability._tracing import link_to, live_tracer, message_attributes, trace_api


@runtime_checkable
class ProcessorStats(Protocol):
    """The stats of one processor on one shard (or on all, ``shard=None``)."""

    @property
    def processor(self) -> str:
        """The processor's name (a configured, bounded name: it is a label)."""
        ...

    @property
    def shard(self) -> int | None:
        """The shard these stats are for; None when the processor is not sharded."""
        ...

    @property
    def checkpoint(self) -> int:
        """The position processed through (its committed checkpoint)."""
        ...

    @property
    def lag_events(self) -> int:
        """Events of its input after the checkpoint (head position - checkpoint)."""
        ...

    @property
    def lag_seconds(self) -> float | None:
        """Age of the oldest unprocessed event, 0 when caught up, None when unknown."""
        ...

    @property
    def handled(self) -> int:
        """Events handled since the process started (a counter)."""
        ...

    @property
    def retried(self) -> int:
        """Handler retries since the process started (a counter)."""
        ...

    @property
    def parked(self) -> int:
        """Events parked since the process started (a counter)."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessorStatsRecord:
    """A plain `ProcessorStats` (for runtimes that build their stats on request)."""

    processor: str
    shard: int | None
    checkpoint: int
    lag_events: int
    lag_seconds: float | None = None
    handled: int = 0
    retried: int = 0
    parked: int = 0


@runtime_checkable
class ProcessorStatsSource(Protocol):
    """Anything with processor stats: a processor runtime, a node hosting processors."""

    def processor_stats(self) -> Iterable[ProcessorStats]:
        """The current stats, one per (processor, shard)."""
        ...


StatsProvider = ProcessorStatsSource | Callable[[], Iterable[ProcessorStats]]
"""What `register_processor_stats` accepts: a `ProcessorStatsSource` or a callable."""


class ProcessorStatsRegistration:
    """What `register_processor_stats` returns; `close()` stops reporting."""

    def __init__(self, collector: Any) -> None:
        self._collector = collector

    def close(self) -> None:
        """Remove the collector from the registry."""
        m = metrics()
        if m is not None and self._collector is not None:
            with contextlib.suppress(KeyError):
                m.registry.unregister(self._collector)
            self._collector = None


def register_processor_stats(source: StatsProvider) -> ProcessorStatsRegistration:
    """Report `source`'s processor stats at every scrape (no-op without the extra).

    Families (labels ``processor``, ``shard``; shard ``""`` when None):
    ``aether_processor_checkpoint_position``, ``aether_processor_lag_events``,
    ``aether_processor_lag_seconds``, ``aether_processor_handled_events_total``,
    ``aether_processor_retries_total``, ``aether_processor_parked_events_total``.
    """
    if isinstance(source, ProcessorStatsSource):
        read: Callable[[], Iterable[ProcessorStats]] = source.processor_stats
    elif callable(source):
        read = source
    else:
        raise TypeError("source must have processor_stats() or be a callable")
    m = metrics()
    if m is None:
        return ProcessorStatsRegistration(None)
    collector = _ProcessorCollector(read)
    m.registry.register(collector)
    return ProcessorStatsRegistration(collector)


class _ProcessorCollector:
    def __init__(self, read: Callable[[], Iterable[ProcessorStats]]) -> None:
        self.read = read

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["processor", "shard"]
        checkpoint = GaugeMetricFamily(
            "aether_processor_checkpoint_position",
            "Position the processor committed its checkpoint at.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "aether_processor_lag_events", "Input events after the checkpoint.", labels=labels
        )
        lag_s = GaugeMetricFamily(
            "aether_processor_lag_seconds",
            "Age of the oldest unprocessed event (0 when caught up).",
            labels=labels,
        )
        handled = CounterMetricFamily(
            "aether_processor_handled_events", "Events handled.", labels=labels
        )
        retried = CounterMetricFamily("aether_processor_retries", "Handler retries.", labels=labels)
        parked = CounterMetricFamily(
            "aether_processor_parked_events", "Events parked after failing.", labels=labels
        )
        for s in self.read():
            key = [str(s.processor), "" if s.shard is None else str(s.shard)]
            checkpoint.add_metric(key, s.checkpoint)
            lag.add_metric(key, s.lag_events)
            if s.lag_seconds is not None:
                lag_s.add_metric(key, s.lag_seconds)
            handled.add_metric(key, s.handled)
            retried.add_metric(key, s.retried)
            parked.add_metric(key, s.parked)
        yield from (checkpoint, lag, lag_s, handled, retried, parked)


@contextlib.contextmanager
def process_span(
    event: Any, processor_name: str, *, destination: str | None = None
) -> Iterator[Any]:
    """Around the handling of `event` by a processor: a ``process`` span (kind CONSUMER)
    linked to the event's append span (its ``traceparent`` metadata, also from another
    process), and the handler duration in
    ``aether_processor_handler_duration_seconds{processor,outcome}``.

    Yields the span (None without tracing). An exception is recorded and re-raised.
    `destination` defaults to ``aether.<processor_name>``.
    """
    m = metrics()
    t = trace_api()
    tr = live_tracer()
    span = None
    dest = destination or f"aether.{processor_name}"
    if tr is not None:
        attrs = message_attributes("process", dest, [event], "process")
        attrs["aether.processor"] = processor_name
        position = getattr(event, "position", None)
        if position is not None:
            attrs["aether.position"] = position
        span = tr.start_span(
            "process " + dest, kind=t.SpanKind.CONSUMER, links=link_to(event), attributes=attrs
        )
    start = time.perf_counter()
    outcome = "ok"
    try:
        if span is not None:
            with t.use_span(span, end_on_exit=False, record_exception=False):
                yield span
        else:
            yield None
    except BaseException as e:
        outcome = "error" if isinstance(e, Exception) else "cancelled"
        if span is not None and isinstance(e, Exception):
            span.record_exception(e)
            span.set_attribute("error.type", type(e).__name__)
            span.set_status(t.Status(t.StatusCode.ERROR, str(e)))
        raise
    finally:
        if m is not None:
            m.handler_duration.labels(processor_name, outcome).observe(time.perf_counter() - start)
        if span is not None:
            span.end()
