"""The registry of workloads: one module each, looked up by name.

A `Workload` runs either against a store (``store``: ``append``, ``replay``, ``mixed``,
``conflict``) or against a bus (``bus``). Every workload measures after its warm-up,
honours the run's bounds and stop event between operations (never abandoning one in
flight), and verifies what it did into ``run.result.verification``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aether.bench._run import Run
from aether.bench.workloads.append import append
from aether.bench.workloads.bus import bus
from aether.bench.workloads.conflict import conflict
from aether.bench.workloads.mixed import mixed
from aether.bench.workloads.replay import replay
from aether.bus.base import EventBus
from aether.store.base import EventStore

StoreWorkload = Callable[[Run, EventStore], Awaitable[None]]
"""A workload run against an open store."""

BusWorkload = Callable[[Run, EventBus, str], Awaitable[None]]
"""A workload run against an open bus, in a namespace."""


@dataclass(frozen=True)
class Workload:
    """A registered workload: its name and what it runs against (exactly one is set)."""

    name: str
    store: StoreWorkload | None = None
    bus: BusWorkload | None = None


REGISTRY: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("append", store=append),
        Workload("replay", store=replay),
        Workload("bus", bus=bus),
        Workload("mixed", store=mixed),
        Workload("conflict", store=conflict),
    )
}
"""Every workload by name, in the order `aether.bench.WORKLOADS` lists them."""

__all__ = ["REGISTRY", "BusWorkload", "StoreWorkload", "Workload"]
