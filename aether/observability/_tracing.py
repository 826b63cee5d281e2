"""OpenTelemetry helpers: the tracer, W3C ``traceparent`` encoding, span attributes.

`tracer()` is None when `opentelemetry-api` is not installed. Without an SDK configured
the API's tracer makes non-recording spans, whose context is invalid: nothing is then
injected into events.
"""

from __future__ import annotations

import re
from time import monotonic as _monotonic
from typing import Any

TRACEPARENT_KEY = "traceparent"
"""The event metadata key carrying the W3C trace context of the event's append."""

_TP_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$")

_trace: Any = None
_checked = False


def trace_api() -> Any:
    """The ``opentelemetry.trace`` module, or None when it is not installed."""
    global _trace, _checked
    if not _checked:
        try:
            from opentelemetry import trace
        except ImportError:
            trace = None  # type: ignore[assignment]
        _trace = trace
        _checked = True
    return _trace


def tracer() -> Any:
    """aether's tracer (instrumentation scope ``aether``), or None without the API."""
    t = trace_api()
    if t is None:
        return None
    from aether import __version__

    return t.get_tracer("aether", __version__)


_live: Any = None
_next_check = 0.0

RECHECK_SECONDS = 1.0
"""How long "no SDK configured" is believed before the tracer provider is looked at again."""


def live_tracer() -> Any:
    """aether's tracer once an SDK (a real tracer provider) is configured, else None.

    Until then spans would be non-recording: skipping them keeps the hot path cheap.
    A global tracer provider is set at most once, so a yes is cached for good; a no is
    looked at again after `RECHECK_SECONDS` (an SDK configured later is picked up).
    """
    global _live, _next_check
    if _live is not None:
        return _live
    now = _monotonic()
    if now < _next_check:
        return None
    _next_check = now + RECHECK_SECONDS
    t = trace_api()
    if t is None:
        _next_check = float("inf")
        return None
    provider = t.get_tracer_provider()
    if isinstance(provider, t.ProxyTracerProvider | t.NoOpTracerProvider):
        return None
    _live = tracer()
    return _live


def format_traceparent(span_context: Any) -> str | None:
    """The W3C ``traceparent`` of `span_context`, or None when it is not valid."""
    if span_context is None or not span_context.is_valid:
        return None
    flags = int(span_context.trace_flags) & 0xFF
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def parse_traceparent(value: object) -> Any:
    """A remote ``SpanContext`` from a W3C ``traceparent`` string, or None if invalid."""
    t = trace_api()
    if t is None or not isinstance(value, str):
        return None
    m = _TP_RE.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
    if trace_id == 0 or span_id == 0:
        return None
    return t.SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=t.TraceFlags(int(m.group(4), 16)),
    )


def link_to(event: Any) -> list[Any]:
    """A one-element list with a link to `event`'s append span (empty if it has none)."""
    t = trace_api()
    metadata = getattr(event, "metadata", None)
    if t is None or not metadata:
        return []
    ctx = parse_traceparent(metadata.get(TRACEPARENT_KEY))
    return [] if ctx is None else [t.Link(ctx)]


def message_attributes(
    operation_type: str, destination: str, events: Any, operation_name: str
) -> dict[str, Any]:
    """OTel messaging semantic-convention attributes of a span over `events`."""
    attrs: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": destination,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation_name,
    }
    n = len(events)
    if n == 1:
        attrs["messaging.message.id"] = events[0].id
    else:
        attrs["messaging.batch.message_count"] = n
    return attrs
