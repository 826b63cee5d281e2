"""The rules of an `Event` and a `Snapshot`, each broken rule named by its field.

`validate_event` checks everything and raises at the first broken rule (the encoder has
a hot path of its own for ordinary events, `aether._codec`, and falls back to this).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aether._jsonvalue import check_value
from aether._model import Event, Snapshot
from aether.errors import InvalidEventError
from aether.subjects import validate_actor_id, validate_event_type

ID_MAX = 256
"""Longest event id, in characters."""

_INT64 = 2**63


def validate_event(event: object) -> Event:
    """Check every field of `event`; raise a `ValidationError` naming the first bad one."""
    if not isinstance(event, Event):
        raise InvalidEventError("event", f"must be an Event, got {type(event).__name__}")
    if not isinstance(event.id, str) or not event.id or len(event.id) > ID_MAX:
        raise InvalidEventError("id", f"must be a non-empty string of at most {ID_MAX} characters")
    if not event.id.isprintable():
        raise InvalidEventError("id", "must be printable")
    validate_event_type(event.event_type)
    validate_actor_id(event.actor_id)
    version = check_int(event.version, "version")
    if version < 1:
        raise InvalidEventError("version", f"must be >= 1, got {version}")
    data: object = event.data
    if type(data) is not dict:
        raise InvalidEventError("data", f"must be a JSON object (dict), got {type(data).__name__}")
    check_value(data, "data")
    check_timestamp(event.timestamp, "timestamp")
    metadata: object = event.metadata
    if type(metadata) is not dict:
        raise InvalidEventError("metadata", "must be a dict of strings")
    for k, v in metadata.items():
        if type(k) is not str or type(v) is not str:
            raise InvalidEventError(f"metadata.{k}", "keys and values must be strings")
    return event


def validate_snapshot(snapshot: object) -> Snapshot:
    """Check every field of `snapshot`; raise a `ValidationError` naming the first bad one
    (fields are named ``snapshot.*``, never as an event's)."""
    if not isinstance(snapshot, Snapshot):
        raise InvalidEventError("snapshot", f"must be a Snapshot, got {type(snapshot).__name__}")
    validate_actor_id(snapshot.actor_id, "snapshot.actor_id")
    version = check_int(snapshot.version, "snapshot.version")
    if version < 1:
        raise InvalidEventError("snapshot.version", f"must be >= 1, got {version}")
    state: object = snapshot.state
    if type(state) is not dict:
        raise InvalidEventError("snapshot.state", "must be a JSON object (dict)")
    check_value(state, "snapshot.state")
    check_timestamp(snapshot.timestamp, "snapshot.timestamp")
    return snapshot


def check_int(value: object, field: str) -> int:
    """`value` if it is an int (not a bool) that fits in a signed 64-bit integer."""
    if type(value) is not int:
        raise InvalidEventError(field, f"must be an integer, got {type(value).__name__}")
    if not -_INT64 <= value < _INT64:
        raise InvalidEventError(field, "must fit in a signed 64-bit integer")
    return value


def check_timestamp(value: object, field: str) -> None:
    """Raise unless `value` is an aware datetime that converts to UTC within years 1-9999."""
    if not isinstance(value, datetime):
        raise InvalidEventError(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError(field, "must be timezone-aware (UTC)")
    if value.tzinfo is not UTC:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidEventError(field, "is out of range once converted to UTC") from None
