"""`Event`, `Snapshot` and the JSON wire codec.

Wire format: a UTF-8 JSON object with exactly the keys ``id``, ``event_type``,
``actor_id``, ``version``, ``data``, ``timestamp`` and ``metadata`` (``position`` is the
store's, never on the wire). ``timestamp`` is RFC 3339 UTC with microseconds and ``Z``.
Integers stay integers (and fit in 64 bits), floats stay floats; NaN and infinities are
rejected. ``data`` (and a snapshot's ``state``) nests at most `MAX_DEPTH` containers
deep, counting itself, and may not contain itself; ``metadata`` is a flat dict of
strings. Every rule is checked without recursion; a broken one is an
`InvalidEventError` naming the field (``data.items[2]``; ``snapshot.state.x`` for a
snapshot).

The codec is msgspec for decoding (the wire keys and types are checked in C) and orjson
for encoding, chosen by measurement (``python -m benchmarks.codec``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import orjson

from aether._codec import (
    DEFAULT_MAX_EVENT_BYTES,
    WIRE_KEYS,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    format_timestamp,
    parse_timestamp,
)
from aether._jsonvalue import MAX_DEPTH, MAX_VALUES
from aether._jsonvalue import check_value as check_json_value
from aether._model import Event, JSONValue, Snapshot, build_event, new_id, utc_now
from aether._validate import validate_event, validate_snapshot
from aether.errors import InvalidEventError

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "WIRE_KEYS",
    "Event",
    "JSONValue",
    "Snapshot",
    "check_exact_ints",
    "check_json_value",
    "decode_event",
    "decode_snapshot",
    "encode_event",
    "encode_snapshot",
    "event_from_dict",
    "event_to_dict",
    "fold_data",
    "format_timestamp",
    "loads_json_object",
    "parse_timestamp",
    "utc_now",
    "validate_event",
    "validate_snapshot",
]


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
    event = build_event(
        d.get("id") or new_id(),
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


def loads_json_object(text: str | bytes, field: str) -> dict[str, JSONValue]:
    """Parse user-supplied JSON that must be an object of plain JSON values (finite
    numbers, integers within 64 bits, at most `MAX_DEPTH` deep), naming `field` in errors."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise InvalidEventError(field, f"is not valid JSON ({e})") from None
    if type(value) is not dict:
        raise InvalidEventError(field, "must be a JSON object")
    check_json_value(value, field)
    check_exact_ints(value, text, field)
    return value


_loads = msgspec.json.Decoder().decode  # integers stay integers at any size


def check_exact_ints(value: object, text: str | bytes, field: str) -> None:
    """Raise `InvalidEventError` if orjson read an integer of `text` as a float.

    orjson parses an integer literal beyond 64 bits into a float; `value` is what it
    parsed from `text`. Integers must stay integers, so such input is refused. Costs a
    second (exact) parse only when `value` holds floats at all.
    """
    if not _has_float(value):
        return
    try:
        exact = _loads(text)
    except (msgspec.DecodeError, RecursionError):
        return  # orjson read it, so the difference is not an integer's
    pairs: list[tuple[object, object, str]] = [(value, exact, field)]
    while pairs:
        v, x, path = pairs.pop()
        if type(v) is float and type(x) is int:
            raise InvalidEventError(path, "integers must fit in 64 bits (it would become a float)")
        if isinstance(v, dict) and isinstance(x, dict):
            pairs.extend((item, x.get(k), f"{path}.{k}") for k, item in reversed(v.items()))
        elif isinstance(v, list) and isinstance(x, list):
            pairs.extend(
                (item, y, f"{path}[{i}]")
                for i, (item, y) in reversed(list(enumerate(zip(v, x, strict=False))))
            )


def _has_float(value: object) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is float:
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


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
