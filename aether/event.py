"""`Event`, `Snapshot` and the JSON wire codec.

Wire format: a UTF-8 JSON object with exactly the keys ``id``, ``event_type``,
``actor_id``, ``version``, ``data``, ``timestamp`` and ``metadata`` (``position`` is the
store's, never on the wire). ``timestamp`` is RFC 3339 UTC with microseconds and ``Z``.
Integers stay integers and floats stay floats; NaN and infinities are rejected.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from aether.errors import EventTooLargeError, InvalidEventError
from aether.subjects import validate_actor_id, validate_event_type

JSONValue = Any
"""A JSON value: None, bool, int, float (finite), str, list of JSON values, dict[str, ...]."""

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
"""NATS's default max payload; a larger encoded event is refused before it is sent."""

WIRE_KEYS = ("id", "event_type", "actor_id", "version", "data", "timestamp", "metadata")


_urandom = os.urandom


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def _new_id() -> str:
    # A random (version 4) UUID, formatted directly: str(uuid.uuid4()) costs 3x more,
    # and every new Event pays it.
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
    id: str = field(default_factory=_new_id)
    timestamp: datetime = field(default_factory=utc_now)
    metadata: dict[str, str] = field(default_factory=dict)
    position: int | None = None

    def with_position(self, position: int) -> Event:
        """This event as stored at `position`."""
        return _build_event(
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


_new = object.__new__
# The slots' own setters: a frozen dataclass refuses setattr, and these skip the lookup.
_set_id = Event.id.__set__  # type: ignore[attr-defined]
_set_type = Event.event_type.__set__  # type: ignore[attr-defined]
_set_actor = Event.actor_id.__set__  # type: ignore[attr-defined]
_set_version = Event.version.__set__  # type: ignore[attr-defined]
_set_data = Event.data.__set__  # type: ignore[attr-defined]
_set_ts = Event.timestamp.__set__  # type: ignore[attr-defined]
_set_md = Event.metadata.__set__  # type: ignore[attr-defined]
_set_pos = Event.position.__set__  # type: ignore[attr-defined]


def _build_event(
    id: str,
    event_type: str,
    actor_id: str,
    version: int,
    data: dict[str, JSONValue],
    timestamp: datetime,
    metadata: dict[str, str],
    position: int | None,
) -> Event:
    # Skips the dataclass __init__ (default factories, frozen checks): the decode hot path.
    e = _new(Event)
    _set_id(e, id)
    _set_type(e, event_type)
    _set_actor(e, actor_id)
    _set_version(e, version)
    _set_data(e, data)
    _set_ts(e, timestamp)
    _set_md(e, metadata)
    _set_pos(e, position)
    return e


# --- validation -------------------------------------------------------------------------


def check_json_value(value: object, path: str) -> None:
    """Raise `InvalidEventError` unless `value` is plain JSON with finite numbers."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise InvalidEventError(path, "NaN and infinity are not valid JSON numbers")
        return
    if t is dict:
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                raise InvalidEventError(path, f"object keys must be strings, got {k!r}")
            check_json_value(v, f"{path}.{k}")
        return
    if t is list:
        for i, v in enumerate(value):  # type: ignore[arg-type]
            check_json_value(v, f"{path}[{i}]")
        return
    raise InvalidEventError(path, f"{t.__name__} is not a JSON value")


def _check_int(value: object, field: str) -> int:
    if type(value) is not int:
        raise InvalidEventError(field, f"must be an integer, got {type(value).__name__}")
    if not -(2**63) <= value < 2**63:  # type: ignore[operator]
        raise InvalidEventError(field, "must fit in a signed 64-bit integer")
    return value  # type: ignore[return-value]


def _check_timestamp(value: object, field: str) -> None:
    if not isinstance(value, datetime):
        raise InvalidEventError(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError(field, "must be timezone-aware (UTC)")
    if value.tzinfo is not UTC:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidEventError(field, "is out of range once converted to UTC") from None


def validate_event(event: object) -> Event:
    """Check every field of `event`; raise a `ValidationError` naming the first bad one."""
    if not isinstance(event, Event):
        raise InvalidEventError("event", f"must be an Event, got {type(event).__name__}")
    if not isinstance(event.id, str) or not event.id or len(event.id) > 256:
        raise InvalidEventError("id", "must be a non-empty string of at most 256 characters")
    if not event.id.isprintable():
        raise InvalidEventError("id", "must be printable")
    validate_event_type(event.event_type)
    validate_actor_id(event.actor_id)
    version = _check_int(event.version, "version")
    if version < 1:
        raise InvalidEventError("version", f"must be >= 1, got {version}")
    if type(event.data) is not dict:
        raise InvalidEventError(
            "data", f"must be a JSON object (dict), got {type(event.data).__name__}"
        )
    check_json_value(event.data, "data")
    _check_timestamp(event.timestamp, "timestamp")
    if type(event.metadata) is not dict:
        raise InvalidEventError("metadata", "must be a dict of strings")
    for k, v in event.metadata.items():
        if type(k) is not str or type(v) is not str:
            raise InvalidEventError(f"metadata.{k}", "keys and values must be strings")
    return event


def validate_snapshot(snapshot: object) -> Snapshot:
    """Check every field of `snapshot`; raise a `ValidationError` naming the first bad one."""
    if not isinstance(snapshot, Snapshot):
        raise InvalidEventError("snapshot", f"must be a Snapshot, got {type(snapshot).__name__}")
    validate_actor_id(snapshot.actor_id, "snapshot.actor_id")
    version = _check_int(snapshot.version, "snapshot.version")
    if version < 1:
        raise InvalidEventError("snapshot.version", f"must be >= 1, got {version}")
    if type(snapshot.state) is not dict:
        raise InvalidEventError("snapshot.state", "must be a JSON object (dict)")
    check_json_value(snapshot.state, "snapshot.state")
    _check_timestamp(snapshot.timestamp, "snapshot.timestamp")
    return snapshot


# --- codec ------------------------------------------------------------------------------


def format_timestamp(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``: ``2026-01-02T03:04:05.000006Z``."""
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is UTC:  # the wire format's "Z": the hot path
        return ts
    if ts.tzinfo is None:
        raise InvalidEventError("timestamp", f"{text!r} has no timezone")
    return ts if ts.utcoffset() == _ZERO else ts.astimezone(UTC)


_ZERO = datetime(2000, 1, 1, tzinfo=UTC).utcoffset()


def encode_event(event: Event, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> bytes:
    """Validate `event` and encode it to its wire form; raise if invalid or too large."""
    if _plainly_valid(event):
        timestamp: datetime | str = event.timestamp  # UTC with microseconds: orjson's format
    else:
        validate_event(event)  # names the first bad field, or passes an unusual valid event
        timestamp = _wire_timestamp(event.timestamp)
    payload = _dumps(
        {
            "id": event.id,
            "event_type": event.event_type,
            "actor_id": event.actor_id,
            "version": event.version,
            "data": event.data,
            "timestamp": timestamp,
            "metadata": event.metadata,
        }
    )
    if len(payload) > max_bytes:
        raise EventTooLargeError("event", len(payload), max_bytes)
    return payload


_MAX_INT = 2**63


def _plainly_valid(event: object) -> bool:
    """The hot path of `validate_event`: True when every rule holds for an ordinary event
    (UTC timestamp with microseconds, plain JSON data). False means "ask `validate_event`",
    which either names the broken rule or accepts an unusual but valid event."""
    if type(event) is not Event:
        return False
    eid, v, ts, md = event.id, event.version, event.timestamp, event.metadata
    if not (
        type(eid) is str
        and 0 < len(eid) <= 256
        and type(v) is int
        and 0 < v < _MAX_INT
        and type(ts) is datetime
        and ts.tzinfo is UTC
        and ts.microsecond
        and type(event.data) is dict
        and type(md) is dict
        and eid.isprintable()
        and _dict_ok(event.data)
        and (not md or _metadata_ok(md))
    ):
        return False
    try:
        validate_event_type(event.event_type)
        validate_actor_id(event.actor_id)
    except ValueError:  # InvalidIdentifierError
        return False
    return True


def _json_ok(v: object) -> bool:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return True
    if t is float:
        return v - v == 0.0  # type: ignore[operator]  # False for NaN and infinities
    if t is dict:
        return _dict_ok(v)  # type: ignore[arg-type]
    if t is list:
        return _list_ok(v)  # type: ignore[arg-type]
    return False


# Explicit loops with the scalar cases inline: no call per scalar on the hot path.
def _dict_ok(d: dict[object, object]) -> bool:
    for k, x in d.items():
        if type(k) is not str:
            return False
        t = type(x)
        if t is str or t is int or t is bool or x is None:
            continue
        if t is float:
            if x - x != 0.0:  # type: ignore[operator]
                return False
        elif not _json_ok(x):
            return False
    return True


def _list_ok(items: list[object]) -> bool:
    for x in items:
        t = type(x)
        if t is str or t is int or t is bool or x is None:
            continue
        if t is float:
            if x - x != 0.0:  # type: ignore[operator]
                return False
        elif not _json_ok(x):
            return False
    return True


def _metadata_ok(md: dict[object, object]) -> bool:
    for k, x in md.items():  # noqa: SIM110
        if type(k) is not str or type(x) is not str:
            return False
    return True


def _wire_timestamp(ts: datetime) -> datetime | str:
    # orjson writes an aware UTC datetime as RFC 3339 with "Z" ten times faster than
    # isoformat, but drops ".000000" when the microsecond is 0: format those ourselves.
    if ts.tzinfo is UTC and ts.microsecond:
        return ts
    return format_timestamp(ts)


def _dumps(obj: dict[str, Any]) -> bytes:
    """orjson.dumps; a value JSON cannot carry (an integer beyond 64 bits, a lone
    surrogate in a string) is an `InvalidEventError` naming its field, not a crash."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError as e:
        field = "event"
        for key, value in obj.items():
            try:
                orjson.dumps(value, option=orjson.OPT_UTC_Z)
            except orjson.JSONEncodeError:
                field = key
                break
        raise InvalidEventError(field, f"cannot be encoded as JSON ({e})") from None


def decode_event(payload: bytes | str, position: int | None = None) -> Event:
    """Decode the wire form into an `Event` (trusting a store's own bytes: no re-validation)."""
    d = orjson.loads(payload)
    return _build_event(
        d["id"],
        d["event_type"],
        d["actor_id"],
        d["version"],
        d["data"],
        parse_timestamp(d["timestamp"]),
        d["metadata"],
        position,
    )


def event_from_dict(d: Mapping[str, Any]) -> Event:
    """Build and validate an `Event` from a decoded wire-format object from outside."""
    if not isinstance(d, Mapping):
        raise InvalidEventError("event", "must be a JSON object")
    unknown = set(d) - set(WIRE_KEYS)
    if unknown:
        raise InvalidEventError(sorted(unknown)[0], "is not an event field")
    for key in ("event_type", "actor_id", "version"):
        if key not in d:
            raise InvalidEventError(key, "is required")
    ts = d.get("timestamp")
    if ts is None:
        timestamp = utc_now()
    elif isinstance(ts, str):
        try:
            timestamp = parse_timestamp(ts)
        except ValueError:
            raise InvalidEventError("timestamp", f"{ts!r} is not an RFC 3339 timestamp") from None
    else:
        raise InvalidEventError("timestamp", "must be an RFC 3339 string")
    event = _build_event(
        d.get("id") or _new_id(),
        d["event_type"],
        d["actor_id"],
        d["version"],
        d.get("data", {}),
        timestamp,
        d.get("metadata", {}),
        None,
    )
    return validate_event(event)


def event_to_dict(event: Event, *, with_position: bool = False) -> dict[str, Any]:
    """The wire-format object of `event` (plus ``position`` when asked, for CLI output)."""
    d: dict[str, Any] = {
        "id": event.id,
        "event_type": event.event_type,
        "actor_id": event.actor_id,
        "version": event.version,
        "data": event.data,
        "timestamp": format_timestamp(event.timestamp),
        "metadata": event.metadata,
    }
    if with_position:
        d["position"] = event.position
    return d


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Validate and encode a snapshot: ``{"actor_id", "version", "state", "timestamp"}``."""
    validate_snapshot(snapshot)
    try:
        return _dumps(
            {
                "actor_id": snapshot.actor_id,
                "version": snapshot.version,
                "state": snapshot.state,
                "timestamp": format_timestamp(snapshot.timestamp),
            }
        )
    except InvalidEventError as e:  # name the snapshot's field, not an event's
        raise InvalidEventError(f"snapshot.{e.field}", e.rule) from None


def decode_snapshot(payload: bytes | str) -> Snapshot:
    """Decode a snapshot's wire form."""
    d = orjson.loads(payload)
    return Snapshot(
        actor_id=d["actor_id"],
        version=d["version"],
        state=d["state"],
        timestamp=parse_timestamp(d["timestamp"]),
    )


def loads_json_object(text: str | bytes, field: str) -> dict[str, JSONValue]:
    """Parse user-supplied JSON that must be an object with finite numbers."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise InvalidEventError(field, f"is not valid JSON ({e})") from None
    if type(value) is not dict:
        raise InvalidEventError(field, "must be a JSON object")
    check_json_value(value, field)
    check_exact_ints(value, text, field)
    return value


def check_exact_ints(value: object, text: str | bytes, field: str) -> None:
    """Raise `InvalidEventError` if orjson read an integer of `text` as a float.

    orjson parses an integer literal beyond 64 bits into a float; `value` is what it
    parsed from `text`. Integers must stay integers, so such input is refused. Costs a
    second (stdlib) parse only when `value` holds floats at all.
    """
    if _has_float(value):
        _check_no_lossy_ints(value, json.loads(text), field)


def _has_float(value: object) -> bool:
    t = type(value)
    if t is float:
        return True
    if t is dict:
        return any(_has_float(v) for v in value.values())  # type: ignore[attr-defined]
    if t is list:
        return any(_has_float(v) for v in value)  # type: ignore[attr-defined]
    return False


def _check_no_lossy_ints(value: object, exact: object, path: str) -> None:
    if type(value) is float and type(exact) is int:
        raise InvalidEventError(path, "integers must fit in 64 bits (it would become a float)")
    if type(value) is dict and type(exact) is dict:
        for k, v in value.items():  # type: ignore[attr-defined]
            _check_no_lossy_ints(v, exact.get(k), f"{path}.{k}")  # type: ignore[attr-defined]
    elif type(value) is list and type(exact) is list:
        for i, (v, x) in enumerate(zip(value, exact, strict=False)):  # type: ignore[arg-type]
            _check_no_lossy_ints(v, x, f"{path}[{i}]")


def fold_data(
    events: Iterable[Event], initial: Mapping[str, JSONValue] | None = None
) -> dict[str, JSONValue]:
    """Fold the events' ``data`` into one state dict, in the order given: later keys win.

    A shallow merge, ``state.update(event.data)`` per event, starting from a copy of
    `initial` (or ``{}``). Neither `initial` nor the events are modified. This is the
    generic fold ``aether replay --state`` prints; a domain with its own rules (a status
    field, removals, counters) folds with its own function instead.

    >>> fold_data([Event("A", "x", 1, {"a": 1, "b": 1}), Event("B", "x", 2, {"b": 2})])
    {'a': 1, 'b': 2}
    """
    state: dict[str, JSONValue] = dict(initial) if initial else {}
    for event in events:
        state.update(event.data)
    return state
