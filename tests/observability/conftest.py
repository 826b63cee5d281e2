"""One OTel SDK tracer provider with an in-memory exporter for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_EXPORTER: Any = None


def _exporter() -> Any:
    global _EXPORTER
    if _EXPORTER is None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        _EXPORTER = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    return _EXPORTER


_exporter()  # before any test instruments anything: the SDK is there from the start


@pytest.fixture
def spans() -> Iterator[Any]:
    """The in-memory span exporter (cleared before and after the test)."""
    exporter = _exporter()
    exporter.clear()
    yield exporter
    exporter.clear()
