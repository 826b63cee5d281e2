"""Contract: conditional append, conflicts, idempotent re-save and atomic batches."""

from __future__ import annotations

import dataclasses

import pytest

from aether.errors import InvalidEventError, ValidationError, VersionConflictError
from aether.event import Event, utc_now
from aether.store.base import Store
from aether.testing._store.helpers import (
    ContractBase,
    append_n,
    assert_nothing_written,
    ev,
    read_all_list,
)


class AppendContract(ContractBase):
    """Contract: conditional append, conflicts, idempotent re-save and atomic batches."""

    async def test_first_event_gets_a_position_and_version_1(self, store: Store) -> None:
        stored = await store.save_event(ev("order-1", 1, total=99.99))
        assert stored.version == 1
        assert isinstance(stored.position, int) and stored.position >= 1
        assert await store.get_latest_version("order-1") == 1

    async def test_appends_in_sequence_have_increasing_positions(self, store: Store) -> None:
        stored = await append_n(store, "a", 5)
        positions = [e.position for e in stored]
        assert positions == sorted(positions) and len(set(positions)) == 5  # type: ignore[type-var]
        assert [e.version for e in await store.get_events("a")] == [1, 2, 3, 4, 5]

    async def test_stale_version_is_a_conflict_with_expected_and_actual(self, store: Store) -> None:
        await append_n(store, "a", 3)
        before = await read_all_list(store)
        with pytest.raises(VersionConflictError) as info:
            await store.save_event(ev("a", 2))
        assert (info.value.actor_id, info.value.expected, info.value.actual) == ("a", 1, 3)
        await assert_nothing_written(store, before)

    async def test_gap_in_versions_is_a_conflict(self, store: Store) -> None:
        await append_n(store, "a", 2)
        with pytest.raises(VersionConflictError) as info:
            await store.save_event(ev("a", 5))
        assert (info.value.expected, info.value.actual) == (4, 2)
        assert await store.get_latest_version("a") == 2

    async def test_first_event_must_be_version_1(self, store: Store) -> None:
        with pytest.raises(VersionConflictError) as info:
            await store.save_event(ev("new", 2))
        assert (info.value.expected, info.value.actual) == (1, 0)
        assert await store.get_latest_version("new") == 0
        assert await read_all_list(store) == []

    async def test_identical_resave_is_a_noop_success(self, store: Store) -> None:
        event = ev("a", 1, x=1)
        first = await store.save_event(event)
        again = await store.save_event(event)
        assert again.position == first.position and again.id == first.id
        second = await store.save_event(ev("a", 2))
        # re-saving an older event (uncertain outcome settled late) is still a no-op
        assert (await store.save_event(event)).position == first.position
        events = await read_all_list(store)
        assert [e.id for e in events] == [event.id, second.id]
        assert await store.get_latest_version("a") == 2

    async def test_same_version_with_another_id_is_a_conflict(self, store: Store) -> None:
        await store.save_event(ev("a", 1))
        before = await read_all_list(store)
        with pytest.raises(VersionConflictError) as info:
            await store.save_event(ev("a", 1))
        assert (info.value.expected, info.value.actual) == (0, 1)
        await assert_nothing_written(store, before)

    async def test_same_id_and_version_with_other_content_is_a_conflict(self, store: Store) -> None:
        event = await store.save_event(ev("a", 1, amount=1))
        before = await read_all_list(store)
        changed = [
            dataclasses.replace(event, position=None, data={"amount": 999}),
            dataclasses.replace(event, position=None, data={"amount": 1.0}),
            dataclasses.replace(event, position=None, event_type="Other"),
            dataclasses.replace(event, position=None, metadata={"k": "v"}),
        ]
        for other in changed:
            with pytest.raises(VersionConflictError) as info:
                await store.save_event(other)
            assert (info.value.expected, info.value.actual) == (0, 1)
        await assert_nothing_written(store, before)
        # the same event stamped anew (rebuilt from the same input) is still a re-save
        restamped = dataclasses.replace(event, position=None, timestamp=utc_now())
        assert (await store.save_event(restamped)).position == event.position
        await assert_nothing_written(store, before)
        assert (await store.get_events("a"))[0].data == {"amount": 1}

    async def test_conflict_on_one_actor_does_not_touch_another(self, store: Store) -> None:
        await append_n(store, "a", 1)
        await append_n(store, "b", 1)
        with pytest.raises(VersionConflictError):
            await store.save_event(ev("a", 1))
        assert (await store.save_event(ev("b", 2))).version == 2
        assert await store.list_actors() == {"a": 1, "b": 2}

    async def test_save_events_appends_all_in_order(self, store: Store) -> None:
        await append_n(store, "a", 1)
        batch = [ev("a", v, n=v) for v in (2, 3, 4)]
        stored = await store.save_events(batch)
        assert [e.id for e in stored] == [e.id for e in batch]
        positions = [e.position for e in stored]
        assert all(isinstance(p, int) for p in positions)
        assert positions == sorted(set(positions))  # type: ignore[type-var]
        read = await store.get_events("a")
        assert [(e.version, e.id, e.position) for e in read[1:]] == [
            (e.version, e.id, e.position) for e in stored
        ]

    async def test_save_events_new_actor_from_version_1(self, store: Store) -> None:
        stored = await store.save_events([ev("fresh", v) for v in range(1, 11)])
        assert [e.version for e in stored] == list(range(1, 11))
        assert await store.get_latest_version("fresh") == 10

    async def test_batch_with_bad_version_in_the_middle_writes_nothing(self, store: Store) -> None:
        await append_n(store, "a", 1)
        before = await read_all_list(store)
        with pytest.raises(ValidationError):
            await store.save_events([ev("a", 2), ev("a", 3), ev("a", 5), ev("a", 6)])
        await assert_nothing_written(store, before)
        assert await store.get_latest_version("a") == 1

    async def test_batch_at_stale_version_is_a_conflict_and_writes_nothing(
        self, store: Store
    ) -> None:
        await append_n(store, "a", 3)
        before = await read_all_list(store)
        with pytest.raises(VersionConflictError) as info:
            await store.save_events([ev("a", 3), ev("a", 4), ev("a", 5)])
        assert (info.value.expected, info.value.actual) == (2, 3)
        with pytest.raises(VersionConflictError) as info:
            await store.save_events([ev("a", 5), ev("a", 6)])
        assert (info.value.expected, info.value.actual) == (4, 3)
        await assert_nothing_written(store, before)

    async def test_empty_batch_is_rejected(self, store: Store) -> None:
        with pytest.raises(InvalidEventError):
            await store.save_events([])
        assert await read_all_list(store) == []

    async def test_batch_with_duplicate_ids_is_rejected(self, store: Store) -> None:
        e1 = ev("a", 1)
        e2 = Event(event_type="X", actor_id="a", version=2, id=e1.id)
        with pytest.raises(InvalidEventError):
            await store.save_events([e1, e2])
        assert await read_all_list(store) == []

    async def test_batch_with_an_invalid_event_writes_nothing(self, store: Store) -> None:
        with pytest.raises(InvalidEventError):
            await store.save_events([ev("a", 1), ev("a", 2, bad=float("nan")), ev("a", 3)])
        assert await read_all_list(store) == []
        assert await store.get_latest_version("a") == 0

    async def test_identical_batch_resave_is_a_noop(self, store: Store) -> None:
        batch = [ev("a", v) for v in (1, 2, 3)]
        first = await store.save_events(batch)
        again = await store.save_events(batch)
        assert [e.position for e in again] == [e.position for e in first]
        assert len(await read_all_list(store)) == 3
        assert await store.get_latest_version("a") == 3
