"""Shared helpers of the bus tests (the event helpers are the contract kit's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aether.bus import Subscription
from aether.event import Event
from aether.testing.bus import assert_seq_event, seq_event, take

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (subprocesses run there so ``tests.*`` imports work)."""

__all__ = ["ROOT", "assert_seq_event", "drain_until_accounted", "seq_event", "take"]


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
