"""The shapes of processing: the processor protocol, its context, policies and status."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from aether.errors import ValidationError
from aether.event import Event

__all__ = [
    "Context",
    "ParkedEvent",
    "Policy",
    "Processor",
    "RetryPolicy",
    "SegmentStatus",
    "State",
    "processor",
    "validate_processor_name",
]

Policy = Literal["stop", "park"]
"""What happens to an event whose retries are exhausted: ``"stop"`` waits at it (the
default), ``"park"`` moves it (and the actor's later events) to the parked list."""

State = Literal["running", "stopped", "paused", "idle"]
"""A segment's state: ``running`` (a live runner owns it), ``stopped`` (halted at a failed
event, `SegmentStatus.stopped_at`), ``paused`` (its owner stopped heartbeating: frozen,
cut off or crashed; a new owner will claim it), ``idle`` (nobody runs it)."""

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_processor_name(name: object, field: str = "name") -> str:
    """Return `name` if it is 1-64 characters of ``A-Z a-z 0-9 _ -``, else raise."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValidationError(field, "a processor name must be 1-64 characters of A-Z a-z 0-9 _ -")
    return name


@runtime_checkable
class Processor(Protocol):
    """The user's code run durably over events: any object with a `name` and `handle`.

    An optional ``event_types`` attribute (a collection of event types, or None for all)
    selects the events `handle` is called for; the others are passed over.
    `handle` may be called again for the same event (at-least-once): use
    ``ctx.position`` to be idempotent, or ``ctx.append`` / `SQLiteProjection` for
    exactly-once effects.
    """

    name: str

    async def handle(self, event: Event, ctx: Context) -> None:
        """Process one event; raise to fail it (it is retried, then the policy applies)."""
        ...


Handler = Callable[[Event, "Context"], Awaitable[None]]


@dataclass(slots=True)
class _FunctionProcessor:
    name: str
    fn: Handler
    event_types: frozenset[str] | None

    async def handle(self, event: Event, ctx: Context) -> None:
        await self.fn(event, ctx)


def processor(
    name: str, handle: Handler, *, event_types: Collection[str] | None = None
) -> Processor:
    """A processor named `name` calling the async function ``handle(event, ctx)``."""
    validate_processor_name(name)
    if not callable(handle):
        raise ValidationError("handle", "must be an async function (event, ctx) -> None")
    return _FunctionProcessor(name, handle, _event_types(event_types))


def _event_types(value: object, field: str = "event_types") -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Collection):
        raise ValidationError(field, "must be a collection of event types or None")
    if not all(isinstance(t, str) and t for t in value):
        raise ValidationError(field, "event types must be non-empty strings")
    return frozenset(value)


@dataclass(slots=True)
class Context:
    """What `Processor.handle` gets besides the event.

    `position` is the event's global position (stable: use it for idempotency),
    `attempt` counts from 1 for this delivery, `shard` is the cluster shard (None when
    the processor runs over all slices), `segment` names the checkpoint (``"all"`` or
    the shard number), `redelivered_parked` is True when a parked event is retried.
    """

    event: Event
    position: int
    attempt: int = 1
    shard: int | None = None
    segment: str = "all"
    processor: str = ""
    redelivered_parked: bool = False
    _outputs: list[Event] = field(default_factory=list, repr=False)

    def append(self, *events: Event) -> None:
        """Append `events` when this event's handling commits: in ONE unit of work with
        the processor's checkpoint, so they exist exactly once however often the event
        is handled (a failed or repeated attempt's outputs are discarded). Each actor's
        events need consecutive versions from its latest + 1 (a conflict fails the
        attempt, which is retried)."""
        for i, e in enumerate(events):
            if not isinstance(e, Event):
                raise ValidationError(f"events[{i}]", "must be an Event")
        self._outputs.extend(events)

    @property
    def outputs(self) -> tuple[Event, ...]:
        """The events appended so far in this attempt."""
        return tuple(self._outputs)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of a failing handler: up to `attempts` calls in all, waiting
    ``min(max, base * 2**(n-1))`` seconds after the n-th failure."""

    attempts: int = 5
    base: float = 0.1
    max: float = 5.0

    def __post_init__(self) -> None:
        if type(self.attempts) is not int or not 1 <= self.attempts <= 1000:
            raise ValidationError("retry.attempts", "must be an integer from 1 to 1000")
        for name in ("base", "max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 3600:
                raise ValidationError(f"retry.{name}", "must be a number of seconds 0-3600")
        if self.max < self.base:
            raise ValidationError("retry.max", "must be at least retry.base")

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th failed attempt."""
        return float(min(self.max, self.base * 2 ** max(0, failures - 1)))


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event that failed all its retries under the ``park`` policy (or that waits
    behind an earlier parked event of the same actor: `attempts` 0)."""

    processor: str
    segment: str
    position: int
    actor_id: str
    version: int
    event_type: str
    error: str
    attempts: int
    parked_at: datetime
    retry_requested: bool = False


@dataclass(frozen=True, slots=True)
class SegmentStatus:
    """One processor's checkpoint over one segment (a shard, or ``"all"``).

    `checkpoint` is the position processed through (every event of the segment at or
    before it is handled, parked or skipped); `head` the namespace's last position;
    `lag_events` is ``head - checkpoint`` (an upper bound on the events to process: the
    positions of other shards count too); `lag_seconds` is the age of the oldest
    unprocessed event, 0 when caught up, None when unknown. `stopped_at` is the
    position of the failed event a ``stopped`` segment waits at.
    """

    processor: str
    segment: str
    shard: int | None
    state: State
    owner: str | None
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float | None
    parked: int
    last_error: str | None
    stopped_at: int | None

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict of the fields."""
        return {
            "processor": self.processor,
            "segment": self.segment,
            "shard": self.shard,
            "state": self.state,
            "owner": self.owner,
            "checkpoint": self.checkpoint,
            "head": self.head,
            "lag_events": self.lag_events,
            "lag_seconds": self.lag_seconds,
            "parked": self.parked,
            "last_error": self.last_error,
            "stopped_at": self.stopped_at,
        }
