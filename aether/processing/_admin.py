"""Operating processors from their durable state (what `aether processors` calls)."""

from __future__ import annotations

from typing import Any

from aether.store.base import EventStore

from ._types import ParkedEvent, SegmentStatus


async def processor_status(store: EventStore, name: str | None = None) -> list[SegmentStatus]:
    """Every segment of processor `name` (None: of every processor), from durable state."""
    raise NotImplementedError


async def reset(store: EventStore, name: str, *, to_position: int, force: bool = False) -> None:
    """Move every segment of `name` to `to_position` (0: the start)."""
    raise NotImplementedError


async def list_parked(store: EventStore, name: str) -> list[ParkedEvent]:
    """`name`'s parked events, in position order."""
    raise NotImplementedError


async def retry_parked(store: EventStore, name: str, position: int | None = None) -> int:
    """Ask for parked events to be retried (all, or the one at `position`)."""
    raise NotImplementedError


async def skip_parked(store: EventStore, name: str, position: int) -> None:
    """Drop the parked event at `position` (or skip the event a stopped segment waits at)."""
    raise NotImplementedError


async def wait_for(
    target: Any,
    name: str,
    position: int,
    *,
    timeout: float,  # noqa: ASYNC109 (the documented API; bounded internally)
    actor_id: str | None = None,
) -> None:
    """Return once processor `name` processed through `position`."""
    raise NotImplementedError
