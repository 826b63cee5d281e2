"""Shared helpers of the bus tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aether.bus import Subscription
from aether.event import Event

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (subprocesses run there so ``tests.*`` imports work)."""

NESTED = {
    "order": {"lines": [{"sku": "a", "qty": 2, "price": 9.5}], "note": None},
    "ok": True,
    "whole": 3.0,
}


def seq_event(seq: int, actor: str = "order-1", event_type: str = "Seq") -> Event:
    """An event whose data carries its sequence number (an int), a float and nesting."""
    return Event(event_type, actor, seq, {"seq": seq, "ratio": seq / 2 + 0.25, **NESTED})


async def take(sub: Subscription, n: int, limit: float = 20.0) -> list[Event]:
    """The next `n` events of `sub` (fails the test after `limit` seconds)."""
    out: list[Event] = []

    async def collect() -> None:
        async for e in sub:
            out.append(e)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), limit)
    return out


async def drain_until_accounted(
    sub: Subscription, published: int, limit: float = 20.0
) -> list[Event]:
    """Consume until every published event is either delivered or counted as dropped."""
    out: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while sub.delivered + sub.dropped < published:
        if loop.time() > deadline:
            raise AssertionError(
                f"only {sub.delivered} delivered + {sub.dropped} dropped of {published}"
            )
        e = sub.get_nowait()
        if e is None:
            await asyncio.sleep(0.01)
            continue
        out.append(e)
    return out


def assert_seq_event(e: Event, seq: int) -> None:
    """`e` is `seq_event(seq)` with every JSON type intact."""
    assert e.version == seq
    assert type(e.data["seq"]) is int and e.data["seq"] == seq
    assert type(e.data["ratio"]) is float and e.data["ratio"] == seq / 2 + 0.25
    assert e.data["order"] == NESTED["order"]
    assert type(e.data["order"]["lines"][0]["qty"]) is int
    assert type(e.data["order"]["lines"][0]["price"]) is float
    assert e.data["ok"] is True
    assert type(e.data["whole"]) is float and e.data["whole"] == 3.0
