"""The store protocols and the rules every store shares.

Semantics (the contract suite in `aether.testing` checks every store against them):

- ``save_event(e)`` appends iff ``e.version == latest + 1``, atomically in the store;
  otherwise ``VersionConflictError(actor_id, expected=e.version - 1, actual=latest)``.
  Re-saving the identical event (same id at the same version) is a no-op success.
  Returns the event with its ``position`` set.
- ``save_events(events)``: a unit of work over one or more actors; each actor's events
  are consecutive from its latest + 1; all or nothing across all of them. A conflict
  names every actor that was not at its expected version and writes nothing. A unit of
  more than ``max_batch`` events is refused (`UnitTooLargeError`), never split.
- Positions are global, strictly increasing, start at 1. ``from_position`` and
  ``from_version`` are inclusive.
- ``read_all(from_position, slices=...)`` and ``watch(from_position, slices=...)`` select
  the events of some slices (see `aether.subjects.slice_of`) in the store.
- ``watch(from_position=None)`` yields events appended after the call (the start is fixed
  when ``watch()`` returns, before the first iteration), or from ``from_position`` on, in
  position order, without gaps or duplicates, until the store closes.
- ``last_position()`` is the highest position (0 when empty), without a scan.
- Read-your-writes: once a save returned, this store's reads reflect it.
- Tracking records (`Tracking`) commit in the same atomic step as a unit's events,
  fenced on their revision; `get_tracking` reads them back.
- Event ids are not unique per namespace: the identical event re-saved is a no-op, the
  same id at another version or actor is another event.
- After ``close()`` every call raises `StoreClosedError` and every ``watch`` ends.

`Store` is the whole protocol (events, snapshots, ``async with``): what `open_store`
returns and what every aether store implements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from aether.errors import InvalidEventError, UnitTooLargeError, VersionConflictError
from aether.event import Event, Snapshot
from aether.subjects import Slices


@dataclass(frozen=True, slots=True)
class Tracking:
    """A tracking record to commit atomically with a unit of work (processors, relays).

    `key` names the record (e.g. ``"<processor>.<shard>"``), `position` is the input
    position processed through, `data` small JSON (owner, epoch...). `expected` is the
    revision the writer holds (0: the record must not exist yet); the commit is refused
    with `TrackingConflictError` if the record moved on: that is how a node that lost a
    shard is fenced by the store, not by timing.
    """

    key: str
    position: int
    expected: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrackingRecord:
    """A stored tracking record: its `revision` is what the next commit must expect."""

    key: str
    position: int
    revision: int
    data: dict[str, Any]


@runtime_checkable
class EventStore(Protocol):
    """Append-only, per-actor versioned event storage with optimistic concurrency."""

    @property
    def max_batch(self) -> int:
        """The most events one `save_events` call appends atomically."""
        ...

    async def save_event(self, event: Event) -> Event:
        """Append `event` iff its version is the actor's latest + 1; return it with position."""
        ...

    async def save_events(
        self, events: Sequence[Event], *, tracking: Tracking | None = None
    ) -> list[Event]:
        """Append a unit of work (one or more actors) atomically: all are stored or none.

        With `tracking`, the tracking record is written in the same atomic commit (and
        `events` may be empty: a checkpoint alone); the commit is refused whole with
        `TrackingConflictError` when the record is not at ``tracking.expected``.
        """
        ...

    async def get_tracking(self, key: str) -> TrackingRecord | None:
        """The tracking record `key`, read from the authority (never a stale replica)."""
        ...

    async def get_events(self, actor_id: str, from_version: int = 0) -> list[Event]:
        """The actor's events with ``version >= from_version``, in version order."""
        ...

    def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        """Stream the actor's events in ``[from_version, to_version]`` in constant memory."""
        ...

    async def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version, 0 when it has none; never a scan."""
        ...

    def read_all(
        self, from_position: int = 0, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Every event (of `slices`, if given) with ``position >= from_position``, in order."""
        ...

    def watch(
        self, from_position: int | None = None, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Like `read_all`, then goes on with new events live (None: from the call on)."""
        ...

    async def last_position(self) -> int:
        """The highest position of the namespace (0 when empty), without a scan."""
        ...

    async def list_actors(self) -> dict[str, int]:
        """Every actor id with its latest version."""
        ...

    async def close(self) -> None:
        """Release connections and files. The store is unusable afterwards."""
        ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Latest-snapshot-per-actor storage."""

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store `snapshot`; refused when it is beyond the actor's latest event version."""
        ...

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's most recent snapshot, or None."""
        ...


@runtime_checkable
class Store(EventStore, SnapshotStore, Protocol):
    """What `aether.store.open_store` returns: an `EventStore` and a `SnapshotStore` that
    is also an async context manager (``async with await open_store(s) as store:``);
    leaving the block closes it. Every aether store implements it."""

    async def __aenter__(self) -> Self:
        """The store itself."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Close the store."""
        ...


_TRACKING_KEY_MAX = 256


def check_tracking(tracking: object) -> Tracking:
    """Validate a `Tracking` argument (key, position, expected, JSON-able data)."""
    if not isinstance(tracking, Tracking):
        raise InvalidEventError("tracking", "must be an aether.store.Tracking")
    key = tracking.key
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= _TRACKING_KEY_MAX
        or not all(c.isascii() and (c.isalnum() or c in "._-") for c in key)
    ):
        raise InvalidEventError(
            "tracking.key", f"must be 1-{_TRACKING_KEY_MAX} characters of A-Z, a-z, 0-9, . _ -"
        )
    check_nonnegative_int(tracking.position, "tracking.position")
    check_nonnegative_int(tracking.expected, "tracking.expected")
    if not isinstance(tracking.data, dict):
        raise InvalidEventError("tracking.data", "must be a dict of JSON values")
    return tracking


def check_unit(events: Sequence[Event], max_batch: int) -> dict[str, list[Event]]:
    """Check a unit of work; return its events grouped by actor (in first-seen order).

    The unit is non-empty, at most `max_batch` events, ids unique within it, and each
    actor's events have consecutive versions in the order given (they need not be
    adjacent: ``[a1, b1, a2]`` is fine). Field-level validation is the codec's.
    """
    if isinstance(events, Event) or not isinstance(events, Sequence):
        raise InvalidEventError("events", "must be a sequence of Event")
    if not events:
        raise InvalidEventError("events", "must not be empty")
    if len(events) > max_batch:
        raise UnitTooLargeError(len(events), max_batch)
    groups: dict[str, list[Event]] = {}
    ids: set[str] = set()
    for i, e in enumerate(events):
        if not isinstance(e, Event):
            raise InvalidEventError(f"events[{i}]", "must be an Event")
        group = groups.get(e.actor_id)
        if group is None:
            groups[e.actor_id] = [e]
        else:
            prev = group[-1].version
            if type(prev) is int and e.version != prev + 1:
                raise InvalidEventError(
                    f"events[{i}].version",
                    f"must be {prev + 1} (consecutive for actor {e.actor_id!r}), got {e.version!r}",
                )
            group.append(e)
        if e.id in ids:
            raise InvalidEventError(f"events[{i}].id", "event ids must be unique within a unit")
        ids.add(e.id)
    return groups


def conflict(event: Event, actual: int) -> VersionConflictError:
    """The conflict raised when `event` was not the actor's next version."""
    return VersionConflictError(event.actor_id, event.version - 1, actual)


def same_event(stored: Event, event: Event) -> bool:
    """Whether `stored` is `event` saved earlier (the idempotent re-save case).

    Same id at the same version is not enough: a re-save that changed the type, data or
    metadata would report success for content the store does not hold. The timestamp is
    not compared: an event rebuilt from the same input (a re-run JSON lines file) is
    stamped anew, and the stored one keeps its original time.
    """
    return (
        stored.id == event.id
        and stored.version == event.version
        and stored.actor_id == event.actor_id
        and stored.event_type == event.event_type
        and stored.metadata == event.metadata
        and _same_json(stored.data, event.data)
    )


def _same_json(a: object, b: object) -> bool:
    # == alone says 1 == 1.0 == True; the wire keeps ints, floats and bools apart.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_nonnegative_int(value: object, field: str) -> int:
    """Validate a version or position argument (an int >= 0)."""
    if type(value) is not int or not 0 <= value < 2**63:
        raise InvalidEventError(field, f"must be an integer from 0 to 2**63-1, got {value!r}")
    return value
