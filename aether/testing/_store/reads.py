"""Contract: get_events / iter_events ranges, latest versions, read_all and list_actors."""

from __future__ import annotations

import itertools

import pytest

from aether.errors import ValidationError
from aether.store.base import Store
from aether.testing._store.helpers import ContractBase, aclose, append_n, ev, read_all_list


class ReadContract(ContractBase):
    """Contract: get_events / iter_events ranges, latest versions, read_all and list_actors."""

    async def test_unknown_actor_has_version_0_and_no_events(self, store: Store) -> None:
        assert await store.get_latest_version("nobody") == 0
        assert await store.get_events("nobody") == []
        assert [e async for e in store.iter_events("nobody")] == []

    async def test_get_events_from_version_is_inclusive(self, store: Store) -> None:
        await append_n(store, "a", 5)
        assert [e.version for e in await store.get_events("a")] == [1, 2, 3, 4, 5]
        assert [e.version for e in await store.get_events("a", 0)] == [1, 2, 3, 4, 5]
        assert [e.version for e in await store.get_events("a", 1)] == [1, 2, 3, 4, 5]
        assert [e.version for e in await store.get_events("a", 3)] == [3, 4, 5]
        assert [e.version for e in await store.get_events("a", 5)] == [5]
        assert await store.get_events("a", 6) == []

    async def test_iter_events_range_is_inclusive_on_both_ends(self, store: Store) -> None:
        await append_n(store, "a", 6)
        await append_n(store, "b", 3)

        async def versions(lo: int, hi: int | None) -> list[int]:
            return [e.version async for e in store.iter_events("a", lo, hi)]

        assert await versions(2, 4) == [2, 3, 4]
        assert await versions(0, None) == [1, 2, 3, 4, 5, 6]
        assert await versions(4, None) == [4, 5, 6]
        assert await versions(3, 3) == [3]
        assert await versions(0, 0) == []
        assert await versions(5, 100) == [5, 6]
        assert await versions(5, 2) == []

    async def test_events_keep_their_ids_and_positions(self, store: Store) -> None:
        stored = await append_n(store, "a", 3)
        read = await store.get_events("a")
        assert [(e.id, e.position, e.event_type, e.actor_id) for e in read] == [
            (e.id, e.position, e.event_type, e.actor_id) for e in stored
        ]

    async def test_iter_events_streams_a_longer_history(self, store: Store) -> None:
        for start in range(1, 301, 50):
            await store.save_events([ev("long", v, v=v) for v in range(start, start + 50)])
        seen = [e.version async for e in store.iter_events("long")]
        assert seen == list(range(1, 301))
        assert [e.data["v"] async for e in store.iter_events("long", 120, 180)] == list(
            range(120, 181)
        )
        assert await store.get_latest_version("long") == 300

    async def test_iter_events_can_stop_early(self, store: Store) -> None:
        await append_n(store, "a", 5)
        it = store.iter_events("a")
        first = await anext(it)
        await aclose(it)
        assert first.version == 1
        assert await store.get_latest_version("a") == 5

    async def test_read_all_in_position_order_across_actors(self, store: Store) -> None:
        saved = []
        for i in range(4):
            for actor in ("a", "b", "c"):
                saved.append(await store.save_event(ev(actor, i + 1)))
        read = await read_all_list(store)
        assert [(e.id, e.actor_id, e.version) for e in read] == [
            (e.id, e.actor_id, e.version) for e in saved
        ]
        positions = [e.position for e in read]
        assert positions == [e.position for e in saved]
        assert all(b > a for a, b in itertools.pairwise(positions))  # type: ignore[operator]

    async def test_read_all_from_position_is_inclusive(self, store: Store) -> None:
        saved = [await store.save_event(ev(a, 1)) for a in ("a", "b", "c", "d")]
        p3 = saved[2].position
        assert p3 is not None
        assert [e.id for e in await read_all_list(store, p3)] == [saved[2].id, saved[3].id]
        assert [e.id for e in await read_all_list(store, 0)] == [e.id for e in saved]
        last = saved[-1].position
        assert last is not None
        assert await read_all_list(store, last + 1) == []

    async def test_read_all_on_empty_store(self, store: Store) -> None:
        assert await read_all_list(store) == []

    async def test_list_actors_with_latest_versions(self, store: Store) -> None:
        assert await store.list_actors() == {}
        await append_n(store, "a", 3)
        await append_n(store, "b", 1)
        await store.save_events([ev("c", 1), ev("c", 2)])
        assert await store.list_actors() == {"a": 3, "b": 1, "c": 2}

    @pytest.mark.parametrize("bad", [-1, "1", 1.5, None])
    async def test_bad_range_arguments_are_rejected(self, store: Store, bad: object) -> None:
        await append_n(store, "a", 1)
        with pytest.raises(ValidationError):
            await store.get_events("a", bad)  # type: ignore[arg-type]
        if bad is not None:
            with pytest.raises(ValidationError):
                _ = [e async for e in store.read_all(bad)]  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                _ = [e async for e in store.iter_events("a", 0, bad)]  # type: ignore[arg-type]
