"""Read-your-writes against a replica that is behind the leader (simulated, deterministic).

The R3 fault tests cannot make a lagging replica answer on demand (nats-server keeps a
catching-up follower from answering direct gets, and loopback replicas are rarely
behind), so here the store's replica reads (direct get, batched direct get) are made to
answer as a replica frozen at some sequence, while leader reads (``STREAM.MSG.GET``) see
the truth: exactly the situation of a follower that missed the last appends.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aether._nats.jsapi import RawMsg
from aether.config import Settings
from aether.errors import VersionConflictError
from aether.event import Event
from aether.store import jetstream as jsmod
from aether.store.jetstream import JetStreamEventStore
from tests.servers import NatsServer

_ns = itertools.count()


def ev(actor: str, version: int, **data: Any) -> Event:
    """An event of `actor` at `version`."""
    return Event(event_type="Happened", actor_id=actor, version=version, data=data)


class FrozenReplica:
    """Replica reads that see nothing after sequence `upto`."""

    def __init__(self, upto: int) -> None:
        self.upto = upto
        self.served = 0

    def install(self, store: JetStreamEventStore, monkeypatch: pytest.MonkeyPatch) -> None:
        api = store._api
        real_direct = api.direct_get

        async def direct_get(stream: str, body: dict[str, Any]) -> RawMsg | None:
            self.served += 1
            if "last_by_subj" in body:
                # the last message at or below `upto`: walk back from the truth
                msg = await real_direct(stream, body)
                while msg is not None and msg.seq > self.upto:
                    prev = None
                    for seq in range(min(msg.seq - 1, self.upto), 0, -1):
                        cand = await api.msg_get(stream, {"seq": seq})
                        if cand is not None and cand.subject == msg.subject:
                            prev = cand
                            break
                    msg = prev
                return msg
            msg = await real_direct(stream, body)
            return msg if msg is None or msg.seq <= self.upto else None

        monkeypatch.setattr(api, "direct_get", direct_get)

    def patch_batches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = jsmod.direct_batch

        async def direct_batch(*args: Any, **kw: Any) -> list[tuple[int, str, bytes]]:
            self.served += 1
            return [r for r in await real(*args, **kw) if r[0] <= self.upto]

        monkeypatch.setattr(jsmod, "direct_batch", direct_batch)


@pytest.fixture
async def settings(nats_server: NatsServer) -> AsyncIterator[Settings]:
    """A fresh namespace."""
    yield Settings.load(
        overrides={
            "namespace": f"stale{next(_ns)}",
            "store": "jetstream",
            "nats.servers": [nats_server.url],
        },
        search_default_files=False,
    )


async def open_as_replicated(settings: Settings, read_from: str) -> JetStreamEventStore:
    """A store that behaves as on an R3 stream with `read_from`."""
    store = await JetStreamEventStore.open(settings)
    store._replicated = True
    store._leader_reads = read_from == "leader"
    return store


async def test_a_store_never_reads_less_than_it_wrote(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_as_replicated(settings, "any")
    await store.save_event(ev("a", 1))
    await store.save_event(ev("a", 2))
    replica = FrozenReplica(upto=2)
    replica.install(store, monkeypatch)
    replica.patch_batches(monkeypatch)
    third = await store.save_event(ev("a", 3))
    assert await store.get_latest_version("a") == 3
    assert [e.id for e in await store.get_events("a", 3)] == [third.id]
    assert [e.version for e in await store.get_events("a")] == [1, 2, 3]
    assert (await store.save_event(ev("a", 4))).version == 4
    assert replica.served > 0
    await store.close()


async def test_another_process_with_read_from_any_may_see_older_and_leader_never(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await open_as_replicated(settings, "any")
    await writer.save_event(ev("a", 1))
    await writer.save_event(ev("a", 2))
    await writer.save_event(ev("a", 3))
    anyone = await open_as_replicated(settings, "any")
    leader = await open_as_replicated(settings, "leader")
    for s in (anyone, leader):
        replica = FrozenReplica(upto=2)
        replica.install(s, monkeypatch)
    # read_from: any -- another process may see the version before the last append ...
    assert await anyone.get_latest_version("a") == 2
    # ... and its append on that basis is a conflict whose actual is the leader's
    with pytest.raises(VersionConflictError) as info:
        await anyone.save_event(ev("a", 3))
    assert (info.value.expected, info.value.actual) == (2, 3)
    assert await anyone.get_latest_version("a") == 3  # it learnt the truth
    # read_from: leader -- every acknowledged append is seen
    assert await leader.get_latest_version("a") == 3
    assert [e.version for e in await leader.get_events("a", 3)] == [3]
    for s in (writer, anyone, leader):
        await s.close()
