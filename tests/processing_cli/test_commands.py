"""``aether processors status|reset|parked|retry|skip|wait`` on the durable state a real
runner left in the SQLite store (``./.aether/events.db``, the CLI's default)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from aether import Event, Settings
from aether.processing import Context, ProcessorRunner, RetryPolicy, processor
from aether.store import open_store
from tests.processing_cli.helpers import CLI, aether, env

NAME = "poison-aware"
POISON_ACTOR = "order-7"


def settings() -> Settings:
    return Settings.load(overrides={"store": "sqlite"}, env={}, search_default_files=False)


class Handler:
    """Fails on the poison actor's first event while `broken`; records what it handled."""

    def __init__(self) -> None:
        self.broken = True
        self.handled: list[int] = []

    async def __call__(self, event: Event, ctx: Context) -> None:
        if self.broken and event.actor_id == POISON_ACTOR and event.version == 1:
            raise RuntimeError("poison: cannot price order-7")
        self.handled.append(ctx.position)


async def fill(store: Any, n: int = 20) -> None:
    for i in range(n):
        actor = f"order-{i % 10}"
        await store.save_event(Event("OrderPlaced", actor, i // 10 + 1, {"i": i}))


def run_cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    r = aether(*args, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def parked_state() -> Handler:
    """20 events, processed under ``park``: the poison event (and its actor's later one)
    parked, the checkpoint at the head, nothing running."""
    handler = Handler()

    async def go() -> None:
        store = await open_store(settings())
        try:
            await fill(store)
            runner = ProcessorRunner(
                store,
                processor(NAME, handler),
                on_failure="park",
                retry=RetryPolicy(attempts=2, base=0.0, max=0.0),
            )
            await runner.drain()
            await runner.stop()
        finally:
            await store.close()

    asyncio.run(go())
    return handler


def test_status_parked_skip_retry_reset_wait(parked_state: Handler) -> None:
    code, out, err = run_cli("processors", "status", "--json")
    assert code == 0, err
    [seg] = orjson.loads(out)
    assert seg["processor"] == NAME and seg["segment"] == "all"
    assert seg["checkpoint"] == seg["head"] == 20
    assert seg["lag_events"] == 0
    assert seg["parked"] == 2  # the poison event and the same actor's later event
    assert seg["state"] in ("idle", "stopped")

    table = aether("processors", "status", NAME, COLUMNS="200")  # the rich table
    assert table.returncode == 0, table.stderr
    assert NAME in table.stdout and "Checkpoint" in table.stdout

    code, out, err = run_cli("processors", "parked", NAME, "--json")
    assert code == 0, err
    parked = orjson.loads(out)
    assert [(p["actor_id"], p["version"]) for p in parked] == [(POISON_ACTOR, 1), (POISON_ACTOR, 2)]
    assert "poison" in parked[0]["error"]
    first, second = parked[0]["position"], parked[1]["position"]

    # skip the poison one; the later event of the actor stays parked
    code, out, err = run_cli("processors", "skip", NAME, str(first))
    assert code == 0, err
    code, out, _ = run_cli("processors", "parked", NAME, "--json")
    assert [p["position"] for p in orjson.loads(out)] == [second]

    code, out, err = run_cli("processors", "retry", NAME)
    assert code == 0, err
    assert "retried 1 parked event" in out

    # wait: reached (exit 0), and not reachable in time (exit 1, one line)
    code, out, err = run_cli("processors", "wait", NAME, "--position", "20", "--timeout", "10s")
    assert code == 0, err
    code, out, err = run_cli("processors", "wait", NAME, "--position", "999", "--timeout", "0.5s")
    assert code == 1
    assert "999" in one_error_line(err)

    code, out, err = run_cli("processors", "reset", NAME, "--to-position", "5")
    assert code == 0, err
    code, out, _ = run_cli("processors", "status", NAME, "--json")
    assert orjson.loads(out)[0]["checkpoint"] == 5
    code, out, err = run_cli("processors", "reset", NAME, "--to-start")
    assert code == 0, err
    code, out, _ = run_cli("processors", "status", NAME, "--json")
    [seg] = orjson.loads(out)
    assert seg["checkpoint"] == 0 and seg["lag_events"] == 20


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["processors", "status", "nobody"], 4, "nobody"),
        (["processors", "parked", "nobody"], 4, "nobody"),
        (["processors", "reset", NAME], 2, "--to-start"),
        (["processors", "reset", NAME, "--to-start", "--to-position", "3"], 2, "exactly one"),
        (["processors", "skip", NAME, "x"], 2, "not an integer"),
        (["processors", "wait", NAME], 2, "--position"),
    ],
)
def test_bad_requests_are_one_line(
    parked_state: Handler, args: list[str], code: int, needle: str
) -> None:
    rc, _, err = run_cli(*args)
    assert rc == code, err
    assert needle in one_error_line(err)


def test_read_only_on_a_missing_store_exits_4(tmp_path: Path) -> None:
    rc, _, err = run_cli("processors", "status")
    assert rc == 4, err
    assert not (tmp_path / ".aether").exists()  # nothing created


def test_reset_is_refused_while_a_runner_runs() -> None:
    async def go() -> None:
        store = await open_store(settings())
        try:
            await fill(store)
            healthy = Handler()
            healthy.broken = False
            runner = ProcessorRunner(store, processor("live", healthy))
            await runner.start()
            try:
                await runner.run_until(20)
                proc = await asyncio.create_subprocess_exec(
                    *CLI,
                    "processors",
                    "reset",
                    "live",
                    "--to-start",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env(),
                )
                _, err = await asyncio.wait_for(proc.communicate(), 60)
                assert proc.returncode == 1, err
                line = one_error_line(err.decode())
                assert "running" in line and "stop" in line
            finally:
                await runner.stop()
        finally:
            await store.close()

    asyncio.run(go())
    rc, out, err = run_cli("processors", "status", "live", "--json")
    assert rc == 0, err
    assert orjson.loads(out)[0]["checkpoint"] == 20
