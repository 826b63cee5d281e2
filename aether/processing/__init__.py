"""Processors: the user's code run durably over a namespace's events."""

from __future__ import annotations

from ._admin import list_parked, processor_status, reset, retry_parked, skip_parked, wait_for
from ._host import ProcessorHost
from ._runner import ProcessorRunner
from ._sqlite import SQLiteProjection
from ._types import (
    Context,
    ParkedEvent,
    Policy,
    Processor,
    RetryPolicy,
    SegmentStatus,
    State,
    processor,
    validate_processor_name,
)

__all__ = [
    "Context",
    "ParkedEvent",
    "Policy",
    "Processor",
    "ProcessorHost",
    "ProcessorRunner",
    "RetryPolicy",
    "SQLiteProjection",
    "SegmentStatus",
    "State",
    "list_parked",
    "processor",
    "processor_status",
    "reset",
    "retry_parked",
    "skip_parked",
    "validate_processor_name",
    "wait_for",
]
