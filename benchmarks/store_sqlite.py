"""aether's SQLite store against the `eventsourcing` package's SQLite persistence.

Both run the same five workloads in the same process, on the same disk, one after the
other, each in a fresh database file, with the durability both default to (WAL and
``synchronous=FULL``: every acknowledged append survives a power cut):

1. ``sequential``: one event per save, one writer, waiting for each save;
2. ``concurrent``: 64 writers (asyncio tasks / threads), one actor each, one event per save;
3. ``batch``: saves of 10 events each;
4. ``replay``: load one actor of 10,000 events and fold them into state;
5. ``read_all``: read every event of the database in order.

Then aether alone against other baselines (``rows`` in the JSON): the median of the
ratios of ROUNDS_RAW rounds, each round running both sides back to back:

6. ``sequential vs raw sqlite3``: aether's ``save_event`` against plain sqlite3 running
   aether's own conditional INSERT (same schema, same trigger, same durable commit) on
   the caller's thread, alternating in chunks of CHUNK saves;
7. ``unit of 2 actors x 1 event vs 2 single saves``: `save_events` over two actors against
   two sequential `save_event` calls (events per second);
8. ``read 1/8 of the slices vs full read + client filter``: `read_all(slices=range(128))`
   against `read_all()` dropping the other slices in Python, on SLICE_EVENTS events of
   1,000 actors (wanted events delivered per second, and the payload bytes each moves).

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

RAW_CASE = "sequential vs raw sqlite3"
UNIT_CASE = "unit of 2 actors x 1 event vs 2 single saves"
SLICE_CASE = "read 1/8 of the slices vs full read + client filter"
ROUNDS_RAW = 5
CHUNK = 50
SLICE_EVENTS = {True: 20_000, False: 100_000}
NOTE = "n" * 16
"""Padding that makes an encoded aether event about 200 bytes."""
WRITERS = 64
BATCH = 10
REPLAY = 10_000

GOALS = {
    "sequential": ("ratio", 1.8),
    "concurrent": ("ratio", 15.0),
    "replay": ("ratio", 5.0),
    RAW_CASE: ("ratio", 0.7),
}
"""Targets: sequential ≥ 1.8× the peer (issue 2); 64 writers ≥ 15× the peer and sequential
≥ 0.7× raw sqlite3 doing the same durable commit (issue 12); replay ≥ 5× (issue 2)."""


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

        class Counter(Aggregate):  # type: ignore[misc, unused-ignore]
            def __init__(self) -> None:
                self.amount = 0
                self.note = ""

            @event("Bumped")  # type: ignore[misc, unused-ignore]
            def bump(self, amount: int, note: str) -> None:
                self.amount = amount
                self.note = note

        _PEER_AGGREGATE.append(Counter)
    return _PEER_AGGREGATE[0]


def _peer(path: Path, sizes: Sizes) -> dict[str, float]:
    from eventsourcing.application import Application

    Counter = _peer_aggregate()
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    app: Any = Application(env=env)
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
        loaded: Any = app.repository.get(replayed.id)
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


# --- aether against raw sqlite3, units, slices -------------------------------------------


async def _sequential_pair(tmp: Path, n: int, synchronous: str) -> tuple[float, float]:
    """Events/s of aether's ``save_event`` and of plain sqlite3 running aether's statement
    (same schema and trigger, one durable commit each) on the caller's thread.

    The two alternate in chunks of CHUNK saves, so a change of the machine's load hits
    both alike.
    """
    from aether.store._sqlite_writer import _APPEND_IF_NEXT
    from aether.store.sqlite import connect_sqlite, migrate_schema
    from aether.subjects import slice_of

    conn = connect_sqlite(str(tmp / "raw.db"), synchronous=synchronous)
    migrate_schema(conn)
    slice_ = slice_of("seq")
    ours = theirs = 0.0
    try:
        async with await SQLiteEventStore.connect(
            tmp / "aether.db", "bench", synchronous=synchronous
        ) as store:
            for start in range(1, n + 1, CHUNK):
                versions = range(start, min(start + CHUNK, n + 1))
                t = time.perf_counter()
                for v in versions:
                    await store.save_event(_event("seq", v))
                ours += time.perf_counter() - t
                t = time.perf_counter()
                for v in versions:
                    payload = encode_event(_event("seq", v))
                    conn.execute(_APPEND_IF_NEXT, ("bench", "seq", v, payload, slice_))
                theirs += time.perf_counter() - t
    finally:
        conn.close()
    return n / ours, n / theirs


async def _units(path: Path, n: int, synchronous: str) -> tuple[float, float]:
    """Events/s of `n` units of two actors x one event, and of the same as single saves."""
    async with await SQLiteEventStore.connect(path, "bench", synchronous=synchronous) as store:
        t = time.perf_counter()
        for v in range(1, n + 1):
            await store.save_events([_event("from", v), _event("to", v)])
        unit = 2 * n / (time.perf_counter() - t)
        t = time.perf_counter()
        for v in range(1, n + 1):
            await store.save_event(_event("from-single", v))
            await store.save_event(_event("to-single", v))
        singles = 2 * n / (time.perf_counter() - t)
    return unit, singles


async def _slices(path: Path, total: int) -> dict[str, float]:
    """Read 1/8 of the slices in the store vs a full read filtered in Python."""
    from aether.subjects import slice_of

    async with await SQLiteEventStore.connect(path, "bench", synchronous="OFF") as store:
        actors = [f"acct-{i}" for i in range(1000)]
        for v in range(1, total // len(actors) + 1):  # set-up, not timed
            for half in (actors[:500], actors[500:]):
                await store.save_events([_event(a, v) for a in half])
        wanted = range(0, 128)
        size = len(encode_event(_event("acct-1", 1)))
        t = time.perf_counter()
        got = 0
        async for _ in store.read_all(slices=wanted):
            got += 1
        sliced = got / (time.perf_counter() - t)
        t = time.perf_counter()
        kept = seen = 0
        async for e in store.read_all():
            seen += 1
            if slice_of(e.actor_id) in wanted:
                kept += 1
        filtered = kept / (time.perf_counter() - t)
        assert kept == got, (kept, got)
    return {
        "sliced": sliced,
        "filtered": filtered,
        "wanted": got,
        "total": seen,
        "sliced_bytes": got * size,
        "filtered_bytes": seen * size,
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run_rows(quick: bool = True, *, synchronous: str = "FULL") -> list[dict[str, Any]]:
    """aether against raw sqlite3, units against single saves, slice reads against a
    client-side filter: medians of ROUNDS_RAW rounds (one round for the slice read)."""
    n = 1_000 if quick else 5_000
    raw, ours, unit, singles = [], [], [], []
    for _ in range(ROUNDS_RAW):
        with tempfile.TemporaryDirectory(prefix="aether-bench-") as tmp:
            mine, plain = asyncio.run(_sequential_pair(Path(tmp), n, synchronous))
            ours.append(mine)
            raw.append(plain)
            u, s1 = asyncio.run(_units(Path(tmp) / "u.db", n // 2, synchronous))
            unit.append(u)
            singles.append(s1)
    with tempfile.TemporaryDirectory(prefix="aether-bench-") as tmp:
        sl = asyncio.run(_slices(Path(tmp) / "s.db", SLICE_EVENTS[quick]))
    rows: list[dict[str, Any]] = []
    for case, a, b, name in (
        (RAW_CASE, ours, raw, "raw sqlite3"),
        (UNIT_CASE, unit, singles, "2 single saves"),
    ):
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        rows.append(
            {
                "case": case,
                "aether": round(_median(a)),
                "baseline": round(_median(b)),
                "baseline_name": name,
                "ratio": round(_median(ratios), 2),  # the median of the rounds' ratios
                "rounds": [round(r, 2) for r in ratios],
            }
        )
    rows.append(
        {
            "case": SLICE_CASE,
            "aether": round(sl["sliced"]),
            "baseline": round(sl["filtered"]),
            "baseline_name": "full read + client filter",
            "ratio": round(sl["sliced"] / sl["filtered"], 2),
            "unit": "wanted events/s",
            "wanted_events": sl["wanted"],
            "total_events": sl["total"],
            "bytes_moved": {"sliced": sl["sliced_bytes"], "filtered": sl["filtered_bytes"]},
        }
    )
    return rows


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
    rows = run_rows(quick, synchronous=synchronous)
    by_case: dict[str, dict[str, Any]] = {**workloads, **{r["case"]: r for r in rows}}
    goals = {}
    for name, (kind, target) in GOALS.items():
        value = by_case[name]["ratio"] if kind == "ratio" else by_case[name]["aether"]
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
        "rows": rows,
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
    for r in result["rows"]:
        out(
            f"{r['case']}: aether {r['aether']:,} vs {r['baseline_name']} {r['baseline']:,} "
            f"{r.get('unit', 'events/s')} -> {r['ratio']:.2f}x"
            + (f" (rounds {r['rounds']})" if "rounds" in r else "")
            + (f", bytes moved {r['bytes_moved']}" if "bytes_moved" in r else "")
        )
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
