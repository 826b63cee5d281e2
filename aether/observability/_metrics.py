"""aether's Prometheus metrics: created on first use in aether's own registry.

`metrics()` is None when `prometheus-client` is not installed: every instrument then is
a no-op. Nothing here is imported by ``import aether``.
"""

from __future__ import annotations

import threading
from typing import Any

APPEND_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Histogram buckets (seconds) of the append, publish and handler durations."""

OUTCOMES = ("ok", "conflict", "timeout", "error")
"""The values of the ``outcome`` label of ``aether_append_duration_seconds``."""


class AppendStats:
    """Append figures of one store kind, kept in plain numbers (no lock on the hot path)
    and turned into ``aether_append_duration_seconds`` and
    ``aether_appended_events_total`` at scrape time.

    Written from the event loop's thread, read by the scrape thread: a scrape may see an
    observation in the count a moment before it is in the sum, never a lost one when
    one thread writes (several event loops in threads writing one kind could, rarely,
    lose an increment).
    """

    __slots__ = ("appended", "buckets", "sums")

    def __init__(self) -> None:
        self.buckets = {o: [0] * (len(APPEND_BUCKETS) + 1) for o in OUTCOMES}
        """Per outcome, observations per bucket (not cumulative; the last is +Inf)."""
        self.sums = dict.fromkeys(OUTCOMES, 0.0)
        """Per outcome, the sum of the durations."""
        self.appended = 0
        """Events appended."""


class _AppendCollector:
    def __init__(self, pc: Any) -> None:
        self.pc = pc
        self.kinds: dict[str, AppendStats] = {}

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        hist = HistogramMetricFamily(
            "aether_append_duration_seconds",
            "Duration of a store append (one save_event or save_events unit), by outcome.",
            labels=["store", "outcome"],
        )
        appended = CounterMetricFamily(
            "aether_appended_events",
            "Events appended to the store (units that succeeded).",
            labels=["store"],
        )
        les = [repr(float(b)) for b in APPEND_BUCKETS] + ["+Inf"]
        for kind, st in list(self.kinds.items()):
            for o in OUTCOMES:
                counts = list(st.buckets[o])
                cum, acc = [], 0
                for le, c in zip(les, counts, strict=True):
                    acc += c
                    cum.append((le, acc))
                hist.add_metric([kind, o], cum, st.sums[o])
            appended.add_metric([kind], st.appended)
        yield hist
        yield appended


class Metrics:
    """The metric objects of one registry (one per process)."""

    def __init__(self, pc: Any) -> None:
        self.pc = pc
        r = pc.CollectorRegistry(auto_describe=True)
        self.registry = r
        pc.ProcessCollector(registry=r)
        pc.PlatformCollector(registry=r)
        self._appends = _AppendCollector(pc)
        r.register(self._appends)
        self.replayed = pc.Counter(
            "aether_replayed_events",
            "Events read back from the store, by kind of read (actor, all, watch).",
            ["store", "read"],
            registry=r,
        )
        self.bus_published = pc.Counter(
            "aether_bus_published_events", "Events published on the bus.", ["bus"], registry=r
        )
        self.bus_publish_duration = pc.Histogram(
            "aether_bus_publish_duration_seconds",
            "Duration of a bus publish.",
            ["bus"],
            registry=r,
            buckets=APPEND_BUCKETS,
        )
        self.bus_delivered = pc.Counter(
            "aether_bus_delivered_events",
            "Events handed to bus subscribers, by the subscription's overflow policy.",
            ["bus", "overflow"],
            registry=r,
        )
        self.bus_dropped = pc.Counter(
            "aether_bus_dropped_events",
            "Events dropped by bus subscriptions, by overflow policy.",
            ["bus", "overflow"],
            registry=r,
        )
        self.shard_acquired = pc.Counter(
            "aether_cluster_shards_acquired",
            "Shards this node took over (hand-overs in).",
            ["namespace", "node"],
            registry=r,
        )
        self.shard_released = pc.Counter(
            "aether_cluster_shards_released",
            "Shards this node handed over (hand-overs out).",
            ["namespace", "node"],
            registry=r,
        )
        self.handler_duration = pc.Histogram(
            "aether_processor_handler_duration_seconds",
            "Duration of one processor handler call (inside process_span), by outcome.",
            ["processor", "outcome"],
            registry=r,
            buckets=APPEND_BUCKETS,
        )

    def append_stats(self, kind: str) -> AppendStats:
        """The `AppendStats` of store kind `kind` (shared by its wrappers)."""
        with _lock:
            st = self._appends.kinds.get(kind)
            if st is None:
                st = self._appends.kinds[kind] = AppendStats()
            return st


_lock = threading.RLock()
_metrics: Metrics | None = None
_checked = False


def metrics() -> Metrics | None:
    """The process's metrics, or None without `prometheus-client`."""
    global _metrics, _checked
    if _checked:
        return _metrics
    with _lock:
        if not _checked:
            try:
                import prometheus_client
            except ImportError:
                prometheus_client = None  # type: ignore[assignment]
            if prometheus_client is not None:
                _metrics = Metrics(prometheus_client)
            _checked = True
    return _metrics
