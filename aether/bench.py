"""The load-test engine behind ``aether bench``, usable from code.

Workloads (`WORKLOADS`):

- ``append``: N events over A actors, payload B bytes, C concurrent writers, one event per
  save (``batch=1``) or atomic batches of K. Latency is per save call (the acknowledgement).
- ``replay``: writes N events over A actors (not measured), then reads every actor back
  with C concurrent readers (``actors=1``: one actor). Latency is per actor read.
- ``bus``: one publisher, S subscribers on the namespace; latency is end to end, from the
  publish call to each delivery.
- ``mixed``: C writers appending while a store ``watch`` tails the namespace; latency is
  end to end, from the save call to the tail's delivery, plus the append acknowledgement.
- ``conflict``: W writers racing on the same A actors with optimistic concurrency: each
  writer remembers the versions it saw, a `VersionConflictError` reloads and retries.

A run is bounded by ``events`` and/or ``duration`` and always stops by itself; setting the
``stop`` event (Ctrl-C in the CLI) ends it early: writers finish the operation in flight,
nothing is abandoned half-way, and the result holds what was measured so far
(``interrupted=True``). A warm-up (``warmup`` events, on actors of their own) runs before
the clock starts and is excluded from every figure. Every workload verifies what it did:
the stored events per actor (count, versions 1..n, the acknowledged ids, no duplicate),
the deliveries per subscriber or tail (each once, in order). ``verified`` is False as soon
as anything was lost or duplicated.

`run_bench` runs a workload against a store and/or bus you opened; `bench` does it all
from `Settings`: a throw-away namespace, the store, the bus, machine information and the
clean-up afterwards. The workloads themselves live in ``aether._bench_workloads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import os
import platform
import secrets
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aether.errors import (
    AetherError,
    NotFoundError,
    ValidationError,
)
from aether.store.base import EventStore

log = logging.getLogger("aether.bench")

WORKLOADS = ("append", "replay", "bus", "mixed", "conflict")
"""The workloads `run_bench` knows."""

DEFAULT_EVENTS = 10_000
"""Events of a run when neither ``events`` nor ``duration`` is given."""

PRIMARY_LATENCY = {
    "append": "append",
    "replay": "replay",
    "bus": "e2e",
    "mixed": "e2e",
    "conflict": "append",
}
"""Which latency each workload's ``--fail-above-p99`` threshold applies to."""

DRAIN_STALL = 5.0
"""Seconds without a new delivery after which a draining tail or subscriber is given up."""
_PROBLEMS_KEPT = 20


class InvalidBenchParameterError(ValidationError):
    """A benchmark parameter breaks its rule; nothing was run."""


# --- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchParams:
    """What to run. ``None`` means the workload's default (see `resolved`)."""

    workload: str
    events: int | None = None
    duration: float | None = None
    actors: int | None = None
    payload: int = 200
    concurrency: int = 16
    batch: int = 1
    subscribers: int = 1
    writers: int = 8
    warmup: int | None = None
    seed: int | None = None

    def resolved(self) -> BenchParams:
        """Validated, with the workload defaults filled in."""
        if self.workload not in WORKLOADS:
            raise InvalidBenchParameterError(
                "workload", f"must be one of {', '.join(WORKLOADS)}; got {self.workload!r}"
            )
        _check_int(self.events, "events", 1, 1_000_000_000, optional=True)
        if self.duration is not None and (
            isinstance(self.duration, bool)
            or not isinstance(self.duration, int | float)
            or not math.isfinite(self.duration)
            or self.duration <= 0
        ):
            raise InvalidBenchParameterError(
                "duration", f"must be > 0 seconds, got {self.duration!r}"
            )
        _check_int(self.actors, "actors", 1, 1_000_000, optional=True)
        _check_int(self.payload, "payload", 0, 900_000)
        _check_int(self.concurrency, "concurrency", 1, 10_000)
        _check_int(self.batch, "batch", 1, 1000)
        _check_int(self.subscribers, "subscribers", 1, 1000)
        _check_int(self.writers, "writers", 1, 10_000)
        _check_int(self.warmup, "warmup", 0, 1_000_000, optional=True)
        if self.workload not in ("append", "mixed") and self.batch != 1:
            raise InvalidBenchParameterError(
                "batch", f"applies to the append and mixed workloads only, not {self.workload}"
            )
        events = self.events
        if events is None and self.duration is None:
            events = DEFAULT_EVENTS
        if self.workload == "replay" and events is None:
            events = DEFAULT_EVENTS  # replay needs a fixed data set; duration repeats passes
        actors = self.actors
        if actors is None:
            actors = 4 if self.workload == "conflict" else 100
        warmup = self.warmup
        if warmup is None:
            warmup = min(1000, max(10, (events or 20_000) // 20))
        seed = self.seed if self.seed is not None else secrets.randbits(32)
        return dataclasses.replace(self, events=events, actors=actors, warmup=warmup, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _check_int(value: object, name: str, lo: int, hi: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not int or not lo <= value <= hi:
        raise InvalidBenchParameterError(
            name, f"must be an integer between {lo} and {hi}, got {value!r}"
        )


# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of one kind of latency, in milliseconds (nearest-rank)."""

    count: int
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float
    mean: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready: ``count, p50, p90, p99, p99_9, max, mean`` (ms)."""
        return dataclasses.asdict(self)


class LatencyRecorder:
    """Collects latencies (nanoseconds) compactly and summarises them."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples = array("q")

    def record(self, nanoseconds: int) -> None:
        """Add one sample."""
        self._samples.append(nanoseconds)

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self) -> LatencySummary:
        """p50, p90, p99, p99.9, max and mean in milliseconds (zeros when empty)."""
        data = sorted(self._samples)
        n = len(data)
        if n == 0:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

        def pct(p: float) -> float:
            rank = max(1, math.ceil(round(p * n / 100.0, 6)))
            return round(data[rank - 1] / 1e6, 4)

        return LatencySummary(
            count=n,
            p50=pct(50),
            p90=pct(90),
            p99=pct(99),
            p99_9=pct(99.9),
            max=round(data[-1] / 1e6, 4),
            mean=round(sum(data) / n / 1e6, 4),
        )


@dataclass
class Verification:
    """What the check after the run found."""

    actors: int = 0
    expected: int = 0
    found: int = 0
    missing: int = 0
    duplicates: int = 0
    unexpected: int = 0
    out_of_order: int = 0
    dropped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, unexpected, reordered or dropped."""
        return not (
            self.missing
            or self.duplicates
            or self.unexpected
            or self.out_of_order
            or self.dropped
            or self.problems
        )

    def problem(self, text: str) -> None:
        """Note a problem (the first few are kept verbatim)."""
        if len(self.problems) < _PROBLEMS_KEPT:
            self.problems.append(text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``ok``."""
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


@dataclass
class BenchResult:
    """Every figure of one run. Warm-up and set-up are excluded from all of them."""

    workload: str
    params: BenchParams
    events: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    latency: dict[str, LatencySummary] = field(default_factory=dict)
    conflicts: int = 0
    retries: int = 0
    errors: int = 0
    verification: Verification = field(default_factory=Verification)
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Measured events per second."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Measured megabytes (10^6 bytes of encoded events) per second."""
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def verified(self) -> bool:
        """Nothing lost or duplicated, no error."""
        return self.verification.ok and self.errors == 0

    @property
    def primary_latency(self) -> LatencySummary | None:
        """The latency the p99 threshold applies to (see `PRIMARY_LATENCY`)."""
        return self.latency.get(PRIMARY_LATENCY[self.workload])

    def to_dict(self) -> dict[str, Any]:
        """The figures as documented for ``aether bench --json``."""
        return {
            "workload": self.workload,
            "parameters": self.params.to_dict(),
            "events": self.events,
            "bytes": self.bytes,
            "elapsed_s": round(self.elapsed_s, 6),
            "events_per_s": round(self.events_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 3),
            "latency_ms": {k: v.to_dict() for k, v in self.latency.items()},
            "primary_latency": PRIMARY_LATENCY[self.workload],
            "conflicts": self.conflicts,
            "retries": self.retries,
            "errors": self.errors,
            "verified": self.verified,
            "verification": self.verification.to_dict(),
            "interrupted": self.interrupted,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class BenchProgress:
    """A progress report: `phase` is warmup, setup, run, drain, verify or done."""

    phase: str
    done: int
    total: int | None
    elapsed: float
    duration: float | None


ProgressCallback = Callable[[BenchProgress], None]


# --- entry points ---------------------------------------------------------------------------


async def run_bench(
    params: BenchParams,
    store: EventStore | None = None,
    *,
    bus: Any = None,
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
    from aether import _bench_workloads as w

    p = params.resolved()
    if p.workload == "bus":
        if bus is None:
            raise InvalidBenchParameterError("bus", "the bus workload needs an event bus")
    elif store is None:
        raise InvalidBenchParameterError("store", f"the {p.workload} workload needs an event store")
    run = w.Run(p, stop, progress)
    run.drain_stall = drain_stall
    run.start_ticker()
    try:
        if p.workload == "bus":
            await w.bus(run, bus, namespace)
        else:
            await w.STORE_WORKLOADS[p.workload](run, store)  # type: ignore[arg-type]
    finally:
        run.phase = "done"
        await run.stop_ticker()
    return run.result


@dataclass(frozen=True)
class Machine:
    """Where a run happened."""

    cpu_count: int | None
    python: str
    implementation: str
    platform: str
    nats_server: str | None
    aether: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


def machine_info(nats_server: str | None = None) -> Machine:
    """CPU count, Python and platform of this machine; `nats_server` as found when connected."""
    from aether import __version__

    return Machine(
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(terse=True),
        nats_server=nats_server,
        aether=__version__,
    )


@dataclass
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


def _namespace_given(settings: Any) -> bool:
    src = settings.sources.get("namespace", "default")
    return src != "default"


@contextlib.asynccontextmanager
async def bench_target(
    settings: Any, *, keep: bool = False
) -> AsyncIterator[tuple[Any, str, bool]]:
    """Settings for a throw-away namespace (and SQLite file), removed on exit unless `keep`.

    Yields ``(settings, namespace, kept)``. A namespace set explicitly (flag, environment
    or file) is used as is and never removed (``kept`` is True).
    """
    token = secrets.token_hex(4)
    given = _namespace_given(settings)
    namespace = settings.namespace if given else f"bench-{token}"
    kept = keep or given
    kind = settings.resolved_store
    changes: dict[str, Any] = {"namespace": namespace}
    temp_db: Path | None = None
    made_dir: Path | None = None
    if kind == "sqlite" and not kept:
        configured = Path(settings.sqlite.path)
        parent = configured.parent
        if not parent.exists():
            parent.mkdir(parents=True)
            made_dir = parent
        temp_db = parent / f"bench-{token}.db"
        changes["sqlite"] = dataclasses.replace(settings.sqlite, path=str(temp_db))
    bench_settings = settings.replace(**changes)
    try:
        yield bench_settings, namespace, kept
    finally:
        if temp_db is not None:
            _remove_db(temp_db, made_dir)
        if kind == "jetstream" and not kept:
            await delete_namespace_streams(bench_settings)


def _remove_db(db: Path, made_dir: Path | None) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(db) + suffix).unlink()
    if made_dir is not None:
        with contextlib.suppress(OSError):
            made_dir.rmdir()


async def nats_server_version(settings: Any) -> str | None:
    """The version the NATS server announces; `NatsUnavailableError` when unreachable."""
    from aether.connect import connect

    nc = await connect(settings)
    try:
        return _server_version(nc)
    finally:
        await nc.close()


def _server_version(nc: Any) -> str | None:
    info = getattr(nc, "_server_info", None) or {}
    version = info.get("version")
    return str(version) if version else None


async def delete_namespace_streams(settings: Any) -> list[str]:
    """Delete the JetStream streams of ``settings.namespace`` (events and snapshots).

    Only for throw-away benchmark namespaces: deleting a whole stream is allowed even
    with deny-delete/deny-purge. Returns the names deleted.
    """
    from nats.js.errors import NotFoundError as JsNotFound

    from aether.connect import connect
    from aether.subjects import snapshot_stream_name, stream_name

    deleted = []
    try:
        nc = await connect(settings)
    except AetherError as e:
        log.warning("bench: could not connect to delete the bench streams: %s", e)
        return deleted
    try:
        js = nc.jetstream()
        for name in (stream_name(settings.namespace), snapshot_stream_name(settings.namespace)):
            try:
                await js.delete_stream(name)
                deleted.append(name)
            except (JsNotFound, NotFoundError):
                pass
            except Exception as e:  # a failed clean-up must not hide the figures
                log.warning("bench: could not delete stream %s: %s", name, e)
    finally:
        await nc.close()
    return deleted


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def open_bus(settings: Any) -> tuple[Any, str]:
    """The bus the bench uses: NATS when a server is configured, else the local one."""
    if settings.nats.servers:
        from aether.bus import NatsEventBus  # type: ignore[attr-defined]

        opener = getattr(NatsEventBus, "open", None)
        if opener is not None:
            return await _maybe_await(opener(settings)), "nats"
        from aether.connect import connect

        nc = await connect(settings)
        return NatsEventBus(nc), "nats"
    from aether.bus import LocalEventBus  # type: ignore[attr-defined]

    return LocalEventBus(), "local"


async def bench(
    settings: Any,
    params: BenchParams,
    *,
    keep: bool = False,
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
) -> BenchReport:
    """Run a workload from `Settings`: throw-away namespace, store or bus, clean-up after."""
    from aether.store import open_store

    p = params.resolved()
    version = None
    if settings.nats.servers and (settings.resolved_store == "jetstream" or p.workload == "bus"):
        version = await nats_server_version(settings)  # unreachable: fails before anything
    async with bench_target(settings, keep=keep) as (s, namespace, kept):
        if p.workload == "bus":
            bus, bus_kind = await open_bus(s)
            try:
                result = await run_bench(
                    p, bus=bus, namespace=namespace, progress=progress, stop=stop
                )
            finally:
                closer = getattr(bus, "close", None)
                if closer is not None:
                    await _maybe_await(closer())
            return BenchReport(result, "none", namespace, kept, machine_info(version), bus_kind)
        store = await open_store(s)
        try:
            result = await run_bench(p, store, namespace=namespace, progress=progress, stop=stop)
        finally:
            await store.close()
        return BenchReport(result, s.resolved_store, namespace, kept, machine_info(version))


def threshold_failures(
    result: BenchResult,
    *,
    fail_below: float | None = None,
    fail_above_p99: float | None = None,
) -> list[str]:
    """Why `result` misses the CI thresholds (empty when it meets them).

    `fail_below` is a minimum in events/s; `fail_above_p99` a maximum p99 in milliseconds
    of the workload's primary latency (`PRIMARY_LATENCY`).
    """
    failures = []
    if fail_below is not None and result.events_per_s < fail_below:
        rate = result.events_per_s
        failures.append(f"throughput {rate:,.0f} events/s is below {fail_below:,.0f}")
    if fail_above_p99 is not None:
        lat = result.primary_latency
        name = PRIMARY_LATENCY[result.workload]
        if lat is None or lat.count == 0:
            failures.append(f"no {name} latency was measured (p99 limit {fail_above_p99} ms)")
        elif lat.p99 > fail_above_p99:
            failures.append(f"{name} p99 {lat.p99:.3f} ms is above {fail_above_p99} ms")
    return failures
