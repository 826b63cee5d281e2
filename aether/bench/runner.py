"""`bench`: a workload from `Settings`, with its own namespace, store or bus, and clean-up."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aether.bench.engine import run_bench
from aether.bench.machine import Machine, machine_info, nats_server_version
from aether.bench.namespace import bench_target
from aether.bench.params import BenchParams
from aether.bench.results import BenchResult, ProgressCallback
from aether.bus.base import EventBus
from aether.config import Settings


@dataclasses.dataclass
class BenchReport:
    """A `BenchResult` with where and how it ran (what ``aether bench --json`` prints)."""

    result: BenchResult
    store: str
    namespace: str
    kept: bool
    machine: Machine
    bus: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON document."""
        d = self.result.to_dict()
        d["parameters"] = {**d["parameters"], "store": self.store, "namespace": self.namespace}
        if self.bus is not None:
            d["parameters"]["bus"] = self.bus
        d["machine"] = self.machine.to_dict()
        d["kept"] = self.kept
        return d


async def open_bus(settings: Settings) -> tuple[EventBus, str]:
    """The bus the bench uses: NATS when a server is configured, else the local one."""
    if settings.nats.servers:
        from aether.bus.nats import NatsEventBus

        return await NatsEventBus.open(settings), "nats"
    from aether.bus.local import LocalEventBus

    return LocalEventBus(), "local"


def _bus_opener() -> Callable[[Settings], Awaitable[tuple[EventBus, str]]]:
    # Looked up on the package at call time: `aether.observability.instrument_factories`
    # replaces ``aether.bench.open_bus`` to instrument what the bench opens.
    import aether.bench

    opener: Callable[[Settings], Awaitable[tuple[EventBus, str]]] = aether.bench.open_bus
    return opener


async def bench(
    settings: Settings,
    params: BenchParams,
    *,
    keep: bool = False,
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
) -> BenchReport:
    """Run a workload from `Settings`: throw-away namespace, store or bus, clean-up after."""
    import aether.store  # `open_store` is looked up at call time, like `_bus_opener`

    p = params.resolved()
    version = None
    if settings.nats.servers and (settings.resolved_store == "jetstream" or p.workload == "bus"):
        version = await nats_server_version(settings)  # unreachable: fails before anything
    async with bench_target(settings, keep=keep) as (s, namespace, kept):
        if p.workload == "bus":
            bus, bus_kind = await _bus_opener()(s)
            try:
                result = await run_bench(
                    p, bus=bus, namespace=namespace, progress=progress, stop=stop
                )
            finally:
                await bus.close()
            return BenchReport(result, "none", namespace, kept, machine_info(version), bus_kind)
        store = await aether.store.open_store(s)
        try:
            result = await run_bench(p, store, namespace=namespace, progress=progress, stop=stop)
        finally:
            await store.close()
        return BenchReport(result, s.resolved_store, namespace, kept, machine_info(version))
