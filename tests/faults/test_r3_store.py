"""R3 streams on three routed servers: read-your-writes and honest errors through faults.

Each scenario runs writers that append and immediately read back (the writer's own
``get_latest_version``, ``get_events(from_version=v)``, the next save, and another
store's ``get_latest_version`` with the default ``read_from: leader``) while one server
is SIGKILLed and restarted, SIGSTOPped for 4 s, or the stream leader is SIGKILLed. It
asserts: 0 stale reads of an acknowledged event, 0 conflicts (each actor has one
writer; a conflict's ``actual`` below an acknowledged version would be a stale answer),
and only retriable errors (then a re-save of the identical events settles). After the
fault a store that connects to the victim server (maybe still catching up) reads along.

On this loopback fixture replicas are rarely behind when asked (nats-server keeps a
catching-up follower from answering direct gets), so these scenarios prove the error
handling more than the staleness guards; tests/jetstream/test_stale_replica.py makes a
replica answer from the past, deterministically.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import nats
import pytest

from aether.errors import AetherError, VersionConflictError
from aether.event import Event
from aether.store.jetstream import JetStreamEventStore
from tests.faults.helpers import ev, fault_settings, stream_leader
from tests.servers import NatsCluster, NatsServer

WRITERS = 3
PER_WRITER = 100
UNITS = 30
RETRY_FOR = 45.0

T = TypeVar("T")


@dataclass
class Tally:
    """What the writers observed."""

    acked: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    writing: int = 0
    late_reads: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    stale_own: list[str] = field(default_factory=list)
    stale_other: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)

    def retry(self, e: AetherError) -> None:
        name = type(e).__name__
        self.retried[name] = self.retried.get(name, 0) + 1


async def settle(tally: Tally, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call` until it succeeds; only retriable aether errors may interrupt it."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await call()
        except VersionConflictError as e:
            tally.conflicts.append(f"{e.actor_id}: expected {e.expected}, actual {e.actual}")
            raise
        except AetherError as e:
            if not e.retriable:
                tally.unexpected.append(f"{type(e).__name__}: {e}")
                raise
            if time.monotonic() > deadline:
                raise
            tally.retry(e)
            await asyncio.sleep(0.05)
        except Exception as e:
            tally.unexpected.append(f"{type(e).__name__}: {e}")
            raise


async def writer(
    tally: Tally, store: JetStreamEventStore, other: JetStreamEventStore, actor: str
) -> None:
    """Append versions 1..PER_WRITER, each read back at once by its writer and another store."""
    for v in range(1, PER_WRITER + 1):
        if v == PER_WRITER - 30:
            await tally.recovered.wait()  # the last 30 appends run after the fault
        event = ev(actor, v, v=v)
        stored = await settle(tally, lambda e=event: store.save_event(e))  # type: ignore[misc]
        assert stored.id == event.id
        tally.acked += 1
        tally.versions[actor] = v
        if tally.acked >= 60:
            tally.started.set()
        latest = await settle(tally, lambda: store.get_latest_version(actor))
        if latest < v:
            tally.stale_own.append(f"{actor}: latest {latest} after v{v} acknowledged")
        got = await settle(tally, lambda v=v: store.get_events(actor, v))  # type: ignore[misc]
        if not got or got[0].id != event.id:
            tally.stale_own.append(f"{actor}: get_events({v}) = {[e.version for e in got]}")
        seen = await settle(tally, lambda: other.get_latest_version(actor))
        if seen < v:
            tally.stale_other.append(f"{actor}: other store saw {seen} after v{v}")


async def unit_writer(tally: Tally, store: JetStreamEventStore) -> None:
    """Units of work over two actors, read back at once."""
    for v in range(1, UNITS + 1):
        unit = [ev("pair-a", v), ev("pair-b", v)]
        await settle(tally, lambda u=unit: store.save_events(u))  # type: ignore[misc]
        tally.acked += 2
        for actor in ("pair-a", "pair-b"):
            latest = await settle(tally, lambda a=actor: store.get_latest_version(a))  # type: ignore[misc]
            if latest < v:
                tally.stale_own.append(f"{actor}: latest {latest} after unit v{v}")


Fault = Callable[[NatsServer], Awaitable[None]]


async def kill_and_restart(victim: NatsServer) -> None:
    """SIGKILL the server, restart it after 2 s."""
    await asyncio.to_thread(victim.stop, kill=True)
    await asyncio.sleep(2)
    await asyncio.to_thread(victim.start)


async def pause(victim: NatsServer) -> None:
    """SIGSTOP the server for 4 s."""
    victim.pause()
    await asyncio.sleep(4)
    victim.resume()


async def run(
    cluster: NatsCluster, caplog: pytest.LogCaptureFixture, *, leader: bool, fault: Fault
) -> Tally:
    """Writers on two stores, one connected to the victim (the stream leader or a
    follower), the fault injected once 60 appends were acknowledged."""
    overrides = {"jetstream.replicas": 3, "jetstream.publish_timeout": "2s"}
    settings = fault_settings(cluster.urls, **overrides)
    first = await JetStreamEventStore.open(settings)
    assert first.replicated
    name = await stream_leader(cluster.urls, first.stream)
    victim = next(s for s in cluster.servers if (s.name == name) == leader)
    # the second writer and the reader start on the victim (they learn the others from it)
    on_victim = fault_settings([victim.url], namespace=settings.namespace, **overrides)
    stores = [first, await JetStreamEventStore.open(on_victim)]
    reader = await JetStreamEventStore.open(on_victim)
    stores.append(reader)
    tally = Tally()

    async def inject() -> None:
        await tally.started.wait()
        await fault(victim)
        # A process that connects to the victim right after it is back (it may still be
        # catching up with the leader) must see every acknowledged event too.
        nc = await nats.connect(victim.url, dont_randomize=True, max_reconnect_attempts=-1)
        late = await settle(tally, lambda: JetStreamEventStore.from_client(nc, settings))
        tally.recovered.set()
        try:
            while tally.writing:
                for actor, v in list(tally.versions.items()):
                    seen = await settle(tally, lambda a=actor: late.get_latest_version(a))  # type: ignore[misc]
                    tally.late_reads += 1
                    if seen < v:
                        tally.stale_other.append(f"{actor}: late store saw {seen} after v{v}")
                await asyncio.sleep(0)
        finally:
            await late.close()
            await nc.close()

    async def counted(job: Awaitable[None]) -> None:
        tally.writing += 1
        try:
            await job
        finally:
            tally.writing -= 1

    caplog.set_level(logging.ERROR, logger="asyncio")
    tasks = [counted(writer(tally, stores[i % 2], reader, f"w{i}")) for i in range(WRITERS)]
    tasks.append(counted(unit_writer(tally, stores[1])))
    await asyncio.wait_for(asyncio.gather(inject(), *tasks), 55)
    # everything acknowledged is there, once, at versions 1..n
    for i in range(WRITERS):
        events = await settle(tally, lambda i=i: reader.get_events(f"w{i}"))  # type: ignore[misc]
        assert [e.version for e in events] == list(range(1, PER_WRITER + 1))
        assert [e.data["v"] for e in events] == list(range(1, PER_WRITER + 1))
    for actor in ("pair-a", "pair-b"):
        latest = await settle(tally, lambda a=actor: reader.get_latest_version(a))  # type: ignore[misc]
        assert latest == UNITS
    everything: list[Event] = await settle(tally, lambda: _all(reader))
    assert len(everything) == WRITERS * PER_WRITER + 2 * UNITS
    assert len({e.id for e in everything}) == len(everything)
    for s in stores:
        await s.close()
    gc.collect()
    await asyncio.sleep(0)
    noise = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not noise, noise
    return tally


async def _all(store: JetStreamEventStore) -> list[Event]:
    return [e async for e in store.read_all()]


def check(tally: Tally) -> None:
    print(f"\n{tally.acked} acked, {tally.late_reads} late reads, retried {tally.retried}")
    assert tally.acked == WRITERS * PER_WRITER + 2 * UNITS
    assert tally.stale_own == []
    assert tally.stale_other == []
    assert tally.conflicts == []
    assert tally.unexpected == []
    assert set(tally.retried) <= {"NatsUnavailableError", "PublishTimeoutError"}, tally.retried


async def test_follower_killed_and_restarted(
    nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    check(await run(nats_cluster, caplog, leader=False, fault=kill_and_restart))


async def test_follower_paused(nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture) -> None:
    check(await run(nats_cluster, caplog, leader=False, fault=pause))


async def test_stream_leader_killed(
    nats_cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    check(await run(nats_cluster, caplog, leader=True, fault=kill_and_restart))
