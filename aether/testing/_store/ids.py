"""Contract: what an event id guarantees (and what it does not).

An id names one event for idempotence: re-saving the *identical* event (same id, actor,
version and content) is a no-op success. Ids are not unique per namespace: the same id
at another version or on another actor is a different event and is stored (JetStream
could only check within its duplicate window, so no store promises more).
"""

from __future__ import annotations

import dataclasses

from aether.store.base import Store
from aether.testing._store.helpers import ContractBase, ev, read_all_list


class EventIdContract(ContractBase):
    """Contract: the meaning of `Event.id` on every store."""

    async def test_resaving_the_identical_event_is_a_noop(self, store: Store) -> None:
        e = ev("a", 1, x=1)
        first = await store.save_event(e)
        assert (await store.save_event(e)).position == first.position
        assert len(await read_all_list(store)) == 1

    async def test_the_same_id_at_another_version_is_another_event(self, store: Store) -> None:
        e1 = await store.save_event(ev("a", 1, x=1))
        e2 = await store.save_event(dataclasses.replace(e1, version=2, position=None))
        assert e2.position != e1.position
        events = await store.get_events("a")
        assert [(e.id, e.version) for e in events] == [(e1.id, 1), (e1.id, 2)]

    async def test_the_same_id_on_another_actor_is_another_event(self, store: Store) -> None:
        e1 = await store.save_event(ev("a", 1, x=1))
        e2 = await store.save_event(dataclasses.replace(e1, actor_id="b", position=None))
        assert e2.position != e1.position
        assert [e.id for e in await store.get_events("b")] == [e1.id]
        assert [(e.actor_id, e.id) for e in await read_all_list(store)] == [
            ("a", e1.id),
            ("b", e1.id),
        ]
