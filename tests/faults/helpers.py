"""Shared pieces of the fault tests: settings, retrying appends, the stream leader."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import nats
import orjson

from aether.config import Settings
from aether.errors import AetherError, InvalidEventError, VersionConflictError
from aether.event import Event
from aether.store.jetstream import JetStreamEventStore

_ns = itertools.count()

RETRY_FOR = 60.0
"""How long one append keeps retrying through an outage before the test fails."""


def fault_settings(urls: list[str], **overrides: Any) -> Settings:
    """Settings for a fresh namespace with short timeouts and quick reconnects."""
    values: dict[str, Any] = {
        "namespace": f"fault{next(_ns)}",
        "store": "jetstream",
        "nats.servers": urls,
        "nats.reconnect_wait": "100ms",
        "nats.reconnect_attempts": -1,
        "jetstream.publish_timeout": "1s",
    }
    values.update(overrides)
    return Settings.load(overrides=values, search_default_files=False)


def ev(actor: str, version: int, **data: Any) -> Event:
    """An event of `actor` at `version`."""
    return Event(event_type="Happened", actor_id=actor, version=version, data=data)


async def save_with_retries(store: JetStreamEventStore, event: Event) -> tuple[Event, int]:
    """Save `event`, re-saving the identical event after any failure but a conflict or bad
    input (the outcome of a failed attempt is unknown). Returns (stored, retries)."""
    deadline = time.monotonic() + RETRY_FOR
    retries = 0
    while True:
        try:
            return await store.save_event(event), retries
        except (VersionConflictError, InvalidEventError):
            raise
        except AetherError:
            if time.monotonic() > deadline:
                raise
            retries += 1
            await asyncio.sleep(0.05)


async def stream_leader(urls: list[str], stream: str) -> str:
    """The server name of the stream's current leader."""
    nc = await nats.connect(servers=urls, connect_timeout=2)
    try:
        msg = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
        return str(orjson.loads(msg.data)["cluster"]["leader"])
    finally:
        await nc.close()


async def assert_exactly_acked(
    store: JetStreamEventStore, acked: dict[str, list[str]], per_actor: int | None = None
) -> None:
    """Every actor holds exactly the acknowledged ids, at versions 1..n, once each."""
    total = 0
    for actor, ids in acked.items():
        events = await store.get_events(actor)
        assert [e.version for e in events] == list(range(1, len(events) + 1)), actor
        assert [e.id for e in events] == ids, actor
        if per_actor is not None:
            assert len(ids) == per_actor
        total += len(ids)
    everything = [e async for e in store.read_all()]
    assert len(everything) == total
    assert len({e.id for e in everything}) == total
    positions = [e.position for e in everything]
    assert positions == sorted(set(positions))
