"""`aether tail` as a subprocess, against appends made by other processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from aether.bus import NatsEventBus
from aether.config import Settings
from aether.event import Event
from aether.store import open_store
from tests.bus.conftest import settings_for
from tests.bus.helpers import ROOT
from tests.servers import NatsServer, wait_jetstream_ready

AETHER = str(Path(sys.executable).parent / "aether")

APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from aether.config import Settings
    from aether.event import Event
    from aether.store import open_store

    async def main():
        servers = [sys.argv[1]] if sys.argv[1] != "-" else []
        settings = Settings.load(
            overrides={"namespace": "demo", "nats.servers": servers or None},
            search_default_files=False,
        )
        store = await open_store(settings)
        try:
            for v in range(int(sys.argv[2]), int(sys.argv[3]) + 1):
                await store.save_event(
                    Event("Placed", "order-1", v, {"seq": v, "ratio": v + 0.5, "n": {"k": [v]}})
                )
        finally:
            await store.close()

    asyncio.run(main())
    """
)


class Tail:
    """A running ``aether tail`` process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Tail:
        proc = await asyncio.create_subprocess_exec(
            AETHER,
            "tail",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread
        )
        tail = cls(proc)
        await asyncio.wait_for(tail._ready(), 60)
        return tail

    async def _ready(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode()
            assert line, f"tail exited before following: {''.join(self.stderr)}"
            self.stderr.append(line)
            if line.startswith("following"):
                return

    async def lines(self, n: int) -> list[dict[str, object]]:
        assert self.proc.stdout is not None
        out = []
        for _ in range(n):
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            assert line, "tail closed stdout early"
            out.append(orjson.loads(line))
        return out

    async def finish(self) -> tuple[int, str, bytes]:
        done = asyncio.ensure_future(self.proc.communicate())
        try:
            rest, err = await asyncio.wait_for(asyncio.shield(done), 60)
        except TimeoutError:
            self.proc.send_signal(signal.SIGABRT)  # where it hangs, for the failure message
            _, err = await asyncio.wait_for(done, 30)
            raise AssertionError(
                f"tail did not exit: {''.join(self.stderr)}{err.decode()}"
            ) from None
        return self.proc.returncode or 0, "".join(self.stderr) + err.decode(), rest

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def append(server: str, first: int, last: int) -> None:
    """Append versions first..last of order-1 in namespace demo from another process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        APPENDER,
        server,
        str(first),
        str(last),
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()


async def seed(server: str) -> None:
    """Create namespace demo first: tail opens only a store that exists (SQLite: an event)."""
    servers = [server] if server != "-" else None
    settings = Settings.load(
        overrides={"namespace": "demo", "nats.servers": servers}, search_default_files=False
    )
    store = await open_store(settings)
    try:
        if not servers:
            await store.save_event(Event("Seeded", "seed", 1))
    finally:
        await store.close()


def check_lines(lines: list[dict[str, object]], versions: range) -> None:
    assert [d["version"] for d in lines] == list(versions)
    for d in lines:
        assert type(d["version"]) is int and type(d["position"]) is int
        data = d["data"]
        assert isinstance(data, dict)
        assert type(data["seq"]) is int and type(data["ratio"]) is float
        assert data["n"] == {"k": [d["version"]]}
        assert d["actor_id"] == "order-1" and d["event_type"] == "Placed"
    positions = [d["position"] for d in lines]
    assert positions == sorted(set(positions))  # type: ignore[type-var]


async def test_tail_count_follows_sqlite_appends_from_another_process() -> None:
    await seed("-")
    tail = await Tail.start("-n", "demo", "--count", "3", "--json")
    try:
        await append("-", 1, 3)
        code, err, out = await tail.finish()
    finally:
        tail.kill()
    assert code == 0, err
    lines = [orjson.loads(x) for x in out.splitlines()]
    check_lines(lines, range(1, 4))


async def test_tail_count_follows_jetstream_appends_from_another_process(
    nats_server: NatsServer,
) -> None:
    await append(nats_server.url, 1, 2)  # history: not shown without --from-start
    tail = await Tail.start("-n", "demo", "--count", "3", "--json", "--server", nats_server.url)
    try:
        await append(nats_server.url, 3, 5)
        code, err, out = await tail.finish()
    finally:
        tail.kill()
    assert code == 0, err
    lines = [orjson.loads(x) for x in out.splitlines()]
    check_lines(lines, range(3, 6))
    assert [d["position"] for d in lines] == [3, 4, 5]


async def test_tail_keeps_following_across_a_server_restart(nats_server: NatsServer) -> None:
    await seed(nats_server.url)
    tail = await Tail.start("-n", "demo", "--count", "6", "--json", "-s", nats_server.url)
    try:
        await append(nats_server.url, 1, 3)
        first = await tail.lines(3)
        await asyncio.to_thread(nats_server.restart)
        await asyncio.to_thread(wait_jetstream_ready, [nats_server.url])
        await append(nats_server.url, 4, 6)
        code, err, out = await tail.finish()
    finally:
        tail.kill()
    assert code == 0, err
    lines = first + [orjson.loads(x) for x in out.splitlines()]
    check_lines(lines, range(1, 7))  # no gap, no duplicate
    assert [d["position"] for d in lines] == [1, 2, 3, 4, 5, 6]


async def test_tail_filters_history_and_human_lines(tmp_path: Path) -> None:
    settings = Settings.load(overrides={"namespace": "demo"}, search_default_files=False)
    store = await open_store(settings)
    try:
        for v, (t, a) in enumerate([("A", "x"), ("B", "x"), ("A", "y"), ("A", "x")], start=1):
            actor_v = 1 if a == "y" else {1: 1, 2: 2, 4: 3}[v]
            await store.save_event(Event(t, a, actor_v, {"i": v}))
    finally:
        await store.close()
    proc = await asyncio.create_subprocess_exec(
        AETHER, "tail", "demo", "--from-start", "-t", "A", "--actor", "x", "--count", "2",
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert [orjson.loads(x)["data"] for x in out.splitlines()] == [{"i": 1}, {"i": 4}]
    proc = await asyncio.create_subprocess_exec(
        AETHER, "-n", "demo", "tail", "--since", "1h", "--count", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    text = out.decode()
    assert text.split()[:1] == ["1"] and " x " in text and " v1 " in text and '{"i":1}' in text
    proc = await asyncio.create_subprocess_exec(
        AETHER, "tail", "demo", "--from-position", "3", "--count", "2", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert [orjson.loads(x)["position"] for x in out.splitlines()] == [3, 4]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_ctrl_c_exits_zero_without_a_traceback(sig: signal.Signals) -> None:
    await seed("-")
    tail = await Tail.start("-n", "demo")
    try:
        tail.proc.send_signal(sig)
        code, err, out = await tail.finish()
    finally:
        tail.kill()
    assert code == 0, err
    assert "Traceback" not in err and out == b""


async def test_tail_bus_follows_a_pattern_live(nats_server: NatsServer) -> None:
    tail = await Tail.start("--bus", "orders-*", "--count", "2", "--json", "-s", nats_server.url)
    try:
        async with await NatsEventBus.open(settings_for(nats_server)) as bus:
            await bus.publish("billing", Event("Paid", "x", 1))
            await bus.publish("orders-eu", Event("Placed", "o1", 1, {"n": 1}))
            await bus.publish("orders-us", Event("Placed", "o2", 1, {"f": 1.0}))
            await bus.flush()
        code, err, out = await tail.finish()
    finally:
        tail.kill()
    assert code == 0, err
    lines = [orjson.loads(x) for x in out.splitlines()]
    assert [(d["namespace"], d["actor_id"], d["position"]) for d in lines] == [
        ("orders-eu", "o1", None),
        ("orders-us", "o2", None),
    ]
    assert type(lines[0]["data"]["n"]) is int and type(lines[1]["data"]["f"]) is float


@pytest.mark.parametrize(
    "args",
    [
        ["orders-*"],
        ["--bus", "--from-start"],
        ["--from-start", "--from-position", "2"],
        ["a", "-n", "b"],
        ["--since", "yesterday"],
    ],
)
async def test_usage_errors_exit_2_with_one_line(args: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        AETHER, "tail", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert out == b"" and len(err.decode().strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["sqlite", "jetstream"])
async def test_tail_slices_selects_the_actors_of_those_slices(
    kind: str, request: pytest.FixtureRequest
) -> None:
    from aether.subjects import slice_of

    overrides: dict[str, object] = {"namespace": "demo"}
    server_args: list[str] = []
    if kind == "jetstream":
        server: NatsServer = request.getfixturevalue("nats_server")
        overrides["nats.servers"] = server.url
        server_args = ["-s", server.url]
    actors = [f"order-{i}" for i in range(40)]
    low = [a for a in actors if slice_of(a) < 512]
    store = await open_store(Settings.load(overrides=overrides, search_default_files=False))
    try:
        for a in actors:
            await store.save_event(Event("Placed", a, 1, {"slice": slice_of(a)}))
    finally:
        await store.close()
    proc = await asyncio.create_subprocess_exec(
        AETHER, *server_args, "tail", "demo", "--from-start", "--slices", "0-511",
        "--count", str(len(low)), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert [orjson.loads(x)["actor_id"] for x in out.splitlines()] == low
    assert b"512 of 1024 slices" in err
