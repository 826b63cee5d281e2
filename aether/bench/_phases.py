"""Phases every store workload shares: saving with re-saves, concurrent writers, the
warm-up, draining deliveries, and closing the clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aether.bench._run import Budget, Ledger, Run
from aether.bench.results import LatencyRecorder
from aether.errors import AetherError, ValidationError, VersionConflictError
from aether.event import Event
from aether.store.base import EventStore

log = logging.getLogger("aether.bench")

MAX_RETRIES = 5
"""Re-saves of the same events after an uncertain outcome."""


async def save(run: Run, store: EventStore, events: list[Event]) -> None:
    """Save one event or one batch, re-saving after an uncertain outcome (idempotent)."""
    attempt = 0
    while True:
        try:
            if len(events) == 1:
                await store.save_event(events[0])
            else:
                await store.save_events(events)
            return
        except VersionConflictError:
            raise
        except ValidationError:
            raise
        except AetherError as e:
            attempt += 1
            run.result.retries += 1
            if attempt > MAX_RETRIES:
                raise
            log.warning("bench: save failed (%s), re-saving the same events", e)
            await asyncio.sleep(0.05 * attempt)


async def write(
    run: Run,
    store: EventStore,
    actors: list[str],
    budget: Budget,
    ledger: Ledger,
    *,
    concurrency: int,
    batch: int,
    latency: LatencyRecorder | None,
    warm: bool = False,
) -> None:
    """C writers appending to `actors`; an actor is written by one writer at a time."""
    idle: asyncio.Queue[str] = asyncio.Queue()
    for a in actors:
        idle.put_nowait(a)
    versions = {a: len(ledger.ids.get(a, ())) for a in actors}
    seq = 0
    size = run.wire_size() if latency is not None else 0

    async def writer() -> None:
        nonlocal seq
        while not run.stopping:
            actor = await idle.get()
            k = budget.claim(batch)
            if k == 0 or run.stopping:
                idle.put_nowait(actor)
                return
            v = versions[actor]
            events = []
            for i in range(k):
                events.append(run.event(actor, v + i + 1, seq, warm=warm))
                seq += 1
            t0 = time.perf_counter_ns()
            try:
                await save(run, store, events)
            except VersionConflictError as e:
                # Only this run writes these actors: a conflict means the store lost track.
                run.result.errors += 1
                run.result.verification.problem(f"unexpected conflict: {e}")
                versions[actor] = e.actual
                idle.put_nowait(actor)
                continue
            if latency is not None:
                latency.record(time.perf_counter_ns() - t0)
                run.result.events += k
                run.result.bytes += k * size
            versions[actor] = v + k
            ledger.add(actor, events)
            run.done += k
            idle.put_nowait(actor)
            await asyncio.sleep(0)  # stores that never suspend must not starve the others

    await asyncio.gather(*(writer() for _ in range(min(concurrency, len(actors)))))


async def warmup(run: Run, store: EventStore, ledger: Ledger) -> None:
    """Unmeasured appends on actors of their own (connections, caches, JIT-free warm paths)."""
    n = run.p.warmup or 0
    if n == 0 or run.stop.is_set():
        return
    run.begin("warmup", n)
    actors = [f"{run.token}-w{i}" for i in range(min(n, max(1, run.p.concurrency)))]
    await write(
        run,
        store,
        actors,
        Budget(n),
        ledger,
        concurrency=run.p.concurrency,
        batch=1,
        latency=None,
        warm=True,
    )


async def drain(run: Run, done: asyncio.Event, count: Callable[[], int]) -> bool:
    """Wait for `done` while deliveries progress; False once they stall for `drain_stall`."""
    last = count()
    last_change = time.perf_counter()
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), min(0.2, run.drain_stall))
        now_count = count()
        run.done = now_count
        if now_count != last:
            last, last_change = now_count, time.perf_counter()
        elif time.perf_counter() - last_change > run.drain_stall:
            return done.is_set()
    return True


def finish(run: Run, started: float, ended: float) -> None:
    """Record the measured interval and whether the run was stopped early."""
    run.result.elapsed_s = max(ended - started, 1e-9)
    run.result.interrupted = run.stop.is_set()
