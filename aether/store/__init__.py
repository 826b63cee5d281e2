"""Event stores: the protocols, the in-memory, SQLite and JetStream stores, and a factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aether.store.base import EventStore, SnapshotStore, Store, Tracking, TrackingRecord
from aether.store.memory import InMemoryEventStore

if TYPE_CHECKING:
    from aether.store.jetstream import JetStreamEventStore
    from aether.store.sqlite import SQLiteEventStore

__all__ = [
    "EventStore",
    "InMemoryEventStore",
    "JetStreamEventStore",
    "SQLiteEventStore",
    "SnapshotStore",
    "Store",
    "Tracking",
    "TrackingRecord",
    "open_store",
]

_LAZY = {
    "JetStreamEventStore": "aether.store.jetstream",
    "SQLiteEventStore": "aether.store.sqlite",
}


def __getattr__(name: str) -> Any:
    # The JetStream store imports nats-py: load it (and SQLite) on first use only.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aether.store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


async def open_store(settings: object, *, create: bool = True) -> Store:
    """Open the event store `settings` select (memory, sqlite or jetstream).

    The returned store owns what it opened (file, NATS connection): ``await store.close()``
    or ``async with await open_store(settings) as store:``. It implements `EventStore` and
    `SnapshotStore` (the `Store` protocol). With ``create=False`` nothing is created: a
    missing SQLite file (or a namespace without events in it) or JetStream namespace
    raises `NotFoundError` naming it.
    """
    from aether.config import Settings

    if not isinstance(settings, Settings):
        raise TypeError("settings must be an aether.Settings")
    if not create:
        from aether.store._existing import open_existing

        return cast(Store, await open_existing(settings))
    kind = settings.resolved_store
    if kind == "memory":
        return InMemoryEventStore(max_event_bytes=settings.max_event_bytes)
    if kind == "sqlite":
        from aether.store.sqlite import SQLiteEventStore

        return await SQLiteEventStore.open(settings)
    from aether.store.jetstream import JetStreamEventStore

    return cast(Store, await JetStreamEventStore.open(settings))
