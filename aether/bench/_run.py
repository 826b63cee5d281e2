"""The context of one run: bounds, stop flag, counters, progress ticker, bench events."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from dataclasses import dataclass, field

from aether.bench.params import BenchParams
from aether.bench.results import BenchProgress, BenchResult, ProgressCallback
from aether.event import Event, JSONValue, encode_event

EVENT_TYPE = "BenchEvent"
"""The event type of every event a run writes or publishes."""

DRAIN_STALL = 5.0
"""Seconds without a new delivery after which a draining tail or subscriber is given up."""


class Run:
    """Shared state of one run: bounds, stop flag, counters, progress ticker."""

    def __init__(
        self,
        params: BenchParams,
        stop: asyncio.Event | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.p = params
        self.stop = stop or asyncio.Event()
        self.progress = progress
        self.token = secrets.token_hex(4)
        self.rng = random.Random(params.seed)
        self.pad = "x" * max(0, params.payload - 40)  # data ~= payload bytes once encoded
        self.phase = "setup"
        self.done = 0
        self.total: int | None = None
        self.phase_started = time.perf_counter()
        self.deadline: float | None = None
        self.result = BenchResult(params.workload, params)
        self.drain_stall = DRAIN_STALL
        self._ticker: asyncio.Task[None] | None = None

    # bounds

    @property
    def stopping(self) -> bool:
        """The stop event is set or the deadline passed."""
        if self.stop.is_set():
            return True
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def begin(self, phase: str, total: int | None, *, timed: bool = False) -> None:
        """Enter a phase; `timed` phases end at the run's duration."""
        self.phase = phase
        self.done = 0
        self.total = total
        self.phase_started = time.perf_counter()
        self.deadline = (
            self.phase_started + self.p.duration if timed and self.p.duration is not None else None
        )
        self._report()

    # progress

    def _report(self) -> None:
        if self.progress is not None:
            duration = self.p.duration if self.deadline is not None else None
            self.progress(
                BenchProgress(
                    self.phase,
                    self.done,
                    self.total,
                    time.perf_counter() - self.phase_started,
                    duration,
                )
            )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self._report()

    def start_ticker(self) -> None:
        """Report progress every 100 ms off the hot path."""
        if self.progress is not None and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    async def stop_ticker(self) -> None:
        """Stop reporting (after a last report)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._report()

    # events

    def event(self, actor: str, version: int, seq: int, *, warm: bool = False) -> Event:
        """A bench event; ``t`` is the send time (perf_counter_ns) for end-to-end latency."""
        data: dict[str, JSONValue] = {"seq": seq, "t": time.perf_counter_ns(), "pad": self.pad}
        if warm:
            data["w"] = 1
        return Event(event_type=EVENT_TYPE, actor_id=actor, version=version, data=data)

    def wire_size(self) -> int:
        """Encoded size of one event of this run (for MB/s)."""
        return len(encode_event(self.event(f"{self.token}-a0", 1, 0)))


class Budget:
    """Events still to do; shared by concurrent workers."""

    __slots__ = ("left",)

    def __init__(self, total: int | None) -> None:
        self.left = total

    def claim(self, k: int) -> int:
        """Take up to `k` events (all `k` when unbounded); 0 when none are left."""
        if self.left is None:
            return k
        n = min(k, self.left)
        self.left -= n
        return n


@dataclass
class Ledger:
    """What was acknowledged per actor: ids in version order."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, actor: str, events: list[Event]) -> None:
        """Note `events` of `actor` as acknowledged."""
        self.ids.setdefault(actor, []).extend(e.id for e in events)

    @property
    def total(self) -> int:
        """Acknowledged events over every actor."""
        return sum(len(v) for v in self.ids.values())
