"""`ProcessorHost`: runs processors on the shards a `ClusterNode` owns (or over all)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aether.observability.processors import ProcessorStatsRecord
from aether.store.base import EventStore

from ._types import Policy, Processor, RetryPolicy, SegmentStatus

if TYPE_CHECKING:
    from aether.cluster.node import ClusterNode


class ProcessorHost:
    """Runs every processor of `processors` on `node`'s shards (a `ShardListener`), or
    over all slices (segment ``"all"``) without a node."""

    def __init__(
        self,
        store: EventStore | None,
        processors: Iterable[Processor],
        *,
        node: ClusterNode | None = None,
        retry: RetryPolicy = RetryPolicy(),
        on_failure: Policy = "stop",
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Start (without a node: the runners; with one: wait for acquired shards)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop every runner gracefully."""
        raise NotImplementedError

    async def abort(self) -> None:
        """Cancel every runner without committing anything (a crash, for tests)."""
        raise NotImplementedError

    async def on_acquired(self, shards: frozenset[int]) -> None:
        """Claim and start the processors' segments of `shards`."""
        raise NotImplementedError

    async def on_released(self, shards: frozenset[int]) -> None:
        """Stop the processors' segments of `shards` (finishing and checkpointing)."""
        raise NotImplementedError

    def statuses(self) -> list[SegmentStatus]:
        """The status of every segment this host runs now."""
        raise NotImplementedError

    def processor_stats(self) -> list[ProcessorStatsRecord]:
        """Stats of every segment this host runs now."""
        raise NotImplementedError
