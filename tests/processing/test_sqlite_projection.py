"""`SQLiteProjection`: the read model's checkpoint in the user's transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aether.errors import ValidationError
from aether.event import Event
from aether.processing import (
    ProcessorRunner,
    RetryPolicy,
    SQLiteProjection,
    reset,
    retry_parked,
)
from aether.store.base import EventStore
from tests.processing.helpers import CrashingStore, Workload, direct_fold, eventually

FAST = RetryPolicy(attempts=2, base=0.001, max=0.01)


class Counting:
    """An `apply` that sums amounts into ``totals`` and counts applications."""

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.fail_at: int | None = None

    def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
        assert event.position is not None
        if event.position == self.fail_at:
            conn.execute("INSERT INTO totals (actor, total) VALUES ('junk', 1)")
            raise RuntimeError("half-written, rolled back")
        conn.execute(
            "INSERT INTO totals (actor, total) VALUES (?, ?) "
            "ON CONFLICT (actor) DO UPDATE SET total = total + excluded.total",
            (event.actor_id, int(event.data["amount"])),
        )
        self.applied.append(event.position)


def make(tmp_path: Path, apply: Any, name: str = "totals-db") -> SQLiteProjection:
    conn = sqlite3.connect(tmp_path / "read.db", isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS totals (actor TEXT PRIMARY KEY, total INTEGER)")
    return SQLiteProjection(name, conn, apply, event_types={"Added"})


def totals(p: SQLiteProjection) -> dict[str, int]:
    return {a: t for a, t in p.connection.execute("SELECT actor, total FROM totals")}


@pytest.mark.parametrize("when", ["before", "after"])
async def test_exactly_once_across_a_crash(store: EventStore, tmp_path: Path, when: str) -> None:
    w = Workload(10)
    await w.append(store, 200)
    positions = [e.position async for e in store.read_all()]
    apply = Counting()
    proj = make(tmp_path, apply)
    crashing = CrashingStore(store, positions[120], when)
    first = ProcessorRunner(crashing, proj, batch_events=50, idle_interval=0.05)
    await first.start()
    await eventually(lambda: crashing.crashed and not first.running, 20, "the crash")
    second = ProcessorRunner(store, proj, idle_interval=0.05)
    await second.drain()
    assert sorted(apply.applied) == positions  # each exactly once
    assert totals(proj) == await direct_fold(store)
    assert proj.checkpoint() == positions[-1]
    # Rebuild: reset the processor, clear the read model and the projection's checkpoints.
    await reset(store, "totals-db", to_position=0)
    proj.connection.execute("DELETE FROM totals")
    proj.forget_checkpoints()
    assert proj.checkpoint() == 0
    await ProcessorRunner(store, proj, idle_interval=0.05).drain()
    assert totals(proj) == await direct_fold(store)


async def test_a_failed_apply_rolls_back_and_a_parked_retry_applies_once(
    store: EventStore, tmp_path: Path
) -> None:
    w = Workload(4)
    await w.append(store, 30)
    positions = [e.position async for e in store.read_all()]
    apply = Counting()
    apply.fail_at = positions[3]
    proj = make(tmp_path, apply)
    r = ProcessorRunner(store, proj, on_failure="park", retry=FAST, idle_interval=0.05)
    await r.start()
    await r.drain()
    assert "junk" not in totals(proj)
    assert apply.fail_at not in apply.applied
    apply.fail_at = None
    await retry_parked(store, "totals-db")
    await eventually(lambda: not r._rec.parked, 20, "the retry")
    await r.stop()
    assert sorted(apply.applied) == positions
    assert totals(proj) == await direct_fold(store)


async def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        SQLiteProjection("x", tmp_path / "a.db", lambda c, e: None, table="drop table")
    with pytest.raises(ValidationError):
        SQLiteProjection("x", sqlite3.connect(tmp_path / "b.db"), lambda c, e: None)
    with pytest.raises(ValidationError):
        SQLiteProjection("x", tmp_path / "c.db", "not callable")  # type: ignore[arg-type]
    p = SQLiteProjection("x", tmp_path / "d.db", lambda c, e: None)
    assert p.checkpoint() == 0
    p.close()


async def test_a_lock_held_elsewhere_is_waited_for_without_blocking_the_loop(
    store: EventStore, tmp_path: Path
) -> None:
    # Another process (here: connection) frozen inside a write transaction must not
    # stall the node's event loop (heartbeats, leases) while the projection waits.
    import asyncio

    w = Workload(3)
    await w.append(store, 20)
    apply = Counting()
    proj = make(tmp_path, apply)
    other = sqlite3.connect(tmp_path / "read.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    runner = ProcessorRunner(store, proj, idle_interval=0.05)
    await runner.start()
    ticks = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    worst = 0.0
    while loop.time() - start < 1.0:
        before = loop.time()
        await asyncio.sleep(0.01)
        worst = max(worst, loop.time() - before)
        ticks += 1
    assert apply.applied == [], "nothing applies while the lock is held elsewhere"
    assert worst < 0.5, f"the loop was blocked for {worst:.2f} s"
    other.execute("COMMIT")
    other.close()
    head = await store.last_position()
    await eventually(lambda: proj.checkpoint() == head, 20, "applied after the lock is freed")
    await runner.stop()
    assert len(apply.applied) == 20
    assert totals(proj) == await direct_fold(store)
    with pytest.raises(ValidationError):
        SQLiteProjection("x", tmp_path / "e.db", lambda c, e: None, lock_timeout=-1)
