"""`Event` and `Snapshot`, the two value types of the wire format (see `aether.event`)."""

from __future__ import annotations

import os
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
    # Formatted directly: str(uuid.uuid4()) costs 3x more, and every new Event pays it.
    h = _urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


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

_Setter = Callable[[Event, object], None]


def _slot_setter(name: str) -> _Setter:
    # The slot's own descriptor: a frozen dataclass refuses setattr, and this skips the
    # attribute lookup by name.
    return cast(_Setter, Event.__dict__[name].__set__)


new_instance = object.__new__
set_id = _slot_setter("id")
set_event_type = _slot_setter("event_type")
set_actor_id = _slot_setter("actor_id")
set_version = _slot_setter("version")
set_data = _slot_setter("data")
set_timestamp = _slot_setter("timestamp")
set_metadata = _slot_setter("metadata")
set_position = _slot_setter("position")


def build_event(
    id: str,
    event_type: str,
    actor_id: str,
    version: int,
    data: dict[str, JSONValue],
    timestamp: datetime,
    metadata: dict[str, str],
    position: int | None,
) -> Event:
    """An `Event` from checked fields, without the dataclass ``__init__`` (factories,
    frozen setattr): the decode hot path."""
    e: Event = new_instance(Event)
    set_id(e, id)
    set_event_type(e, event_type)
    set_actor_id(e, actor_id)
    set_version(e, version)
    set_data(e, data)
    set_timestamp(e, timestamp)
    set_metadata(e, metadata)
    set_position(e, position)
    return e
