"""The bench engine from code: every workload on every store, verification, bounds, stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from aether.bench import (
    PRIMARY_LATENCY,
    BenchParams,
    BenchProgress,
    BenchResult,
    InvalidBenchParameterError,
    LatencyRecorder,
    bench,
    run_bench,
    threshold_failures,
)
from aether.bus import LocalEventBus
from aether.config import Settings
from aether.event import Event
from aether.store import InMemoryEventStore

WORKLOADS = ["append", "replay", "bus", "mixed", "conflict"]
SMALL: dict[str, Any] = {"events": 400, "actors": 10, "concurrency": 8, "warmup": 20}


def assert_sane(result: BenchResult, events: int) -> None:
    """Non-zero figures, ordered percentiles, verified."""
    assert result.verified, result.verification.to_dict()
    assert result.events == events
    assert result.elapsed_s > 0
    assert result.events_per_s > 0
    assert result.mb_per_s > 0
    assert result.bytes >= events * result.params.payload
    lat = result.primary_latency
    assert lat is not None and lat.count > 0
    assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= lat.p99_9 <= lat.max
    assert not result.interrupted
    assert result.errors == 0
    assert result.verification.found >= events


def params_for(workload: str) -> BenchParams:
    kw = dict(SMALL)
    if workload == "conflict":
        kw.update(actors=2, writers=6)
    if workload == "bus":
        kw.update(subscribers=3)
    return BenchParams(workload, **kw)


@pytest.mark.parametrize("workload", WORKLOADS)
async def test_each_workload_on_each_store(workload: str, bench_settings: Settings) -> None:
    """memory, SQLite and JetStream (bus: local, local, NATS) give sane verified figures."""
    report = await bench(bench_settings, params_for(workload))
    r = report.result
    assert_sane(r, 400)
    assert report.namespace == bench_settings.namespace  # given explicitly: used as is
    assert report.kept
    if workload == "mixed":
        assert r.latency["e2e"].count == 400
        assert r.latency["append"].count == 400
        assert r.extra["tail_delivered"] == 400
    if workload == "conflict":
        assert r.conflicts > 0
        assert r.retries >= r.conflicts
        assert r.verification.expected >= 400
    if workload == "replay":
        assert r.extra["read_all_events"] == 400
        assert r.extra["read_all_events_per_s"] > 0
    if workload == "bus":
        assert r.extra["deliveries"] == 1200
        assert report.bus == ("nats" if bench_settings.store == "jetstream" else "local")
        assert r.verification.dropped == 0
    if bench_settings.store == "jetstream":
        assert report.machine.nats_server and report.machine.nats_server[0].isdigit()
    else:
        assert report.machine.nats_server is None
    assert report.machine.cpu_count and report.machine.python


async def test_append_in_batches_and_one_actor_replay() -> None:
    store = InMemoryEventStore()
    r = await run_bench(BenchParams("append", events=500, actors=5, batch=10), store)
    assert_sane(r, 500)
    assert r.latency["append"].count == 50  # one sample per atomic batch
    r = await run_bench(BenchParams("replay", events=300, actors=1), store)
    assert_sane(r, 300)
    assert r.extra["replay_mode"] == "one actor"


async def test_bus_on_nats(nats_server: Any) -> None:
    from aether.bus import NatsEventBus

    settings = Settings.load(
        overrides={"nats.servers": [nats_server.url]}, search_default_files=False
    )
    bus = await NatsEventBus.open(settings)
    try:
        r = await run_bench(BenchParams("bus", events=1000, subscribers=2), bus=bus, namespace="bb")
    finally:
        await bus.close()
    assert_sane(r, 1000)
    assert r.latency["e2e"].count == 2000


# --- verification can fail ------------------------------------------------------------------


class LossyStore(InMemoryEventStore):
    """Loses version 3 of every actor on read."""

    async def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        async for e in super().iter_events(actor_id, from_version, to_version):
            if e.version != 3:
                yield e


class DuplicatingStore(InMemoryEventStore):
    """Reads every actor's first event twice."""

    async def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        async for e in super().iter_events(actor_id, from_version, to_version):
            yield e
            if e.version == 1:
                yield e


class LossyWatchStore(InMemoryEventStore):
    """Its watch skips every 50th event."""

    async def watch(self, from_position: int | None = None) -> AsyncIterator[Event]:
        async for e in super().watch(from_position):
            if e.position is not None and e.position % 50 == 0:
                continue
            yield e


class DroppingBus(LocalEventBus):
    """Loses every 100th publish silently."""

    n = 0

    async def publish(self, namespace: str, event: Event) -> None:
        self.n += 1
        if self.n % 100:
            await super().publish(namespace, event)


@pytest.mark.parametrize("workload", ["append", "replay", "conflict"])
async def test_lost_events_fail_verification(workload: str) -> None:
    r = await run_bench(params_for(workload), LossyStore())
    assert not r.verified
    assert r.verification.missing > 0
    assert r.verification.problems


async def test_duplicated_events_fail_verification() -> None:
    r = await run_bench(params_for("append"), DuplicatingStore())
    assert not r.verified
    assert r.verification.duplicates > 0


async def test_tail_losing_events_fails_mixed() -> None:
    params = BenchParams("mixed", events=300, actors=5, warmup=10)
    r = await run_bench(params, LossyWatchStore(), drain_stall=0.5)
    assert not r.verified
    assert r.verification.missing > 0


async def test_bus_losing_events_fails_verification() -> None:
    r = await run_bench(
        BenchParams("bus", events=1000, subscribers=2, warmup=10),
        bus=DroppingBus(),
        namespace="x",
        drain_stall=0.5,
    )
    assert not r.verified
    assert r.verification.missing > 0 or r.verification.out_of_order > 0


# --- bounds, stop, progress ---------------------------------------------------------------


async def test_duration_bounds_a_run() -> None:
    t0 = time.perf_counter()
    r = await run_bench(BenchParams("append", duration=0.4, warmup=10), InMemoryEventStore())
    assert time.perf_counter() - t0 < 20
    assert r.params.events is None
    assert r.events > 0 and r.verified and not r.interrupted
    assert 0.3 < r.elapsed_s < 10


async def test_replay_with_duration_repeats_passes() -> None:
    r = await run_bench(
        BenchParams("replay", events=200, actors=4, duration=0.3), InMemoryEventStore()
    )
    assert r.verified
    assert r.extra["passes"] >= 1
    assert r.events >= 200
    assert r.events % 50 == 0  # whole actors: a pass cut by the deadline stops between actors


@pytest.mark.parametrize("workload", WORKLOADS)
async def test_stop_returns_what_was_measured(workload: str) -> None:
    """A stop mid-run (Ctrl-C) ends the run cleanly with partial, verified figures."""
    stop = asyncio.Event()
    phases: list[str] = []

    def progress(p: BenchProgress) -> None:
        phases.append(p.phase)
        if p.phase == "run" and p.done > 50:
            stop.set()

    params = BenchParams(workload, duration=60, actors=4, warmup=10)
    store = InMemoryEventStore()
    t0 = time.perf_counter()
    r = await asyncio.wait_for(
        run_bench(params, store, bus=LocalEventBus(), namespace="s", progress=progress, stop=stop),
        30,
    )
    assert time.perf_counter() - t0 < 30
    assert r.interrupted
    assert r.events > 0
    assert r.verified, r.verification.to_dict()
    assert "run" in phases and phases[-1] == "done"


async def test_progress_reports_phases() -> None:
    seen: list[BenchProgress] = []
    params = BenchParams("append", events=3000, warmup=100)
    await run_bench(params, InMemoryEventStore(), progress=seen.append)
    phases = [p.phase for p in seen]
    assert phases[0] == "warmup"
    assert "run" in phases and "verify" in phases and phases[-1] == "done"
    runs = [p for p in seen if p.phase == "run"]
    assert runs[0].total == 3000


# --- parameters, statistics, thresholds --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"workload": "nope"}, "workload"),
        ({"workload": "append", "events": 0}, "events"),
        ({"workload": "append", "duration": -1}, "duration"),
        ({"workload": "append", "duration": float("nan")}, "duration"),
        ({"workload": "append", "actors": 0}, "actors"),
        ({"workload": "append", "payload": -1}, "payload"),
        ({"workload": "append", "concurrency": 0}, "concurrency"),
        ({"workload": "append", "batch": 1001}, "batch"),
        ({"workload": "bus", "batch": 5}, "batch"),
        ({"workload": "bus", "subscribers": 0}, "subscribers"),
        ({"workload": "conflict", "writers": 0}, "writers"),
        ({"workload": "append", "events": True}, "events"),
    ],
)
async def test_bad_parameters_are_refused(kwargs: dict[str, Any], field: str) -> None:
    store = InMemoryEventStore()
    with pytest.raises(InvalidBenchParameterError) as e:
        await run_bench(BenchParams(**kwargs), store)
    assert e.value.field == field
    assert await store.list_actors() == {}


async def test_missing_store_or_bus_is_refused() -> None:
    with pytest.raises(InvalidBenchParameterError):
        await run_bench(BenchParams("append"))
    with pytest.raises(InvalidBenchParameterError):
        await run_bench(BenchParams("bus"), InMemoryEventStore())


def test_defaults() -> None:
    p = BenchParams("conflict").resolved()
    assert p.events == 10_000 and p.actors == 4 and p.warmup is not None
    assert BenchParams("append", duration=5).resolved().events is None
    assert BenchParams("append").resolved().actors == 100


def test_percentiles_nearest_rank() -> None:
    rec = LatencyRecorder()
    for ms in range(1000, 0, -1):
        rec.record(ms * 1_000_000)
    s = rec.summary()
    assert (s.count, s.p50, s.p90, s.p99, s.p99_9, s.max) == (1000, 500, 900, 990, 999, 1000)
    assert s.mean == 500.5
    assert LatencyRecorder().summary().count == 0


async def test_thresholds() -> None:
    r = await run_bench(BenchParams("append", events=200, warmup=0), InMemoryEventStore())
    assert threshold_failures(r) == []
    assert threshold_failures(r, fail_below=1, fail_above_p99=60_000) == []
    below = threshold_failures(r, fail_below=1e12)
    assert len(below) == 1 and "below" in below[0]
    above = threshold_failures(r, fail_above_p99=0)
    assert len(above) == 1 and PRIMARY_LATENCY["append"] in above[0]


async def test_result_dict_is_json_ready() -> None:
    import orjson

    r = await run_bench(BenchParams("mixed", events=200, warmup=5), InMemoryEventStore())
    d = orjson.loads(orjson.dumps(r.to_dict()))
    assert d["verified"] is True
    assert set(d["latency_ms"]) == {"append", "e2e"}
    assert set(d["latency_ms"]["e2e"]) == {"count", "p50", "p90", "p99", "p99_9", "max", "mean"}


# --- clean-up of the throw-away namespace -----------------------------------------------------


async def test_sqlite_bench_uses_and_removes_a_temporary_file(tmp_path: Path) -> None:
    db = tmp_path / "data" / "events.db"
    settings = Settings.load(
        overrides={"store": "sqlite", "sqlite.path": str(db)}, search_default_files=False
    )
    report = await bench(settings, BenchParams("append", events=100, warmup=0))
    assert report.result.verified
    assert report.namespace.startswith("bench-") and not report.kept
    assert not (tmp_path / "data").exists()  # the folder it made is gone too
    report = await bench(settings, BenchParams("append", events=100, warmup=0), keep=True)
    assert report.kept and db.is_file()
    from aether.store import open_store

    store = await open_store(settings.replace(namespace=report.namespace))
    try:
        assert sum((await store.list_actors()).values()) == 100
    finally:
        await store.close()


async def test_jetstream_bench_deletes_its_streams_unless_kept(nats_server: Any) -> None:
    settings = Settings.load(
        overrides={"store": "jetstream", "nats.servers": [nats_server.url]},
        search_default_files=False,
    )

    async def streams() -> list[str]:
        nc = await nats.connect(nats_server.url)
        try:
            return [s.config.name for s in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    report = await bench(settings, BenchParams("append", events=200, warmup=0))
    assert report.result.verified and not report.kept
    assert not [s for s in await streams() if report.namespace in s]
    report = await bench(settings, BenchParams("append", events=200, warmup=0), keep=True)
    assert f"AETHER_{report.namespace}" in await streams()
