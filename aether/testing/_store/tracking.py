"""Contract: tracking records commit atomically with a unit and fence stale writers.

Revisions are only required to increase (the memory and SQLite stores count 1, 2, 3...;
another store may use its own sequence numbers): a writer always expects the revision it
last read or committed, and 0 for a record that must not exist yet.
"""

from __future__ import annotations

import pytest

from aether.errors import TrackingConflictError, ValidationError, VersionConflictError
from aether.store.base import Store, Tracking
from aether.testing._store.helpers import (
    ContractBase,
    append_n,
    assert_nothing_written,
    ev,
    read_all_list,
)


async def _revision(store: Store, key: str) -> int:
    record = await store.get_tracking(key)
    assert record is not None
    return record.revision


class TrackingContract(ContractBase):
    """Contract: `save_events(..., tracking=)` and `get_tracking`."""

    async def test_unknown_record_is_none(self, store: Store) -> None:
        assert await store.get_tracking("proc.0") is None

    async def test_record_is_written_with_the_unit(self, store: Store) -> None:
        stored = await store.save_events(
            [ev("a", 1), ev("b", 1)],
            tracking=Tracking("proc.0", 10, 0, {"owner": "node-1", "epoch": 3}),
        )
        assert len(stored) == 2
        record = await store.get_tracking("proc.0")
        assert record is not None
        assert (record.key, record.position) == ("proc.0", 10)
        assert type(record.revision) is int and record.revision >= 1
        assert record.data == {"owner": "node-1", "epoch": 3}
        assert await store.list_actors() == {"a": 1, "b": 1}

    async def test_revision_increases_with_each_commit(self, store: Store) -> None:
        revisions: list[int] = []
        for i in range(1, 4):
            expected = revisions[-1] if revisions else 0
            await store.save_events([ev("a", i)], tracking=Tracking("k", i * 10, expected))
            record = await store.get_tracking("k")
            assert record is not None and record.position == i * 10
            revisions.append(record.revision)
        assert revisions[0] >= 1 and revisions == sorted(set(revisions))

    async def test_a_checkpoint_alone_is_a_commit(self, store: Store) -> None:
        assert await store.save_events([], tracking=Tracking("k", 5, 0)) == []
        first = await _revision(store, "k")
        assert await store.save_events([], tracking=Tracking("k", 7, first, {"n": 1})) == []
        record = await store.get_tracking("k")
        assert record is not None
        assert (record.position, record.data) == (7, {"n": 1}) and record.revision > first
        assert await read_all_list(store) == []

    async def test_a_stale_writer_is_fenced_and_writes_nothing(self, store: Store) -> None:
        await store.save_events([ev("a", 1)], tracking=Tracking("shard.3", 1, 0, {"o": "n1"}))
        held = await _revision(store, "shard.3")  # what n1 holds
        await store.save_events([], tracking=Tracking("shard.3", 1, held, {"o": "n2"}))
        now = await _revision(store, "shard.3")  # n2 took the shard over
        before = await read_all_list(store)
        with pytest.raises(TrackingConflictError) as info:
            await store.save_events([ev("a", 2), ev("b", 1)], tracking=Tracking("shard.3", 2, held))
        assert (info.value.key, info.value.expected, info.value.actual) == ("shard.3", held, now)
        with pytest.raises(TrackingConflictError) as info:
            await store.save_events([], tracking=Tracking("shard.3", 9, 0))
        assert (info.value.expected, info.value.actual) == (0, now)
        await assert_nothing_written(store, before)
        record = await store.get_tracking("shard.3")
        assert record is not None
        assert (record.position, record.revision, record.data) == (1, now, {"o": "n2"})

    async def test_a_version_conflict_leaves_the_record_alone(self, store: Store) -> None:
        await append_n(store, "a", 2)
        await store.save_events([], tracking=Tracking("k", 1, 0))
        held = await _revision(store, "k")
        with pytest.raises(VersionConflictError):
            await store.save_events([ev("a", 2)], tracking=Tracking("k", 2, held))
        record = await store.get_tracking("k")
        assert record is not None and (record.position, record.revision) == (1, held)

    async def test_records_are_independent(self, store: Store) -> None:
        await store.save_events([], tracking=Tracking("p.0", 1, 0))
        zero = await _revision(store, "p.0")
        await store.save_events([], tracking=Tracking("p.1", 2, 0))
        await store.save_events([], tracking=Tracking("p.1", 3, await _revision(store, "p.1")))
        record = await store.get_tracking("p.0")
        assert record is not None and (record.position, record.revision) == (1, zero)
        record = await store.get_tracking("p.1")
        assert record is not None and record.position == 3

    @pytest.mark.parametrize(
        "bad",
        [
            Tracking("", 1, 0),
            Tracking("has space", 1, 0),
            Tracking("k", -1, 0),
            Tracking("k", 1, -1),
            Tracking("k", 1, 0, [1]),  # type: ignore[arg-type]
            ("k", 1, 0),
        ],
        ids=[
            "empty-key",
            "space-key",
            "negative-position",
            "negative-expected",
            "list-data",
            "tuple",
        ],
    )
    async def test_bad_tracking_is_refused(self, store: Store, bad: object) -> None:
        with pytest.raises(ValidationError):
            await store.save_events([ev("a", 1)], tracking=bad)  # type: ignore[arg-type]
        assert await read_all_list(store) == []
