"""Processor throughput, hand-over pause and lag recovery: aether vs raw nats-py, one run.

Throughput (events/s over a JetStream namespace filled beforehand, 1,000 actors):

- ``noop``: a processor whose handler does nothing, vs a raw nats-py durable pull
  consumer (``fetch`` batches, each message decoded with ``orjson``, one ``AckAll`` ack
  per batch; `benchmarks._processing_raw`).
- ``sqlite``: the projection of `benchmarks._processing_raw` (an upsert per event) into
  the user's SQLite file through `SQLiteProjection` (checkpoint in the same
  transaction, so exactly once), vs the raw consumer doing the same upserts with its
  stream sequence in the batch's transaction.
- each at 1 node (one `ProcessorRunner` over all slices) and 3 nodes (three runners,
  each on its own connection, over a third of the slices, as three nodes' shards
  would be; the raw side: three consumers filtered to the same thirds). All in one
  process on one event loop, like everything here on 2 cores.

Hand-over (``handover``): two `ClusterNode`s host a no-op processor while events are
appended at a steady rate; a third node joins (a graceful rebalance: the moved shards'
old owner finishes, checkpoints and releases, the new one claims and resumes). For
each moved shard, the pause is the time from the last event its old owner handled to
the first its new owner handled, minus the normal gap between that shard's events
(median and p99 over the moved shards of every run).

Lag recovery (``crash_recovery``): three nodes, steady appends; one node is crashed
(``abort()``: no release, its shards wait for its lease and TTL); the time from the crash
until every event appended before it is processed (``wait_for``), with the timing used
(heartbeat 0.2 s, lease 1 s, node_ttl 1 s in ``--quick``).

Each hand-over and crash run is bounded by CASE_LIMIT seconds (it fails rather than
hangs).

Run ``python -m benchmarks.processing`` (``--quick``, the default; ``--full`` for more
events and runs; ``--server URL`` to use a running server; ``--no-cluster`` for the
throughput cases alone).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether.config import Settings
from aether.event import Event
from aether.processing import Context, ProcessorRunner, SQLiteProjection, processor, wait_for
from aether.store import open_store
from aether.subjects import slice_of
from benchmarks._processing_raw import UPSERT, open_db, raw_run, thirds

ACTORS = 1_000


@dataclass(frozen=True)
class Sizes:
    """How much work each case does."""

    events: int
    trials: int
    handover_runs: int
    rate: float  # events/s appended during hand-over and crash runs


QUICK = Sizes(events=10_000, trials=2, handover_runs=2, rate=400.0)
FULL = Sizes(events=100_000, trials=3, handover_runs=5, rate=1_000.0)


def settings_for(url: str, namespace: str, **extra: object) -> Settings:
    """Settings of a benchmark namespace on `url`."""
    overrides: dict[str, object] = {"nats.servers": [url], "namespace": namespace}
    overrides.update(extra)
    return Settings.load(overrides=overrides, env={}, search_default_files=False)


def make_event(i: int, versions: dict[str, int]) -> Event:
    """The i-th benchmark event (round-robin over `ACTORS` actors)."""
    actor = f"acct-{i % ACTORS:04d}"
    v = versions.get(actor, 0) + 1
    versions[actor] = v
    return Event("AccountCredited", actor, v, {"amount": 1250 + i % 100, "currency": "EUR"})


async def fill(url: str, namespace: str, n: int, versions: dict[str, int] | None = None) -> int:
    """Append `n` events to `namespace` (units of up to 100 of one actor's events);
    `versions` (each actor's latest) is updated, so later appends can continue it."""
    store = await open_store(settings_for(url, namespace))
    try:
        versions = {} if versions is None else versions
        events = [make_event(i, versions) for i in range(n)]
        by_actor: dict[str, list[Event]] = {}
        for e in events:
            by_actor.setdefault(e.actor_id, []).append(e)
        sem = asyncio.Semaphore(64)

        async def chain(evs: list[Event]) -> None:
            for i in range(0, len(evs), 100):  # an actor's units in order
                async with sem:
                    await store.save_events(evs[i : i + 100])

        await asyncio.gather(*(chain(evs) for evs in by_actor.values()))
        return await store.last_position()
    finally:
        await store.close()


async def _noop(event: Event, ctx: Context) -> None:
    return None


def _apply(db: Any, event: Event) -> None:
    db.execute(UPSERT, (event.actor_id, event.data["amount"]))


async def aether_run(
    url: str, namespace: str, head: int, *, nodes: int, db_dir: Path | None
) -> float:
    """Seconds for `nodes` runners (a fresh processor name) to process through `head`."""
    name = "bench-" + uuid.uuid4().hex[:8]
    parts: list[frozenset[int] | None] = list(thirds(nodes)) if nodes > 1 else [None]
    stores = [await open_store(settings_for(url, namespace)) for _ in parts]
    runners = []
    conns = []
    for i, (store, part) in enumerate(zip(stores, parts, strict=True)):
        if db_dir is not None:
            # the same database settings as the raw side's (WAL, synchronous=NORMAL)
            conns.append(open_db(db_dir / f"aether-{name}-{i}.db"))
            proc: Any = SQLiteProjection(name, conns[-1], _apply)
        else:
            proc = processor(name, _noop)
        runners.append(
            ProcessorRunner(store, proc, slices=part, segment="all" if part is None else str(i))
        )
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(r.run_until(head) for r in runners))
        return time.perf_counter() - t0
    finally:
        for r in runners:
            await r.stop()
        for s in stores:
            await s.close()
        for c in conns:
            c.close()


async def throughput(url: str, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    """The four throughput cases, each side's best of `sizes.trials` (alternating)."""
    namespace = "bproc" + uuid.uuid4().hex[:6]
    head = await fill(url, namespace, sizes.events)
    cases: dict[str, Any] = {}
    for work in ("noop", "sqlite"):
        for nodes in (1, 3):
            best_a = best_r = float("inf")
            for t in range(sizes.trials):
                db_dir = tmp / f"{work}-{nodes}-{t}" if work == "sqlite" else None
                if db_dir is not None:
                    db_dir.mkdir()
                best_r = min(
                    best_r, await raw_run(url, namespace, sizes.events, nodes=nodes, db_dir=db_dir)
                )
                best_a = min(
                    best_a, await aether_run(url, namespace, head, nodes=nodes, db_dir=db_dir)
                )
            a, r = sizes.events / best_a, sizes.events / best_r
            cases[f"{work}_{nodes}node"] = {
                "aether": round(a),
                "baseline": round(r),
                "baseline_name": "raw nats-py pull consumer, batched acks",
                "ratio": round(a / r, 3),
                "events": sizes.events,
            }
    return cases


# --- cluster cases ----------------------------------------------------------------------


class Recorder:
    """A no-op processor recording, per shard, when each event was handled and by whom."""

    def __init__(self, name: str, shard_count: int) -> None:
        self.name = name
        self.shard_count = shard_count
        self.handled: dict[int, list[tuple[float, str, int]]] = {}

    def for_node(self, node_id: str) -> Any:
        async def handle(event: Event, ctx: Context) -> None:
            shard = slice_of(event.actor_id) * self.shard_count // 1024
            self.handled.setdefault(shard, []).append((time.perf_counter(), node_id, ctx.position))

        return processor(self.name, handle)


async def _appender(
    url: str, namespace: str, rate: float, stop: asyncio.Event, versions: dict[str, int]
) -> int:
    """Append at `rate` events/s until `stop`, continuing each actor from `versions`."""
    store = await open_store(settings_for(url, namespace))
    i = 0
    try:
        t0 = time.perf_counter()
        while not stop.is_set():
            await store.save_event(make_event(i, versions))
            i += 1
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return i
    finally:
        await store.close()


async def _until(cond: Callable[[], bool], limit: float) -> None:
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"not reached within {limit}s")
        await asyncio.sleep(0.01)


def _settled(nodes: list[Any]) -> bool:
    ids = {n.node_id for n in nodes}
    for n in nodes:
        m = n.shard_map
        if m is None or not m.settled or m.nodes != ids or n.shards != m.shards_of(n.node_id):
            return False
    return True


TIMING = {"heartbeat": 0.2, "lease": 1.0, "node_ttl": 1.0}
CASE_LIMIT = 90.0
SHARDS = 12


def _node(url: str, namespace: str, node_id: str, rec: Recorder) -> Any:
    from aether.cluster import ClusterNode

    return ClusterNode(
        settings_for(url, namespace),
        node_id,
        shard_count=SHARDS,
        processors=[rec.for_node(node_id)],
        **TIMING,  # type: ignore[arg-type]
    )


async def handover_once(url: str, rate: float) -> list[float]:
    """One graceful rebalance (a third node joins two); the pause of each moved shard."""
    namespace = "bho" + uuid.uuid4().hex[:6]
    versions: dict[str, int] = {}
    await fill(url, namespace, 100, versions)
    rec = Recorder("handover", SHARDS)
    nodes = [_node(url, namespace, f"n{i}", rec) for i in (1, 2)]
    for n in nodes:
        await n.start()
    stop = asyncio.Event()
    writer = asyncio.create_task(_appender(url, namespace, rate, stop, versions))
    try:
        await _until(lambda: _settled(nodes), 30)
        await asyncio.sleep(1.0)
        joiner = _node(url, namespace, "n3", rec)
        t_join = time.perf_counter()
        await joiner.start()
        nodes.append(joiner)
        await _until(lambda: _settled(nodes), 30)
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await writer
        for n in nodes:
            await n.stop()
    pauses = []
    for events in rec.handled.values():
        after = [(t, who) for t, who, _ in events if t >= t_join - 0.5]
        owners = [who for _, who in after]
        if "n3" not in owners or owners[0] == "n3":
            continue  # not moved (or nothing before the move to measure from)
        k = owners.index("n3")
        gap = after[k][0] - after[k - 1][0]
        before = [t for t, _ in after[:k]]
        normal = statistics.median(b - a for a, b in itertools.pairwise(before)) if k > 2 else 0.0
        pauses.append(max(0.0, gap - normal))
    return pauses


async def crash_recovery_once(url: str, rate: float) -> float:
    """Seconds from crashing one of three nodes until everything appended before the
    crash is processed."""
    namespace = "bcr" + uuid.uuid4().hex[:6]
    versions: dict[str, int] = {}
    await fill(url, namespace, 100, versions)
    rec = Recorder("recovery", SHARDS)
    nodes = [_node(url, namespace, f"n{i}", rec) for i in (1, 2, 3)]
    for n in nodes:
        await n.start()
    stop = asyncio.Event()
    writer = asyncio.create_task(_appender(url, namespace, rate, stop, versions))
    store = await open_store(settings_for(url, namespace))
    try:
        await _until(lambda: _settled(nodes), 30)
        await asyncio.sleep(1.0)
        victim = nodes.pop(1)
        head = await store.last_position()
        t0 = time.perf_counter()
        await victim.abort()
        await wait_for(store, "recovery", head, timeout=60)
        return time.perf_counter() - t0
    finally:
        stop.set()
        await writer
        for n in nodes:
            await n.stop()
        await store.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def run_async(quick: bool, url: str, cluster: bool = False) -> dict[str, Any]:
    """The throughput cases against the server at `url`; with `cluster` also the
    hand-over and crash-recovery cases."""
    sizes = QUICK if quick else FULL
    result: dict[str, Any] = {"events": sizes.events, "trials": sizes.trials}
    with tempfile.TemporaryDirectory(prefix="aether-bench-proc-") as tmp:
        result["cases"] = await throughput(url, sizes, Path(tmp))
    if not cluster:
        return result
    pauses: list[float] = []
    for _ in range(sizes.handover_runs):
        pauses += await asyncio.wait_for(handover_once(url, sizes.rate), CASE_LIMIT)
    result["handover"] = {
        "moved_shards": len(pauses),
        "median_s": _round(statistics.median(pauses) if pauses else None),
        "p99_s": _round(_pct(pauses, 0.99)),
        "rate": sizes.rate,
    }
    recoveries = [
        await asyncio.wait_for(crash_recovery_once(url, sizes.rate), CASE_LIMIT)
        for _ in range(sizes.handover_runs)
    ]
    result["crash_recovery"] = {
        "median_s": _round(statistics.median(recoveries)),
        "max_s": _round(max(recoveries)),
        "timing": TIMING,
        "rate": sizes.rate,
    }
    return result


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def run(quick: bool = True, server_url: str | None = None, cluster: bool = True) -> dict[str, Any]:
    """Run the benchmark (starting a nats-server unless `server_url`); return the figures."""
    if server_url is not None:
        return asyncio.run(run_async(quick, server_url, cluster))
    from tests.servers import NatsServer, wait_jetstream_ready

    with tempfile.TemporaryDirectory(prefix="aether-bench-proc-js-") as tmp:
        server = NatsServer(store_dir=Path(tmp) / "js", name="aether-bench-processing")
        server.start()
        try:
            wait_jetstream_ready([server.url])
            return asyncio.run(run_async(quick, server.url, cluster))
        finally:
            server.stop()


def print_table(result: dict[str, Any]) -> None:
    """The figures as a small table."""
    print(f"{'case':<16}{'aether ev/s':>14}{'raw ev/s':>12}{'ratio':>8}")
    for case, c in result["cases"].items():
        print(f"{case:<16}{c['aether']:>14,}{c['baseline']:>12,}{c['ratio']:>8.2f}")
    if "handover" not in result:
        return
    h = result["handover"]
    print(
        f"hand-over pause (graceful join, {h['moved_shards']} moved shards): "
        f"median {h['median_s']} s, p99 {h['p99_s']} s"
    )
    r = result["crash_recovery"]
    print(f"lag recovery after a node crash: median {r['median_s']} s, max {r['max_s']} s")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.processing [--quick|--full] [--server URL]``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True, help="short run (default)")
    mode.add_argument("--full", action="store_true", help="more events and runs")
    parser.add_argument("--server", default=None, help="use this NATS URL, start no server")
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip the hand-over and recovery cases"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = run(quick=not args.full, server_url=args.server, cluster=not args.no_cluster)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
