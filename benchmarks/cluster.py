"""Cluster fail-over and rebalancing times, aether vs a raw nats-py lease, in one run.

For 3 and 10 in-process `ClusterNode`s on one nats-server (seconds, median of the runs):

- ``crash_to_leader``: the leader crashes (``abort()``: no resign, no deregister) → a
  survivor believes it leads. Baseline: raw nats-py doing the same with server TTLs only
  (a key written with ``Nats-TTL`` = lease and renewed every heartbeat; a follower
  watching it with ``kv.watch`` re-creates it when the server's expiry marker arrives),
  timed from the last renewal. aether's followers also enforce the lease themselves, so
  they usually win before the server's marker.
- ``crash_to_settled``: same crash → every survivor holds its shards of a settled map
  (needs the dead node's entry to expire: ``node_ttl``).
- ``stop_to_leader``: the leader stops gracefully (resign + deregister) → a new leader.
- ``join_to_settled``: a new node starts → the map is settled over everyone (with the
  release-before-acquire hand-off).
- ``leave_to_settled``: a follower stops gracefully → settled over the rest.

Run ``python -m benchmarks.cluster`` (``--quick``, the default: heartbeat 0.2s, lease 1s,
node_ttl 1s, 2 runs; ``--full``: the configured defaults 1s/5s/5s, 3 runs).

``--balance`` (pure, no server; also part of every run): shards per node at 3, 5 and 10
nodes over many random node sets, for the quota assignment and for plain rendezvous
hashing (the old one), at 64, 256 and 1024 shards: the worst max/mean, how many sets
left a node with 0 shards, and the moves on a join and on a leave (count, and whether
any went elsewhere than onto the joiner / from the leaver).

``--failover N``: on three routed nats-servers, an R3 KV bucket; SIGKILL the server
leading its stream and time until a write to the bucket is acknowledged again (N runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nats
from nats.js import api

from aether.cluster import ClusterNode
from aether.cluster._kv import ttl_header
from aether.cluster.defaults import default_lease, default_node_ttl
from aether.cluster.shards import assign, diff_owners, rendezvous_owner
from aether.config import Settings

SHARDS = 64


def _settled(nodes: Sequence[ClusterNode]) -> bool:
    ids = {n.node_id for n in nodes}
    for n in nodes:
        m = n.shard_map
        if m is None or not m.settled or m.nodes != ids or n.shards != m.shards_of(n.node_id):
            return False
    return len({n.shard_map.epoch for n in nodes if n.shard_map}) == 1


async def _until(cond: Callable[[], bool], limit: float) -> float:
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"not reached within {limit}s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


class Bench:
    """One cluster size: starts nodes, runs the cases, keeps the samples."""

    def __init__(self, url: str, size: int, timing: dict[str, float]) -> None:
        self.url = url
        self.size = size
        self.timing = timing
        self.namespace = f"bench{uuid.uuid4().hex[:8]}"
        self.settings = Settings.load(
            overrides={"nats.servers": [url], "namespace": self.namespace},
            env={},
            search_default_files=False,
        )
        self.nodes: list[ClusterNode] = []
        self.counter = 0
        self.limit = 10 * timing["lease"] + 10 * timing["node_ttl"] + 30

    async def add(self) -> ClusterNode:
        """Start one more node."""
        self.counter += 1
        node = ClusterNode(
            self.settings,
            f"b{self.counter}",
            shard_count=SHARDS,
            heartbeat=self.timing["heartbeat"],
            lease=self.timing["lease"],
            node_ttl=self.timing["node_ttl"],
        )
        await node.start()
        self.nodes.append(node)
        return node

    async def fill(self) -> None:
        """Start nodes up to the size and wait for a settled map."""
        while len(self.nodes) < self.size:
            await self.add()
        await _until(lambda: _settled(self.nodes), self.limit)

    def leader(self) -> ClusterNode:
        """The node that leads now."""
        return next(n for n in self.nodes if n.is_leader)

    async def crash(self) -> tuple[float, float]:
        """Abort the leader: seconds to a new leader, and to a settled map."""
        await self.fill()
        old = self.leader()
        self.nodes.remove(old)
        start = time.perf_counter()
        await old.abort()
        to_leader = await _until(lambda: any(n.is_leader for n in self.nodes), self.limit)
        await _until(lambda: _settled(self.nodes), self.limit)
        return to_leader, time.perf_counter() - start

    async def stop_leader(self) -> float:
        """Stop the leader gracefully: seconds to a new leader."""
        await self.fill()
        old = self.leader()
        self.nodes.remove(old)
        start = time.perf_counter()
        await old.stop()
        await _until(lambda: any(n.is_leader for n in self.nodes), self.limit)
        return time.perf_counter() - start

    async def join(self) -> float:
        """Add a node: seconds to a settled map."""
        await self.fill()
        start = time.perf_counter()
        await self.add()
        await _until(lambda: _settled(self.nodes), self.limit)
        return time.perf_counter() - start

    async def leave(self) -> float:
        """Stop a follower gracefully: seconds to a settled map."""
        await self.fill()
        follower = next(n for n in self.nodes if not n.is_leader)
        self.nodes.remove(follower)
        start = time.perf_counter()
        await follower.stop()
        await _until(lambda: _settled(self.nodes), self.limit)
        return time.perf_counter() - start

    async def close(self) -> None:
        """Stop every node."""
        for n in self.nodes:
            await n.stop()


async def raw_failover(url: str, heartbeat: float, lease: float) -> float:
    """Raw nats-py: lease key with Nats-TTL; a watcher re-creates it on the expiry marker."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        bucket = f"raw{uuid.uuid4().hex[:8]}"
        kv = await js.create_key_value(
            api.KeyValueConfig(bucket=bucket, history=1, limit_marker_ttl=60)
        )
        subject = f"$KV.{bucket}.leader"
        ttl = {"Nats-TTL": ttl_header(lease)}
        ack = await js.publish(
            subject, b"a", headers={**ttl, "Nats-Expected-Last-Subject-Sequence": "0"}
        )
        watcher = await kv.watch("leader")
        for _ in range(3):  # a few renewals, then the leader "crashes"
            await asyncio.sleep(heartbeat)
            ack = await js.publish(
                subject,
                b"a",
                headers={**ttl, "Nats-Expected-Last-Subject-Sequence": str(ack.seq)},
            )
        start = time.perf_counter()
        async for entry in watcher:
            if entry is not None and entry.operation in ("DEL", "PURGE"):
                await js.publish(
                    subject,
                    b"b",
                    headers={**ttl, "Nats-Expected-Last-Subject-Sequence": str(entry.revision)},
                )
                break
        took = time.perf_counter() - start
        await watcher.stop()
        await js.delete_key_value(bucket)
        return took
    finally:
        await nc.close()


def _med(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


async def run_async(quick: bool, url: str, timing: dict[str, float]) -> dict[str, Any]:
    """Run every case for 3 and 10 nodes; return the figures."""
    runs = 2 if quick else 3
    results: dict[str, Any] = {
        "quick": quick,
        "shards": SHARDS,
        "runs": runs,
        **timing,
        "sizes": {},
    }
    baseline = [await raw_failover(url, timing["heartbeat"], timing["lease"]) for _ in range(runs)]
    results["raw_ttl_failover"] = _med(baseline)
    for size in (3, 10):
        b = Bench(url, size, timing)
        samples: dict[str, list[float]] = {
            k: []
            for k in (
                "crash_to_leader",
                "crash_to_settled",
                "stop_to_leader",
                "join_to_settled",
                "leave_to_settled",
            )
        }
        try:
            for _ in range(runs):
                leader_t, settled_t = await b.crash()
                samples["crash_to_leader"].append(leader_t)
                samples["crash_to_settled"].append(settled_t)
                samples["stop_to_leader"].append(await b.stop_leader())
                samples["join_to_settled"].append(await b.join())
                samples["leave_to_settled"].append(await b.leave())
        finally:
            await b.close()
        results["sizes"][str(size)] = {k: _med(v) for k, v in samples.items()}
    results["rows"] = [
        {
            "case": f"{size} nodes {case}",
            "aether": secs,
            "unit": "s",
            **(
                {"baseline": results["raw_ttl_failover"], "baseline_name": "raw nats-py TTL lease"}
                if case == "crash_to_leader"
                else {}
            ),
        }
        for size, cases in results["sizes"].items()
        for case, secs in cases.items()
    ]
    return results


def print_table(result: dict[str, Any]) -> None:
    """Human-readable summary."""
    base = result["raw_ttl_failover"]
    print(
        f"heartbeat {result['heartbeat']}s, lease {result['lease']}s, node_ttl "
        f"{result['node_ttl']}s, {result['shards']} shards, median of {result['runs']} runs"
    )
    print(f"{'nodes':<6} {'case':<18} {'aether s':>9} {'raw TTL s':>10} {'ratio':>6}")
    for size, cases in result["sizes"].items():
        for case, secs in cases.items():
            raw = f"{base:>10.3f}" if case == "crash_to_leader" else f"{'':>10}"
            ratio = f"{secs / base:>6.2f}" if case == "crash_to_leader" and base else f"{'':>6}"
            print(f"{size:<6} {case:<18} {secs:>9.3f} {raw} {ratio}")


def run(
    quick: bool = True, server_url: str | None = None, timing: dict[str, float] | None = None
) -> dict[str, Any]:
    """Run the benchmark (starting a nats-server unless `server_url`); return the figures."""
    if timing is None:
        d = Settings()
        lease = default_lease(d)
        timing = (
            {"heartbeat": 0.2, "lease": 1.0, "node_ttl": 1.0}
            if quick
            else {
                "heartbeat": d.cluster.heartbeat,
                "lease": lease,
                "node_ttl": default_node_ttl(d, lease),
            }
        )
    if server_url is not None:
        return asyncio.run(run_async(quick, server_url, timing))
    from tests.servers import NatsServer, wait_jetstream_ready

    with tempfile.TemporaryDirectory(prefix="aether-bench-cluster-") as tmp:
        server = NatsServer(store_dir=Path(tmp) / "js", name="aether-bench-cluster")
        server.start()
        try:
            wait_jetstream_ready([server.url])
            return asyncio.run(run_async(quick, server.url, timing))
        finally:
            server.stop()


def _counts(owners: Sequence[str], nodes: Sequence[str]) -> list[int]:
    return [owners.count(n) for n in nodes]


def balance(sets: int = 200, seed: int = 1) -> dict[str, Any]:
    """Balance and movement of the quota assignment vs plain rendezvous (see module doc)."""
    import random

    rnd = random.Random(seed)
    out: dict[str, Any] = {"node_sets": sets, "rows": []}
    for shards in (64, 256, 1024):
        for n in (3, 5, 10):
            row: dict[str, Any] = {"shards": shards, "nodes": n}
            worst_q = worst_r = 0.0
            zero_q = zero_r = 0
            join_moves: list[int] = []
            leave_moves: list[int] = []
            stray = 0
            for i in range(sets):
                nodes = sorted({f"node-{rnd.randrange(10**9)}" for _ in range(n)})
                mean = shards / len(nodes)
                q = assign(shards, nodes)
                r = [rendezvous_owner(s, nodes) for s in range(shards)]
                cq, cr = _counts(q, nodes), _counts(r, nodes)
                worst_q, worst_r = max(worst_q, max(cq) / mean), max(worst_r, max(cr) / mean)
                zero_q += min(cq) == 0
                zero_r += min(cr) == 0
                new = f"joiner-{i}"
                joined = assign(shards, [*nodes, new], current=q)
                moves = diff_owners(q, joined)
                join_moves.append(len(moves))
                stray += any(m.target != new for m in moves)
                gone = nodes[i % len(nodes)]
                left = assign(shards, [x for x in nodes if x != gone], current=q)
                moves = diff_owners(q, left)
                leave_moves.append(len(moves))
                stray += any(m.source != gone for m in moves)
            row.update(
                quota_max_over_mean=round(worst_q, 3),
                rendezvous_max_over_mean=round(worst_r, 3),
                quota_sets_with_empty_node=zero_q,
                rendezvous_sets_with_empty_node=zero_r,
                join_moves=f"{min(join_moves)}-{max(join_moves)}",
                join_expected=round(shards / (n + 1), 2),
                leave_moves=f"{min(leave_moves)}-{max(leave_moves)}",
                leave_expected=round(shards / n, 2),
                stray_moves=stray,
            )
            out["rows"].append(row)
    return out


def print_balance(result: dict[str, Any]) -> None:
    """Human-readable balance table."""
    print(f"balance over {result['node_sets']} random node sets per row (worst case shown)")
    print(
        f"{'shards':>6} {'nodes':>5} {'quota max/mean':>14} {'rendezvous':>10} "
        f"{'empty q/r':>9} {'join moves':>10} {'S/(n+1)':>7} {'leave moves':>11} "
        f"{'S/n':>6} {'stray':>5}"
    )
    for r in result["rows"]:
        print(
            f"{r['shards']:>6} {r['nodes']:>5} {r['quota_max_over_mean']:>14.3f} "
            f"{r['rendezvous_max_over_mean']:>10.3f} "
            f"{r['quota_sets_with_empty_node']:>4}/{r['rendezvous_sets_with_empty_node']:<4} "
            f"{r['join_moves']:>10} {r['join_expected']:>7} {r['leave_moves']:>11} "
            f"{r['leave_expected']:>6} {r['stray_moves']:>5}"
        )


async def _failover_once(urls: list[str], cluster: Any, i: int) -> float:
    nc = await nats.connect(servers=urls, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        js = nc.jetstream(timeout=1.0)
        bucket = f"failover{i}{uuid.uuid4().hex[:6]}"
        await js.create_key_value(api.KeyValueConfig(bucket=bucket, history=1, replicas=3))
        await js.publish(f"$KV.{bucket}.k", b"x")
        info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.KV_{bucket}", b"")).data)
        server = cluster.server_named(info["cluster"]["leader"])
        start = time.perf_counter()
        await asyncio.to_thread(server.stop, kill=True)
        while True:
            try:
                await js.publish(f"$KV.{bucket}.k", b"y", timeout=0.5)
                break
            except Exception:
                await asyncio.sleep(0.05)
        took = time.perf_counter() - start
        await asyncio.to_thread(server.start)
        await asyncio.sleep(3.0)  # let it catch up before the next kill
        return took
    finally:
        await nc.close()


def failover(runs: int = 5) -> dict[str, Any]:
    """Seconds from SIGKILL of an R3 bucket's stream leader to the next acknowledged write."""
    from tests.servers import NatsCluster, wait_jetstream_ready

    async def go(cluster: Any) -> list[float]:
        return [await _failover_once(cluster.urls, cluster, i) for i in range(runs)]

    with tempfile.TemporaryDirectory(prefix="aether-bench-failover-") as tmp:
        cluster = NatsCluster.create(Path(tmp))
        cluster.start()
        try:
            wait_jetstream_ready(cluster.urls, timeout=60)
            samples = asyncio.run(go(cluster))
        finally:
            cluster.stop()
    return {
        "runs": runs,
        "samples": [round(x, 2) for x in samples],
        "min": round(min(samples), 2),
        "median": _med(samples),
        "max": round(max(samples), 2),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.cluster [--quick|--full] [--server URL]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True, help="short run (default)")
    mode.add_argument("--full", action="store_true", help="configured timings, more runs")
    parser.add_argument("--server", default=None, help="use this NATS URL, start no server")
    parser.add_argument("--balance", action="store_true", help="only the balance figures")
    parser.add_argument(
        "--failover", type=int, default=0, metavar="N", help="only the R3 KV fail-over, N runs"
    )
    args = parser.parse_args(argv)
    if args.balance:
        bal = balance()
        print_balance(bal)
        print(json.dumps(bal))
        return
    if args.failover:
        fo = failover(args.failover)
        print(f"R3 KV stream-leader SIGKILL -> next acknowledged write: {fo}")
        print(json.dumps(fo))
        return
    t0 = time.perf_counter()
    result = run(quick=not args.full, server_url=args.server)
    result["balance"] = balance(sets=50)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(result)
    print_balance(result["balance"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
