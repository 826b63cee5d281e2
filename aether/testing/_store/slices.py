"""Contract: reads and watches of some slices return exactly those slices' events."""

from __future__ import annotations

import asyncio

import pytest

from aether.errors import ValidationError
from aether.event import Event
from aether.store.base import Store
from aether.subjects import slice_of
from aether.testing._store.helpers import WAIT, ContractBase, aclose, ev, read_all_list, take

ACTORS = [f"acct-{i}" for i in range(40)]
WANTED = range(0, 256)
"""A quarter of the slices: of ACTORS, 11 fall in it, 29 do not."""


async def _populate(store: Store) -> list[Event]:
    saved = []
    for round_ in (1, 2):
        for actor in ACTORS:
            saved.append(await store.save_event(ev(actor, round_)))
    return saved


def _of(events: list[Event], slices: range | set[int]) -> list[str]:
    return [e.id for e in events if slice_of(e.actor_id) in slices]


class SliceContract(ContractBase):
    """Contract: `read_all` and `watch` select events by slice, in position order."""

    async def test_read_all_of_some_slices_is_exactly_theirs(self, store: Store) -> None:
        saved = await _populate(store)
        wanted = _of(saved, WANTED)
        assert 0 < len(wanted) < len(saved)
        got = await read_all_list(store, slices=WANTED)
        assert [e.id for e in got] == wanted
        positions = [e.position for e in got]
        assert positions == sorted(set(positions))  # type: ignore[type-var]
        one = {slice_of(ACTORS[0]), slice_of(ACTORS[5])}
        assert [e.id for e in await read_all_list(store, slices=one)] == _of(saved, one)
        as_list = sorted(one)
        assert [e.id for e in await read_all_list(store, slices=as_list)] == _of(saved, one)

    async def test_read_all_of_slices_from_a_position(self, store: Store) -> None:
        saved = await _populate(store)
        middle = saved[len(ACTORS)].position  # the first event of round 2
        assert middle is not None
        got = await read_all_list(store, middle, slices=WANTED)
        assert [e.id for e in got] == _of(saved[len(ACTORS) :], WANTED)
        every = await read_all_list(store, 0, slices=range(1024))
        assert [e.id for e in every] == [e.id for e in saved]

    async def test_a_slice_with_no_events_reads_nothing(self, store: Store) -> None:
        saved = await _populate(store)
        used = {slice_of(a) for a in ACTORS}
        empty = next(s for s in range(1024) if s not in used)
        assert await read_all_list(store, slices={empty}) == []
        assert len(saved) == 2 * len(ACTORS)

    async def test_watch_of_slices_replays_then_goes_live(self, store: Store) -> None:
        saved = await _populate(store)
        wanted = _of(saved, WANTED)
        it = store.watch(0, slices=WANTED)
        try:
            replay = await take(it, len(wanted))
            assert [e.id for e in replay] == wanted
            inside = next(a for a in ACTORS if slice_of(a) in WANTED)
            outside = next(a for a in ACTORS if slice_of(a) not in WANTED)
            await store.save_event(ev(outside, 3))
            live = await store.save_event(ev(inside, 3))
            await store.save_event(ev(outside, 4))
            marker = await store.save_events([ev(outside, 5), ev(inside, 4)])
            got = await take(it, 2)
            assert [e.id for e in got] == [live.id, marker[1].id]
            pending = asyncio.ensure_future(anext(it))
            await asyncio.sleep(0.3)
            assert not pending.done()  # nothing of other slices arrives
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    async def test_watch_of_slices_from_now(self, store: Store) -> None:
        await _populate(store)
        inside = next(a for a in ACTORS if slice_of(a) in WANTED)
        it = store.watch(slices=WANTED)
        try:
            e = await store.save_event(ev(inside, 3))
            assert (await take(it, 1))[0].id == e.id
        finally:
            await asyncio.wait_for(aclose(it), WAIT)

    @pytest.mark.parametrize("bad", [set(), range(0), [1024], [-1], "0-3", [1.0], 5], ids=repr)
    async def test_bad_slice_selections_are_refused(self, store: Store, bad: object) -> None:
        await store.save_event(ev("a", 1))
        with pytest.raises(ValidationError):
            await read_all_list(store, slices=bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await anext(store.watch(0, slices=bad))  # type: ignore[arg-type]
