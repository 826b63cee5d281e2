"""`SQLiteEventStore`: the embedded default store — one file, WAL, durable on acknowledgement.

Layout (several namespaces can share one file; every query is filtered by namespace):

- ``aether_events(position INTEGER PRIMARY KEY, namespace, actor_id, version, payload,
  slice)`` with ``UNIQUE (namespace, actor_id, version)``; ``payload`` is the event's wire
  form (`aether.event.encode_event`), ``slice`` is `aether.subjects.slice_of` of the actor,
  indexed with the position so reads of some slices select their rows in the index.
  ``position`` is global to the file, so positions of one namespace strictly increase but
  may skip numbers used by another namespace.
- ``aether_actors(namespace, actor_id, version)``: each actor's latest version, advanced
  by a trigger in the very statement that inserts its events, so `get_latest_version` and
  `list_actors` never scan the events.
- ``aether_snapshots(namespace, actor_id, version, payload)``: the latest snapshot.
- ``aether_tracking(namespace, key, position, revision, data)``: tracking records,
  written in the same transaction as the unit of work they come with.

A file made by aether 0.1 (no ``slice`` column) is migrated in place when it is opened,
in one transaction: the column is added, filled and indexed.

Writes go through one writer thread that commits every pending request in one
transaction (see `aether.store._sqlite_writer`). Reads run on their own connections in a
small thread pool, page by page, so the event loop never blocks on the disk and memory
stays constant however long an actor's history is.

A row whose payload does not decode, or whose actor or version differs from its columns
(written by something other than aether), makes an actor read raise `CorruptEventError`;
namespace scans (`read_all`, `watch`) skip it, count it in `corrupt_skipped` and log a
warning on the ``aether.store`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import orjson

from aether.config import Settings
from aether.errors import (
    AetherError,
    ConfigError,
    CorruptEventError,
    InvalidEventError,
    StoreClosedError,
)
from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    Snapshot,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
)
from aether.store._sqlite_writer import (
    TRIGGER,
    AppendRequest,
    GroupCommitWriter,
    SnapshotRequest,
    TrackingRow,
    UnitRequest,
    WriterStats,
)
from aether.store.base import (
    Tracking,
    TrackingRecord,
    check_nonnegative_int,
    check_tracking,
    check_unit,
)
from aether.subjects import (
    SLICE_COUNT,
    Slices,
    normalize_slices,
    slice_of,
    validate_actor_id,
    validate_namespace,
)

T = TypeVar("T")
log = logging.getLogger("aether.store")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
PAGE_SIZE = 1000
"""Rows fetched per read query (memory per open iterator is about two pages)."""
POLL_MIN = 0.002
POLL_MAX = 0.1
"""`watch` polls for rows from other processes, backing off from POLL_MIN to POLL_MAX s."""
DEFAULT_MAX_BATCH = 1000
"""The default unit-of-work limit: the same as JetStream's atomic batch, for parity."""

_EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS aether_events (
        position INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        payload BLOB NOT NULL,
        slice INTEGER NOT NULL,
        UNIQUE (namespace, actor_id, version)
    )"""
_SCHEMA = (
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
    """CREATE TABLE IF NOT EXISTS aether_tracking (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        position INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID""",
    TRIGGER,
)
_SLICE_INDEX = (
    "CREATE INDEX IF NOT EXISTS aether_events_by_slice "
    "ON aether_events (namespace, slice, position)"
)
_REQUIRE_SLICE = """CREATE TRIGGER IF NOT EXISTS aether_events_require_slice
    BEFORE INSERT ON aether_events WHEN NEW.slice < 0
    BEGIN
        SELECT RAISE(ABORT,
            'aether: a writer older than the slice layout (aether 0.1) appended; upgrade it');
    END"""
"""On a migrated file the column has a default (-1): refuse rows of an old writer."""

_ROW = "position, payload, actor_id, version"
_ACTOR_PAGE = (
    f"SELECT version, {_ROW} FROM aether_events WHERE namespace = ? "
    "AND actor_id = ? AND version >= ? AND version <= ? ORDER BY version LIMIT ?"
)
_ALL_PAGE = (
    f"SELECT position, {_ROW} FROM aether_events WHERE namespace = ? "
    "AND position >= ? AND position <= ? ORDER BY position LIMIT ?"
)
_MAX_POSITION = "SELECT max(position) FROM aether_events WHERE namespace = ?"
_LATEST = "SELECT version FROM aether_actors WHERE namespace = ? AND actor_id = ?"
_ACTORS = "SELECT actor_id, version FROM aether_actors WHERE namespace = ? ORDER BY actor_id"
_SNAPSHOT = "SELECT payload FROM aether_snapshots WHERE namespace = ? AND actor_id = ?"
_TRACKING = "SELECT position, revision, data FROM aether_tracking WHERE namespace = ? AND key = ?"

_MAX_VERSION = 2**63 - 1

Row = tuple[int, int, bytes, str, int]
"""A page row: ``(sort key, position, payload, actor_id, version)``."""


def _slice_page(count: int) -> str:
    """The page query over `count` slices: one index range per slice, bounded positions.

    The planner would rather walk the namespace index (no sort), reading every row of
    the window; the slice index reads only the wanted rows and sorts about a page.
    """
    marks = ", ".join("?" * count)
    return (
        f"SELECT position, {_ROW} FROM aether_events INDEXED BY aether_events_by_slice "
        f"WHERE namespace = ? AND slice IN ({marks}) AND position >= ? AND position <= ? "
        "ORDER BY position LIMIT ?"
    )


def migrate_schema(conn: sqlite3.Connection) -> bool:
    """Create the tables, or bring a 0.1 file up to the slice layout; True if migrated.

    Runs in one transaction on `conn` (autocommit mode): a failure leaves the file as it
    was. The migration adds the ``slice`` column, fills it for every actor and indexes it.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        migrated = False
        columns = [r[1] for r in conn.execute("PRAGMA table_info(aether_events)")]
        if columns and "slice" not in columns:
            conn.execute("ALTER TABLE aether_events ADD COLUMN slice INTEGER NOT NULL DEFAULT -1")
            actors = conn.execute("SELECT DISTINCT namespace, actor_id FROM aether_events")
            conn.executemany(
                "UPDATE aether_events SET slice = ? WHERE namespace = ? AND actor_id = ?",
                [(_slice_or_zero(a), ns, a) for ns, a in actors.fetchall()],
            )
            conn.execute(_REQUIRE_SLICE)
            migrated = True
        elif not columns:
            conn.execute(_EVENTS_TABLE)
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(_SLICE_INDEX)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return migrated


def _slice_or_zero(actor_id: object) -> int:
    # A foreign row's actor may not be a valid id; its reads report it as corrupt.
    try:
        return slice_of(actor_id)  # type: ignore[arg-type]
    except AetherError:
        return 0


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
        max_batch: int = DEFAULT_MAX_BATCH,
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
        if type(max_batch) is not int or max_batch < 1:
            raise ConfigError("sqlite.max_batch: must be a positive integer")
        self.path = str(Path(path_str).expanduser())
        self.namespace = namespace
        self.synchronous = sync
        self.corrupt_skipped = 0
        """Rows that namespace scans skipped because they are not aether events."""
        self._max = max_event_bytes
        self._max_batch = max_batch
        self._busy = busy_timeout
        self._closed = False
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect_sqlite(self.path, synchronous=sync, busy_timeout=busy_timeout)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"sqlite.path: cannot open {self.path}: {e}") from None
        try:
            if migrate_schema(conn):
                log.warning("SQLite store %s: migrated to the slice layout", self.path)
        except sqlite3.Error as e:
            conn.close()
            raise ConfigError(f"sqlite.path: cannot use {self.path}: {e}") from None
        except BaseException:
            conn.close()
            raise
        self._writer = GroupCommitWriter(conn, namespace, self.path, self._notify_watchers)
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._call_lock = threading.Lock()
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
        ``max_batch``, ``busy_timeout``, ``readers``.
        """
        return await asyncio.to_thread(cls, path, namespace, **options)

    @property
    def max_batch(self) -> int:
        """The most events one `save_events` call appends (default 1000, like JetStream)."""
        return self._max_batch

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
        actor = event.actor_id
        rows = [(event.version, event.id, payload)]
        positions = await self._submit(AppendRequest, actor, slice_of(actor), rows)
        return event.with_position(positions[0])

    async def save_events(
        self, events: Sequence[Event], *, tracking: Tracking | None = None
    ) -> list[Event]:
        """Append a unit of work (one or more actors), all or nothing; durable on return.

        With `tracking`, the tracking record is committed in the same transaction (fenced
        on ``tracking.expected``); `events` may then be empty.
        """
        self._check_open()
        track: TrackingRow | None = None
        if tracking is not None:
            check_tracking(tracking)
            try:
                data = orjson.dumps(tracking.data)
            except TypeError as e:
                raise InvalidEventError("tracking.data", f"must be JSON values: {e}") from None
            track = TrackingRow(tracking.key, tracking.position, tracking.expected, data)
            if isinstance(events, Sequence) and not isinstance(events, Event) and not events:
                await self._submit(UnitRequest, [], track)
                return []
        groups = check_unit(events, self._max_batch)
        if track is None and len(groups) == 1:
            actor = events[0].actor_id
            rows = [(e.version, e.id, encode_event(e, self._max)) for e in events]
            positions = await self._submit(AppendRequest, actor, slice_of(actor), rows)
        else:
            slices = {a: slice_of(a) for a in groups}
            unit = [
                (e.actor_id, e.version, slices[e.actor_id], encode_event(e, self._max))
                for e in events
            ]
            positions = await self._submit(UnitRequest, unit, track)
        return [e.with_position(p) for e, p in zip(events, positions, strict=True)]

    async def _submit(self, kind: Callable[..., Any], *args: Any) -> list[int]:
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._writer.submit(kind(*args, loop, future))
        return await future

    async def get_tracking(self, key: str) -> TrackingRecord | None:
        """The tracking record `key` of this namespace, or None."""
        row = await self._read_one(_TRACKING, (self.namespace, key))
        if row is None:
            return None
        return TrackingRecord(key, int(row[0]), int(row[1]), orjson.loads(row[2]))

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
        self._check_open()
        validate_actor_id(actor_id)
        check_nonnegative_int(from_version, "from_version")
        end = _MAX_VERSION
        if to_version is not None:
            end = check_nonnegative_int(to_version, "to_version")
        key = (self.namespace, actor_id)
        return self._paged(_ACTOR_PAGE, key, max(from_version, 1), end, strict=True)

    def read_all(
        self, from_position: int = 0, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Every event (of `slices`, if given) with ``position >= from_position``, in order.

        Events of some slices are selected in the ``(namespace, slice, position)`` index.
        """
        self._check_open()
        start = max(check_nonnegative_int(from_position, "from_position"), 1)
        selected = normalize_slices(slices)
        if selected is None:
            return self._paged(_ALL_PAGE, (self.namespace,), start, _MAX_VERSION, strict=False)
        return self._scan(start, selected, follow=False)

    async def _paged(
        self, sql: str, key: tuple[object, ...], start: int, end: int, *, strict: bool
    ) -> AsyncIterator[Event]:
        """Yield the rows of `sql` page by page, fetching the next page in a reader thread
        while the caller consumes this one."""
        loop = asyncio.get_running_loop()
        fetch = self._fetch_rows
        pending = self._in_reader(loop, fetch, sql, (*key, start, end, PAGE_SIZE))
        try:
            while True:
                rows = await pending
                if len(rows) == PAGE_SIZE:
                    after = rows[-1][0] + 1
                    pending = self._in_reader(loop, fetch, sql, (*key, after, end, PAGE_SIZE))
                for row in rows:
                    event = self._decode(row, strict)
                    if event is not None:
                        yield event
                if len(rows) < PAGE_SIZE:
                    return
        finally:
            if not pending.done():
                pending.add_done_callback(_consume)

    async def _scan(
        self, start: int, selected: frozenset[int] | None, *, follow: bool
    ) -> AsyncIterator[Event]:
        """Events from `start` on (of `selected` slices), in position order; with `follow`,
        then new rows as they commit, until the store closes.

        Each step reads the namespace's last position and then rows up to it: every row
        at or below a committed last position is committed (positions are assigned under
        the write lock), so moving past a window never skips a row committed later.
        """
        loop = asyncio.get_running_loop()
        sql = _ALL_PAGE
        prefix: tuple[object, ...] = (self.namespace,)
        window = _MAX_VERSION
        if selected is not None:
            sql = _slice_page(len(selected))
            prefix = (self.namespace, *sorted(selected))
            window = max(PAGE_SIZE, PAGE_SIZE * SLICE_COUNT // len(selected))
        wake = asyncio.Event()
        token = (loop, wake)
        self._watchers.add(token)
        position = start
        known = -1  # the last position read for the current pass (-1: read it again)
        delay = POLL_MIN
        try:
            while not self._closed:
                if known < 0:
                    wake.clear()  # a commit from now on wakes the wait below
                try:
                    top, rows = await self._in_reader(
                        loop, self._fetch_window, sql, prefix, position, window, known
                    )
                except StoreClosedError:
                    if follow:
                        return
                    raise
                for row in rows:
                    event = self._decode(row, strict=False)
                    if event is not None:
                        yield event
                if top >= position:
                    if len(rows) == PAGE_SIZE:
                        position = rows[-1][1] + 1
                    else:
                        position = min(position + window - 1, top) + 1
                    if position <= top:
                        known = top
                        continue
                known = -1
                if not follow:
                    return
                if rows:
                    delay = POLL_MIN
                    continue
                try:
                    async with asyncio.timeout(delay):
                        await wake.wait()
                    delay = POLL_MIN
                except TimeoutError:
                    delay = min(delay * 2, POLL_MAX)
        finally:
            self._watchers.discard(token)

    def _fetch_window(
        self,
        sql: str,
        prefix: tuple[object, ...],
        position: int,
        window: int,
        top: int,
    ) -> tuple[int, list[Row]]:
        """In a reader thread: the last position (unless known) and the next page up to it."""
        conn = self._conn()
        if top < 0:
            top = int(conn.execute(_MAX_POSITION, (self.namespace,)).fetchone()[0] or 0)
        if top < position:
            return top, []
        hi = min(position + window - 1, top)
        return top, conn.execute(sql, (*prefix, position, hi, PAGE_SIZE)).fetchall()

    def _decode(self, row: Row, strict: bool) -> Event | None:
        """The event of `row`; a foreign or corrupt row raises (`strict`) or is skipped."""
        _, position, payload, actor_id, version = row
        try:
            event = decode_event(payload, position)
        except Exception as e:  # not JSON, missing keys, wrong types: not an aether event
            reason = f"payload does not decode ({type(e).__name__}: {e})"
        else:
            if event.actor_id == actor_id and event.version == version:
                return event
            reason = (
                f"payload is actor {event.actor_id!r} version {event.version!r}, "
                f"the row says {actor_id!r} version {version!r}"
            )
        if strict:
            raise CorruptEventError(position, reason)
        self.corrupt_skipped += 1
        log.warning("SQLite store %s: skipped row %d: %s", self.path, position, reason)
        return None

    async def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version (0 if none), from the actors table: no scan."""
        validate_actor_id(actor_id)
        row = await self._read_one(_LATEST, (self.namespace, actor_id))
        return 0 if row is None else int(row[0])

    async def last_position(self) -> int:
        """The highest position of the namespace (0 when empty): one index lookup."""
        row = await self._read_one(_MAX_POSITION, (self.namespace,))
        return int(row[0] or 0)

    async def list_actors(self) -> dict[str, int]:
        """Every actor id of the namespace with its latest version."""
        rows = await self._read(lambda c: c.execute(_ACTORS, (self.namespace,)).fetchall())
        return {a: int(v) for a, v in rows}

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's latest snapshot, or None."""
        validate_actor_id(actor_id)
        row = await self._read_one(_SNAPSHOT, (self.namespace, actor_id))
        return None if row is None else decode_snapshot(row[0])

    def watch(
        self, from_position: int | None = None, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Events from `from_position` (None: after the last one now), then new rows as
        they commit, until the store is closed; of `slices` only, if given.

        The start is fixed by this call (None reads the last position now, one index
        lookup on the calling thread), so an event saved after `watch()` returned is
        delivered even if the first iteration comes later. Rows committed by this store
        wake the watcher at once; rows committed by other processes are found by polling,
        every 2 ms when busy, backing off to 100 ms when idle.
        """
        self._check_open()
        selected = normalize_slices(slices)
        if from_position is None:
            start = self._last_position_now() + 1
        else:
            start = max(check_nonnegative_int(from_position, "from_position"), 1)
        return self._scan(start, selected, follow=True)

    def _last_position_now(self) -> int:
        with self._call_lock:
            conn = self._conn()
            try:
                return int(conn.execute(_MAX_POSITION, (self.namespace,)).fetchone()[0] or 0)
            except sqlite3.Error as e:
                raise AetherError(f"SQLite store {self.path}: {e}") from None

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

    def _fetch_rows(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        # Decoding happens on the caller's side: measured faster than decoding here,
        # as the GIL then never goes back and forth within a page.
        return self._conn().execute(sql, params).fetchall()

    def _in_reader(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Run `fn(*args)` in a reader thread (StoreClosedError once the store is closed)."""
        self._check_open()
        try:
            return loop.run_in_executor(self._readers, self._guarded, fn, args)
        except RuntimeError:  # the pool is shut down: the store is closing
            raise StoreClosedError(f"SQLite store {self.path}: the store is closed") from None

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
            raise StoreClosedError(f"SQLite store {self.path}: the store is closed")

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Commit what is queued, stop the writer thread, close every connection.

        Afterwards every call raises `StoreClosedError` and every `watch` ends.
        """
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
        with self._call_lock:
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


__all__ = ["DEFAULT_MAX_BATCH", "SQLiteEventStore", "WriterStats", "connect_sqlite"]
