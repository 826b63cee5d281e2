"""Opening a store that must exist already: ``open_store(settings, create=False)``.

For readers (replay, versions, tail, snapshot inspection) that must never create an
empty store on a mistyped path or namespace:

- SQLite: the file must exist and hold aether's tables (it is inspected read-only,
  nothing is created), and the namespace must have an event or a snapshot in it (an
  SQLite namespace has no other trace of existing);
- JetStream: the namespace's events stream must exist (asked for before anything is
  created, on the connection the store then uses);
- memory: a new in-memory store (there is nothing to look for).

Otherwise `NotFoundError`, naming the path or namespace looked for.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aether.errors import NotFoundError

if TYPE_CHECKING:
    from aether.config import Settings


async def open_existing(settings: Settings) -> Any:
    """The store `settings` select, opened only if it (and its namespace) exists."""
    kind = settings.resolved_store
    if kind == "memory":
        from aether.store.memory import InMemoryEventStore

        return InMemoryEventStore(max_event_bytes=settings.max_event_bytes)
    if kind == "sqlite":
        from aether.store.sqlite import SQLiteEventStore

        await asyncio.to_thread(check_sqlite, settings.sqlite.path, settings.namespace)
        return await SQLiteEventStore.open(settings)
    return await _open_jetstream(settings)


def check_sqlite(path: str, namespace: str) -> None:
    """Raise `NotFoundError` unless `path` is an aether SQLite file holding `namespace`."""
    file = Path(path).expanduser().absolute()
    if not file.is_file():
        raise NotFoundError(f"no SQLite store at {file}: the file does not exist")
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise NotFoundError(f"cannot read the SQLite store at {file}: {e}") from None
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "aether_events" not in tables:
            raise NotFoundError(f"{file} is not an aether store (it has no aether_events table)")
        found = conn.execute(
            "SELECT 1 FROM aether_events WHERE namespace = ? LIMIT 1", (namespace,)
        ).fetchone()
        if found is None and "aether_snapshots" in tables:
            found = conn.execute(
                "SELECT 1 FROM aether_snapshots WHERE namespace = ? LIMIT 1", (namespace,)
            ).fetchone()
        if found is None:
            raise NotFoundError(f"namespace {namespace!r} has no events in the SQLite store {file}")
    except sqlite3.OperationalError as e:  # exists, but cannot be read (permissions, lock)
        raise NotFoundError(f"cannot read the SQLite store at {file}: {e}") from None
    except sqlite3.DatabaseError as e:  # "file is not a database"
        raise NotFoundError(f"{file} is not an aether SQLite store ({e})") from None
    finally:
        conn.close()


async def _open_jetstream(settings: Settings) -> Any:
    from aether._nats.jsapi import JsApi
    from aether.connect import connect
    from aether.store.jetstream import JetStreamEventStore
    from aether.subjects import stream_name

    nc = await connect(settings)
    try:
        stream = stream_name(settings.namespace)
        api = JsApi(nc, timeout=settings.jetstream.publish_timeout)
        if await api.stream_info(stream) is None:
            raise NotFoundError(
                f"namespace {settings.namespace!r} does not exist on NATS (no stream {stream})"
            )
        store = JetStreamEventStore(nc, settings=settings, owns_connection=True)
        await store.setup()
    except BaseException:
        await nc.close()
        raise
    return store
