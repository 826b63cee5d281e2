"""`ProcessorHost`: runs processors on the shards a `ClusterNode` owns (or over all)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aether.errors import AetherError, ValidationError
from aether.observability.processors import ProcessorStatsRecord
from aether.store.base import EventStore

from ._runner import ProcessorRunner
from ._types import Policy, Processor, RetryPolicy, SegmentStatus, validate_processor_name

if TYPE_CHECKING:
    from aether.cluster.node import ClusterNode

log = logging.getLogger("aether.processing")

Key = tuple[str, str]


class ProcessorHost:
    """Runs every processor of `processors` on `node`'s shards, or over all slices
    (segment ``"all"``) without a node.

    With a node it is a `ShardListener` (``ClusterNode(processors=[...])`` registers
    one): ``on_acquired`` claims and starts the processors' segments of the new shards
    (in parallel), ``on_released`` stops them gracefully (the event in flight finishes
    and the checkpoint is persisted before the node hands the shard over). Shards that
    did not move are not touched. A segment whose runner ends unexpectedly (a watch
    failure, a claim that could not be made while NATS was away) is restarted; one that
    was fenced is not (its shard moved). `runner_options` go to every `ProcessorRunner`.
    """

    def __init__(
        self,
        store: EventStore | None,
        processors: Iterable[Processor],
        *,
        node: ClusterNode | None = None,
        retry: RetryPolicy = RetryPolicy(),
        on_failure: Policy = "stop",
        **runner_options: Any,
    ) -> None:
        if isinstance(processors, str | bytes) or not isinstance(processors, Iterable):
            raise ValidationError("processors", "must be a collection of processors")
        procs = list(processors)
        names: set[str] = set()
        for i, p in enumerate(procs):
            name = validate_processor_name(getattr(p, "name", None), f"processors[{i}].name")
            if name in names:
                raise ValidationError(f"processors[{i}].name", f"{name!r} is used twice")
            names.add(name)
            if not callable(getattr(p, "handle", None)):
                raise ValidationError(f"processors[{i}].handle", "must be an async method")
        if store is None and node is None:
            raise ValidationError("store", "is required without a node")
        if on_failure not in ("stop", "park"):
            raise ValidationError("on_failure", "must be 'stop' or 'park'")
        if not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", "must be an aether.processing.RetryPolicy")
        self.store = store
        self.processors = procs
        self.node = node
        self.retry = retry
        self.on_failure: Policy = on_failure
        self.runner_options = runner_options
        self._runners: dict[Key, ProcessorRunner] = {}
        self._owned: set[int] = set()
        self._supervisors: dict[Key, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self._started = False
        self._stopped = False

    @property
    def runners(self) -> dict[Key, ProcessorRunner]:
        """The live runners by (processor name, segment)."""
        return dict(self._runners)

    async def start(self) -> None:
        """Start: without a node, one runner per processor over all slices; with a node,
        segments start as shards are acquired."""
        if self._started:
            return
        self._started = True
        if self.node is None:
            async with self._lock:
                await asyncio.gather(*(self._launch(p, None) for p in self.processors))

    async def stop(self) -> None:
        """Stop every runner gracefully (in parallel)."""
        self._stopped = True
        async with self._lock:
            for task in self._supervisors.values():
                task.cancel()
            self._supervisors.clear()
            runners = list(self._runners.values())
            self._runners.clear()
            self._owned.clear()
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)

    async def abort(self) -> None:
        """Cancel every runner without committing anything (a crash, for tests)."""
        self._stopped = True
        for task in self._supervisors.values():
            task.cancel()
        self._supervisors.clear()
        runners = list(self._runners.values())
        self._runners.clear()
        await asyncio.gather(*(r.abort() for r in runners), return_exceptions=True)

    async def on_acquired(self, shards: frozenset[int]) -> None:
        """Claim and start the processors' segments of `shards` (in parallel)."""
        if self.node is None or self._stopped:
            return
        async with self._lock:
            self._owned |= set(shards)
            await asyncio.gather(
                *(self._launch(p, s) for s in sorted(shards) for p in self.processors)
            )

    async def on_released(self, shards: frozenset[int]) -> None:
        """Stop the processors' segments of `shards`: finish the event in flight and
        persist the checkpoint, then return (the node hands the shards over after)."""
        async with self._lock:
            self._owned -= set(shards)
            segments = {str(s) for s in shards}
            keys = [k for k in self._runners if k[1] in segments]
            for k in list(self._supervisors):
                if k[1] in segments:
                    self._supervisors.pop(k).cancel()
            runners = [self._runners.pop(k) for k in keys]
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)

    def statuses(self) -> list[SegmentStatus]:
        """The status of every segment this host runs now (no I/O)."""
        return [self._runners[k].status() for k in sorted(self._runners, key=_order)]

    def processor_stats(self) -> list[ProcessorStatsRecord]:
        """Stats of every segment this host runs now."""
        out: list[ProcessorStatsRecord] = []
        for k in sorted(self._runners, key=_order):
            out.extend(self._runners[k].processor_stats())
        return out

    # --- internals ----------------------------------------------------------------------

    def _runner(self, p: Processor, shard: int | None) -> ProcessorRunner:
        assert self.store is not None
        node = self.node
        if shard is None or node is None:
            return ProcessorRunner(
                self.store,
                p,
                retry=self.retry,
                on_failure=self.on_failure,
                owner=node.node_id if node is not None else None,
                **self.runner_options,
            )
        from aether.cluster.hashing import slices_of_shard

        m = node.shard_map
        return ProcessorRunner(
            self.store,
            p,
            slices=slices_of_shard(shard, node.shard_count),
            segment=str(shard),
            shard=shard,
            shard_count=node.shard_count,
            owner=node.node_id,
            epoch=m.epoch if m is not None else None,
            retry=self.retry,
            on_failure=self.on_failure,
            **self.runner_options,
        )

    async def _launch(self, p: Processor, shard: int | None) -> None:
        key = (p.name, "all" if shard is None else str(shard))
        if key in self._runners:
            return
        runner = self._runner(p, shard)
        self._runners[key] = runner
        try:
            await runner.start()
        except AetherError as e:
            log.warning("processor %s segment %s could not start: %s", key[0], key[1], e)
        self._supervisors[key] = asyncio.create_task(
            self._supervise(key, p, shard), name=f"aether-proc-supervisor-{key[0]}-{key[1]}"
        )

    async def _supervise(self, key: Key, p: Processor, shard: int | None) -> None:
        """Restart a runner that ended by itself (not fenced, not released)."""
        delay = 0.2
        while not self._stopped:
            runner = self._runners.get(key)
            if runner is None:
                return
            task = runner._task
            if task is not None:
                try:
                    await asyncio.shield(task)
                except BaseException:
                    # The shield turns our own cancellation into an exception here
                    # too: swallowing it would restart runners after close.
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
            if self._stopped or self._runners.get(key) is not runner or runner._stopping:
                return
            if runner.fenced:
                log.warning("processor %s segment %s was fenced; not restarting", *key)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            if self._stopped or self._runners.get(key) is not runner:
                return
            if shard is not None and shard not in self._owned:
                return
            fresh = self._runner(p, shard)
            self._runners[key] = fresh
            try:
                await fresh.start()
                delay = 0.2
            except AetherError as e:
                log.info("processor %s segment %s restart failed: %s", key[0], key[1], e)


def _order(key: Key) -> tuple[str, int, str]:
    name, segment = key
    return (name, int(segment), "") if segment.isdigit() else (name, -1, segment)
