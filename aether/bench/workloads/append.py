"""``append``: N events over A actors, C concurrent writers, one per save or batches of K.

Latency is per save call (the acknowledgement); the store is verified afterwards.
"""

from __future__ import annotations

import time

from aether.bench._phases import finish, warmup, write
from aether.bench._run import Budget, Ledger, Run
from aether.bench.results import LatencyRecorder
from aether.bench.verify import verify_store
from aether.store.base import EventStore


async def append(run: Run, store: EventStore) -> None:
    """Run the ``append`` workload against `store`."""
    ledger = Ledger()
    await warmup(run, store, ledger)
    lat = LatencyRecorder()
    actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
    run.begin("run", run.p.events, timed=True)
    t0 = time.perf_counter()
    await write(
        run,
        store,
        actors,
        Budget(run.p.events),
        ledger,
        concurrency=run.p.concurrency,
        batch=run.p.batch,
        latency=lat,
    )
    finish(run, t0, time.perf_counter())
    run.result.latency["append"] = lat.summary()
    await verify_store(run, store, ledger)
