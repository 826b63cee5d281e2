"""`InMemoryEventStore`: the whole contract in one process, for users' tests and prototypes.

Events are kept encoded, exactly as other stores keep them, so a test against memory
sees the same validation, size limits and int/float round trip as production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from aether.errors import InvalidEventError
from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    Snapshot,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
)
from aether.store.base import check_batch, check_nonnegative_int, conflict, same_event
from aether.subjects import validate_actor_id


class InMemoryEventStore:
    """An `EventStore` and `SnapshotStore` held in memory; safe for concurrent tasks."""

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._log: list[bytes] = []  # position p is _log[p - 1]
        self._actors: dict[str, list[int]] = {}  # actor -> positions, index = version - 1
        self._ids: dict[str, list[str]] = {}  # actor -> event ids, index = version - 1
        self._snapshots: dict[str, bytes] = {}
        self._appended = asyncio.Condition()

    # -- writes (no awaits between check and append: atomic within the event loop) --

    async def save_event(self, event: Event) -> Event:
        """Append `event` iff it is the actor's next version."""
        return (await self.save_events([event]))[0]

    async def save_events(self, events: Sequence[Event]) -> list[Event]:
        """Append consecutive events of one actor, all or nothing."""
        actor_id = check_batch(events)
        payloads = [encode_event(e, self._max) for e in events]
        ids = self._ids.get(actor_id, [])
        latest = len(ids)
        first = events[0]
        if first.version != latest + 1:
            positions = self._actors.get(actor_id, [])
            if all(
                0 < e.version <= latest
                and same_event(decode_event(self._log[positions[e.version - 1] - 1]), e)
                for e in events
            ):  # a re-save: the same events at the same versions
                return [e.with_position(positions[e.version - 1]) for e in events]
            raise conflict(first, latest)
        positions = self._actors.setdefault(actor_id, [])
        ids = self._ids.setdefault(actor_id, ids)
        stored = []
        for e, payload in zip(events, payloads, strict=True):
            self._log.append(payload)
            positions.append(len(self._log))
            ids.append(e.id)
            stored.append(e.with_position(len(self._log)))
        async with self._appended:
            self._appended.notify_all()
        return stored

    # -- reads --

    async def get_events(self, actor_id: str, from_version: int = 0) -> list[Event]:
        """The actor's events with ``version >= from_version``."""
        return [e async for e in self.iter_events(actor_id, from_version)]

    async def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        """Stream the actor's events in ``[from_version, to_version]``."""
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
        validate_actor_id(actor_id)
        return len(self._ids.get(actor_id, ()))

    async def read_all(self, from_position: int = 0) -> AsyncIterator[Event]:
        """Every event from `from_position` on, in position order."""
        check_nonnegative_int(from_position, "from_position")
        p = max(from_position, 1)
        while p <= len(self._log):
            yield decode_event(self._log[p - 1], p)
            p += 1

    async def watch(self, from_position: int | None = None) -> AsyncIterator[Event]:
        """Events from `from_position` (None: from now), then new ones as they come."""
        if from_position is None:
            p = len(self._log) + 1
        else:
            check_nonnegative_int(from_position, "from_position")
            p = max(from_position, 1)
        while True:
            while p <= len(self._log):
                yield decode_event(self._log[p - 1], p)
                p += 1
            async with self._appended:
                await self._appended.wait_for(lambda p=p: len(self._log) >= p)

    async def list_actors(self) -> dict[str, int]:
        """Every actor with its latest version."""
        return {a: len(ids) for a, ids in self._ids.items()}

    # -- snapshots --

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the actor's latest; refused beyond the latest event."""
        payload = encode_snapshot(snapshot)
        latest = len(self._ids.get(snapshot.actor_id, ()))
        if snapshot.version > latest:
            raise InvalidEventError(
                "version",
                f"snapshot version {snapshot.version} is beyond the latest event {latest}",
            )
        current = self._snapshots.get(snapshot.actor_id)
        if current is None or decode_snapshot(current).version <= snapshot.version:
            self._snapshots[snapshot.actor_id] = payload

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's latest snapshot or None."""
        validate_actor_id(actor_id)
        payload = self._snapshots.get(actor_id)
        return None if payload is None else decode_snapshot(payload)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> InMemoryEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
