"""Helpers of the processing tests: stores, workloads, folds, reactors."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from aether.config import Settings
from aether.event import Event
from aether.processing import Context
from aether.store import InMemoryEventStore, open_store
from aether.store.base import EventStore, Tracking


def settings(kind: str, tmp_path: Path, urls: Sequence[str] = (), **extra: object) -> Settings:
    """Settings of a `kind` store (sqlite in `tmp_path`, jetstream on `urls`)."""
    overrides: dict[str, object] = {"store": kind, "namespace": "proc"}
    if kind == "sqlite":
        overrides["sqlite.path"] = str(tmp_path / "events.db")
    if kind == "jetstream":
        overrides["nats.servers"] = list(urls)
    overrides.update(extra)
    return Settings.load(overrides=overrides, env={}, search_default_files=False)


async def open_kind(kind: str, tmp_path: Path, urls: Sequence[str] = ()) -> EventStore:
    """A fresh store of `kind`."""
    if kind == "memory":
        return InMemoryEventStore()
    return await open_store(settings(kind, tmp_path, urls))


class Workload:
    """Appends `Added` events with an integer amount over `actors` actors, in units."""

    def __init__(self, actors: int, seed: int = 7, prefix: str = "acct") -> None:
        self.rng = random.Random(seed)
        self.actors = [f"{prefix}-{i}" for i in range(actors)]
        self.versions: dict[str, int] = {}
        self.appended = 0

    def event(self, actor: str | None = None, **data: Any) -> Event:
        a = actor if actor is not None else self.rng.choice(self.actors)
        v = self.versions.get(a, 0) + 1
        self.versions[a] = v
        payload: dict[str, Any] = {"amount": self.rng.randint(1, 100)}
        payload.update(data)
        return Event(event_type="Added", actor_id=a, version=v, data=payload)

    async def append(self, store: EventStore, n: int, unit: int = 50) -> int:
        """Append `n` events in units of `unit` events."""
        done = 0
        while done < n:
            batch = [self.event() for _ in range(min(unit, n - done))]
            await store.save_events(batch)
            done += len(batch)
        self.appended += n
        return n


async def direct_fold(store: EventStore, event_type: str = "Added") -> dict[str, int]:
    """Sum of amounts per actor, read directly."""
    totals: dict[str, int] = {}
    async for e in store.read_all():
        if e.event_type == event_type:
            totals[e.actor_id] = totals.get(e.actor_id, 0) + int(e.data["amount"])
    return totals


class MemoryProjection:
    """An idempotent in-memory projection (per-actor version guard): sums per actor."""

    event_types = frozenset({"Added"})

    def __init__(self, name: str = "totals") -> None:
        self.name = name
        self.totals: dict[str, int] = {}
        self.version: dict[str, int] = {}
        self.calls = 0
        self.order_violations: list[str] = []

    async def handle(self, event: Event, ctx: Context) -> None:
        self.calls += 1
        last = self.version.get(event.actor_id, 0)
        if event.version <= last:
            return  # a redelivery
        if event.version != last + 1:
            self.order_violations.append(f"{event.actor_id} v{event.version} after v{last}")
        self.version[event.actor_id] = event.version
        self.totals[event.actor_id] = self.totals.get(event.actor_id, 0) + int(event.data["amount"])


class LedgerReactor:
    """For each `Added` event, appends a `Reserved` event to one ledger actor per
    segment at its next version: a duplicate output would be a second ledger entry
    with the same source position."""

    event_types = frozenset({"Added"})

    def __init__(self, store: EventStore, name: str = "ledger") -> None:
        self.name = name
        self.store = store
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def handle(self, event: Event, ctx: Context) -> None:
        ledger = f"ledger-{ctx.segment}"
        latest = await self.store.get_latest_version(ledger)
        ctx.append(
            Event(
                event_type="Reserved",
                actor_id=ledger,
                version=latest + 1,
                data={"source": ctx.position},
            )
        )
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()


async def ledger_sources(store: EventStore) -> list[int]:
    """The source positions of every `Reserved` event."""
    return [int(e.data["source"]) async for e in store.read_all() if e.event_type == "Reserved"]


async def added_positions(store: EventStore) -> list[int]:
    """The positions of every `Added` event."""
    return [e.position async for e in store.read_all() if e.event_type == "Added" and e.position]


class CrashingStore:
    """A real store whose tracking commit at `position` "crashes" the runner: the task
    is cancelled before (``when="before"``) or after (``"after"``) the commit lands."""

    def __init__(self, inner: EventStore, position: int, when: str) -> None:
        self._inner = inner
        self.position = position
        self.when = when
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def max_batch(self) -> int:
        return self._inner.max_batch

    async def save_events(
        self, events: Sequence[Event], *, tracking: Tracking | None = None
    ) -> list[Event]:
        hit = (
            not self.crashed
            and tracking is not None
            and tracking.position >= self.position
            and tracking.key.startswith("proc.")
            and tracking.key.count(".") == 2
        )
        if hit and self.when == "before":
            self.crashed = True
            raise asyncio.CancelledError
        out = await self._inner.save_events(events, tracking=tracking)
        if hit:
            self.crashed = True
            raise asyncio.CancelledError
        return out

    def watch(self, *a: Any, **k: Any) -> AsyncIterator[Event]:
        return self._inner.watch(*a, **k)

    def read_all(self, *a: Any, **k: Any) -> AsyncIterator[Event]:
        return self._inner.read_all(*a, **k)


async def eventually(cond: Callable[[], Any], limit: float, what: str) -> None:
    """Await until `cond()` (sync or async) is truthy, or fail naming `what`."""
    deadline = time.monotonic() + limit
    while True:
        r = cond()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:.0f}s")
        await asyncio.sleep(0.02)
