"""Metrics (Prometheus), tracing (OpenTelemetry) and structured logs for aether.

Optional: ``pip install 'aether[metrics]'`` (prometheus-client) and/or
``'aether[tracing]'`` (opentelemetry-api; configure an SDK to record). Without them every
instrument is a no-op: `instrument_store` and `instrument_bus` return what they are
given, the collectors register nothing. ``import aether`` never imports this package.

- `instrument_store(store)`, `instrument_bus(bus)`: wrappers with the same protocol.
- `instrument_node(node)`: cluster gauges read at scrape time, hand-overs counted.
- `register_processor_stats(source)`: processor gauges/counters from a
  `ProcessorStatsSource`; `process_span(event, name)` around each handler call.
- `serve_metrics("127.0.0.1:9464")`, `registry()`; `observe_node(...)` for nodes.
- `JsonLogFormatter`, `configure_logging(json=True)`.

The metric table and the trace context format: docs/observability.md.
"""

from __future__ import annotations

from aether.observability._metrics import metrics as _metrics
from aether.observability._tracing import (
    TRACEPARENT_KEY,
    format_traceparent,
    parse_traceparent,
    trace_api,
)
from aether.observability.auto import instrument_factories
from aether.observability.bus import InstrumentedBus, InstrumentedSubscription, instrument_bus
from aether.observability.cluster import NodeInstrumentation, instrument_node
from aether.observability.logs import (
    LOGGERS,
    JsonLogFormatter,
    NodeContextFilter,
    configure_logging,
)
from aether.observability.node import NodeObservability, StoreHead, observe_node
from aether.observability.processors import (
    ProcessorStats,
    ProcessorStatsRecord,
    ProcessorStatsRegistration,
    ProcessorStatsSource,
    process_span,
    register_processor_stats,
)
from aether.observability.serve import MetricsServer, registry, serve_metrics
from aether.observability.store import InstrumentedStore, instrument_store


def metrics_available() -> bool:
    """Whether `prometheus-client` is installed (metrics are recorded)."""
    return _metrics() is not None


def tracing_available() -> bool:
    """Whether `opentelemetry-api` is installed (spans go to the configured SDK)."""
    return trace_api() is not None


__all__ = [
    "LOGGERS",
    "TRACEPARENT_KEY",
    "InstrumentedBus",
    "InstrumentedStore",
    "InstrumentedSubscription",
    "JsonLogFormatter",
    "MetricsServer",
    "NodeContextFilter",
    "NodeInstrumentation",
    "NodeObservability",
    "ProcessorStats",
    "ProcessorStatsRecord",
    "ProcessorStatsRegistration",
    "ProcessorStatsSource",
    "StoreHead",
    "configure_logging",
    "format_traceparent",
    "instrument_bus",
    "instrument_factories",
    "instrument_node",
    "instrument_store",
    "metrics_available",
    "observe_node",
    "parse_traceparent",
    "process_span",
    "register_processor_stats",
    "registry",
    "serve_metrics",
    "tracing_available",
]
