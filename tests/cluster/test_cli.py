"""``aether node run`` processes and ``aether cluster status`` against a real server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from typer.testing import CliRunner

from aether.cluster import read_status
from aether.errors import NotFoundError
from aether_cli.main import app
from tests.servers import NatsServer

# the console script (python -m aether_cli.main would import the CLI module twice)
CLI = [str(Path(sys.executable).with_name("aether"))]
FAST = ["--heartbeat", "0.2s", "--lease", "1s", "--node-ttl", "1s"]
SHARDS = 16


def aether(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def spawn(nats_server: NatsServer) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(node_id: str, *timing: str, namespace: str = "cli") -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [
                *CLI,
                "-s",
                nats_server.url,
                "-n",
                namespace,
                "node",
                "run",
                "--node-id",
                node_id,
                "--shards",
                str(SHARDS),
                *(timing or FAST),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def quick_status(url: str, namespace: str = "cli") -> dict[str, Any]:
    """The status document read in-process (for waiting; the CLI is checked separately)."""

    async def read() -> dict[str, Any]:
        nc = await nats.connect(url)
        try:
            return (await read_status(nc, namespace)).to_dict()
        finally:
            await nc.close()

    try:
        return asyncio.run(read())
    except NotFoundError:
        return {}


def status(url: str, namespace: str = "cli") -> dict[str, Any]:
    r = aether("-s", url, "-n", namespace, "cluster", "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def poll(
    url: str,
    cond: Callable[[dict[str, Any]], bool],
    limit: float,
    what: str,
    read: Callable[[str], dict[str, Any]] = quick_status,
) -> tuple[dict[str, Any], float]:
    """Read until `cond` holds; the document and when (since the call) its read began."""
    start = time.monotonic()
    doc: dict[str, Any] = {}
    while time.monotonic() - start < limit:
        began = time.monotonic() - start
        try:
            doc = read(url)
        except AssertionError:
            doc = {}
        if doc and cond(doc):
            return doc, began
        time.sleep(0.05)
    raise AssertionError(f"{what}: not seen within {limit}s; last status: {doc}")


def settled_over(ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    def cond(doc: dict[str, Any]) -> bool:
        m = doc["shard_map"]
        return (
            doc["leader"] is not None
            and doc["leader"]["node_id"] in ids
            and {n["node_id"] for n in doc["nodes"]} == ids
            and m is not None
            and m["settled"]
            and len(m["owners"]) == SHARDS
            and set(m["owners"]) == ids
            and all(n["shards"] == m["owners"].count(n["node_id"]) for n in doc["nodes"])
        )

    return cond


def events(p: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = p.communicate(timeout=15)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_three_processes_then_sigkill_the_leader(spawn, nats_server: NatsServer) -> None:
    procs = {f"n{i}": spawn(f"n{i}") for i in range(3)}
    poll(nats_server.url, settled_over(set(procs)), 30, "three nodes, one leader, shards once")
    doc = status(nats_server.url)  # the CLI's own document
    assert settled_over(set(procs))(doc), doc
    old_leader, old_term = doc["leader"]["node_id"], doc["leader"]["term"]
    assert sum(1 for n in doc["nodes"] if n["leader"]) == 1
    assert sorted(procs[old_leader].pid == n["pid"] for n in doc["nodes"]) == [False, False, True]

    procs[old_leader].send_signal(signal.SIGKILL)
    survivors = set(procs) - {old_leader}

    def moved(d: dict[str, Any]) -> bool:
        return settled_over(survivors)(d) and d["leader"]["term"] > old_term

    killed = time.monotonic()
    doc, began = poll(
        nats_server.url, moved, 20, "new leader, higher term, shards on survivors", status
    )
    print(
        f"`aether cluster status` started {began:.2f}s and done {time.monotonic() - killed:.2f}s "
        "after SIGKILL showed the new leader (lease 1s, heartbeat 0.2s)"
    )
    for node_id in sorted(survivors):
        procs[node_id].send_signal(signal.SIGTERM)
    for node_id in sorted(survivors):
        p = procs[node_id]
        assert p.wait(timeout=15) == 0
        names = [e["event"] for e in events(p)]
        assert names[0] == "joined" and names[-1] == "stopped" and "acquired" in names


def test_sigterm_fails_over_without_waiting_for_the_ttl(spawn, nats_server: NatsServer) -> None:
    slow = ("--heartbeat", "0.5s", "--lease", "20s", "--node-ttl", "20s")
    procs = {f"g{i}": spawn(f"g{i}", *slow) for i in range(2)}
    doc, _ = poll(nats_server.url, settled_over(set(procs)), 30, "two nodes settle")
    leader = doc["leader"]["node_id"]
    other = next(n for n in procs if n != leader)
    start = time.monotonic()
    procs[leader].send_signal(signal.SIGTERM)
    assert procs[leader].wait(timeout=15) == 0
    names = [e["event"] for e in events(procs[leader])]
    assert "released" in names and "demoted" in names and names[-1] == "stopped"
    doc, _ = poll(
        nats_server.url, settled_over({other}), 19 - (time.monotonic() - start), "fail-over"
    )
    assert time.monotonic() - start < 20, "fail-over waited for the 20s lease"

    watch = subprocess.Popen(
        [
            *CLI,
            "-s",
            nats_server.url,
            "-n",
            "cli",
            "cluster",
            "status",
            "--watch",
            "--json",
            "--interval",
            "200ms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    docs = [json.loads(watch.stdout.readline()) for _ in range(2)]  # one line per refresh
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=10) == 0
    watch.communicate(timeout=5)
    assert all(d["leader"]["node_id"] == other for d in docs)


def invoke(*args: str) -> tuple[int, str]:
    """Run the CLI in-process (no interpreter start-up); the exit code and stderr."""
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stderr


def test_status_of_a_namespace_without_cluster_exits_4(nats_server: NatsServer) -> None:
    code, stderr = invoke("-s", nats_server.url, "-n", "empty", "cluster", "status")
    assert code == 4
    assert stderr.count("\n") == 1 and "aether node run" in stderr


@pytest.mark.parametrize("args", [["cluster", "status"], ["node", "run"]])
def test_without_a_server_says_how_to_get_one(args: list[str]) -> None:
    code, stderr = invoke(*args)
    assert code == 5
    assert stderr.count("\n") == 1 and "aether server" in stderr and "--server" in stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--lease", "soon"], "--lease"),
        (["--heartbeat", "2s", "--lease", "3s"], "lease: must be at least twice"),
        (["--node-id", "a.b"], "node_id"),
        (["--shards", "0"], "shard_count"),
    ],
)
def test_bad_options_exit_2(nats_server: NatsServer, args: list[str], needle: str) -> None:
    code, stderr = invoke("-s", nats_server.url, "node", "run", *args)
    assert code == 2, stderr
    assert needle in stderr and stderr.count("\n") == 1
