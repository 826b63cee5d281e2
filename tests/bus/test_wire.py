"""The bus's fast codec path is byte-for-byte the codec of `aether.event`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether.bus._wire import WireEncoder, decode_wire
from aether.errors import EventTooLargeError, ValidationError
from aether.event import Event, decode_event, encode_event, event_to_dict

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2, 1, 1), timezones=st.sampled_from([timezone(timedelta(hours=2)), UTC])
)
events = st.builds(
    Event,
    event_type=st.sampled_from(["Placed", "a.b", "Ünïcode", "x" * 256]),
    actor_id=st.sampled_from(["order-1", "user@example.com", "a.b", "a*b", "ключ"]),
    version=st.integers(min_value=1, max_value=2**63 - 1),
    data=st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    timestamp=timestamps,
    metadata=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_encode_is_encode_event_and_decode_is_decode_event(event: Event) -> None:
    payload = WireEncoder().encode(event)
    assert payload == encode_event(event)
    assert decode_wire(payload) == decode_event(payload)
    # encode_event's fast path writes exactly the reference form of the wire format
    assert payload == orjson.dumps(event_to_dict(event))  # timestamps by format_timestamp


@pytest.mark.parametrize(
    "event",
    [
        Event("T", "a", 1, {"x": float("nan")}),
        Event("T", "a", 1, {"x": [1, float("inf")]}),
        Event("T", "a", 1, {"x": (1, 2)}),  # type: ignore[dict-item]
        Event("T", "a", 1, {1: 2}),  # type: ignore[dict-key]
        Event("T", "a", 1, {"x": 2**64}),
        Event("T", "a", 0),
        Event("T", "a", True),  # type: ignore[arg-type]
        Event("T", "", 1),
        Event("T T", "a", 1),
        Event("T", "a", 1, metadata={"k": 1}),  # type: ignore[dict-item]
        Event("T", "a", 1, timestamp=datetime(2026, 1, 1)),
        Event("T", "a", 1, id=""),
        Event("T", "a", 1, timestamp=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
    ],
)
def test_invalid_events_are_refused_like_encode_event(event: Event) -> None:
    with pytest.raises(ValidationError):
        WireEncoder().encode(event)


def test_size_limit() -> None:
    event = Event("T", "a", 1, {"blob": "x" * 100})
    assert len(WireEncoder(1000).encode(event)) < 1000
    with pytest.raises(EventTooLargeError):
        WireEncoder(100).encode(event)
