"""``mixed``: C writers appending while a store ``watch`` tails the namespace; latency is
end to end, from the save call to the tail's delivery, plus the append acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aether.bench._phases import drain, finish, save, warmup, write
from aether.bench._run import Budget, Ledger, Run
from aether.bench.results import LatencyRecorder
from aether.bench.verify import verify_store
from aether.errors import AetherError
from aether.store.base import EventStore


async def mixed(run: Run, store: EventStore) -> None:
    """Run the ``mixed`` workload against `store`."""
    ledger = Ledger()
    prefix = f"{run.token}-"
    e2e = LatencyRecorder()
    ready = asyncio.Event()
    seen_ids: set[str] = set()
    delivered = 0
    caught_up = asyncio.Event()
    expected_total: list[int | None] = [None]
    v = run.result.verification
    last_position = 0
    last_version: dict[str, int] = {}

    async def tail() -> None:
        nonlocal delivered, last_position
        it = store.watch(None)
        try:
            async for e in it:
                now = time.perf_counter_ns()
                if not e.actor_id.startswith(prefix):
                    continue
                if e.data.get("w"):
                    ready.set()
                    continue
                if e.id in seen_ids:
                    v.duplicates += 1
                    v.problem(f"tail delivered {e.actor_id!r} version {e.version} twice")
                    continue
                seen_ids.add(e.id)
                e2e.record(now - int(e.data["t"]))
                if e.position is not None:
                    if e.position <= last_position:
                        v.out_of_order += 1
                        v.problem(f"tail: position {e.position} after {last_position}")
                    last_position = e.position
                if e.version != last_version.get(e.actor_id, 0) + 1:
                    v.out_of_order += 1
                    v.problem(f"tail: {e.actor_id!r} version {e.version} out of order")
                last_version[e.actor_id] = e.version
                delivered += 1
                total = expected_total[0]
                if total is not None and delivered >= total:
                    caught_up.set()
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    tail_task = asyncio.create_task(tail())
    try:
        # The tail is live once it delivers an event written after it started.
        run.begin("warmup", run.p.warmup)
        marker = f"{run.token}-w-ready"
        version = 0
        wait_until = time.perf_counter() + 20.0
        while not ready.is_set():
            if tail_task.done():
                tail_task.result()
            if time.perf_counter() > wait_until:
                raise AetherError("bench: the store's watch delivered nothing within 20 s")
            if run.stop.is_set():
                break
            version += 1
            ev = run.event(marker, version, 0, warm=True)
            await save(run, store, [ev])
            ledger.add(marker, [ev])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 0.05)
        await warmup(run, store, ledger)

        lat = LatencyRecorder()
        actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
        measured = Ledger()
        run.begin("run", run.p.events, timed=True)
        t0 = time.perf_counter()
        await write(
            run,
            store,
            actors,
            Budget(run.p.events),
            measured,
            concurrency=run.p.concurrency,
            batch=run.p.batch,
            latency=lat,
        )
        t1 = time.perf_counter()
        total = measured.total
        expected_total[0] = total
        if delivered >= total:
            caught_up.set()
        run.begin("drain", total)
        run.done = delivered
        if not await drain(run, caught_up, lambda: delivered):
            v.problem(f"tail delivered {delivered} of {total} events, then nothing for a while")
        t2 = time.perf_counter()
    finally:
        tail_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tail_task
    finish(run, t0, t1)
    run.result.latency["append"] = lat.summary()
    run.result.latency["e2e"] = e2e.summary()
    run.result.extra["tail_delivered"] = delivered
    run.result.extra["tail_events_per_s"] = round(delivered / max(t2 - t0, 1e-9), 1)
    for actor, ids in measured.ids.items():
        ledger.ids[actor] = ids
        missing = sum(1 for i in ids if i not in seen_ids)
        if missing:
            v.missing += missing
            v.problem(f"tail: {missing} events of {actor!r} never delivered")
    await verify_store(run, store, ledger)
