"""The JSON wire codec of events and snapshots.

Decoding goes through msgspec into `_Wire`, a struct with exactly the wire keys and their
types: a missing or unknown key, a wrong type, a version below 1, an empty or overlong id,
metadata that is not strings or a timestamp without a zone is refused in C before an
`Event` exists. Integers stay integers at any size, floats stay floats, and JSON has no
NaN or infinity literals. Encoding checks the event (`aether._validate`) and writes the
same form with orjson.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import orjson

from aether._jsonvalue import shape_ok
from aether._model import Event, JSONValue, Snapshot, build_event
from aether._validate import ID_MAX, validate_event, validate_snapshot
from aether.errors import EventTooLargeError, InvalidEventError, InvalidIdentifierError
from aether.subjects import validate_actor_id, validate_event_type

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
"""NATS's default max payload; a larger encoded event is refused before it is sent."""

WIRE_KEYS = ("id", "event_type", "actor_id", "version", "data", "timestamp", "metadata")

_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
_Version = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX)]


class _Wire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: _Id
    event_type: str
    actor_id: str
    version: _Version
    data: dict[str, Any]
    timestamp: _AwareDatetime
    metadata: dict[str, str]


class _SnapshotWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    actor_id: str
    version: _Version
    state: dict[str, Any]
    timestamp: _AwareDatetime


_decode_wire = msgspec.json.Decoder(_Wire).decode
_decode_snapshot_wire = msgspec.json.Decoder(_SnapshotWire).decode
_dumps = orjson.dumps
_OPT = orjson.OPT_UTC_Z


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
    return _to_utc(ts, "timestamp")


def encode_event(event: Event, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> bytes:
    """Validate `event` and encode it to its wire form; raise if invalid or too large."""
    # The hot path: an ordinary event (a UTC timestamp with a non-zero microsecond, which
    # orjson writes exactly in the wire format; known identifiers; JSON-shaped data) is
    # checked here and by orjson. Anything else goes to `_encode_checked`, which names
    # the broken rule or encodes an unusual but valid event.
    if type(event) is Event:
        eid, v, ts, data, md = event.id, event.version, event.timestamp, event.data, event.metadata
        if (
            type(eid) is str
            and type(v) is int
            and type(data) is dict
            and type(md) is dict
            and type(ts) is datetime
            and ts.tzinfo is UTC
            and ts.microsecond
            and 0 < v < _INT64
            and 0 < len(eid) <= ID_MAX
            and (event.event_type in _known_types or _learn_type(event.event_type))
            and (event.actor_id in _known_actors or _learn_actor(event.actor_id))
            and (not md or _all_str(md))
            and shape_ok(data)
            and eid.isprintable()
        ):
            try:
                payload = _dumps(
                    {
                        "id": eid,
                        "event_type": event.event_type,
                        "actor_id": event.actor_id,
                        "version": v,
                        "data": data,
                        "timestamp": ts,
                        "metadata": md,
                    },
                    option=_OPT,
                )
            except TypeError:  # orjson.JSONEncodeError: let the checked path name it
                pass
            else:
                if len(payload) > max_bytes:
                    raise EventTooLargeError("event", len(payload), max_bytes)
                return payload
    return _encode_checked(event, max_bytes)


_INT64 = 2**63
_CACHE_LIMIT = 65536
_known_types: set[str] = set()
_known_actors: set[str] = set()


def _all_str(metadata: dict[str, str]) -> bool:
    for v in metadata.values():  # noqa: SIM110 - a loop beats all(map(...)) here
        if type(v) is not str:
            return False
    return True


def _learn_type(event_type: object) -> bool:
    # Remember a valid event type: the next event of that type costs a set lookup.
    if type(event_type) is not str:
        return False
    try:
        validate_event_type(event_type)
    except InvalidIdentifierError:
        return False
    if len(_known_types) >= _CACHE_LIMIT:
        _known_types.clear()
    _known_types.add(event_type)
    return True


def _learn_actor(actor_id: object) -> bool:
    if type(actor_id) is not str:
        return False
    try:
        validate_actor_id(actor_id)
    except InvalidIdentifierError:
        return False
    if len(_known_actors) >= _CACHE_LIMIT:
        _known_actors.clear()
    _known_actors.add(actor_id)
    return True


def _encode_checked(event: Event, max_bytes: int) -> bytes:
    validate_event(event)  # names the first broken rule
    obj = {
        "id": event.id,
        "event_type": event.event_type,
        "actor_id": event.actor_id,
        "version": event.version,
        "data": event.data,
        "timestamp": format_timestamp(event.timestamp),
        "metadata": event.metadata,
    }
    try:
        payload = _dumps(obj, option=_OPT)
    except orjson.JSONEncodeError as e:
        raise _unencodable(obj, e) from None
    if len(payload) > max_bytes:
        raise EventTooLargeError("event", len(payload), max_bytes)
    return payload


def _unencodable(obj: dict[str, object], error: Exception) -> InvalidEventError:
    # A lone surrogate in a string is valid Python but not UTF-8: name its field.
    for key, value in obj.items():
        try:
            _dumps(value, option=_OPT)
        except orjson.JSONEncodeError:
            return InvalidEventError(key, f"cannot be encoded as JSON ({error})")
    return InvalidEventError("event", f"cannot be encoded as JSON ({error})")  # pragma: no cover


def decode_event(payload: bytes | str, position: int | None = None) -> Event:
    """Decode the wire form into an `Event`; `InvalidEventError` naming the field when the
    payload is not one (not JSON, a key missing or unknown, a value of the wrong type)."""
    try:
        w = _decode_wire(payload)
    except msgspec.DecodeError as err:
        raise _not_an_event(err, "") from None
    ts = w.timestamp
    if ts.tzinfo is not UTC:
        ts = _to_utc(ts, "timestamp")
    return build_event(w.id, w.event_type, w.actor_id, w.version, w.data, ts, w.metadata, position)


def _to_utc(ts: datetime, field: str) -> datetime:
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise InvalidEventError(field, "is out of range once converted to UTC") from None


# msgspec says where: "Expected `int`, got `str` - at `$.version`", or which key:
# "Object missing required field `event_type`".
_WHERE = re.compile(r"at `\$\.(\w+)|field `(\w+)`")


def _not_an_event(error: msgspec.DecodeError, prefix: str) -> InvalidEventError:
    where = _WHERE.search(str(error))
    field = (where.group(1) or where.group(2)) if where else "event"
    if prefix:
        field = prefix if field == "event" else f"{prefix}.{field}"
    return InvalidEventError(field, f"is not in the wire format ({error})")


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Validate and encode a snapshot: ``{"actor_id", "version", "state", "timestamp"}``."""
    validate_snapshot(snapshot)
    obj = {
        "actor_id": snapshot.actor_id,
        "version": snapshot.version,
        "state": snapshot.state,
        "timestamp": format_timestamp(snapshot.timestamp),
    }
    try:
        return _dumps(obj, option=_OPT)
    except orjson.JSONEncodeError as e:  # name the snapshot's field, not an event's
        error = _unencodable(obj, e)
        raise InvalidEventError(f"snapshot.{error.field}", error.rule) from None


def decode_snapshot(payload: bytes | str) -> Snapshot:
    """Decode a snapshot's wire form (`InvalidEventError` naming ``snapshot.*`` if not one)."""
    try:
        w = _decode_snapshot_wire(payload)
    except msgspec.DecodeError as err:
        raise _not_an_event(err, "snapshot") from None
    ts = w.timestamp
    if ts.tzinfo is not UTC:
        ts = _to_utc(ts, "snapshot.timestamp")
    state: dict[str, JSONValue] = w.state
    return Snapshot(actor_id=w.actor_id, version=w.version, state=state, timestamp=ts)
