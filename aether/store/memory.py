"""`InMemoryEventStore`: the whole contract in one process, for users' tests and prototypes.

Events are kept encoded, exactly as other stores keep them, so a test against memory
sees the same validation, size limits, unit-of-work limit and int/float round trip as
production.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence

from aether.errors import (
    ActorConflict,
    InvalidEventError,
    StoreClosedError,
    TrackingConflictError,
    VersionConflictError,
)
from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    Snapshot,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
)
from aether.store.base import (
    Tracking,
    TrackingRecord,
    check_nonnegative_int,
    check_tracking,
    check_unit,
    same_event,
)
from aether.subjects import Slices, normalize_slices, slice_of, validate_actor_id

DEFAULT_MAX_BATCH = 1000
"""The memory store's default unit-of-work limit: the same as JetStream's atomic batch."""


class InMemoryEventStore:
    """An `EventStore` and `SnapshotStore` held in memory; safe for concurrent tasks."""

    def __init__(
        self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if type(max_batch) is not int or max_batch < 1:
            raise InvalidEventError("max_batch", f"must be an integer >= 1, got {max_batch!r}")
        self._max = max_event_bytes
        self._max_batch = max_batch
        self._log: list[bytes] = []  # position p is _log[p - 1]
        self._slice: list[int] = []  # slice of the event at position p is _slice[p - 1]
        self._actors: dict[str, list[int]] = {}  # actor -> positions, index = version - 1
        self._snapshots: dict[str, bytes] = {}
        self._tracking: dict[str, TrackingRecord] = {}
        self._appended = asyncio.Event()
        self._closed = False

    @property
    def max_batch(self) -> int:
        """The most events one `save_events` call appends (default 1000, like JetStream)."""
        return self._max_batch

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("in-memory store: the store is closed")

    # -- writes (no awaits between check and append: atomic within the event loop) --

    async def save_event(self, event: Event) -> Event:
        """Append `event` iff it is the actor's next version."""
        return (await self.save_events([event]))[0]

    async def save_events(
        self, events: Sequence[Event], *, tracking: Tracking | None = None
    ) -> list[Event]:
        """Append a unit of work (one or more actors), all or nothing; with `tracking`,
        commit the tracking record with it (fenced on ``tracking.expected``)."""
        self._check_open()
        if tracking is not None:
            check_tracking(tracking)
            record = self._tracking.get(tracking.key)
            actual = record.revision if record is not None else 0
            if not events:
                if actual != tracking.expected:
                    raise TrackingConflictError(tracking.key, tracking.expected, actual)
                self._commit_tracking(tracking)
                return []
        groups = check_unit(events, self._max_batch)
        payloads = [encode_event(e, self._max) for e in events]
        conflicts: list[ActorConflict] = []
        resaved = 0
        for actor_id, group in groups.items():
            positions = self._actors.get(actor_id, ())
            latest = len(positions)
            first = group[0]
            if first.version == latest + 1:
                continue
            if all(
                0 < e.version <= latest
                and same_event(decode_event(self._log[positions[e.version - 1] - 1]), e)
                for e in group
            ):
                resaved += 1
                continue
            conflicts.append(ActorConflict(actor_id, first.version - 1, latest))
        if conflicts:
            raise VersionConflictError.of(conflicts)
        if tracking is not None and resaved < len(groups):
            record = self._tracking.get(tracking.key)
            actual = record.revision if record is not None else 0
            if actual != tracking.expected:
                raise TrackingConflictError(tracking.key, tracking.expected, actual)
        if resaved == len(groups):  # the identical unit, stored earlier
            return [e.with_position(self._actors[e.actor_id][e.version - 1]) for e in events]
        if resaved:  # some actors' part is stored, others' not: not the same unit
            raise VersionConflictError.of(
                [
                    ActorConflict(a, g[0].version - 1, len(self._actors.get(a, ())))
                    for a, g in groups.items()
                    if g[0].version != len(self._actors.get(a, ())) + 1
                ]
            )
        stored = []
        for e, payload in zip(events, payloads, strict=True):
            self._log.append(payload)
            self._slice.append(slice_of(e.actor_id))
            self._actors.setdefault(e.actor_id, []).append(len(self._log))
            stored.append(e.with_position(len(self._log)))
        if tracking is not None:
            self._commit_tracking(tracking)
        self._appended.set()
        self._appended = asyncio.Event()
        return stored

    def _commit_tracking(self, tracking: Tracking) -> None:
        record = self._tracking.get(tracking.key)
        revision = (record.revision if record is not None else 0) + 1
        self._tracking[tracking.key] = TrackingRecord(
            tracking.key, tracking.position, revision, copy.deepcopy(tracking.data)
        )

    async def get_tracking(self, key: str) -> TrackingRecord | None:
        """The tracking record `key`, or None."""
        self._check_open()
        record = self._tracking.get(key)
        return None if record is None else copy.deepcopy(record)

    # -- reads --

    async def get_events(self, actor_id: str, from_version: int = 0) -> list[Event]:
        """The actor's events with ``version >= from_version``."""
        return [e async for e in self.iter_events(actor_id, from_version)]

    async def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        """Stream the actor's events in ``[from_version, to_version]``."""
        self._check_open()
        validate_actor_id(actor_id)
        check_nonnegative_int(from_version, "from_version")
        if to_version is not None:
            check_nonnegative_int(to_version, "to_version")
        positions = self._actors.get(actor_id, [])
        start = max(from_version, 1) - 1
        end = len(positions) if to_version is None else min(to_version, len(positions))
        for i in range(start, end):
            p = positions[i]
            yield decode_event(self._log[p - 1], p)

    async def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version (0 if none)."""
        self._check_open()
        validate_actor_id(actor_id)
        return len(self._actors.get(actor_id, ()))

    async def last_position(self) -> int:
        """The highest position (0 when empty)."""
        self._check_open()
        return len(self._log)

    def read_all(
        self, from_position: int = 0, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Every event (of `slices`) from `from_position` on, in position order."""
        self._check_open()
        check_nonnegative_int(from_position, "from_position")
        selected = normalize_slices(slices)
        return self._read(max(from_position, 1), len(self._log), selected)

    async def _read(
        self, start: int, end: int, selected: frozenset[int] | None
    ) -> AsyncIterator[Event]:
        p = start
        while p <= end and not self._closed:
            if selected is None or self._slice[p - 1] in selected:
                yield decode_event(self._log[p - 1], p)
            p += 1

    def watch(
        self, from_position: int | None = None, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Events from `from_position` (None: after the last one now), then live, until closed.

        The start is fixed by this call, before the first iteration.
        """
        self._check_open()
        if from_position is None:
            start = len(self._log) + 1
        else:
            check_nonnegative_int(from_position, "from_position")
            start = max(from_position, 1)
        return self._follow(start, normalize_slices(slices))

    async def _follow(self, start: int, selected: frozenset[int] | None) -> AsyncIterator[Event]:
        p = start
        while not self._closed:
            while p <= len(self._log):
                if selected is None or self._slice[p - 1] in selected:
                    yield decode_event(self._log[p - 1], p)
                    if self._closed:
                        return
                p += 1
            await self._appended.wait()

    async def list_actors(self) -> dict[str, int]:
        """Every actor with its latest version."""
        self._check_open()
        return {a: len(positions) for a, positions in self._actors.items()}

    # -- snapshots --

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the actor's latest; refused beyond the latest event."""
        self._check_open()
        payload = encode_snapshot(snapshot)
        latest = len(self._actors.get(snapshot.actor_id, ()))
        if snapshot.version > latest:
            raise InvalidEventError(
                "snapshot.version",
                f"snapshot version {snapshot.version} is beyond the latest event {latest}",
            )
        current = self._snapshots.get(snapshot.actor_id)
        if current is None or decode_snapshot(current).version <= snapshot.version:
            self._snapshots[snapshot.actor_id] = payload

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's latest snapshot or None."""
        self._check_open()
        validate_actor_id(actor_id)
        payload = self._snapshots.get(actor_id)
        return None if payload is None else decode_snapshot(payload)

    async def close(self) -> None:
        """Refuse further work and end every `watch`."""
        self._closed = True
        self._appended.set()

    async def __aenter__(self) -> InMemoryEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
