"""The workloads of `aether.bench`: the run context, shared phases and the five workloads.

Internal: use `aether.bench.run_bench`. Every workload measures after its warm-up, honours
the run's bounds and stop event between operations (never abandoning one in flight), and
verifies what it did into ``run.result.verification``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aether.bench import (
    DRAIN_STALL,
    BenchParams,
    BenchProgress,
    BenchResult,
    LatencyRecorder,
    ProgressCallback,
)
from aether.errors import AetherError, ValidationError, VersionConflictError
from aether.event import Event, encode_event
from aether.store.base import EventStore

log = logging.getLogger("aether.bench")

EVENT_TYPE = "BenchEvent"
_MAX_RETRIES = 5  # re-saves of the same event after an uncertain outcome
_MAX_CONFLICT_ATTEMPTS = 1000
_BUS_WINDOW = 1024  # events published but not yet delivered to the slowest subscriber


# --- the run context ------------------------------------------------------------------------


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
        data: dict[str, Any] = {"seq": seq, "t": time.perf_counter_ns(), "pad": self.pad}
        if warm:
            data["w"] = 1
        return Event(event_type=EVENT_TYPE, actor_id=actor, version=version, data=data)

    def wire_size(self) -> int:
        """Encoded size of one event of this run (for MB/s)."""
        return len(encode_event(self.event(f"{self.token}-a0", 1, 0)))


class _Budget:
    """Events still to do; shared by concurrent workers."""

    __slots__ = ("left",)

    def __init__(self, total: int | None) -> None:
        self.left = total

    def claim(self, k: int) -> int:
        if self.left is None:
            return k
        n = min(k, self.left)
        self.left -= n
        return n


@dataclass
class _Ledger:
    """What was acknowledged per actor: ids in version order."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, actor: str, events: list[Event]) -> None:
        self.ids.setdefault(actor, []).extend(e.id for e in events)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.ids.values())


# --- shared phases --------------------------------------------------------------------------


async def _save(run: Run, store: EventStore, events: list[Event]) -> None:
    """Save one event or one batch, re-saving after an uncertain outcome (idempotent)."""
    attempt = 0
    while True:
        try:
            if len(events) == 1:
                await store.save_event(events[0])
            else:
                await store.save_events(events)
            return
        except VersionConflictError:
            raise
        except ValidationError:
            raise
        except AetherError as e:
            attempt += 1
            run.result.retries += 1
            if attempt > _MAX_RETRIES:
                raise
            log.warning("bench: save failed (%s), re-saving the same events", e)
            await asyncio.sleep(0.05 * attempt)


async def _write(
    run: Run,
    store: EventStore,
    actors: list[str],
    budget: _Budget,
    ledger: _Ledger,
    *,
    concurrency: int,
    batch: int,
    latency: LatencyRecorder | None,
    warm: bool = False,
) -> None:
    """C writers appending to `actors`; an actor is written by one writer at a time."""
    idle: asyncio.Queue[str] = asyncio.Queue()
    for a in actors:
        idle.put_nowait(a)
    versions = {a: len(ledger.ids.get(a, ())) for a in actors}
    seq = 0
    size = run.wire_size() if latency is not None else 0

    async def writer() -> None:
        nonlocal seq
        while not run.stopping:
            actor = await idle.get()
            k = budget.claim(batch)
            if k == 0 or run.stopping:
                idle.put_nowait(actor)
                return
            v = versions[actor]
            events = []
            for i in range(k):
                events.append(run.event(actor, v + i + 1, seq, warm=warm))
                seq += 1
            t0 = time.perf_counter_ns()
            try:
                await _save(run, store, events)
            except VersionConflictError as e:
                # Only this run writes these actors: a conflict means the store lost track.
                run.result.errors += 1
                run.result.verification.problem(f"unexpected conflict: {e}")
                versions[actor] = e.actual
                idle.put_nowait(actor)
                continue
            if latency is not None:
                latency.record(time.perf_counter_ns() - t0)
                run.result.events += k
                run.result.bytes += k * size
            versions[actor] = v + k
            ledger.add(actor, events)
            run.done += k
            idle.put_nowait(actor)
            await asyncio.sleep(0)  # stores that never suspend must not starve the others

    await asyncio.gather(*(writer() for _ in range(min(concurrency, len(actors)))))


async def _warmup(run: Run, store: EventStore, ledger: _Ledger) -> None:
    """Unmeasured appends on actors of their own (connections, caches, JIT-free warm paths)."""
    n = run.p.warmup or 0
    if n == 0 or run.stop.is_set():
        return
    run.begin("warmup", n)
    actors = [f"{run.token}-w{i}" for i in range(min(n, max(1, run.p.concurrency)))]
    await _write(
        run,
        store,
        actors,
        _Budget(n),
        ledger,
        concurrency=run.p.concurrency,
        batch=1,
        latency=None,
        warm=True,
    )


async def _verify_store(run: Run, store: EventStore, ledger: _Ledger) -> None:
    """Every actor holds exactly the acknowledged events: versions 1..n, ids, no extra."""
    v = run.result.verification
    run.begin("verify", len(ledger.ids))
    for actor, ids in ledger.ids.items():
        v.actors += 1
        v.expected += len(ids)
        seen_versions: set[int] = set()
        seen_ids: set[str] = set()
        stored = 0
        async for e in store.iter_events(actor):
            stored += 1
            if e.version in seen_versions or e.id in seen_ids:
                v.duplicates += 1
                v.problem(f"actor {actor!r}: version {e.version} (id {e.id}) stored twice")
                continue
            seen_versions.add(e.version)
            seen_ids.add(e.id)
            if e.version != stored:
                v.out_of_order += 1
                v.problem(f"actor {actor!r}: read version {e.version} at place {stored}")
            if e.version > len(ids):
                v.unexpected += 1
                v.problem(f"actor {actor!r}: version {e.version} was never acknowledged")
            elif ids[e.version - 1] != e.id:
                v.unexpected += 1
                v.problem(f"actor {actor!r}: version {e.version} holds id {e.id}, not ours")
        v.found += len(seen_versions)
        missing = sum(1 for i in range(1, len(ids) + 1) if i not in seen_versions)
        if missing:
            v.missing += missing
            v.problem(f"actor {actor!r}: {missing} acknowledged events missing")
        latest = await store.get_latest_version(actor)
        if latest != len(ids):
            v.problem(f"actor {actor!r}: latest version {latest}, expected {len(ids)}")
        run.done += 1


async def _drain(run: Run, done: asyncio.Event, count: Callable[[], int]) -> bool:
    """Wait for `done` while deliveries progress; False once they stall for `drain_stall`."""
    last = count()
    last_change = time.perf_counter()
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), min(0.2, run.drain_stall))
        now_count = count()
        run.done = now_count
        if now_count != last:
            last, last_change = now_count, time.perf_counter()
        elif time.perf_counter() - last_change > run.drain_stall:
            return done.is_set()
    return True


def _finish(run: Run, started: float, ended: float) -> None:
    run.result.elapsed_s = max(ended - started, 1e-9)
    run.result.interrupted = run.stop.is_set()


# --- workloads ----------------------------------------------------------------------------


async def append(run: Run, store: EventStore) -> None:
    ledger = _Ledger()
    await _warmup(run, store, ledger)
    lat = LatencyRecorder()
    actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
    run.begin("run", run.p.events, timed=True)
    t0 = time.perf_counter()
    await _write(
        run,
        store,
        actors,
        _Budget(run.p.events),
        ledger,
        concurrency=run.p.concurrency,
        batch=run.p.batch,
        latency=lat,
    )
    _finish(run, t0, time.perf_counter())
    run.result.latency["append"] = lat.summary()
    await _verify_store(run, store, ledger)


async def replay(run: Run, store: EventStore) -> None:
    ledger = _Ledger()
    actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
    run.begin("setup", run.p.events)
    setup_batch = min(100, max(1, (run.p.events or 1) // len(actors)))
    await _write(
        run,
        store,
        actors,
        _Budget(run.p.events),
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
    _finish(run, t0, time.perf_counter())
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


async def conflict(run: Run, store: EventStore) -> None:
    ledger = _Ledger()
    await _warmup(run, store, ledger)
    actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
    lat = LatencyRecorder()
    size = run.wire_size()
    budget = _Budget(run.p.events)
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
                    await _save(run, store, [event])
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
    _finish(run, t0, time.perf_counter())
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
    await _verify_store(run, store, ledger)


async def mixed(run: Run, store: EventStore) -> None:
    ledger = _Ledger()
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
            await _save(run, store, [ev])
            ledger.add(marker, [ev])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 0.05)
        await _warmup(run, store, ledger)

        lat = LatencyRecorder()
        actors = [f"{run.token}-a{i}" for i in range(run.p.actors or 1)]
        measured = _Ledger()
        run.begin("run", run.p.events, timed=True)
        t0 = time.perf_counter()
        await _write(
            run,
            store,
            actors,
            _Budget(run.p.events),
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
        if not await _drain(run, caught_up, lambda: delivered):
            v.problem(f"tail delivered {delivered} of {total} events, then nothing for a while")
        t2 = time.perf_counter()
    finally:
        tail_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tail_task
    _finish(run, t0, t1)
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
    await _verify_store(run, store, ledger)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def bus(run: Run, bus: Any, namespace: str) -> None:
    v = run.result.verification
    subs = [await _maybe_await(bus.subscribe(namespace)) for _ in range(run.p.subscribers)]
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
        budget = _Budget(run.p.events)
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
            await _drain(run, all_done, lambda: sum(counts))
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
                await _maybe_await(s.close())
    _finish(run, t0, t1)
    run.result.events = published
    run.result.bytes = published * size
    run.result.latency["e2e"] = e2e.summary()
    run.result.latency["publish"] = pub_lat.summary()
    deliveries = sum(counts)
    run.result.extra["subscribers"] = len(subs)
    run.result.extra["deliveries"] = deliveries
    run.result.extra["deliveries_per_s"] = round(deliveries / run.result.elapsed_s, 1)
    v.actors = len(actors)
    v.expected = published * len(subs)
    v.found = deliveries
    for i, c in enumerate(counts):
        if c < published:
            v.missing += published - c
            v.problem(f"subscriber {i}: received {c} of {published} events")
    v.dropped = sum(int(getattr(s, "dropped", 0) or 0) for s in subs)
    if v.dropped:
        v.problem(f"the bus dropped {v.dropped} events")


STORE_WORKLOADS: dict[str, Callable[[Run, EventStore], Any]] = {
    "append": append,
    "replay": replay,
    "mixed": mixed,
    "conflict": conflict,
}
"""The workloads that run against a store (``bus`` runs against a bus)."""
