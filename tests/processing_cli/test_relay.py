"""``aether node run --relay``: ``aether append`` of 1,000 events reaches a `NatsEventBus`
subscriber in another process, exactly once across a graceful relay restart and at
least once (none missing, duplicates counted) across a SIGKILL of the relay."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from aether import Settings
from aether.store import open_store
from tests.processing_cli.helpers import CLI, aether, env, jsonl, nodes, wait_for
from tests.servers import NatsServer

NS = "relayed"


class Listener:
    """The bus subscriber subprocess (`tests.processing_cli.bus_listener`)."""

    def __init__(self, url: str, outfile: Path) -> None:
        self.outfile = outfile
        outfile.touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.processing_cli.bus_listener", url, NS, str(outfile)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr

    def ids(self) -> Counter[str]:
        """How often each event id was received."""
        complete = self.outfile.read_text().split("\n")[:-1]  # the last may be partial
        return Counter(line.split(" ", 1)[0] for line in complete)

    def stop(self) -> int:
        self.proc.terminate()
        self.proc.communicate(timeout=30)
        return self.proc.returncode


@pytest.fixture
def listener(nats_server: NatsServer, tmp_path: Path) -> Iterator[Listener]:
    li = Listener(nats_server.url, tmp_path / "received.txt")
    try:
        yield li
    finally:
        if li.proc.poll() is None:
            li.proc.kill()
            li.proc.communicate(timeout=10)


def append(url: str, start: int, n: int) -> set[str]:
    """``aether append --file -`` of `n` events; the ids stored (read back by replay)."""
    lines = jsonl([(f"cart-{i % 50}", "ItemAdded", {"i": i}) for i in range(start, start + n)])
    r = aether("-s", url, "-n", NS, "append", "--file", "-", "--json", input=lines, timeout=120)
    assert r.returncode == 0, r.stderr
    return stored_ids(url)


def stored_ids(url: str) -> set[str]:
    """The ids of every event stored in the namespace (read in-process: the oracle)."""

    async def read() -> set[str]:
        settings = Settings.load(
            overrides={"nats.servers": [url], "namespace": NS}, env={}, search_default_files=False
        )
        store = await open_store(settings)
        try:
            return {e.id async for e in store.read_all()}
        finally:
            await store.close()

    return asyncio.run(read())


def test_graceful_restart_delivers_each_event_exactly_once(
    nats_server: NatsServer, listener: Listener, tmp_path: Path
) -> None:
    url = nats_server.url
    with nodes(tmp_path) as start:
        relay = start(url, NS, "relay-1", "--relay", shards=4)
        wait_for(lambda: relay.saw("acquired"), what="relay running")
        append(url, 0, 500)
        wait_for(lambda: len(listener.ids()) >= 500, what="first 500 relayed")
        assert relay.stop() == 0, relay.stderr()
        append(url, 500, 500)  # while no relay runs: picked up from the checkpoint
        relay2 = start(url, NS, "relay-2", "--relay", shards=4)
        ids = stored_ids(url)
        assert len(ids) == 1000
        wait_for(lambda: set(listener.ids()) >= ids, what="all 1000 relayed")
        assert relay2.stop() == 0, relay2.stderr()
    got = listener.ids()
    assert set(got) == ids
    assert [i for i, n in got.items() if n != 1] == []  # exactly once
    assert listener.stop() == 0  # and the bus dropped nothing


def test_sigkill_loses_nothing(nats_server: NatsServer, listener: Listener, tmp_path: Path) -> None:
    url = nats_server.url
    with nodes(tmp_path) as start:
        relay = start(url, NS, "relay-1", "--relay", shards=4)
        wait_for(lambda: relay.saw("acquired"), what="relay running")
        writer = subprocess.Popen(
            [*aether_args(url), "append", "--file", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        assert writer.stdin is not None
        writer.stdin.write(jsonl([(f"cart-{i % 50}", "ItemAdded", {"i": i}) for i in range(1000)]))
        writer.stdin.close()  # appended one by one (every line is another actor's)
        wait_for(lambda: len(listener.ids()) >= 200, what="relaying under way")
        relay.kill()  # mid-stream: its last checkpoint is behind what it published
        assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""
        relay2 = start(url, NS, "relay-2", "--relay", shards=4)
        ids = stored_ids(url)
        assert len(ids) == 1000
        wait_for(lambda: set(listener.ids()) >= ids, timeout=90, what="all 1000 relayed")
        assert relay2.stop() == 0, relay2.stderr()
    got = listener.ids()
    assert set(got) == ids  # none missing, nothing foreign
    duplicates = sum(n - 1 for n in got.values())
    print(f"relay SIGKILL: {duplicates} duplicate deliveries of 1000 events")
    assert listener.stop() == 0


def aether_args(url: str) -> list[str]:
    return [*CLI, "-s", url, "-n", NS]
