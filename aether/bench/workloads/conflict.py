"""``conflict``: W writers racing on the same A actors with optimistic concurrency: each
writer remembers the versions it saw; a `VersionConflictError` reloads and retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from aether.bench._phases import finish, save, warmup
from aether.bench._run import Budget, Ledger, Run
from aether.bench.results import LatencyRecorder
from aether.bench.verify import verify_store
from aether.errors import VersionConflictError
from aether.store.base import EventStore

_MAX_CONFLICT_ATTEMPTS = 1000


async def conflict(run: Run, store: EventStore) -> None:
    """Run the ``conflict`` workload against `store`."""
    ledger = Ledger()
    await warmup(run, store, ledger)
    actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
    lat = LatencyRecorder()
    size = run.wire_size()
    budget = Budget(run.p.events)
    wins: dict[tuple[str, int], str] = {}
    gave_up = 0
    run.begin("run", run.p.events, timed=True)
    t0 = time.perf_counter()

    async def writer(rng: random.Random) -> None:
        nonlocal gave_up
        known: dict[str, int] = {}
        seq = 0
        while not run.stopping and budget.claim(1):
            actor = rng.choice(actors)
            s0 = time.perf_counter_ns()
            for _attempt in range(_MAX_CONFLICT_ATTEMPTS):
                version = known.get(actor, 0) + 1
                event = run.event(actor, version, seq)
                seq += 1
                try:
                    await save(run, store, [event])
                except VersionConflictError as e:
                    run.result.conflicts += 1
                    run.result.retries += 1
                    known[actor] = e.actual
                    await asyncio.sleep(0)
                    continue
                lat.record(time.perf_counter_ns() - s0)
                if (actor, version) in wins:
                    run.result.verification.duplicates += 1
                    run.result.verification.problem(f"actor {actor!r}: version {version} won twice")
                wins[(actor, version)] = event.id
                known[actor] = version
                run.result.events += 1
                run.result.bytes += size
                run.done += 1
                break
            else:
                gave_up += 1
            await asyncio.sleep(0)

    seeds = [run.rng.randrange(2**32) for _ in range(run.p.writers)]
    await asyncio.gather(*(writer(random.Random(s)) for s in seeds))
    finish(run, t0, time.perf_counter())
    run.result.latency["append"] = lat.summary()
    run.result.extra["gave_up"] = gave_up
    attempts = run.result.events + run.result.conflicts
    rate = run.result.conflicts / attempts if attempts else 0.0
    run.result.extra["conflict_rate"] = round(rate, 4)
    per_actor = Counter(a for (a, _v) in wins)
    for actor in actors:
        n = 0
        while (actor, n + 1) in wins:
            n += 1
        ledger.ids[actor] = [wins[(actor, i)] for i in range(1, n + 1)]
        if n != per_actor[actor]:
            run.result.verification.problem(f"actor {actor!r}: acknowledged versions have a gap")
    await verify_store(run, store, ledger)
