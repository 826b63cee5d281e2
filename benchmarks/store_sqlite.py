"""aether's SQLite store against the `eventsourcing` package's SQLite persistence.

Both run the same five workloads in the same process, on the same disk, one after the
other, each in a fresh database file, with the durability both default to (WAL and
``synchronous=FULL``: every acknowledged append survives a power cut):

1. ``sequential``: one event per save, one writer, waiting for each save;
2. ``concurrent``: 64 writers (asyncio tasks / threads), one actor each, one event per save;
3. ``batch``: saves of 10 events each;
4. ``replay``: load one actor of 10,000 events and fold them into state;
5. ``read_all``: read every event of the database in order.

Events are about 200 bytes encoded. Run::

    python benchmarks/store_sqlite.py            # --quick sizes, well under a minute
    python benchmarks/store_sqlite.py --full     # 50,000 events per append workload

`eventsourcing` is a benchmark-only peer, not a dependency: ``pip install eventsourcing``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether.event import Event, encode_event
from aether.store.sqlite import SQLiteEventStore

NOTE = "n" * 16
"""Padding that makes an encoded aether event about 200 bytes."""
WRITERS = 64
BATCH = 10
REPLAY = 10_000

GOALS = {
    "sequential": ("ratio", 1.8),
    "concurrent": ("events_per_s", 30_000.0),
    "replay": ("ratio", 5.0),
}
"""Issue 2's targets: sequential ≥ 1.8× the peer; 64 writers ≥ 30,000 events/s; replay ≥ 5×."""


@dataclass(frozen=True)
class Sizes:
    """How many events each workload handles."""

    sequential: int
    concurrent: int
    batch: int
    replay: int = REPLAY


QUICK = Sizes(sequential=1_000, concurrent=3_200, batch=3_000)
FULL = Sizes(sequential=50_000, concurrent=50_000, batch=50_000)
ROUNDS = {True: 2, False: 2}
"""Rounds per mode; each round runs aether then the peer on fresh files; best round counts."""


# --- aether ------------------------------------------------------------------------------


def _event(actor: str, version: int) -> Event:
    return Event("Bumped", actor, version, {"amount": version, "note": NOTE})


async def _aether(path: Path, sizes: Sizes, synchronous: str) -> dict[str, float]:
    store = await SQLiteEventStore.connect(path, "bench", synchronous=synchronous)
    rates: dict[str, float] = {}
    try:
        t = time.perf_counter()
        for v in range(1, sizes.sequential + 1):
            await store.save_event(_event("seq", v))
        rates["sequential"] = sizes.sequential / (time.perf_counter() - t)

        per_writer = sizes.concurrent // WRITERS

        async def writer(i: int) -> None:
            actor = f"writer-{i}"
            for v in range(1, per_writer + 1):
                await store.save_event(_event(actor, v))

        commits = store.stats.commits
        t = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(WRITERS)))
        rates["concurrent"] = per_writer * WRITERS / (time.perf_counter() - t)
        rates["concurrent_events_per_commit"] = (
            per_writer * WRITERS / max(1, store.stats.commits - commits)
        )

        t = time.perf_counter()
        for start in range(1, sizes.batch + 1, BATCH):
            await store.save_events([_event("batched", v) for v in range(start, start + BATCH)])
        rates["batch"] = sizes.batch // BATCH * BATCH / (time.perf_counter() - t)

        for start in range(1, sizes.replay + 1, 500):  # set-up, not timed
            await store.save_events([_event("replayed", v) for v in range(start, start + 500)])
        t = time.perf_counter()
        state: dict[str, Any] = {}
        count = 0
        async for e in store.iter_events("replayed"):
            state.update(e.data)
            count += 1
        rates["replay"] = count / (time.perf_counter() - t)
        assert count == sizes.replay, count

        t = time.perf_counter()
        count = 0
        async for _ in store.read_all():
            count += 1
        rates["read_all"] = count / (time.perf_counter() - t)
        rates["read_all_events"] = count
    finally:
        await store.close()
    return rates


# --- the peer: eventsourcing -------------------------------------------------------------


_PEER_AGGREGATE: list[Any] = []


def _peer_aggregate() -> Any:
    """The peer's aggregate class, defined once (eventsourcing registers it by topic)."""
    if not _PEER_AGGREGATE:
        from eventsourcing.domain import Aggregate, event

        class Counter(Aggregate):  # type: ignore[misc]
            def __init__(self) -> None:
                self.amount = 0
                self.note = ""

            @event("Bumped")  # type: ignore[misc]
            def bump(self, amount: int, note: str) -> None:
                self.amount = amount
                self.note = note

        _PEER_AGGREGATE.append(Counter)
    return _PEER_AGGREGATE[0]


def _peer(path: Path, sizes: Sizes) -> dict[str, float]:
    from eventsourcing.application import Application

    Counter = _peer_aggregate()
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    app = Application(env=env)
    rates: dict[str, float] = {}
    try:
        agg = Counter()
        app.save(agg)
        t = time.perf_counter()
        for v in range(sizes.sequential):
            agg.bump(amount=v, note=NOTE)
            app.save(agg)
        rates["sequential"] = sizes.sequential / (time.perf_counter() - t)

        per_writer = sizes.concurrent // WRITERS
        aggs = [Counter() for _ in range(WRITERS)]
        app.save(*aggs)
        start_line = threading.Barrier(WRITERS + 1)

        def writer(a: Any) -> None:
            start_line.wait()
            for v in range(per_writer):
                a.bump(amount=v, note=NOTE)
                app.save(a)

        with ThreadPoolExecutor(WRITERS) as pool:
            futures = [pool.submit(writer, a) for a in aggs]
            start_line.wait()
            t = time.perf_counter()
            for f in futures:
                f.result()
            rates["concurrent"] = per_writer * WRITERS / (time.perf_counter() - t)

        batched = Counter()
        app.save(batched)
        t = time.perf_counter()
        for _ in range(sizes.batch // BATCH):
            for v in range(BATCH):
                batched.bump(amount=v, note=NOTE)
            app.save(batched)
        rates["batch"] = sizes.batch // BATCH * BATCH / (time.perf_counter() - t)

        replayed = Counter()
        for i in range(sizes.replay - 1):  # set-up, not timed: created + bumps = REPLAY
            replayed.bump(amount=i, note=NOTE)
            if i % 500 == 499:
                app.save(replayed)
        app.save(replayed)
        t = time.perf_counter()
        loaded = app.repository.get(replayed.id)
        rates["replay"] = sizes.replay / (time.perf_counter() - t)
        assert loaded.version == sizes.replay, loaded.version

        t = time.perf_counter()
        count = 0
        start = 1
        while True:
            page = app.recorder.select_notifications(start, 1000)
            for n in page:
                app.mapper.to_domain_event(n)
                count += 1
            if len(page) < 1000:
                break
            start = page[-1].id + 1
        rates["read_all"] = count / (time.perf_counter() - t)
        rates["read_all_events"] = count
    finally:
        app.close()
    return rates


def peer_available() -> bool:
    """Whether the `eventsourcing` package can be imported."""
    try:
        import eventsourcing.sqlite  # noqa: F401
    except ImportError:
        return False
    return True


# --- the run -----------------------------------------------------------------------------


def run(quick: bool = True, *, synchronous: str = "FULL") -> dict[str, Any]:
    """Run every workload on aether and the peer; return rates, ratios and goal checks."""
    if not peer_available():
        raise SystemExit(
            "benchmarks/store_sqlite.py needs the peer package: pip install eventsourcing"
        )
    sizes = QUICK if quick else FULL
    ours: dict[str, float] = {}
    peer: dict[str, float] = {}
    for _ in range(ROUNDS[quick]):
        with tempfile.TemporaryDirectory(prefix="aether-bench-") as tmp:
            a = asyncio.run(_aether(Path(tmp) / "aether.db", sizes, synchronous))
            p = _peer(Path(tmp) / "peer.db", sizes)
        for best, new in ((ours, a), (peer, p)):
            for k, v in new.items():
                best[k] = max(best.get(k, 0.0), v)
    size = len(encode_event(_event("writer-1", 1)))
    load = [round(x, 2) for x in os.getloadavg()]
    workloads = {}
    for name in ("sequential", "concurrent", "batch", "replay", "read_all"):
        workloads[name] = {
            "aether": round(ours[name]),
            "eventsourcing": round(peer[name]),
            "ratio": round(ours[name] / peer[name], 2),
        }
    goals = {}
    for name, (kind, target) in GOALS.items():
        value = workloads[name]["ratio"] if kind == "ratio" else workloads[name]["aether"]
        goals[name] = {"target": f"{kind} >= {target:g}", "value": value, "met": value >= target}
    return {
        "benchmark": "store_sqlite",
        "mode": "quick" if quick else "full",
        "synchronous": synchronous,
        "event_bytes": size,
        "sizes": sizes.__dict__,
        "rounds": ROUNDS[quick],
        "load_average_after": load,
        "workloads": workloads,
        "aether_events_per_commit_64_writers": round(ours["concurrent_events_per_commit"], 1),
        "goals": goals,
    }


def _print(result: dict[str, Any], out: Callable[[str], None] = print) -> None:
    out(
        f"SQLite event store, {result['mode']} run, synchronous={result['synchronous']}, "
        f"events of {result['event_bytes']} bytes, sizes {result['sizes']}, "
        f"best of {result['rounds']} rounds"
    )
    out(f"load average after the run (1, 5, 15 min): {result['load_average_after']}")
    out(f"{'workload':<12} {'aether ev/s':>12} {'eventsourcing ev/s':>19} {'ratio':>7}")
    for name, w in result["workloads"].items():
        out(f"{name:<12} {w['aether']:>12,} {w['eventsourcing']:>19,} {w['ratio']:>6.2f}x")
    out(
        f"aether events per commit with {WRITERS} writers: "
        f"{result['aether_events_per_commit_64_writers']}"
    )
    for name, g in result["goals"].items():
        out(f"goal {name}: {g['target']}: {g['value']:,} -> {'met' if g['met'] else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``--quick`` (default) or ``--full``, ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (the default)")
    mode.add_argument("--full", action="store_true", help="50,000 events per append workload")
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL"])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if not peer_available():
        print(
            "benchmarks/store_sqlite.py compares aether with the `eventsourcing` package, "
            "which is not installed: pip install eventsourcing",
            file=sys.stderr,
        )
        return 1
    result = run(quick=not args.full, synchronous=args.synchronous)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
