"""``replay``: write N events over A actors (not measured), then read every actor back
with C concurrent readers (``actors=1``: one actor); latency is per actor read. A
``read_all`` of the namespace follows, for the record.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from aether.bench._phases import finish, write
from aether.bench._run import Budget, Ledger, Run
from aether.bench.results import LatencyRecorder
from aether.store.base import EventStore


async def replay(run: Run, store: EventStore) -> None:
    """Run the ``replay`` workload against `store`."""
    ledger = Ledger()
    actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
    run.begin("setup", run.p.events)
    setup_batch = min(100, max(1, (run.p.events or 1) // len(actors)))
    await write(
        run,
        store,
        actors,
        Budget(run.p.events),
        ledger,
        concurrency=run.p.concurrency,
        batch=setup_batch,
        latency=None,
    )
    v = run.result.verification
    written = {a: ledger.ids.get(a, []) for a in actors}
    # warm-up: one unmeasured read of the first actor
    if (run.p.warmup or 0) > 0 and not run.stop.is_set():
        run.begin("warmup", None)
        async for _ in store.iter_events(actors[0]):
            pass
    lat = LatencyRecorder()
    size = run.wire_size()
    run.begin("run", run.p.events if run.p.duration is None else None, timed=True)
    t0 = time.perf_counter()
    passes = 0

    async def read(actor: str) -> None:
        ids = written[actor]
        n = 0
        s0 = time.perf_counter_ns()
        async for e in store.iter_events(actor):
            if n < len(ids) and e.version == n + 1 and e.id == ids[n]:
                pass
            else:
                v.unexpected += 1
                v.problem(f"actor {actor!r}: read version {e.version} at place {n + 1}")
            n += 1
            if n & 1023 == 0:
                run.done += 1024
                await asyncio.sleep(0)
        lat.record(time.perf_counter_ns() - s0)
        run.done += n & 1023
        run.result.events += n
        run.result.bytes += n * size
        if n != len(ids):
            v.missing += max(0, len(ids) - n)
            v.problem(f"actor {actor!r}: read {n} events, {len(ids)} were written")

    while True:
        queue = deque(actors)

        async def reader(queue: deque[str] = queue, first: bool = passes == 0) -> None:
            while queue and not (not first and run.stopping) and not run.stop.is_set():
                await read(queue.popleft())

        await asyncio.gather(*(reader() for _ in range(min(run.p.concurrency, len(actors)))))
        passes += 1
        if run.p.duration is None or run.stopping:
            break
    finish(run, t0, time.perf_counter())
    run.result.latency["replay"] = lat.summary()
    run.result.extra["passes"] = passes
    v.actors = len(actors)
    v.expected = sum(len(i) for i in written.values())
    v.found = v.expected - v.missing
    # read_all of the whole namespace, for the record
    if not run.stop.is_set():
        run.begin("read_all", ledger.total)
        r0 = time.perf_counter()
        count = 0
        async for _ in store.read_all(0):
            count += 1
            if count & 1023 == 0:
                run.done = count
                if run.stop.is_set():
                    break
        r1 = time.perf_counter()
        run.result.extra["read_all_events"] = count
        run.result.extra["read_all_events_per_s"] = round(count / max(r1 - r0, 1e-9), 1)
        run.result.extra["replay_mode"] = "one actor" if len(actors) == 1 else "every actor"
