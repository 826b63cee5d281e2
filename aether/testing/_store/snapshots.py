"""Contract: snapshots round trip, never run ahead of the events, the newest one wins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aether.errors import InvalidEventError, InvalidIdentifierError, ValidationError
from aether.event import Snapshot
from aether.store.base import SnapshotStore, Store
from aether.testing._store.helpers import ContractBase, append_n


def _snapshots(store: Store) -> SnapshotStore:
    assert isinstance(store, SnapshotStore)
    return store


class SnapshotContract(ContractBase):
    """Contract: snapshots round trip, never run ahead of the events, the newest one wins."""

    async def test_no_snapshot_is_none(self, store: Store) -> None:
        assert await _snapshots(store).get_latest_snapshot("a") is None

    async def test_snapshot_round_trip(self, store: Store) -> None:
        await append_n(store, "a", 3)
        ts = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
        state = {"count": 3, "total": 3.0, "items": [1, {"k": None}], "name": "ä"}
        await _snapshots(store).save_snapshot(Snapshot("a", 3, state, ts))
        snap = await _snapshots(store).get_latest_snapshot("a")
        assert snap is not None
        assert (snap.actor_id, snap.version, snap.state, snap.timestamp) == ("a", 3, state, ts)
        assert type(snap.state["count"]) is int and type(snap.state["total"]) is float

    async def test_snapshot_ahead_of_events_is_rejected(self, store: Store) -> None:
        snaps = _snapshots(store)
        with pytest.raises(InvalidEventError):
            await snaps.save_snapshot(Snapshot("a", 1, {}))
        await append_n(store, "a", 2)
        await snaps.save_snapshot(Snapshot("a", 2, {"v": 2}))
        with pytest.raises(InvalidEventError):
            await snaps.save_snapshot(Snapshot("a", 3, {"v": 3}))
        snap = await snaps.get_latest_snapshot("a")
        assert snap is not None and snap.state == {"v": 2}

    async def test_newest_snapshot_is_kept(self, store: Store) -> None:
        snaps = _snapshots(store)
        await append_n(store, "a", 5)
        await snaps.save_snapshot(Snapshot("a", 2, {"v": 2}))
        await snaps.save_snapshot(Snapshot("a", 4, {"v": 4}))
        snap = await snaps.get_latest_snapshot("a")
        assert snap is not None and snap.version == 4
        await snaps.save_snapshot(Snapshot("a", 3, {"v": 3}))  # older: the newer one stays
        snap = await snaps.get_latest_snapshot("a")
        assert snap is not None and (snap.version, snap.state) == (4, {"v": 4})

    async def test_snapshots_are_per_actor(self, store: Store) -> None:
        snaps = _snapshots(store)
        await append_n(store, "a.b", 1)
        await append_n(store, "a*b", 2)
        await snaps.save_snapshot(Snapshot("a.b", 1, {"who": "a.b"}))
        await snaps.save_snapshot(Snapshot("a*b", 2, {"who": "a*b"}))
        one = await snaps.get_latest_snapshot("a.b")
        two = await snaps.get_latest_snapshot("a*b")
        assert one is not None and one.state == {"who": "a.b"}
        assert two is not None and two.state == {"who": "a*b"}

    @pytest.mark.parametrize(
        "snapshot",
        [
            Snapshot("a", 0, {}),
            Snapshot("a", 1, {"x": float("nan")}),
            Snapshot("a", 1, [1]),  # type: ignore[arg-type]
            Snapshot("a", 1, {}, datetime(2026, 1, 1)),
        ],
        ids=["version-0", "nan", "not-dict", "naive-ts"],
    )
    async def test_bad_snapshots_are_rejected(self, store: Store, snapshot: Snapshot) -> None:
        await append_n(store, "a", 1)
        with pytest.raises(ValidationError):
            await _snapshots(store).save_snapshot(snapshot)
        assert await _snapshots(store).get_latest_snapshot("a") is None

    async def test_bad_snapshot_actor_is_rejected(self, store: Store) -> None:
        with pytest.raises(InvalidIdentifierError):
            await _snapshots(store).save_snapshot(Snapshot("", 1, {}))
        with pytest.raises(InvalidIdentifierError):
            await _snapshots(store).get_latest_snapshot("a\nb")
