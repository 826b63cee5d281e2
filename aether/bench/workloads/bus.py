"""``bus``: one publisher, S subscribers on the namespace; latency is end to end, from
the publish call to each delivery. Each subscriber must get every event once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aether.bench._phases import drain, finish
from aether.bench._run import Budget, Run
from aether.bench.results import LatencyRecorder
from aether.bench.verify import check_deliveries
from aether.bus.base import EventBus
from aether.errors import AetherError

_BUS_WINDOW = 1024  # events published but not yet delivered to the slowest subscriber


async def bus(run: Run, bus: EventBus, namespace: str) -> None:
    """Run the ``bus`` workload: publish to `namespace` of `bus`, consume with subscribers."""
    v = run.result.verification
    subs = [await bus.subscribe(namespace) for _ in range(run.p.subscribers)]
    counts = [0] * len(subs)
    ready = [asyncio.Event() for _ in subs]
    progressed = asyncio.Event()
    e2e = LatencyRecorder()
    pub_lat = LatencyRecorder()
    expected: list[int | None] = [None]
    finished = [asyncio.Event() for _ in subs]
    prefix = f"{run.token}-"

    async def consume(i: int) -> None:
        sub = subs[i]
        async for e in sub:
            now = time.perf_counter_ns()
            if not e.actor_id.startswith(prefix):
                continue
            data = e.data
            if data.get("w"):
                ready[i].set()
                continue
            seq = data["seq"]
            if seq != counts[i]:
                if seq < counts[i]:
                    v.duplicates += 1
                else:
                    v.out_of_order += 1
                v.problem(f"subscriber {i}: got seq {seq}, expected {counts[i]}")
            e2e.record(now - int(data["t"]))
            counts[i] += 1
            if counts[i] & 255 == 0:
                progressed.set()
            total = expected[0]
            if total is not None and counts[i] >= total:
                finished[i].set()
                progressed.set()

    tasks = [asyncio.create_task(consume(i)) for i in range(len(subs))]
    try:
        run.begin("warmup", run.p.warmup)
        wait_until = time.perf_counter() + 20.0
        version = 0
        warm = run.p.warmup or 0
        while not all(r.is_set() for r in ready) or version < warm:
            for t in tasks:
                if t.done():
                    t.result()
            if time.perf_counter() > wait_until:
                raise AetherError("bench: bus subscribers received nothing within 20 s")
            if run.stop.is_set():
                break
            version += 1
            await bus.publish(namespace, run.event(f"{run.token}-w", version, 0, warm=True))
            run.done = version
            if version % 64 == 0 or not all(r.is_set() for r in ready):
                await asyncio.sleep(0.001 if all(r.is_set() for r in ready) else 0.02)
        await asyncio.sleep(0.05)  # let the warm-up drain before the clock starts
        actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
        versions = dict.fromkeys(actors, 0)
        size = run.wire_size()
        budget = Budget(run.p.events)
        run.begin("run", run.p.events, timed=True)
        t0 = time.perf_counter()
        published = 0
        while not run.stopping and budget.claim(1):
            actor = actors[published % len(actors)]
            versions[actor] += 1
            event = run.event(actor, versions[actor], published)
            s0 = time.perf_counter_ns()
            await bus.publish(namespace, event)
            pub_lat.record(time.perf_counter_ns() - s0)
            published += 1
            run.done = published
            if published & 255 == 0:
                await asyncio.sleep(0)
                while published - min(counts) > _BUS_WINDOW and not run.stop.is_set():
                    progressed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(progressed.wait(), 1.0)
                    for t in tasks:
                        if t.done():
                            t.result()
        expected[0] = published
        for i, c in enumerate(counts):
            if c >= published:
                finished[i].set()
        run.begin("drain", published * len(subs))
        run.done = sum(counts)
        all_done = asyncio.Event()
        waiter = asyncio.ensure_future(asyncio.gather(*(f.wait() for f in finished)))
        waiter.add_done_callback(lambda _f: all_done.set())
        try:
            await drain(run, all_done, lambda: sum(counts))
        finally:
            waiter.cancel()
        t1 = time.perf_counter()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for s in subs:
            with contextlib.suppress(Exception):
                await s.close()
    finish(run, t0, t1)
    run.result.events = published
    run.result.bytes = published * size
    run.result.latency["e2e"] = e2e.summary()
    run.result.latency["publish"] = pub_lat.summary()
    deliveries = sum(counts)
    run.result.extra["subscribers"] = len(subs)
    run.result.extra["deliveries"] = deliveries
    run.result.extra["deliveries_per_s"] = round(deliveries / run.result.elapsed_s, 1)
    v.actors = len(actors)
    check_deliveries(v, counts, published, sum(s.dropped for s in subs))
