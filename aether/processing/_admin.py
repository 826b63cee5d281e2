"""Operating processors from their durable state (what `aether processors` calls).

These work on the store alone, whether or not a runner runs: they read the segment
records, and change them by compare-and-set on the record's revision. A live runner
picks a change up within about a second (retry and skip requests) or is fenced by it
(a forced reset).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aether.errors import (
    NotFoundError,
    ProcessorRunningError,
    ProcessorTimeoutError,
    TrackingConflictError,
    ValidationError,
)
from aether.store.base import EventStore, Tracking, check_nonnegative_int
from aether.subjects import SLICE_COUNT, slice_of

from ._record import Loaded, SegmentRecord, list_names, list_segments, load, segment_key
from ._types import ParkedEvent, SegmentStatus, State, validate_processor_name


async def _segments(store: EventStore, name: str, *, required: bool = True) -> list[str]:
    segments, shard_count = await list_segments(store, name)
    if shard_count:
        segments = [str(i) for i in range(shard_count)]
    if not segments and required:
        raise NotFoundError(f"no processor {name!r} has run on this store")
    return segments


def _state(rec: SegmentRecord, now: float) -> State:
    if rec.stopped_at is not None:
        return "stopped"
    if rec.claim is None:
        return "idle"
    return "running" if rec.live(now) else "paused"


def _status(name: str, segment: str, loaded: Loaded | None, head: int, now: float) -> SegmentStatus:
    rec = loaded.data if loaded is not None else SegmentRecord()
    position = loaded.position if loaded is not None else 0
    lag = max(0, head - position)
    return SegmentStatus(
        processor=name,
        segment=segment,
        shard=int(segment) if segment.isdigit() else None,
        state=_state(rec, now),
        owner=rec.owner if rec.claim is not None else None,
        checkpoint=position,
        head=head,
        lag_events=lag,
        lag_seconds=0.0 if lag == 0 else None,
        parked=len(rec.parked),
        last_error=rec.error,
        stopped_at=rec.stopped_at,
    )


async def processor_status(store: EventStore, name: str | None = None) -> list[SegmentStatus]:
    """Every segment of processor `name` (None: of every processor) from durable state,
    sorted by processor and shard. A sharded processor lists all its shards (one never
    claimed yet shows ``idle`` at 0). `NotFoundError` for a `name` that never ran."""
    if name is not None:
        validate_processor_name(name)
    names = [name] if name is not None else await list_names(store)
    head = await store.last_position()
    now = time.time()
    out: list[SegmentStatus] = []
    for n in names:
        for segment in await _segments(store, n):
            loaded = await load(store, segment_key(n, segment))
            out.append(_status(n, segment, loaded, head, now))
    return out


async def _update(
    store: EventStore,
    name: str,
    segment: str,
    change: Callable[[Loaded], tuple[int, SegmentRecord] | None],
) -> bool:
    """Compare-and-set the segment record: `change` returns the new (position, data) or
    None for no change. True when written."""
    key = segment_key(name, segment)
    for _ in range(100):
        loaded = await load(store, key)
        if loaded is None:
            return False
        new = change(loaded)
        if new is None:
            return False
        position, rec = new
        try:
            await store.save_events(
                [], tracking=Tracking(key, position, loaded.revision, rec.to_json())
            )
            return True
        except TrackingConflictError:
            continue
    raise TrackingConflictError(key, 0, 0)


async def reset(store: EventStore, name: str, *, to_position: int, force: bool = False) -> None:
    """Move every segment of `name` to `to_position` (0: the start; the next event
    processed is the first after it), clearing a stop and the parked events after it.

    Refused with `ProcessorRunningError` while a live runner owns a segment, unless
    `force` (the owner is then fenced: its next commit is refused and it stops).
    `NotFoundError` if `name` never ran.
    """
    validate_processor_name(name)
    check_nonnegative_int(to_position, "to_position")
    segments = await _segments(store, name)
    now = time.time()
    if not force:
        for segment in segments:
            loaded = await load(store, segment_key(name, segment))
            if loaded is not None and loaded.data.live(now):
                raise ProcessorRunningError(name, segment, loaded.data.owner)

    def change(loaded: Loaded) -> tuple[int, SegmentRecord] | None:
        rec = loaded.data.copy()
        if not force and rec.live():
            raise ProcessorRunningError(name, segment, rec.owner)
        rec.claim = rec.owner = None
        rec.state = "idle"
        rec.stopped_at = rec.error = rec.skip_stopped = None
        rec.retry_stopped = False
        rec.parked = [p for p in rec.parked if p.position <= to_position]
        return to_position, rec

    for segment in segments:
        await _update(store, name, segment, change)


async def list_parked(store: EventStore, name: str) -> list[ParkedEvent]:
    """`name`'s parked events over all its segments, in position order."""
    validate_processor_name(name)
    out: list[ParkedEvent] = []
    for segment in await _segments(store, name):
        loaded = await load(store, segment_key(name, segment))
        if loaded is not None:
            out.extend(p.public(name, segment) for p in loaded.data.parked)
    return sorted(out, key=lambda p: p.position)


async def retry_parked(store: EventStore, name: str, position: int | None = None) -> int:
    """Ask for `name`'s parked events (all, or the one at `position`) to be retried, and
    for a segment stopped at a failed event (at `position`, if given) to retry it.

    The owner of the segment retries them in position order (each actor's in version
    order; an actor whose retry fails keeps its later events parked); the checkpoint
    never moves backwards and no later event is re-applied. Without a runner they are
    retried when one starts. Returns how many events were asked to be retried.
    `NotFoundError` when `position` is neither parked nor stopped at.
    """
    validate_processor_name(name)
    if position is not None:
        check_nonnegative_int(position, "position")
    total = 0
    for segment in await _segments(store, name):
        count = 0

        def change(loaded: Loaded) -> tuple[int, SegmentRecord] | None:
            nonlocal count
            rec = loaded.data.copy()
            count = 0
            for p in rec.parked:
                if position is None or p.position == position:
                    p.retry = True
                    count += 1
            if rec.stopped_at is not None and position in (None, rec.stopped_at):
                rec.retry_stopped = True
                count += 1
            return (loaded.position, rec) if count else None

        if await _update(store, name, segment, change):
            total += count
    if position is not None and total == 0:
        raise NotFoundError(f"processor {name!r} has no parked or stopped event at {position}")
    return total


async def skip_parked(store: EventStore, name: str, position: int) -> None:
    """Drop `name`'s parked event at `position` without handling it, or skip the failed
    event a stopped segment waits at (it goes on after it). `NotFoundError` if neither."""
    validate_processor_name(name)
    check_nonnegative_int(position, "position")
    found = False
    for segment in await _segments(store, name):

        def change(loaded: Loaded) -> tuple[int, SegmentRecord] | None:
            rec = loaded.data.copy()
            kept = [p for p in rec.parked if p.position != position]
            if len(kept) != len(rec.parked):
                rec.parked = kept
                return loaded.position, rec
            if rec.stopped_at == position:
                if rec.live():
                    rec.skip_stopped = position  # the owner skips it
                    return loaded.position, rec
                rec.stopped_at = rec.error = rec.skip_stopped = None
                rec.retry_stopped = False
                rec.state = "idle"
                return max(loaded.position, position), rec
            return None

        if await _update(store, name, segment, change):
            found = True
            break
    if not found:
        raise NotFoundError(f"processor {name!r} has no parked or stopped event at {position}")


def _position_of(target: Any, name: str, segment: str) -> int | None:
    """The in-memory position of a local runner of `target`, if it runs `segment`."""
    from ._host import ProcessorHost
    from ._runner import ProcessorRunner

    if isinstance(target, ProcessorRunner):
        ok = target.name == name and target.segment == segment and target.running
        return target.position if ok else None
    if isinstance(target, ProcessorHost):
        runner = target.runners.get((name, segment))
        return runner.position if runner is not None and runner.running else None
    return None


def _store_of(target: Any) -> tuple[EventStore, Any]:
    from ._host import ProcessorHost
    from ._runner import ProcessorRunner

    if isinstance(target, ProcessorRunner | ProcessorHost):
        if target.store is None:
            raise ValidationError("target", "the host has no store yet (start its node)")
        return target.store, target
    host = getattr(target, "processor_host", None)
    if isinstance(host, ProcessorHost):
        return _store_of(host)
    if isinstance(target, EventStore):
        return target, None
    raise ValidationError(
        "target", "must be an event store, a ClusterNode with processors, or a ProcessorHost"
    )


async def wait_for(
    target: Any,
    name: str,
    position: int,
    *,
    timeout: float,  # noqa: ASYNC109 (the documented API; bounded internally)
    actor_id: str | None = None,
) -> None:
    """Return once processor `name` processed through `position`: on the segment holding
    `actor_id` if given, else on every segment (read-your-writes for a projection).

    `target` is the store (durable checkpoints), a `ClusterNode` with processors or a
    `ProcessorHost`/`ProcessorRunner` (their own segments are checked in memory, the
    others from the store). Raises `ProcessorTimeoutError` (a `TimeoutError`) after
    `timeout` seconds; a processor that has not run yet is waited for too.
    """
    validate_processor_name(name)
    check_nonnegative_int(position, "position")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValidationError("timeout", "must be a number of seconds >= 0")
    store, local = _store_of(target)
    deadline = time.monotonic() + timeout
    delay = 0.01
    reached = 0
    while True:
        reached = await _reached(store, local, name, actor_id)
        if reached >= position:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProcessorTimeoutError(name, position, float(timeout), reached)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.2)


async def _reached(store: EventStore, local: Any, name: str, actor_id: str | None) -> int:
    segments, shard_count = await list_segments(store, name)
    if shard_count:
        wanted = [str(i) for i in range(shard_count)]
        if actor_id is not None:
            wanted = [str(slice_of(actor_id) * shard_count // SLICE_COUNT)]
    else:
        wanted = segments
    if not wanted:
        if local is not None:
            own = _position_of(local, name, "all")
            if own is not None:
                return own
        return -1
    lowest: int | None = None
    for segment in wanted:
        p = _position_of(local, name, segment) if local is not None else None
        if p is None:
            loaded = await load(store, segment_key(name, segment))
            p = loaded.position if loaded is not None else 0
        lowest = p if lowest is None else min(lowest, p)
    return lowest if lowest is not None else 0
