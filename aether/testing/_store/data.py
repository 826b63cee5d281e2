"""Contract: event data round trip, bad data, identifiers and size limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from aether.errors import (
    EventTooLargeError,
    InvalidEventError,
    InvalidIdentifierError,
    ValidationError,
)
from aether.event import Event
from aether.store.base import Store
from aether.testing._store.helpers import ContractBase, assert_nothing_written, ev, read_all_list

DATA = {
    "int": 7,
    "zero": 0,
    "negative": -3,
    "big": 2**53 + 1,
    "float": 7.0,
    "fraction": 99.99,
    "tiny": 1e-300,
    "flag": True,
    "nothing": None,
    "text": 'ünïcødé ✓ "quoted" \\ /',
    "nested": {"list": [1, 2.5, {"deep": [None, False, "x"]}], "empty": {}, "none": []},
}


def _same_json(a: object, b: object) -> bool:
    """Equal values with equal types all the way down (7 is not 7.0 here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


ODD_IDS = [
    "a.b",
    "a*b",
    "a>b",
    "a b",
    "user@example.com",
    "ünïcødé-ид-名前",
    "$SYS",
    "$JS.API",
    "a.*.>",
    "ab",
    "a_b",
    "a-b",
    "=YS5i",  # what "a.b" encodes to as a subject token: still a different actor
    "a/b\\c",
    "🙂",
    " leading-space",
    "x" * 1024,
    "é" * 512,
]


class DataContract(ContractBase):
    """Contract: event data round trip, bad data, identifiers and size limits."""

    async def test_ints_stay_ints_floats_stay_floats_nested_data_round_trips(
        self,
        store: Store,
    ) -> None:
        ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        event = Event(
            event_type="OrderPlaced",
            actor_id="order-1",
            version=1,
            data=DATA,
            timestamp=ts,
            metadata={"correlation_id": "c-1", "causation_id": "c-0"},
        )
        await store.save_event(event)
        for read in ((await store.get_events("order-1"))[0], (await read_all_list(store))[0]):
            assert _same_json(read.data, DATA)
            assert type(read.data["int"]) is int and type(read.data["float"]) is float
            assert read.timestamp == ts and read.timestamp.utcoffset() == timedelta(0)
            assert read.metadata == {"correlation_id": "c-1", "causation_id": "c-0"}
            assert (read.id, read.event_type, read.actor_id, read.version) == (
                event.id,
                "OrderPlaced",
                "order-1",
                1,
            )

    async def test_non_utc_timestamp_is_stored_as_the_same_instant(self, store: Store) -> None:
        ts = datetime(2026, 5, 6, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
        await store.save_event(Event(event_type="X", actor_id="a", version=1, timestamp=ts))
        read = (await store.get_events("a"))[0]
        assert read.timestamp == ts and read.timestamp.utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        "data",
        [
            {"x": float("nan")},
            {"x": float("inf")},
            {"x": float("-inf")},
            {"deep": {"list": [1, float("nan")]}},
            {"x": {1, 2}},
            {"x": b"bytes"},
            {"x": object()},
            {"x": (1, 2)},
            {1: "int key"},
        ],
        ids=["nan", "inf", "-inf", "nested-nan", "set", "bytes", "object", "tuple", "int-key"],
    )
    async def test_bad_data_is_rejected_and_nothing_written(
        self, store: Store, data: dict[str, object]
    ) -> None:
        await store.save_event(ev("a", 1))
        before = await read_all_list(store)
        with pytest.raises(InvalidEventError):
            await store.save_event(Event(event_type="X", actor_id="a", version=2, data=data))
        await assert_nothing_written(store, before)
        assert await store.get_latest_version("a") == 1

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"data": [1, 2]},
            {"data": "text"},
            {"data": None},
            {"version": 0},
            {"version": -1},
            {"version": "2"},
            {"version": 2.0},
            {"version": True},
            {"timestamp": datetime(2026, 1, 1)},
            {"timestamp": "2026-01-01T00:00:00Z"},
            {"metadata": {"n": 1}},
            {"metadata": "m"},
            {"id": ""},
        ],
        ids=[
            "list-data",
            "str-data",
            "none-data",
            "version-0",
            "version-neg",
            "version-str",
            "version-float",
            "version-bool",
            "naive-ts",
            "str-ts",
            "metadata-int",
            "metadata-str",
            "empty-id",
        ],
    )
    async def test_bad_fields_are_rejected_and_nothing_written(
        self, store: Store, kwargs: dict[str, Any]
    ) -> None:
        fields = {"event_type": "X", "actor_id": "a", "version": 1, **kwargs}
        with pytest.raises(ValidationError):
            await store.save_event(Event(**fields))
        assert await read_all_list(store) == []
        assert await store.list_actors() == {}

    @pytest.mark.parametrize(
        "actor_id",
        ["", "é" * 513, "x" * 1025, "a\nb", "a\x00b", "tab\there", "del\x7f", 42, None],
        ids=["empty", "1026-bytes", "1025-ascii", "newline", "nul", "tab", "del", "int", "none"],
    )
    async def test_bad_actor_ids_are_rejected_and_nothing_written(
        self, store: Store, actor_id: object
    ) -> None:
        with pytest.raises(InvalidIdentifierError):
            await store.save_event(Event(event_type="X", actor_id=actor_id, version=1))  # type: ignore[arg-type]
        with pytest.raises(InvalidIdentifierError):
            await store.save_events([Event(event_type="X", actor_id=actor_id, version=1)])  # type: ignore[arg-type]
        with pytest.raises(InvalidIdentifierError):
            await store.get_latest_version(actor_id)  # type: ignore[arg-type]
        with pytest.raises(InvalidIdentifierError):
            await store.get_events(actor_id)  # type: ignore[arg-type]
        assert await read_all_list(store) == []
        assert await store.list_actors() == {}

    @pytest.mark.parametrize(
        "event_type", ["", "has space", "a*b", "a>b", "line\nbreak", "x" * 257], ids=str
    )
    async def test_bad_event_types_are_rejected_and_nothing_written(
        self, store: Store, event_type: str
    ) -> None:
        with pytest.raises(InvalidIdentifierError):
            await store.save_event(Event(event_type=event_type, actor_id="a", version=1))
        assert await read_all_list(store) == []

    async def test_odd_actor_ids_work_and_are_distinct(self, store: Store) -> None:
        for i, actor_id in enumerate(ODD_IDS):
            await store.save_event(ev(actor_id, 1, i=i))
        await store.save_event(ev("a.b", 2, i=-1))
        assert await store.list_actors() == {a: (2 if a == "a.b" else 1) for a in ODD_IDS}
        for i, actor_id in enumerate(ODD_IDS):
            events = await store.get_events(actor_id)
            assert events[0].actor_id == actor_id and events[0].data == {"i": i}
            assert await store.get_latest_version(actor_id) == len(events)
        assert len(await read_all_list(store)) == len(ODD_IDS) + 1

    async def test_oversize_event_is_rejected_and_nothing_written(self, store: Store) -> None:
        await store.save_event(ev("a", 1))
        before = await read_all_list(store)
        big = "x" * (1024 * 1024 + 1)
        with pytest.raises(EventTooLargeError) as info:
            await store.save_event(ev("a", 2, blob=big))
        assert info.value.size > info.value.limit
        with pytest.raises(EventTooLargeError):
            await store.save_events([ev("a", 2), ev("a", 3, blob=big)])
        await assert_nothing_written(store, before)
        assert (await store.save_event(ev("a", 2, blob="x" * 1000))).version == 2
