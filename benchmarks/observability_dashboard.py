"""Render docs/dashboard.png: the Grafana dashboard's panels from a real scrape series.

Grafana cannot be installed here, so this script draws the panels of
docs/grafana-dashboard.json with matplotlib (``pip install 'aether[docs]'``), computing
each panel's query by hand (rate = counter delta / scrape interval, quantiles from the
histogram buckets' deltas over a window) from what it scraped over HTTP from:

- two ``aether node run --metrics-addr`` processes of a namespace with 8 shards (one is
  killed mid-run and another joins: leader, term, ownership and hand-overs move);
- this process: an instrumented JetStream store with racing writers (appends, latency,
  conflicts) and a toy projection per shard, connected through
  `register_processor_stats` and `process_span` (checkpoint, lag per shard).

Run ``python -m benchmarks.observability_dashboard`` (about 70 s; starts a nats-server).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict, deque
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).with_name("aether"))]
SHARDS = 8
NS = "demo"
DURATION = 66.0
Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> Sample:
    """The samples at `url` ({} when it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: Sample = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def node(url: str, node_id: str, port: int) -> subprocess.Popen[str]:
    """An ``aether node run`` process serving /metrics on `port`."""
    return subprocess.Popen(
        [
            *CLI, "-s", url, "-n", NS, "node", "run", "--node-id", node_id,
            "--shards", str(SHARDS), "--heartbeat", "0.25s", "--lease", "1.5s",
            "--node-ttl", "1.5s", "--json", "--metrics-addr", f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip


async def workload(url: str, stop: asyncio.Event, t0: float) -> None:
    """Racing writers on an instrumented store and a slow projection per shard."""
    from aether import Event, Settings
    from aether.cluster import shard_of
    from aether.errors import VersionConflictError
    from aether.observability import (
        ProcessorStatsRecord,
        instrument_store,
        process_span,
        register_processor_stats,
    )
    from aether.store import open_store

    settings = Settings.load(
        overrides={"nats.servers": [url], "namespace": NS}, search_default_files=False
    )
    store = instrument_store(await open_store(settings))
    actors = [f"cart-{i}" for i in range(40)]
    checkpoints = dict.fromkeys(range(SHARDS), 0)
    handled = dict.fromkeys(range(SHARDS), 0)
    # appended, not yet processed: (position, time) per shard, oldest first
    unprocessed: dict[int, deque[tuple[int, float]]] = defaultdict(deque)

    def stats() -> list[ProcessorStatsRecord]:
        now = time.time()
        out = []
        for s in range(SHARDS):
            pending = unprocessed[s]
            out.append(
                ProcessorStatsRecord(
                    "cart-view", s, checkpoints[s], len(pending),
                    now - pending[0][1] if pending else 0.0, handled[s],
                )
            )  # fmt: skip
        return out

    reg = register_processor_stats(stats)

    def rate(t: float) -> float:  # appends per second over the run
        return 900.0 if 18 <= t < 30 else 250.0

    async def writer(k: int) -> None:
        rnd = random.Random(k)
        while not stop.is_set():
            actor = rnd.choice(actors[:12] if rnd.random() < 0.5 else actors)
            version = await store.get_latest_version(actor) + 1
            await asyncio.sleep(rnd.random() * 0.004)  # others may append meanwhile
            with contextlib.suppress(VersionConflictError):
                e = await store.save_event(Event("ItemAdded", actor, version, {"k": k}))
                unprocessed[shard_of(actor, SHARDS)].append((e.position, time.time()))
            await asyncio.sleep(8 / rate(time.monotonic() - t0))

    async def projection() -> None:
        it = store.watch(1)
        async for e in it:
            s = shard_of(e.actor_id, SHARDS)
            with process_span(e, "cart-view"):
                await asyncio.sleep(0.003)  # a slow handler: lag builds in the burst
            pending = unprocessed[s]
            while pending and pending[0][0] <= e.position:
                pending.popleft()
            checkpoints[s] = e.position
            handled[s] += 1
            if stop.is_set():
                break

    tasks = [asyncio.create_task(writer(k)) for k in range(8)]
    proj = asyncio.create_task(projection())
    await stop.wait()
    for t in tasks:
        t.cancel()
    proj.cancel()
    await asyncio.gather(*tasks, proj, return_exceptions=True)
    reg.close()
    await store.close()


async def run(url: str) -> list[tuple[float, dict[str, Sample]]]:
    """The scrape series: [(seconds since start, {endpoint: samples})]."""
    from aether.observability import serve_metrics

    server = serve_metrics("127.0.0.1:0")
    ports = {"n1": free_port(), "n2": free_port(), "n3": free_port()}
    procs = {"n1": node(url, "n1", ports["n1"])}
    await asyncio.sleep(2.0)
    procs["n2"] = node(url, "n2", ports["n2"])
    stop = asyncio.Event()
    t0 = time.monotonic()
    work = asyncio.create_task(workload(url, stop, t0))
    series: list[tuple[float, dict[str, Sample]]] = []
    loop = asyncio.get_running_loop()
    try:
        while (t := time.monotonic() - t0) < DURATION:
            if t >= 36 and procs["n1"].poll() is None:
                procs["n1"].kill()  # the first node (the leader) dies
            if t >= 48 and "n3" not in procs:
                procs["n3"] = node(url, "n3", ports["n3"])
            urls = {"app": server.url} | {
                n: f"http://127.0.0.1:{p}/metrics" for n, p in ports.items()
            }
            got = {n: await loop.run_in_executor(None, scrape, u) for n, u in urls.items()}
            series.append((t, got))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - t)))
    finally:
        stop.set()
        await work
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            p.wait(timeout=20)
        server.close()
    return series


def value(s: Sample, name: str, **labels: str) -> float | None:
    """The sample with exactly `labels`, or None."""
    return s.get((name, tuple(sorted(labels.items()))))


def render(series: list[tuple[float, dict[str, Sample]]], out: Path) -> None:
    """Draw the dashboard's panels into `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [t for t, _ in series]
    app = [d["app"] for _, d in series]
    fig, axes = plt.subplots(4, 2, figsize=(15, 15))
    fig.suptitle(
        "aether dashboard (docs/grafana-dashboard.json), panels drawn from a real scrape "
        "series (matplotlib; Grafana is not installable here)",
        fontsize=11,
    )

    def counter_rate(samples: list[Sample], name: str, **labels: str) -> list[float]:
        vals = [value(s, name, **labels) or 0.0 for s in samples]
        return [0.0] + [
            max(0.0, (b - a) / (t2 - t1))
            for a, b, t1, t2 in zip(vals, vals[1:], ts, ts[1:], strict=False)
        ]

    ax = axes[0][0]
    ax.plot(
        ts, counter_rate(app, "aether_appended_events_total", store="jetstream"), label="events/s"
    )
    ax.set_title("Append rate")
    ax.set_ylabel("events/s")
    ax.legend()

    ax = axes[0][1]
    bounds: list[str] = sorted(
        {
            dict(k[1])["le"]
            for k in app[-1]
            if k[0] == "aether_append_duration_seconds_bucket" and "le" in dict(k[1])
        },
        key=float,
    )
    window = 5
    for q in (0.5, 0.99):
        ys = []
        for i in range(len(app)):
            j = max(0, i - window)
            cum = [
                (value(app[i], "aether_append_duration_seconds_bucket", store="jetstream",
                       outcome="ok", le=b) or 0)
                - (value(app[j], "aether_append_duration_seconds_bucket", store="jetstream",
                         outcome="ok", le=b) or 0)
                for b in bounds
            ]  # fmt: skip
            total = cum[-1] if cum else 0
            if not total:
                ys.append(float("nan"))
                continue
            rank = q * total
            idx = next(k for k, c in enumerate(cum) if c >= rank)
            lo = 0.0 if idx == 0 else float(bounds[idx - 1])
            hi = float(bounds[idx])
            below = 0 if idx == 0 else cum[idx - 1]
            frac = (rank - below) / max(1, cum[idx] - below)
            ys.append((lo + (hi - lo) * frac) * 1000)  # histogram_quantile's interpolation
        ax.plot(ts, ys, label=f"p{int(q * 100)}")
    ax.set_title("Append latency (ok)")
    ax.set_ylabel("ms")
    ax.legend()

    ax = axes[1][0]
    for outcome in ("conflict", "timeout", "error"):
        ys = counter_rate(
            app, "aether_append_duration_seconds_count", store="jetstream", outcome=outcome
        )
        if any(ys):
            ax.plot(ts, ys, label=outcome)
    ax.set_title("Conflicts and failures")
    ax.set_ylabel("appends/s")
    ax.legend()

    ax = axes[1][1]
    for s in range(SHARDS):
        ys = [
            value(a, "aether_processor_lag_events", processor="cart-view", shard=str(s)) or 0
            for a in app
        ]
        ax.plot(ts, ys, label=f"shard {s}")
    ax.set_title("Processor lag per shard (events)")
    ax.legend(ncol=4, fontsize=7)

    nodes = ("n1", "n2", "n3")

    def node_series(name: str, n: str) -> list[float]:
        return [
            v if (v := value(d[n], name, namespace=NS, node=n)) is not None else float("nan")
            for _, d in series
        ]

    ax = axes[2][0]
    colors = {1.0: "tab:green", 0.0: "tab:blue"}
    for k, n in enumerate(nodes):
        ys = node_series("aether_cluster_leader", n)
        for i in range(len(ts) - 1):
            if ys[i] == ys[i]:  # not NaN: the node answered
                ax.broken_barh([(ts[i], ts[i + 1] - ts[i])], (k - 0.35, 0.7), color=colors[ys[i]])
    ax.set_yticks(range(len(nodes)), nodes)
    ax.set_ylim(-0.6, len(nodes) - 0.4)
    ax.set_title("Leader (green: leader, blue: follower, blank: not running)")

    ax = axes[2][1]
    for n in nodes:
        ax.step(ts, node_series("aether_cluster_term", n), where="post", label=n)
    ax.set_title("Term (the leader lease revision each node sees)")
    ax.legend()

    ax = axes[3][0]
    for n in nodes:
        ax.step(ts, node_series("aether_cluster_shards_owned", n), where="post", label=n)
    ax.set_title(f"Shards owned per node (of {SHARDS})")
    ax.legend()

    ax = axes[3][1]
    for n in nodes:
        ax.step(
            ts,
            node_series("aether_cluster_shards_acquired_total", n),
            where="post",
            label=f"{n} acquired",
        )
        ax.step(
            ts,
            node_series("aether_cluster_shards_released_total", n),
            where="post",
            linestyle="--",
            label=f"{n} released",
        )
    ax.set_title("Hand-overs (cumulative shards)")
    ax.legend(ncol=2, fontsize=7)

    for row in axes:
        for a in row:
            a.set_xlabel("seconds")
            a.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=80)


def main() -> None:
    """Start a server, run the scenario, write docs/dashboard.png."""
    from tests.servers import NatsServer, wait_jetstream_ready

    with tempfile.TemporaryDirectory(prefix="aether-dash-") as tmp:
        srv = NatsServer(store_dir=Path(tmp) / "js", name="aether-dash")
        srv.start()
        try:
            wait_jetstream_ready([srv.url])
            series = asyncio.run(run(srv.url))
        finally:
            srv.stop()
    out = ROOT / "docs" / "dashboard.png"
    render(series, out)
    print(f"wrote {out} from {len(series)} scrapes")


if __name__ == "__main__":
    main()
