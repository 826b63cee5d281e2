"""`Event` and `Snapshot`, the two value types of the wire format (see `aether.event`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

JSONValue = Any
"""A JSON value: None, bool, int, float (finite), str, list of JSON values, dict[str, ...]."""

_urandom = os.urandom


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random (version 4) UUID string, the default `Event.id`."""
    try:
        return _spare_ids.pop()
    except IndexError:
        return _more_ids()


_IDS_PER_DRAW = 256
_spare_ids: list[str] = []
_VERSION_4 = bytes(b & 0x0F | 0x40 for b in range(256))
_RFC_4122_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))
_UUID_GROUPS = re.compile("(.{8})(.{4})(.{4})(.{4})(.{12})")
_dashed = "-".join


def _more_ids() -> str:
    # One urandom call (a system call) makes 256 ids, formatted in bulk: 0.36 us an id
    # against 0.75 us one at a time and 1.9 us for str(uuid4()). pop() and extend() are
    # atomic, so two threads never get the same id; a forked child drops its copy of the
    # parent's spares (below), or both processes would hand out the same ids.
    raw = bytearray(_urandom(16 * _IDS_PER_DRAW))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_RFC_4122_VARIANT)
    ids = list(map(_dashed, _UUID_GROUPS.findall(raw.hex())))
    mine = ids.pop()
    _spare_ids.extend(ids)
    return mine


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_spare_ids.clear)


@dataclass(slots=True, frozen=True)
class Event:
    """One immutable fact about one actor, at one version of that actor.

    `position` is the global position the store assigned (None until stored).
    """

    event_type: str
    actor_id: str
    version: int
    data: dict[str, JSONValue] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    timestamp: datetime = field(default_factory=utc_now)
    metadata: dict[str, str] = field(default_factory=dict)
    position: int | None = None

    def with_position(self, position: int) -> Event:
        """This event as stored at `position`."""
        return build_event(
            self.id,
            self.event_type,
            self.actor_id,
            self.version,
            self.data,
            self.timestamp,
            self.metadata,
            position,
        )


@dataclass(slots=True, frozen=True)
class Snapshot:
    """An actor's folded state as of `version` (one of its events' versions)."""

    actor_id: str
    version: int
    state: dict[str, JSONValue]
    timestamp: datetime = field(default_factory=utc_now)


Event.__module__ = Snapshot.__module__ = "aether.event"  # where users import them from


class _Unfrozen:
    """`Event`'s slot layout without the frozen ``__setattr__``: a decoder fills one with
    plain attribute stores and then makes it an `Event` (``__class__`` assignment, which
    CPython allows between classes of the same slots). It is about twice as fast as
    ``object.__new__`` plus a slot descriptor call per field, and nothing else ever holds
    an `_Unfrozen`."""

    __slots__ = Event.__slots__

    event_type: str
    actor_id: str
    version: int
    data: dict[str, JSONValue]
    id: str
    timestamp: datetime
    metadata: dict[str, str]
    position: int | None


def _build(
    id: str,
    event_type: str,
    actor_id: str,
    version: int,
    data: dict[str, JSONValue],
    timestamp: datetime,
    metadata: dict[str, str],
    position: int | None,
) -> Event:
    e = _Unfrozen()
    e.event_type = event_type
    e.actor_id = actor_id
    e.version = version
    e.data = data
    e.id = id
    e.timestamp = timestamp
    e.metadata = metadata
    e.position = position
    e.__class__ = Event  # type: ignore[assignment]
    return cast(Event, e)


def _build_with_setters(
    id: str,
    event_type: str,
    actor_id: str,
    version: int,
    data: dict[str, JSONValue],
    timestamp: datetime,
    metadata: dict[str, str],
    position: int | None,
) -> Event:
    # The fallback if a future Event's layout stops matching _Unfrozen's: the slots'
    # own descriptors (a frozen dataclass refuses setattr).
    e: Event = object.__new__(Event)
    for name, value in (
        ("event_type", event_type),
        ("actor_id", actor_id),
        ("version", version),
        ("data", data),
        ("id", id),
        ("timestamp", timestamp),
        ("metadata", metadata),
        ("position", position),
    ):
        Event.__dict__[name].__set__(e, value)
    return e


def _pick_builder() -> Callable[..., Event]:
    try:
        probe = _build("i", "T", "a", 1, {}, utc_now(), {}, None)
    except TypeError:  # "object layout differs"
        return _build_with_setters
    return _build if type(probe) is Event and probe.position is None else _build_with_setters


build_event: Callable[
    [str, str, str, int, dict[str, JSONValue], datetime, dict[str, str], int | None], Event
] = _pick_builder()
"""An `Event` from checked fields (id, event_type, actor_id, version, data, timestamp,
metadata, position), without the dataclass ``__init__`` (factories, frozen setattr):
the decode hot path."""
