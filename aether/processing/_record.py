"""The durable state of a processor segment, kept in one store tracking record.

Key ``proc.<name>.<segment>``; `SegmentRecord` is its ``data``. Two index records let
the admin functions find segments without a scan: ``proc.<name>`` lists a processor's
segments (and its shard count), ``proc-index`` lists the processor names. Both are
updated by compare-and-set (the tracking revision) when a segment is first claimed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aether.errors import TrackingConflictError
from aether.store.base import EventStore, Tracking, TrackingRecord

from ._types import ParkedEvent

INDEX_KEY = "proc-index"
ERROR_MAX = 300
"""Stored error messages are cut to this many characters (the record stays small)."""


def segment_key(name: str, segment: str) -> str:
    """The tracking key of `name`'s `segment`."""
    return f"proc.{name}.{segment}"


def processor_key(name: str) -> str:
    """The tracking key listing `name`'s segments."""
    return f"proc.{name}"


def cut(message: str) -> str:
    """`message` cut to `ERROR_MAX` characters."""
    return message if len(message) <= ERROR_MAX else message[: ERROR_MAX - 3] + "..."


@dataclass(slots=True)
class Parked:
    """One parked entry (compact keys in JSON)."""

    position: int
    actor_id: str
    version: int
    event_type: str
    error: str
    attempts: int
    parked_at: float
    retry: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "p": self.position,
            "a": self.actor_id,
            "v": self.version,
            "t": self.event_type,
            "e": self.error,
            "n": self.attempts,
            "at": self.parked_at,
            "r": self.retry,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Parked:
        return cls(
            int(d["p"]),
            str(d["a"]),
            int(d["v"]),
            str(d["t"]),
            str(d.get("e", "")),
            int(d.get("n", 0)),
            float(d.get("at", 0.0)),
            bool(d.get("r", False)),
        )

    def public(self, processor: str, segment: str) -> ParkedEvent:
        return ParkedEvent(
            processor=processor,
            segment=segment,
            position=self.position,
            actor_id=self.actor_id,
            version=self.version,
            event_type=self.event_type,
            error=self.error,
            attempts=self.attempts,
            parked_at=datetime.fromtimestamp(self.parked_at, UTC),
            retry_requested=self.retry,
        )


@dataclass(slots=True)
class SegmentRecord:
    """The data of a segment's tracking record (JSON: `to_json`/`from_json`).

    `claim` identifies the runner that owns it (a new one per start: the fencing
    identity), `owner` the node shown in status, `seen` the wall-clock time of its last
    commit (refreshed every `keepalive` seconds), `commits` counts its commits (to settle
    a commit whose outcome was unknown).
    """

    state: str = "idle"
    claim: str | None = None
    owner: str | None = None
    epoch: int | None = None
    shard: int | None = None
    slices: str | None = None
    seen: float = 0.0
    keepalive: float = 2.0
    commits: int = 0
    parked: list[Parked] = field(default_factory=list)
    stopped_at: int | None = None
    error: str | None = None
    retry_stopped: bool = False
    skip_stopped: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "state": self.state,
            "claim": self.claim,
            "owner": self.owner,
            "epoch": self.epoch,
            "shard": self.shard,
            "slices": self.slices,
            "seen": self.seen,
            "keepalive": self.keepalive,
            "commits": self.commits,
            "parked": [p.to_json() for p in self.parked],
            "stopped_at": self.stopped_at,
            "error": self.error,
            "retry_stopped": self.retry_stopped,
            "skip_stopped": self.skip_stopped,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SegmentRecord:
        return cls(
            state=str(d.get("state", "idle")),
            claim=d.get("claim"),
            owner=d.get("owner"),
            epoch=d.get("epoch"),
            shard=d.get("shard"),
            slices=d.get("slices"),
            seen=float(d.get("seen", 0.0)),
            keepalive=float(d.get("keepalive", 2.0)),
            commits=int(d.get("commits", 0)),
            parked=[Parked.from_json(p) for p in d.get("parked", [])],
            stopped_at=d.get("stopped_at"),
            error=d.get("error"),
            retry_stopped=bool(d.get("retry_stopped", False)),
            skip_stopped=d.get("skip_stopped"),
        )

    def copy(self) -> SegmentRecord:
        return replace(self, parked=[replace(p) for p in self.parked])

    def live(self, now: float | None = None) -> bool:
        """Whether a runner owns it and committed within three keepalives."""
        now = time.time() if now is None else now
        return self.claim is not None and now - self.seen <= 3 * self.keepalive + 1.0


@dataclass(frozen=True, slots=True)
class Loaded:
    """A segment record as read: checkpoint `position`, `revision`, `data`."""

    position: int
    revision: int
    data: SegmentRecord


async def load(store: EventStore, key: str) -> Loaded | None:
    """The segment record `key`, or None."""
    rec = await store.get_tracking(key)
    return None if rec is None else _loaded(rec)


def _loaded(rec: TrackingRecord) -> Loaded:
    return Loaded(rec.position, rec.revision, SegmentRecord.from_json(rec.data))


async def add_to_list(
    store: EventStore, key: str, field_name: str, item: str, **extra: Any
) -> None:
    """Add `item` to the list `field_name` of index record `key` (compare-and-set)."""
    for _ in range(100):
        rec = await store.get_tracking(key)
        data: dict[str, Any] = dict(rec.data) if rec is not None else {}
        items = list(data.get(field_name, []))
        if item in items and all(data.get(k) == v for k, v in extra.items()):
            return
        if item not in items:
            items.append(item)
        data[field_name] = sorted(items, key=_natural)
        data.update(extra)
        try:
            await store.save_events([], tracking=Tracking(key, 0, rec.revision if rec else 0, data))
            return
        except TrackingConflictError:
            continue
    raise TrackingConflictError(key, 0, 0)


def _natural(s: str) -> tuple[int, str]:
    return (int(s), "") if s.isdigit() else (1 << 30, s)


async def list_names(store: EventStore) -> list[str]:
    """The processor names with durable state."""
    rec = await store.get_tracking(INDEX_KEY)
    return [] if rec is None else [str(n) for n in rec.data.get("names", [])]


async def list_segments(store: EventStore, name: str) -> tuple[list[str], int | None]:
    """`name`'s segments and its shard count (None when unsharded)."""
    rec = await store.get_tracking(processor_key(name))
    if rec is None:
        return [], None
    count = rec.data.get("shard_count")
    return [str(s) for s in rec.data.get("segments", [])], (int(count) if count else None)
