"""`ProcessorRunner`: one processor over one store and one slice range (a segment)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aether.observability.processors import ProcessorStatsRecord
from aether.store.base import EventStore
from aether.subjects import Slices

from ._types import Policy, Processor, RetryPolicy, SegmentStatus


class ProcessorRunner:
    """Runs `processor` over `store`'s events of `slices` (None: all) from its durable
    checkpoint (segment `segment`), in position order, each actor in version order."""

    def __init__(
        self,
        store: EventStore,
        processor: Processor,
        *,
        slices: Slices | None = None,
        segment: str = "all",
        retry: RetryPolicy = RetryPolicy(),
        on_failure: Policy = "stop",
        fence: Callable[[], Awaitable[None]] | None = None,
        shard: int | None = None,
        shard_count: int | None = None,
        owner: str | None = None,
        epoch: int | None = None,
        batch_events: int = 100,
        batch_interval: float = 0.2,
        idle_interval: float = 0.25,
        keepalive: float = 2.0,
        max_parked: int = 500,
        stop_timeout: float = 30.0,
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Claim the segment and start processing from its checkpoint."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop taking events, finish the one in flight, persist the checkpoint."""
        raise NotImplementedError

    async def run_until(self, position: int) -> None:
        """Process through `position` (starting and then stopping the runner if it was
        not started)."""
        raise NotImplementedError

    async def drain(self) -> None:
        """Process until caught up with the store's last position at the call."""
        raise NotImplementedError

    def status(self) -> SegmentStatus:
        """The segment's status as this runner sees it (no I/O)."""
        raise NotImplementedError

    def processor_stats(self) -> list[ProcessorStatsRecord]:
        """Its stats for `aether.observability.register_processor_stats`."""
        raise NotImplementedError
