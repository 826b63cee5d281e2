"""The cost of aether's instruments on pipelined append (memory store and JetStream).

Configurations, each in a fresh interpreter, each alternating trials of the bare store
and of ``instrument_store(store)`` and keeping each side's best (least disturbed) trial:

1. ``absent``: prometheus-client and opentelemetry-api made unimportable (as when the
   extras are not installed): the no-op instruments; `instrument_store` returns the store.
2. ``metrics``: prometheus-client and opentelemetry-api installed, no OTel SDK
   configured (the API's non-recording spans): what ``aether[metrics,tracing]`` costs
   before anyone turns tracing on.
3. ``tracing``: as 2 with the OTel SDK recording every span (no exporter): for reference.

Pipelined append: one task per actor (1,000 actors), each awaiting ``save_event`` of its
next version. Figures: events/s and client CPU microseconds per event (process time of
the benchmark's process, which stays meaningful when the machine is busy); overhead is
the instrumented side's CPU per event over the bare side's.

Run ``python -m benchmarks.observability`` (``--quick`` is the default; ``--full`` for
more trials; ``--server URL`` to use a running server instead of starting one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ACTORS = 1_000

CHILD_PRELUDE = {
    "absent": (
        "import sys\n"
        "for _m in ('prometheus_client', 'opentelemetry', 'opentelemetry.trace'):\n"
        "    sys.modules[_m] = None\n"
    ),
    "metrics": "",
    "tracing": (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider())\n"
    ),
}


async def pipelined(store: Any, rounds: int, tag: str) -> tuple[float, float, int]:
    """Append `rounds` versions to each of `ACTORS` new actors; (seconds, cpu s, events)."""
    from aether.event import Event

    payload = {"sku": "x" * 150, "qty": 1}

    async def actor(actor_id: str) -> None:
        for v in range(1, rounds + 1):
            await store.save_event(Event("ItemAdded", actor_id, v, payload))

    ids = [f"{tag}-{i}" for i in range(ACTORS)]
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(actor(a) for a in ids))
    return time.perf_counter() - t0, time.process_time() - c0, rounds * ACTORS


async def child(store_kind: str, trials: int, rounds: int, server: str | None) -> dict[str, Any]:
    """One configuration: alternate bare and instrumented trials, keep each side's best."""
    from aether.observability import instrument_store

    best: dict[str, tuple[float, float]] = {}
    nc = None
    bare: Any
    if store_kind == "jetstream":
        import nats

        from aether.config import Settings
        from aether.store.jetstream import JetStreamEventStore

        if server is None:
            raise ValueError("the jetstream case needs a server URL")
        nc = await nats.connect(server)
        ns = "obsbench" + uuid.uuid4().hex[:8]
        bare = await JetStreamEventStore.from_client(nc, Settings(), namespace=ns)
    else:
        from aether.store import InMemoryEventStore

        bare = InMemoryEventStore()
    instrumented = instrument_store(bare)
    stores = {"bare": bare, "instrumented": instrumented}
    try:
        await pipelined(bare, 1, "warm-b")
        await pipelined(instrumented, 1, "warm-i")
        for t in range(trials):
            order = ("bare", "instrumented") if t % 2 == 0 else ("instrumented", "bare")
            for side in order:
                wall, cpu, n = await pipelined(stores[side], rounds, f"{side}-{t}")
                rate, cpu_us = n / wall, cpu / n * 1e6
                old = best.get(side)
                best[side] = (
                    max(rate, old[0]) if old else rate,
                    min(cpu_us, old[1]) if old else cpu_us,
                )
    finally:
        if nc is not None:
            await nc.close()
    return {
        "same_object": instrumented is bare,
        "events_per_s": {k: round(v[0]) for k, v in best.items()},
        "cpu_us_per_event": {k: round(v[1], 2) for k, v in best.items()},
    }


def run_config(
    config: str, store_kind: str, trials: int, rounds: int, server: str | None
) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its figures."""
    code = (
        CHILD_PRELUDE[config]
        + "import asyncio, json, sys\n"
        + "from benchmarks.observability import child\n"
        + f"print(json.dumps(asyncio.run(child({store_kind!r}, {trials}, {rounds}, {server!r}))))\n"
    )
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=600
    )
    if p.returncode != 0:
        raise RuntimeError(f"{config}/{store_kind} failed: {p.stderr.strip()[-2000:]}")
    r: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    cpu = r["cpu_us_per_event"]
    rate = r["events_per_s"]
    r["cpu_overhead_pct"] = round((cpu["instrumented"] / cpu["bare"] - 1) * 100, 1)
    r["rate_overhead_pct"] = round((1 - rate["instrumented"] / rate["bare"]) * 100, 1)
    r.update(config=config, store=store_kind)
    return r


def run(quick: bool, server: str | None) -> dict[str, Any]:
    """Every configuration on both stores (starting a nats-server unless `server`)."""
    trials = 5 if quick else 11
    sizes = {"memory": 10 if quick else 30, "jetstream": 3 if quick else 10}
    rows = []

    def all_for(url: str) -> None:
        for store_kind, rounds in sizes.items():
            for config in CHILD_PRELUDE:
                rows.append(run_config(config, store_kind, trials, rounds, url))

    if server is not None:
        all_for(server)
    else:
        from tests.servers import NatsServer, wait_jetstream_ready

        with tempfile.TemporaryDirectory(prefix="aether-bench-obs-") as tmp:
            srv = NatsServer(store_dir=Path(tmp) / "js", name="aether-bench-obs")
            srv.start()
            try:
                wait_jetstream_ready([srv.url])
                all_for(srv.url)
            finally:
                srv.stop()
    return {"quick": quick, "actors": ACTORS, "trials": trials, "rounds": sizes, "rows": rows}


def print_table(result: dict[str, Any]) -> None:
    """The figures as a small text table."""
    head = ("store", "config", "bare ev/s", "instr ev/s", "cpu us/ev", "cpu +%", "rate -%")
    print(
        f"{head[0]:<10} {head[1]:<8} {head[2]:>10} {head[3]:>10} {head[4]:>16} "
        f"{head[5]:>7} {head[6]:>7}"
    )
    for r in result["rows"]:
        rate, cpu = r["events_per_s"], r["cpu_us_per_event"]
        print(
            f"{r['store']:<10} {r['config']:<8} {rate['bare']:>10,} {rate['instrumented']:>10,} "
            f"{cpu['bare']:>7} / {cpu['instrumented']:<7} "
            f"{r['cpu_overhead_pct']:>7} {r['rate_overhead_pct']:>7}"
        )


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.observability [--quick|--full] [--server URL]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True, help="short run (default)")
    mode.add_argument("--full", action="store_true", help="more trials, steadier figures")
    parser.add_argument("--server", default=None, help="use this NATS URL, start no server")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    result = run(quick=not args.full, server=args.server)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
