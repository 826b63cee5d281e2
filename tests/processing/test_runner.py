"""`ProcessorRunner` on every store: folds, exactly-once outputs, failures, admin."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aether.errors import (
    NotFoundError,
    ProcessorRunningError,
    ProcessorTimeoutError,
    ValidationError,
)
from aether.event import Event
from aether.processing import (
    Context,
    ProcessorRunner,
    RetryPolicy,
    list_parked,
    processor,
    processor_status,
    reset,
    retry_parked,
    skip_parked,
    wait_for,
)
from aether.store.base import EventStore
from tests.processing.helpers import (
    CrashingStore,
    LedgerReactor,
    MemoryProjection,
    Workload,
    added_positions,
    direct_fold,
    eventually,
    ledger_sources,
)

FAST = RetryPolicy(attempts=3, base=0.001, max=0.01)


def runner(store: Any, proc: Any, **kw: Any) -> ProcessorRunner:
    kw.setdefault("retry", FAST)
    kw.setdefault("idle_interval", 0.05)
    kw.setdefault("keepalive", 0.5)
    return ProcessorRunner(store, proc, **kw)


async def test_projection_equals_the_direct_fold(store: EventStore) -> None:
    w = Workload(20)
    await w.append(store, 300)
    proj = MemoryProjection()
    r = runner(store, proj)
    await r.start()
    await r.drain()
    await w.append(store, 200)  # live, after the catch-up
    await r.drain()
    await r.stop()
    assert proj.totals == await direct_fold(store)
    assert proj.order_violations == []
    [status] = await processor_status(store, "totals")
    assert status.checkpoint == await store.last_position()
    assert (status.state, status.lag_events, status.owner) == ("idle", 0, None)
    # A new runner resumes from the checkpoint: nothing is handled again.
    again = MemoryProjection()
    await runner(store, again).drain()
    assert again.calls == 0


async def test_slices_select_a_segment(store: EventStore) -> None:
    w = Workload(40)
    await w.append(store, 200)
    from aether.subjects import slice_of

    low = MemoryProjection()
    await runner(store, low, slices=range(0, 512), segment="low").drain()
    want = {a: t for a, t in (await direct_fold(store)).items() if slice_of(a) < 512}
    assert low.totals == want
    [st] = [s for s in await processor_status(store, "totals") if s.segment == "low"]
    assert st.checkpoint == await store.last_position()  # the idle check moved it to the head


async def test_reactor_outputs_commit_with_the_checkpoint(store: EventStore) -> None:
    w = Workload(10)
    await w.append(store, 120)
    reactor = LedgerReactor(store)
    r = runner(store, reactor, batch_events=1000, batch_interval=10.0)
    await r.drain()
    assert sorted(await ledger_sources(store)) == await added_positions(store)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_reactor_exactly_once_across_a_crash_at_commit(store: EventStore, when: str) -> None:
    w = Workload(10)
    await w.append(store, 60)
    positions = await added_positions(store)
    crashing = CrashingStore(store, positions[30], when)
    first = runner(crashing, LedgerReactor(store))
    await first.start()
    await eventually(lambda: crashing.crashed and not first.running, 20, "the crash")
    second = runner(store, LedgerReactor(store))
    await second.drain()
    sources = await ledger_sources(store)
    assert sorted(sources) == positions  # each input's output exactly once


async def test_reactor_exactly_once_across_repeated_cancels(store: EventStore) -> None:
    w = Workload(10)
    await w.append(store, 150)
    for _ in range(6):
        r = runner(store, LedgerReactor(store), batch_events=7)
        await r.start()
        await asyncio.sleep(0.05)
        await r.abort()
    await runner(store, LedgerReactor(store)).drain()
    assert sorted(await ledger_sources(store)) == await added_positions(store)


async def test_a_stale_owner_is_fenced_and_commits_nothing(store: EventStore) -> None:
    w = Workload(5)
    await w.append(store, 30)
    stale = LedgerReactor(store)
    stale.gate = asyncio.Event()  # its handler hangs in flight, like a paused process
    old = runner(store, stale, owner="node-a")
    await old.start()
    await asyncio.wait_for(stale.entered.wait(), 20)
    new = runner(store, LedgerReactor(store), owner="node-b")
    await new.start()  # claims: the old owner's revision is stale now
    await new.run_until(await store.last_position())
    [st] = await processor_status(store, "ledger")
    assert st.owner == "node-b"
    stale.gate.set()  # the old owner wakes up and tries to commit its output
    await eventually(lambda: not old.running, 20, "the old owner stops")
    assert old.fenced
    await new.stop()
    assert sorted(await ledger_sources(store)) == await added_positions(store)


async def test_poison_event_under_stop(store: EventStore) -> None:
    w = Workload(5)
    await w.append(store, 20)
    poison = (await added_positions(store))[9]
    seen: list[int] = []

    async def handle(e: Event, ctx: Context) -> None:
        if ctx.position == poison and not healed:
            raise RuntimeError("bad data")
        seen.append(ctx.position)

    healed = False
    r = runner(store, processor("strict", handle))
    await r.start()
    await r.drain()  # returns: it stopped at the poison event
    st = r.status()
    assert (st.state, st.stopped_at) == ("stopped", poison)
    assert st.last_error is not None and "bad data" in st.last_error
    assert seen == (await added_positions(store))[:9]
    [durable] = await processor_status(store, "strict")
    assert (durable.state, durable.stopped_at, durable.checkpoint) == (
        "stopped",
        poison,
        poison - 1,
    )
    assert durable.owner is not None or durable.owner is None
    healed = True
    assert await retry_parked(store, "strict") == 1  # the stopped event
    await r.run_until(await store.last_position())
    await r.stop()
    assert seen == await added_positions(store)
    [after] = await processor_status(store, "strict")
    assert (after.state, after.stopped_at) == ("idle", None)


async def test_stopped_event_can_be_skipped(store: EventStore) -> None:
    w = Workload(5)
    await w.append(store, 10)
    poison = (await added_positions(store))[4]

    async def handle(e: Event, ctx: Context) -> None:
        if ctx.position == poison:
            raise ValueError("never")

    r = runner(store, processor("skipper", handle))
    await r.start()
    await r.drain()
    await skip_parked(store, "skipper", poison)  # while its runner waits at it
    await r.run_until(await store.last_position())
    await r.stop()
    [st] = await processor_status(store, "skipper")
    assert (st.state, st.checkpoint) == ("idle", await store.last_position())
    # Skip without a live runner: the record moves on directly.
    r2 = runner(store, processor("skipper2", handle))
    await r2.start()
    await r2.drain()
    await r2.stop()
    await skip_parked(store, "skipper2", poison)
    [st2] = await processor_status(store, "skipper2")
    assert (st2.state, st2.stopped_at, st2.checkpoint) == ("idle", None, poison)


async def test_poison_event_under_park_keeps_actor_order(store: EventStore) -> None:
    w = Workload(4)
    await w.append(store, 40, unit=4)
    events = [e async for e in store.read_all()]
    victim = events[5]
    later_same_actor = [e.position for e in events[6:] if e.actor_id == victim.actor_id]
    others = [e.position for e in events if e.actor_id != victim.actor_id]
    broken = True
    handled: list[int] = []

    async def handle(e: Event, ctx: Context) -> None:
        if ctx.position == victim.position and broken:
            raise RuntimeError("poison")
        handled.append(ctx.position)

    r = runner(store, processor("lenient", handle), on_failure="park")
    await r.start()
    await r.drain()
    assert [p for p in handled if p not in others] == [
        e.position for e in events[:5] if e.actor_id == victim.actor_id
    ]
    parked = await list_parked(store, "lenient")
    assert [p.position for p in parked] == [victim.position, *later_same_actor]
    assert parked[0].attempts == FAST.attempts and "poison" in parked[0].error
    assert all(p.attempts == 0 for p in parked[1:])
    [st] = await processor_status(store, "lenient")
    assert st.parked == len(parked) and st.checkpoint == await store.last_position()
    checkpoint = st.checkpoint
    # Retry: in order, the checkpoint does not move back, nothing later is re-applied.
    broken = False
    handled.clear()
    assert await retry_parked(store, "lenient") == len(parked)
    await eventually(lambda: not r._rec.parked, 20, "the parked events are retried")
    assert handled == [victim.position, *later_same_actor]
    await r.stop()
    [st] = await processor_status(store, "lenient")
    assert (st.parked, st.checkpoint) == (0, checkpoint)


async def test_parked_retry_that_fails_again_and_skip(store: EventStore) -> None:
    w = Workload(3)
    await w.append(store, 12, unit=3)
    first = (await added_positions(store))[0]

    async def handle(e: Event, ctx: Context) -> None:
        if ctx.position == first:
            raise RuntimeError("still broken")

    r = runner(store, processor("p2", handle), on_failure="park")
    await r.drain()  # started and stopped: no runner now
    parked = await list_parked(store, "p2")
    assert parked[0].position == first
    assert await retry_parked(store, "p2", first) == 1
    r2 = runner(store, processor("p2", handle), on_failure="park")
    await r2.start()  # retries it on start; it fails again and stays parked
    await eventually(lambda: not any(p.retry for p in r2._rec.parked), 20, "the retry")
    again = await list_parked(store, "p2")
    assert [p.position for p in again] == [p.position for p in parked]
    assert again[0].attempts == 2 * FAST.attempts and not again[0].retry_requested
    for p in again:
        await skip_parked(store, "p2", p.position)
    await eventually(lambda: not r2._rec.parked, 20, "the runner sees the skips")
    await r2.stop()
    assert await list_parked(store, "p2") == []
    with pytest.raises(NotFoundError):
        await skip_parked(store, "p2", first)
    with pytest.raises(NotFoundError):
        await retry_parked(store, "p2", first)


async def test_reset(store: EventStore) -> None:
    w = Workload(5)
    await w.append(store, 50)
    proj = MemoryProjection()
    r = runner(store, proj)
    await r.start()
    await r.drain()
    with pytest.raises(ProcessorRunningError):
        await reset(store, "totals", to_position=0)
    await r.stop()
    await reset(store, "totals", to_position=0)
    [st] = await processor_status(store, "totals")
    assert (st.checkpoint, st.state) == (0, "idle")
    fresh = MemoryProjection()
    await runner(store, fresh).drain()
    assert fresh.totals == await direct_fold(store)
    middle = (await added_positions(store))[24]
    await reset(store, "totals", to_position=middle)
    tail = MemoryProjection()
    await runner(store, tail).drain()
    assert tail.calls == 25
    with pytest.raises(NotFoundError):
        await reset(store, "nobody", to_position=0)
    with pytest.raises(ValidationError):
        await reset(store, "totals", to_position=-1)


async def test_wait_for(store: EventStore) -> None:
    w = Workload(5)
    await w.append(store, 20)
    head = await store.last_position()
    with pytest.raises(ProcessorTimeoutError):
        await wait_for(store, "totals", head, timeout=0.1)  # never ran yet
    proj = MemoryProjection()
    r = runner(store, proj)
    await r.start()
    await wait_for(store, "totals", head, timeout=20)
    await wait_for(r, "totals", head, timeout=20)
    await w.append(store, 5)
    target = await store.last_position()
    await wait_for(store, "totals", target, timeout=20, actor_id="acct-1")
    assert proj.totals == await direct_fold(store)
    with pytest.raises(ProcessorTimeoutError) as info:
        await wait_for(store, "totals", target + 1000, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    await r.stop()


async def test_bad_input_is_refused(store: EventStore) -> None:
    proj = MemoryProjection()
    with pytest.raises(ValidationError) as info:
        ProcessorRunner(store, processor("has space", proj.handle))
    assert info.value.field == "name"
    with pytest.raises(ValidationError):
        ProcessorRunner(store, proj, on_failure="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ProcessorRunner(store, proj, slices=[5000])
    with pytest.raises(ValidationError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValidationError):
        await wait_for(store, "totals", -1, timeout=1)
    assert await processor_status(store) == []
