"""`SQLiteEventStore`: the embedded default store — one file, WAL, durable on acknowledgement.

Layout (several namespaces can share one file; every query is filtered by namespace):

- ``aether_events(position INTEGER PRIMARY KEY, namespace, actor_id, version, payload)``
  with ``UNIQUE (namespace, actor_id, version)``; ``payload`` is the event's wire form
  (`aether.event.encode_event`). ``position`` is global to the file, so positions of one
  namespace strictly increase but may skip numbers used by another namespace.
- ``aether_actors(namespace, actor_id, version)``: each actor's latest version, advanced
  by a trigger in the very statement that inserts its events, so `get_latest_version` and
  `list_actors` never scan the events.
- ``aether_snapshots(namespace, actor_id, version, payload)``: the latest snapshot.

Writes go through one writer thread that commits every pending request in one
transaction (see `aether.store.sqlite_writer`). Reads run on their own connections in a
small thread pool, page by page, so the event loop never blocks on the disk and memory
stays constant however long an actor's history is.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from aether.config import Settings
from aether.errors import AetherError, ConfigError
from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    Snapshot,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
)
from aether.store.base import check_batch, check_nonnegative_int
from aether.store.sqlite_writer import (
    TRIGGER,
    AppendRequest,
    GroupCommitWriter,
    SnapshotRequest,
    WriterStats,
)
from aether.subjects import validate_actor_id, validate_namespace

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
PAGE_SIZE = 1000
"""Rows fetched per read query (memory per open iterator is about two pages)."""
POLL_MIN = 0.002
POLL_MAX = 0.1
"""`watch` polls for rows from other processes, backing off from POLL_MIN to POLL_MAX s."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS aether_events (
        position INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        payload BLOB NOT NULL,
        UNIQUE (namespace, actor_id, version)
    )""",
    "CREATE INDEX IF NOT EXISTS aether_events_by_namespace ON aether_events (namespace, position)",
    """CREATE TABLE IF NOT EXISTS aether_actors (
        namespace TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (namespace, actor_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS aether_snapshots (
        namespace TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (namespace, actor_id)
    ) WITHOUT ROWID""",
    TRIGGER,
)

_ACTOR_PAGE = (
    "SELECT version, position, payload FROM aether_events WHERE namespace = ? "
    "AND actor_id = ? AND version >= ? AND version <= ? ORDER BY version LIMIT ?"
)
_ALL_PAGE = (
    "SELECT position, position, payload FROM aether_events WHERE namespace = ? "
    "AND position >= ? AND position <= ? ORDER BY position LIMIT ?"
)
_MAX_POSITION = "SELECT max(position) FROM aether_events WHERE namespace = ?"
_LATEST = "SELECT version FROM aether_actors WHERE namespace = ? AND actor_id = ?"
_ACTORS = "SELECT actor_id, version FROM aether_actors WHERE namespace = ? ORDER BY actor_id"
_SNAPSHOT = "SELECT payload FROM aether_snapshots WHERE namespace = ? AND actor_id = ?"

_MAX_VERSION = 2**63 - 1


def connect_sqlite(
    path: str, *, synchronous: str = "FULL", busy_timeout: float = 10.0, read_only: bool = False
) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, `synchronous` and a busy timeout applied."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout,
        cached_statements=64,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"sqlite.path: {path} cannot use WAL journaling (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        if read_only:
            conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn


class SQLiteEventStore:
    """An `EventStore` and `SnapshotStore` in one SQLite file (WAL, group commit).

    ``SQLiteEventStore(path, namespace)`` opens (and creates) the file directly; from
    async code prefer ``await SQLiteEventStore.connect(path, namespace)`` or
    ``await SQLiteEventStore.open(settings)``, which do the file work off the event loop.
    Close it with ``await store.close()`` (or ``async with``).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        namespace: str = "default",
        *,
        synchronous: str = "FULL",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        busy_timeout: float = 10.0,
        readers: int = 2,
    ) -> None:
        validate_namespace(namespace)
        sync = str(synchronous).upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ConfigError(f"sqlite.synchronous: must be one of {', '.join(SYNCHRONOUS_MODES)}")
        path_str = str(path)
        if not path_str or path_str == ":memory:" or path_str.startswith("file::memory:"):
            raise ConfigError("sqlite.path: must be a file (use the memory store for memory)")
        if type(max_event_bytes) is not int or max_event_bytes < 1:
            raise ConfigError("max_event_bytes: must be a positive integer")
        self.path = str(Path(path_str).expanduser())
        self.namespace = namespace
        self.synchronous = sync
        self._max = max_event_bytes
        self._busy = busy_timeout
        self._closed = False
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect_sqlite(self.path, synchronous=sync, busy_timeout=busy_timeout)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"sqlite.path: cannot open {self.path}: {e}") from None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            conn.close()
            raise ConfigError(f"sqlite.path: cannot use {self.path}: {e}") from None
        except BaseException:
            conn.close()
            raise
        self._writer = GroupCommitWriter(conn, namespace, self.path, self._notify_watchers)
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(
            max_workers=max(1, readers), thread_name_prefix=f"aether-sqlite-read-{namespace}"
        )

    @classmethod
    async def open(cls, settings: Settings) -> SQLiteEventStore:
        """Open the store `settings` describe (``sqlite.path``, ``namespace``, ...)."""
        if not isinstance(settings, Settings):
            raise TypeError("settings must be an aether.Settings")
        return await cls.connect(
            settings.sqlite.path,
            settings.namespace,
            synchronous=settings.sqlite.synchronous,
            max_event_bytes=settings.max_event_bytes,
        )

    @classmethod
    async def connect(
        cls,
        path: str | PathLike[str],
        namespace: str = "default",
        **options: Any,
    ) -> SQLiteEventStore:
        """Open (creating if needed) the store in file `path` for `namespace`, off the loop.

        `options` are the constructor's: ``synchronous``, ``max_event_bytes``,
        ``busy_timeout``, ``readers``.
        """
        return await asyncio.to_thread(cls, path, namespace, **options)

    async def pragmas(self) -> dict[str, object]:
        """The SQLite settings in effect on this store's connections (for checks and tests).

        ``journal_mode``, ``synchronous`` (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA) and
        ``busy_timeout`` (ms), read on a reader connection, set up like the writer's.
        """

        def read(c: sqlite3.Connection) -> dict[str, object]:
            return {
                name: c.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout")
            }

        return await self._read(read)

    @property
    def stats(self) -> WriterStats:
        """Group-commit counters: commits, requests, events, conflicts, max_batch, bulk_appends."""
        return self._writer.stats

    # -- writes ----------------------------------------------------------------------------

    async def save_event(self, event: Event) -> Event:
        """Append `event` iff it is the actor's next version; durable when this returns."""
        payload = encode_event(event, self._max)
        positions = await self._submit_append(event.actor_id, [(event.version, event.id, payload)])
        return event.with_position(positions[0])

    async def save_events(self, events: Sequence[Event]) -> list[Event]:
        """Append consecutive events of one actor, all or nothing."""
        actor_id = check_batch(events)
        rows = [(e.version, e.id, encode_event(e, self._max)) for e in events]
        positions = await self._submit_append(actor_id, rows)
        return [e.with_position(p) for e, p in zip(events, positions, strict=True)]

    async def _submit_append(self, actor_id: str, rows: list[tuple[int, str, bytes]]) -> list[int]:
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._writer.submit(AppendRequest(actor_id, rows, loop, future))
        return await future

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` unless a newer one is stored; refused beyond the latest event."""
        payload = encode_snapshot(snapshot)
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._writer.submit(
            SnapshotRequest(snapshot.actor_id, snapshot.version, payload, loop, future)
        )
        await future

    # -- reads -----------------------------------------------------------------------------

    async def get_events(self, actor_id: str, from_version: int = 0) -> list[Event]:
        """The actor's events with ``version >= from_version``, in version order."""
        return [e async for e in self.iter_events(actor_id, from_version)]

    def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        """Stream the actor's events in ``[from_version, to_version]``, a page at a time."""
        validate_actor_id(actor_id)
        check_nonnegative_int(from_version, "from_version")
        end = _MAX_VERSION
        if to_version is not None:
            end = check_nonnegative_int(to_version, "to_version")
        return self._paged(_ACTOR_PAGE, (self.namespace, actor_id), max(from_version, 1), end)

    def read_all(self, from_position: int = 0) -> AsyncIterator[Event]:
        """Every event of the namespace with ``position >= from_position``, in order."""
        check_nonnegative_int(from_position, "from_position")
        return self._paged(_ALL_PAGE, (self.namespace,), max(from_position, 1), _MAX_VERSION)

    async def _paged(
        self, sql: str, key: tuple[object, ...], start: int, end: int
    ) -> AsyncIterator[Event]:
        """Yield the rows of `sql` page by page, fetching the next page in a reader thread
        while the caller consumes this one; rows are ``(sort key, position, payload)``."""
        loop = asyncio.get_running_loop()
        fetch = self._fetch_rows
        pending = self._in_reader(loop, fetch, sql, (*key, start, end, PAGE_SIZE))
        try:
            while True:
                rows = await pending
                if len(rows) == PAGE_SIZE:
                    after = rows[-1][0] + 1
                    pending = self._in_reader(loop, fetch, sql, (*key, after, end, PAGE_SIZE))
                for _, position, payload in rows:
                    yield decode_event(payload, position)
                if len(rows) < PAGE_SIZE:
                    return
        finally:
            if not pending.done():
                pending.add_done_callback(_consume)

    async def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version (0 if none), from the actors table: no scan."""
        validate_actor_id(actor_id)
        row = await self._read_one(_LATEST, (self.namespace, actor_id))
        return 0 if row is None else int(row[0])

    async def list_actors(self) -> dict[str, int]:
        """Every actor id of the namespace with its latest version."""
        rows = await self._read(lambda c: c.execute(_ACTORS, (self.namespace,)).fetchall())
        return {a: int(v) for a, v in rows}

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's latest snapshot, or None."""
        validate_actor_id(actor_id)
        row = await self._read_one(_SNAPSHOT, (self.namespace, actor_id))
        return None if row is None else decode_snapshot(row[0])

    async def watch(self, from_position: int | None = None) -> AsyncIterator[Event]:
        """Events from `from_position` (None: only new ones), then new rows as they commit.

        Rows committed by this store wake the watcher at once; rows committed by other
        processes are found by polling, every 2 ms when busy, backing off to 100 ms when
        idle. Ends when the store is closed.
        """
        if from_position is None:
            row = await self._read_one(_MAX_POSITION, (self.namespace,))
            position = (row[0] or 0) + 1 if row is not None else 1
        else:
            position = max(check_nonnegative_int(from_position, "from_position"), 1)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        token = (loop, wake)
        self._watchers.add(token)
        delay = POLL_MIN
        try:
            while not self._closed:
                wake.clear()
                params = (self.namespace, position, _MAX_VERSION, PAGE_SIZE)
                rows = await self._in_reader(loop, self._fetch_rows, _ALL_PAGE, params)
                if rows:
                    delay = POLL_MIN
                    for _, p, payload in rows:
                        position = p + 1
                        yield decode_event(payload, p)
                    continue
                try:
                    async with asyncio.timeout(delay):
                        await wake.wait()
                except TimeoutError:
                    delay = min(delay * 2, POLL_MAX)
        finally:
            self._watchers.discard(token)

    def _notify_watchers(self) -> None:
        """Called by the writer thread after each COMMIT that wrote something."""
        for loop, wake in tuple(self._watchers):
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(wake.set)

    # -- reader connections (one per reader thread) ---------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_sqlite(
                self.path, synchronous=self.synchronous, busy_timeout=self._busy, read_only=True
            )
            self._local.conn = conn
            self._reader_conns.append(conn)
        return conn

    def _fetch_rows(self, sql: str, params: tuple[object, ...]) -> list[tuple[int, int, bytes]]:
        # Decoding happens on the caller's side: measured faster than decoding here,
        # as the GIL then never goes back and forth within a page.
        return self._conn().execute(sql, params).fetchall()

    def _in_reader(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Run `fn(*args)` in a reader thread (AetherError once the store is closed)."""
        self._check_open()
        try:
            return loop.run_in_executor(self._readers, self._guarded, fn, args)
        except RuntimeError:  # the pool is shut down: the store is closing
            raise AetherError(f"SQLite store {self.path}: the store is closed") from None

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as e:
            raise AetherError(f"SQLite store {self.path}: {e}") from None

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await self._in_reader(loop, lambda: fn(self._conn()))

    async def _read_one(self, sql: str, params: tuple[object, ...]) -> Any:
        return await self._read(lambda c: c.execute(sql, params).fetchone())

    def _check_open(self) -> None:
        if self._closed:
            raise AetherError(f"SQLite store {self.path}: the store is closed")

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Commit what is queued, stop the writer thread, close every connection."""
        if self._closed:
            return
        self._closed = True
        self._writer.flush_pending(asyncio.get_running_loop())
        for loop, wake in tuple(self._watchers):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)
        await asyncio.to_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        self._writer.close()
        self._readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()
        self._reader_conns.clear()

    async def __aenter__(self) -> SQLiteEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r}, namespace={self.namespace!r})"


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned prefetch's outcome so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


__all__ = ["SQLiteEventStore", "WriterStats", "connect_sqlite"]
