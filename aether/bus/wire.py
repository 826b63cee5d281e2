"""The bus's hot path to and from the wire format of `aether.event`.

`WireEncoder.encode` produces exactly the bytes `encode_event` produces (the tests check
it), with the same validation, but caches validated identifiers and their subject
tokens and lets orjson format UTC timestamps: several times faster per event.
Anything unusual falls back to `encode_event` itself.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from aether.errors import EventTooLargeError, InvalidEventError
from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    encode_event,
    parse_timestamp,
    validate_event,
)
from aether.subjects import (
    encode_token,
    validate_actor_id,
    validate_event_type,
    validate_namespace,
)

log = logging.getLogger("aether.bus")

_CACHE_LIMIT = 65536
_dumps = orjson.dumps
_UTC_Z = orjson.OPT_UTC_Z
_MAX_INT = 2**63


def _json_ok(v: object) -> bool:
    """True when `v` is plain JSON with finite numbers (False: let the slow path explain)."""
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


def _metadata_ok(md: object) -> bool:
    if type(md) is not dict:
        return False
    for k, x in md.items():  # type: ignore[attr-defined]  # noqa: SIM110
        if type(k) is not str or type(x) is not str:
            return False
    return True


class WireEncoder:
    """Validates and encodes events for one bus, with bounded identifier caches."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._types: dict[str, str] = {}
        self._actors: dict[str, str] = {}
        self._subjects: dict[tuple[str, str, str], str] = {}

    def subject(self, namespace: str, event_type: str, actor_id: str) -> str:
        """The bus subject of an event; validates the three identifiers (cached)."""
        key = (namespace, event_type, actor_id)
        subject = self._subjects.get(key)
        if subject is None:
            validate_namespace(namespace)
            subject = (
                f"aether.{namespace}.bus.{self.type_token(event_type)}.{self.actor_token(actor_id)}"
            )
            if len(self._subjects) >= _CACHE_LIMIT:
                self._subjects.clear()
            self._subjects[key] = subject
        return subject

    def type_token(self, event_type: str) -> str:
        """The validated subject token of `event_type`."""
        tok = self._types.get(event_type)
        if tok is None:
            tok = encode_token(validate_event_type(event_type))
            if len(self._types) >= _CACHE_LIMIT:
                self._types.clear()
            self._types[event_type] = tok
        return tok

    def actor_token(self, actor_id: str) -> str:
        """The validated subject token of `actor_id`."""
        tok = self._actors.get(actor_id)
        if tok is None:
            tok = encode_token(validate_actor_id(actor_id))
            if len(self._actors) >= _CACHE_LIMIT:
                self._actors.clear()
            self._actors[actor_id] = tok
        return tok

    def encode(self, event: Event) -> bytes:
        """Validate `event` and return its wire bytes; raise if invalid or too large."""
        if type(event) is not Event:
            validate_event(event)  # raises the precise error
        self.type_token(event.event_type)
        self.actor_token(event.actor_id)
        return self._payload(event)

    def encode_for(self, namespace: str, event: Event) -> tuple[str, bytes]:
        """Validate `namespace` and `event`; return the bus subject and the wire bytes."""
        if type(event) is not Event:
            validate_event(event)  # raises the precise error
        subject = self._subjects.get((namespace, event.event_type, event.actor_id))
        if subject is None:
            subject = self.subject(namespace, event.event_type, event.actor_id)
        return subject, self._payload(event)

    def _payload(self, event: Event) -> bytes:
        # Identifiers are validated by the caller.
        eid = event.id
        v = event.version
        data = event.data
        ts = event.timestamp
        md = event.metadata
        if (
            type(eid) is str
            and type(v) is int
            and type(data) is dict
            and type(ts) is datetime
            and type(md) is dict
            and 0 < len(eid) <= 256
            and 0 < v < _MAX_INT
            and ts.tzinfo is UTC
            and ts.microsecond
            and ts.year >= 1000
            and eid.isprintable()
            and _dict_ok(data)
            and (not md or _metadata_ok(md))
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
                    option=_UTC_Z,
                )
            except orjson.JSONEncodeError as e:  # e.g. an integer beyond 64 bits
                raise InvalidEventError("data", f"cannot be encoded as JSON ({e})") from None
            if len(payload) > self.max_bytes:
                raise EventTooLargeError("event", len(payload), self.max_bytes)
            return payload
        try:
            return encode_event(event, self.max_bytes)
        except orjson.JSONEncodeError as e:
            raise InvalidEventError("data", f"cannot be encoded as JSON ({e})") from None
        except OverflowError:  # e.g. 0001-01-01T00:00+02:00 has no UTC equivalent
            raise InvalidEventError("timestamp", "is outside the range of UTC datetimes") from None


_new = object.__new__
_set_id = Event.id.__set__  # type: ignore[attr-defined]
_set_type = Event.event_type.__set__  # type: ignore[attr-defined]
_set_actor = Event.actor_id.__set__  # type: ignore[attr-defined]
_set_version = Event.version.__set__  # type: ignore[attr-defined]
_set_data = Event.data.__set__  # type: ignore[attr-defined]
_set_ts = Event.timestamp.__set__  # type: ignore[attr-defined]
_set_md = Event.metadata.__set__  # type: ignore[attr-defined]
_set_pos = Event.position.__set__  # type: ignore[attr-defined]
_fromisoformat = datetime.fromisoformat
_loads = orjson.loads


def decode_wire(payload: bytes) -> Event:
    """`decode_event` for the bus: the same result, faster (slot setters, UTC fast path)."""
    d = _loads(payload)
    text = d["timestamp"]
    ts = _fromisoformat(text)
    if ts.tzinfo is not UTC:
        ts = parse_timestamp(text)
    e = _new(Event)
    _set_id(e, d["id"])
    _set_type(e, d["event_type"])
    _set_actor(e, d["actor_id"])
    _set_version(e, d["version"])
    _set_data(e, d["data"])
    _set_ts(e, ts)
    _set_md(e, d["metadata"])
    _set_pos(e, None)
    return e


def decode_message(msg: Any) -> Event | None:
    """Decode a NATS message of the bus; None (and a warning) when it is not an event."""
    try:
        return decode_wire(msg.data)
    except (ValueError, KeyError, TypeError) as e:
        log.warning(
            "ignored a message on %s that is not an aether event (%s: %s)",
            getattr(msg, "subject", "?"),
            type(e).__name__,
            e,
        )
        return None
