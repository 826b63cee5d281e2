"""Event stores: the protocols, the in-memory, SQLite and JetStream stores, and a factory."""

from __future__ import annotations

from aether.store.base import EventStore, SnapshotStore
from aether.store.jetstream import JetStreamEventStore
from aether.store.memory import InMemoryEventStore
from aether.store.sqlite import SQLiteEventStore

__all__ = [
    "EventStore",
    "InMemoryEventStore",
    "JetStreamEventStore",
    "SQLiteEventStore",
    "SnapshotStore",
    "open_store",
]


async def open_store(settings: object) -> EventStore:
    """Open the event store `settings` select (memory, sqlite or jetstream).

    The returned store owns what it opened (file, NATS connection): ``await store.close()``.
    It also implements `SnapshotStore`.
    """
    from aether.config import Settings

    if not isinstance(settings, Settings):
        raise TypeError("settings must be an aether.Settings")
    kind = settings.resolved_store
    if kind == "memory":
        return InMemoryEventStore(max_event_bytes=settings.max_event_bytes)
    if kind == "sqlite":
        from aether.store.sqlite import SQLiteEventStore

        return await SQLiteEventStore.open(settings)
    from aether.store.jetstream import JetStreamEventStore

    return await JetStreamEventStore.open(settings)
