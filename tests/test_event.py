"""`aether.event`: the Event model, validation, the wire codec and `fold_data`."""

from __future__ import annotations

import json
import math
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aether._model import new_id
from aether.errors import (
    EventTooLargeError,
    InvalidEventError,
    InvalidIdentifierError,
    ValidationError,
)
from aether.event import (
    WIRE_KEYS,
    Event,
    Snapshot,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    event_from_dict,
    event_to_dict,
    fold_data,
    format_timestamp,
    loads_json_object,
    parse_timestamp,
    validate_event,
)

TS = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def make(**changes: object) -> Event:
    fields: dict[str, object] = {
        "event_type": "OrderPlaced",
        "actor_id": "order-1",
        "version": 1,
        "data": {"total": 99.99, "items": 3},
        "id": "e-1",
        "timestamp": TS,
        "metadata": {"correlation_id": "c-1"},
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    event = make()
    payload = encode_event(event)
    back = decode_event(payload, position=7)
    assert back == event.with_position(7)
    assert back.position == 7 and event.position is None


def test_wire_form_has_exactly_the_documented_keys() -> None:
    wire = orjson.loads(encode_event(make()))
    assert tuple(wire) == WIRE_KEYS
    assert wire == {
        "id": "e-1",
        "event_type": "OrderPlaced",
        "actor_id": "order-1",
        "version": 1,
        "data": {"total": 99.99, "items": 3},
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "metadata": {"correlation_id": "c-1"},
    }


def test_ints_stay_ints_and_floats_stay_floats() -> None:
    data = {
        "seq": 7,
        "ratio": 7.0,
        "big": 2**62,
        "neg": -3,
        "tiny": 1e-300,
        "nested": [1, 1.0, {"x": 0}],
    }
    back = decode_event(encode_event(make(data=data)))
    assert back.data == data
    assert type(back.data["seq"]) is int and type(back.data["ratio"]) is float
    assert type(back.data["big"]) is int
    assert [type(v) for v in back.data["nested"][:2]] == [int, float]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_any_json_data_round_trips_exactly(data: dict[str, object]) -> None:
    back = decode_event(encode_event(make(data=data)))
    assert orjson.dumps(back.data) == orjson.dumps(data)
    assert _types(back.data) == _types(data)


def _types(value: object) -> object:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected_with_their_path(bad: float) -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(data={"a": {"b": [1, bad]}}))
    assert info.value.field == "data.a.b[1]"
    assert "NaN" in info.value.rule


def test_timestamp_format_is_rfc3339_utc_with_microseconds() -> None:
    assert format_timestamp(TS) == "2026-01-02T03:04:05.123456Z"
    assert format_timestamp(TS.replace(microsecond=0)) == "2026-01-02T03:04:05.000000Z"
    assert parse_timestamp("2026-01-02T03:04:05.123456Z") == TS


def test_non_utc_timestamp_is_converted_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=plus2)
    wire = orjson.loads(encode_event(make(timestamp=local)))
    assert wire["timestamp"] == "2026-01-02T03:04:05.123456Z"
    back = parse_timestamp("2026-01-02T05:04:05.123456+02:00")
    assert back == TS and back.utcoffset() == timedelta(0)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(timestamp=datetime(2026, 1, 2, 3, 4, 5)))
    assert info.value.field == "timestamp"
    with pytest.raises(InvalidEventError):
        parse_timestamp("2026-01-02T03:04:05")


def test_default_fields() -> None:
    a, b = Event("T", "x", 1), Event("T", "x", 1)
    assert a.id != b.id and len(a.id) == 36
    assert a.timestamp.tzinfo is not None
    assert a.data == {} and a.metadata == {} and a.position is None


def test_default_ids_are_distinct_version_4_uuids_across_draws_and_threads() -> None:
    # Ids are made 256 at a time: take enough to cross several draws, from four threads.
    def take(n: int) -> list[str]:
        return [Event("T", "x", 1).id for _ in range(n)]

    with ThreadPoolExecutor(4) as pool:
        ids = [i for chunk in pool.map(take, [700] * 4) for i in chunk]
    assert len(set(ids)) == len(ids) == 2800
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_does_not_reuse_the_parents_spare_ids() -> None:
    new_id()  # the parent now holds spares a child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, ",".join(new_id() for _ in range(300)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode().split(",")
    os.waitpid(pid, 0)
    parent = [new_id() for _ in range(300)]
    assert len(child) == 300 and not set(child) & set(parent)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": 0}, "version"),
        ({"version": -1}, "version"),
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"version": 2**63}, "version"),
        ({"id": ""}, "id"),
        ({"id": "a\nb"}, "id"),
        ({"data": [1]}, "data"),
        ({"data": {"k": object()}}, "data.k"),
        ({"data": {1: "int key"}}, "data"),
        ({"data": {"s": {1, 2}}}, "data.s"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"metadata": []}, "metadata"),
        ({"timestamp": "2026-01-02"}, "timestamp"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        validate_event(make(**changes))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"actor_id": ""}, "actor_id"),
        ({"event_type": "a b"}, "event_type"),
        ({"event_type": "*"}, "event_type"),
    ],
)
def test_invalid_identifiers_are_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        encode_event(make(**changes))
    assert info.value.field == field


def test_too_large_event_is_refused() -> None:
    with pytest.raises(EventTooLargeError) as info:
        encode_event(make(data={"pad": "x" * 2000}), max_bytes=1000)
    assert info.value.limit == 1000 and info.value.size > 2000


def test_event_from_dict_round_trip_and_defaults() -> None:
    event = make()
    assert event_from_dict(event_to_dict(event)) == event
    minimal = event_from_dict({"event_type": "T", "actor_id": "a", "version": 3})
    assert minimal.version == 3 and minimal.data == {} and minimal.metadata == {}
    assert minimal.id and minimal.timestamp.tzinfo is not None
    with_pos = event_to_dict(event.with_position(5), with_position=True)
    assert with_pos["position"] == 5


@pytest.mark.parametrize(
    ("d", "field"),
    [
        ({"actor_id": "a", "version": 1}, "event_type"),
        ({"event_type": "T", "version": 1}, "actor_id"),
        ({"event_type": "T", "actor_id": "a"}, "version"),
        ({"event_type": "T", "actor_id": "a", "version": 1, "extra": 1}, "extra"),
        ({"event_type": "T", "actor_id": "a", "version": 1, "position": 1}, "position"),
        ({"event_type": "T", "actor_id": "a", "version": 1, "timestamp": "soon"}, "timestamp"),
        ({"event_type": "T", "actor_id": "a", "version": 1, "timestamp": 12}, "timestamp"),
        ({"event_type": "T", "actor_id": "a", "version": "1"}, "version"),
        ({"event_type": "T", "actor_id": "a", "version": 1, "data": "x"}, "data"),
        ({"event_type": 5, "actor_id": "a", "version": 1}, "event_type"),
    ],
)
def test_event_from_dict_errors_name_the_field(d: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        event_from_dict(d)
    assert info.value.field == field


def test_event_from_dict_refuses_non_mapping() -> None:
    with pytest.raises(InvalidEventError) as info:
        event_from_dict([1, 2])  # type: ignore[arg-type]
    assert info.value.field == "event"


def test_loads_json_object() -> None:
    assert loads_json_object('{"a": 1, "b": 1.5}', "data") == {"a": 1, "b": 1.5}
    for text, rule in (
        ("[1]", "JSON object"),
        ("nope", "not valid JSON"),
        ('{"x": NaN}', "not valid"),
    ):
        with pytest.raises(InvalidEventError) as info:
            loads_json_object(text, "data")
        assert info.value.field == "data" and rule in info.value.rule


def test_snapshot_round_trip() -> None:
    snap = Snapshot("order-1", 2, {"status": "shipped", "total": 99.99, "n": 3}, TS)
    assert decode_snapshot(encode_snapshot(snap)) == snap


def test_fold_data_later_keys_win_without_mutating() -> None:
    e1 = make(version=1, data={"status": "placed", "total": 99.99})
    e2 = make(version=2, data={"status": "shipped", "carrier": "FastShip"})
    initial = {"note": "x", "status": "new"}
    state = fold_data([e1, e2], initial)
    assert state == {"note": "x", "status": "shipped", "total": 99.99, "carrier": "FastShip"}
    assert initial == {"note": "x", "status": "new"}
    assert e1.data == {"status": "placed", "total": 99.99}
    assert fold_data([]) == {}
    assert fold_data(iter([e2])) == {"status": "shipped", "carrier": "FastShip"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"data": {"x": 2**64}}, "data"),
        ({"data": {"x": -(2**63) - 1}}, "data"),
        ({"data": {"s": "\ud800"}}, "data"),
        ({"metadata": {"k": "\udc00"}}, "metadata"),
    ],
)
def test_values_json_cannot_carry_are_validation_errors(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(**changes))
    assert info.value.field == field and "cannot be encoded" in info.value.rule


def test_64_bit_integer_edges_round_trip() -> None:
    data = {"max": 2**64 - 1, "min": -(2**63)}
    assert decode_event(encode_event(make(data=data))).data == data


def test_loads_json_object_refuses_integers_that_would_become_floats() -> None:
    with pytest.raises(InvalidEventError) as info:
        loads_json_object('{"f": 1.5, "n": [1, 123456789012345678901234567890]}', "data")
    assert info.value.field == "data.n[1]" and "64 bits" in info.value.rule
    assert loads_json_object('{"f": 1.5, "n": 18446744073709551615}', "data") == {
        "f": 1.5,
        "n": 18446744073709551615,
    }


# --- the codec: msgspec decoding, depth and cycles, property tests ----------------------

from aether._codec import _encode_checked  # noqa: E402
from aether.event import DEFAULT_MAX_EVENT_BYTES, MAX_DEPTH, check_json_value  # noqa: E402


def _nested(depth: int, leaf: object = 1, kind: str = "dict") -> dict[str, object]:
    """A dict whose containers nest `depth` deep (the dict itself is depth 1)."""
    value: object = leaf
    for i in range(depth - 1):
        value = {"k": value} if kind == "dict" or i % 2 else [value]
    return {"k": value}


@pytest.mark.parametrize("kind", ["dict", "mixed"])
def test_data_nesting_up_to_max_depth_round_trips(kind: str) -> None:
    data = _nested(MAX_DEPTH, kind=kind)
    assert decode_event(encode_event(make(data=data))).data == data


@pytest.mark.parametrize("kind", ["dict", "mixed"])
def test_data_deeper_than_max_depth_is_refused_without_recursion(kind: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(data=_nested(MAX_DEPTH + 1, kind=kind)))
    assert info.value.field.startswith("data.k") and str(MAX_DEPTH) in info.value.rule
    # Far beyond Python's recursion limit: still a named error, not a RecursionError.
    with pytest.raises(InvalidEventError):
        validate_event(make(data=_nested(50_000, kind=kind)))


def test_cyclic_data_is_refused_naming_the_cycle() -> None:
    data: dict[str, object] = {"a": {"b": []}}
    data["a"]["b"].append(data)  # type: ignore[index]
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(data=data))
    assert info.value.field == "data.a.b[0]" and "cycle" in info.value.rule
    inner: list[object] = []
    inner.append(inner)
    with pytest.raises(InvalidEventError) as info:
        check_json_value({"x": inner}, "data")
    assert info.value.field == "data.x[0]" and "cycle" in info.value.rule


def test_shared_but_acyclic_containers_are_valid() -> None:
    shared = [1, 2.5, "x"]
    data = {"a": shared, "b": {"c": shared}}
    assert decode_event(encode_event(make(data=data))).data == data


def test_snapshot_state_depth_and_cycle_errors_name_the_snapshot() -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_snapshot(Snapshot("a", 1, _nested(MAX_DEPTH + 1), TS))
    assert info.value.field.startswith("snapshot.state.k")
    state: dict[str, object] = {}
    state["self"] = state
    with pytest.raises(InvalidEventError) as info:
        encode_snapshot(Snapshot("a", 1, state, TS))
    assert info.value.field == "snapshot.state.self" and "cycle" in info.value.rule


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ((1, 2), "tuple is not a JSON value"),
        ({1, 2}, "set is not a JSON value"),
        (b"x", "bytes is not a JSON value"),
        (TS, "datetime is not a JSON value"),
    ],
)
def test_values_orjson_would_convert_are_still_refused(value: object, rule: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(data={"a": [{"b": value}]}))
    assert info.value.field == "data.a[0].b" and info.value.rule == rule


def test_none_values_are_kept_and_nan_next_to_them_is_refused() -> None:
    data = {"a": None, "b": [None, 1.5], "note": "null"}
    assert decode_event(encode_event(make(data=data))).data == data
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(data={"a": None, "b": [None, math.nan]}))
    assert info.value.field == "data.b[1]"


def _wire(**changes: object) -> bytes:
    wire = orjson.loads(encode_event(make()))
    for key, value in changes.items():
        if value is _DROP:
            del wire[key]
        else:
            wire[key] = value
    return json.dumps(wire).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": _DROP}, "id"),
        ({"metadata": _DROP}, "metadata"),
        ({"position": 3}, "position"),
        ({"extra": 1}, "extra"),
        ({"version": 0}, "version"),
        ({"version": "1"}, "version"),
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"id": ""}, "id"),
        ({"data": [1]}, "data"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"timestamp": "2026-01-02T03:04:05.123456"}, "timestamp"),
        ({"timestamp": "soon"}, "timestamp"),
        ({"event_type": 5}, "event_type"),
    ],
)
def test_decode_refuses_payloads_outside_the_wire_format(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_event(_wire(**changes))
    assert info.value.field == field


@pytest.mark.parametrize(
    "payload", [b"", b"nope", b"[1]", b'{"data": {"x": NaN}}', b'{"x": 1e999}', b"[" * 5000]
)
def test_decode_refuses_non_events(payload: bytes) -> None:
    with pytest.raises(InvalidEventError):
        decode_event(payload)


def test_decode_keeps_huge_integers_exact_and_converts_offsets_to_utc() -> None:
    payload = _wire(data={"big": 2**70, "f": 1.0}, timestamp="2026-01-02T05:04:05.123456+02:00")
    event = decode_event(payload)
    assert event.data == {"big": 2**70, "f": 1.0} and type(event.data["f"]) is float
    assert event.timestamp == TS and event.timestamp.tzinfo is UTC


ids = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), min_size=1, max_size=40
)
types_ = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs", "Cf", "Co", "Cn")),
    min_size=1,
    max_size=20,
).filter(lambda s: "*" not in s and ">" not in s and s.isprintable())
timestamps = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
utf8_text = st.text(st.characters(blacklist_categories=("Cs",)))


@given(
    event_type=types_,
    actor_id=ids,
    version=st.integers(min_value=1, max_value=2**63 - 1),
    data=st.dictionaries(utf8_text, json_values, max_size=6),
    timestamp=timestamps,
    metadata=st.dictionaries(utf8_text, utf8_text, max_size=3),
    eid=ids.filter(str.isprintable),
)
def test_any_valid_event_round_trips_exactly(
    event_type: str,
    actor_id: str,
    version: int,
    data: dict[str, object],
    timestamp: datetime,
    metadata: dict[str, str],
    eid: str,
) -> None:
    event = Event(event_type, actor_id, version, data, eid, timestamp, metadata)
    payload = encode_event(event)
    wire = orjson.loads(payload)
    assert tuple(wire) == WIRE_KEYS
    assert wire["timestamp"] == format_timestamp(timestamp)
    assert wire["timestamp"].endswith("Z") and len(wire["timestamp"]) == 27
    back = decode_event(payload, position=9)
    assert back == event.with_position(9)
    assert _types(back.data) == _types(data)
    assert encode_event(back) == payload
    assert _encode_checked(event, DEFAULT_MAX_EVENT_BYTES) == payload  # the slow path agrees


bad_scalars = st.sampled_from([math.nan, math.inf, -math.inf, (1,), {1}, b"x", object()])


@given(st.dictionaries(st.text(), json_values, min_size=1, max_size=4), bad_scalars, st.data())
def test_any_bad_value_anywhere_is_refused_with_its_path(
    data: dict[str, object], bad: object, draw: st.DataObject
) -> None:
    # Put `bad` at a random place in `data` and remember its path.
    path = "data"
    node: object = data
    while True:
        if isinstance(node, dict) and node:
            key = draw.draw(st.sampled_from(sorted(node)))
            child = node[key]
            if not isinstance(child, dict | list) or not child or draw.draw(st.booleans()):
                node[key] = bad
                path += f".{key}"
                break
            node, path = child, f"{path}.{key}"
        elif isinstance(node, list) and node:
            i = draw.draw(st.integers(0, len(node) - 1))
            child = node[i]
            if not isinstance(child, dict | list) or not child or draw.draw(st.booleans()):
                node[i] = bad
                path += f"[{i}]"
                break
            node, path = child, f"{path}[{i}]"
        else:  # pragma: no cover - an empty container is never chosen
            raise AssertionError
    with pytest.raises(InvalidEventError) as info:
        encode_event(make(data=data))
    assert info.value.field == path


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_crashes_otherwise(payload: bytes) -> None:
    try:
        event = decode_event(payload)
    except InvalidEventError:
        return
    assert isinstance(event, Event)  # pragma: no cover - random bytes are never an event


def test_decoded_events_are_ordinary_frozen_events() -> None:
    from dataclasses import FrozenInstanceError, replace

    from aether._model import _build_with_setters, build_event

    original = make(metadata={"k": "v"})
    decoded = decode_event(encode_event(original), 7)
    for e in (
        decoded,
        build_event("i", "T", "a", 1, {"x": 1}, TS, {}, None),
        _build_with_setters("i", "T", "a", 1, {"x": 1}, TS, {}, None),
    ):
        assert type(e) is Event
        with pytest.raises(FrozenInstanceError):
            e.version = 2  # type: ignore[misc]
    assert decoded == replace(original, position=7)
    assert replace(decoded, version=9).version == 9
    assert build_event("i", "T", "a", 1, {"x": 1}, TS, {}, None) == _build_with_setters(
        "i", "T", "a", 1, {"x": 1}, TS, {}, None
    )
    assert decoded.with_position(8).position == 8 and decoded.position == 7


from aether._jsonvalue import MAX_VALUES, first_problem, shape_ok  # noqa: E402

maybe_bad_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(st.characters(blacklist_categories=("Cs",)))
    | st.sampled_from([(1,), {1}, b"x", object()]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), maybe_bad_values, max_size=6))
def test_the_fast_shape_check_agrees_with_the_checked_walk(data: dict[str, object]) -> None:
    """`shape_ok` (the hot path) says yes exactly when `first_problem` finds nothing."""
    assert shape_ok(data) == (first_problem(data, "data") is None)


def test_the_fast_shape_check_counts_flat_lists_and_refuses_cycles() -> None:
    assert shape_ok({"a": [1] * 10, "b": ["x"] * 10})
    assert not shape_ok({"a": [1] * (MAX_VALUES // 2 + 1), "b": [2] * (MAX_VALUES // 2)})
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    assert not shape_ok({"a": cyclic})
    assert not shape_ok({"a": [1, 2, math.nan]})
    assert not shape_ok({"a": [1, (2,)]})
