"""`run_bench`: one workload against a store or bus you opened."""

from __future__ import annotations

import asyncio

from aether.bench._run import DRAIN_STALL, Run
from aether.bench.params import BenchParams
from aether.bench.results import BenchResult, ProgressCallback
from aether.bench.workloads import REGISTRY
from aether.bus.base import EventBus
from aether.errors import InvalidBenchParameterError
from aether.store.base import EventStore


async def run_bench(
    params: BenchParams,
    store: EventStore | None = None,
    *,
    bus: EventBus | None = None,
    namespace: str = "bench",
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    drain_stall: float = DRAIN_STALL,
) -> BenchResult:
    """Run one workload against an open `store` (or `bus` for ``bus``) and return its figures.

    `stop` ends the run early (what was measured so far is returned, ``interrupted``).
    After the last publish or append, deliveries are awaited as long as they progress;
    `drain_stall` seconds without one count the rest as missing.
    Events go to actors named ``<random token>-a<i>``, so any namespace works; a fresh one
    keeps ``read_all`` figures about this run only. The store and bus stay open.
    """
    p = params.resolved()
    workload = REGISTRY[p.workload]
    if workload.bus is not None and bus is None:
        raise InvalidBenchParameterError("bus", f"the {p.workload} workload needs an event bus")
    if workload.store is not None and store is None:
        raise InvalidBenchParameterError("store", f"the {p.workload} workload needs an event store")
    run = Run(p, stop, progress)
    run.drain_stall = drain_stall
    run.start_ticker()
    try:
        if workload.bus is not None and bus is not None:
            await workload.bus(run, bus, namespace)
        elif workload.store is not None and store is not None:
            await workload.store(run, store)
    finally:
        run.phase = "done"
        await run.stop_ticker()
    return run.result
