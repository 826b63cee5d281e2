"""Group commit for `SQLiteEventStore`: one writer thread, one connection, one fsync a batch.

Callers on the event loop queue append (and snapshot) requests; everything queued in one
turn of the loop goes to the writer thread as one list. The writer takes *every* pending
request, checks and applies each on its own, and COMMITs them in one transaction, so 64
concurrent appends cost one fsync instead of 64. A request's future is resolved only after
COMMIT returned: a successful ``save_event`` is durable (``synchronous=FULL``).

The version check is never a cache lookup. Each event is written by one conditional
statement that inserts it only if the actor's stored latest version is ``version - 1``::

    INSERT INTO aether_events ... SELECT ... WHERE <latest of the actor> = version - 1

and a trigger advances the actor's row in ``aether_actors`` in the same statement. The
statement runs inside the write transaction (SQLite's write lock serializes writers of
every process on the file), and the UNIQUE key on ``(namespace, actor_id, version)`` backs
it up. A refused statement writes nothing, so one conflict fails only its own request.

When the writer is idle (nothing queued, the thread not committing), a small batch (up
to `_INLINE_MAX` requests) is committed on the loop's own thread instead, with SQLite's
busy wait off: that saves two thread wake-ups a save (most of the cost of a sequential
append above the fsync) and blocks the loop for one small commit at most. A bigger batch
goes to the thread, so the loop runs on while SQLite writes and syncs. If another
process holds the write lock, the batch goes to the thread, which waits for it. WAL
checkpoints, the one other slow step, never run inline: automatic checkpoints are off on
the writer's connection and the thread runs a passive one every `CHECKPOINT_FRAMES` WAL
frames (estimated), like SQLite's own default, so the WAL is reused from its start
instead of growing (a growing file makes every durable commit slower).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from aether.errors import (
    ActorConflict,
    AetherError,
    InvalidEventError,
    StoreClosedError,
    TrackingConflictError,
    VersionConflictError,
)
from aether.event import decode_event
from aether.store.base import same_event

MAX_BATCH = 4096
"""Most requests committed in one transaction (bounds latency under sustained load)."""

TRIGGER = """CREATE TRIGGER IF NOT EXISTS aether_events_advance_actor
    AFTER INSERT ON aether_events
    BEGIN
        INSERT INTO aether_actors (namespace, actor_id, version)
        VALUES (NEW.namespace, NEW.actor_id, NEW.version)
        ON CONFLICT (namespace, actor_id) DO UPDATE SET version = excluded.version;
    END"""
"""Keeps ``aether_actors`` at each actor's latest version, in the inserting statement."""

_APPEND_IF_NEXT = (
    "INSERT INTO aether_events (namespace, actor_id, version, payload, slice) "
    "SELECT ?1, ?2, ?3, ?4, ?5 WHERE coalesce((SELECT version FROM aether_actors "
    "WHERE namespace = ?1 AND actor_id = ?2), 0) = ?3 - 1"
)
_APPEND_MANY_IF_NEXT = (
    "INSERT INTO aether_events (namespace, actor_id, version, payload, slice) "
    "SELECT ?1, ?2, ?3 + j.key, CAST(j.value AS BLOB), ?5 FROM json_each(?4) AS j "
    "WHERE coalesce((SELECT version FROM aether_actors "
    "WHERE namespace = ?1 AND actor_id = ?2), 0) = ?3 - 1 ORDER BY j.key"
)
"""Consecutive events of one actor in one statement: all rows if the first is next, or none.

The SELECT is evaluated before any row is inserted (SQL's INSERT ... SELECT semantics;
SQLite materializes it since the table has a trigger), so every row sees the same check.
"""
_ACTORS_OF_POSITIONS = (
    "SELECT actor_id FROM aether_events WHERE position BETWEEN ? AND ? ORDER BY position"
)
_BULK_MIN = 4
"""Below this many single-event appends in a batch, one statement each is as fast."""
_APPEND = (
    "INSERT INTO aether_events (namespace, actor_id, version, payload, slice) "
    "VALUES (?, ?, ?, ?, ?)"
)
_LATEST = "SELECT version FROM aether_actors WHERE namespace = ? AND actor_id = ?"
_STORED_RANGE = (
    "SELECT version, position, payload FROM aether_events "
    "WHERE namespace = ? AND actor_id = ? AND version BETWEEN ? AND ? ORDER BY version"
)
_TRACKING_REVISION = "SELECT revision FROM aether_tracking WHERE namespace = ? AND key = ?"
_UPSERT_TRACKING = (
    "INSERT INTO aether_tracking (namespace, key, position, revision, data) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET "
    "position = excluded.position, revision = excluded.revision, data = excluded.data"
)
_UPSERT_SNAPSHOT = (
    "INSERT INTO aether_snapshots (namespace, actor_id, version, payload) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, actor_id) DO UPDATE SET version = excluded.version, "
    "payload = excluded.payload WHERE excluded.version >= aether_snapshots.version"
)


@dataclass(slots=True)
class AppendRequest:
    """Append encoded events ``(version, event_id, payload)`` of one actor, consecutively."""

    actor_id: str
    slice: int
    rows: list[tuple[int, str, bytes]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[int]]


@dataclass(frozen=True, slots=True)
class TrackingRow:
    """A tracking record to write with a unit: stored only if its revision is `expected`."""

    key: str
    position: int
    expected: int
    data: bytes


@dataclass(slots=True)
class UnitRequest:
    """A unit of work: encoded events ``(actor_id, version, slice, payload)`` of one or more
    actors (each actor's consecutive, in unit order) and an optional tracking record,
    committed all or nothing."""

    rows: list[tuple[str, int, int, bytes]]
    tracking: TrackingRow | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[int]]

    @property
    def actors(self) -> set[str]:
        """The actors the unit appends to."""
        return {r[0] for r in self.rows}


@dataclass(slots=True)
class SnapshotRequest:
    """Keep an encoded snapshot if it is not beyond the actor's latest event."""

    actor_id: str
    version: int
    payload: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


Request = AppendRequest | SnapshotRequest | UnitRequest


@dataclass(slots=True)
class WriterStats:
    """Counters of the group-commit writer (read them for monitoring and tests)."""

    commits: int = 0
    """Transactions committed that wrote something."""
    requests: int = 0
    """Append and snapshot requests handled (succeeded or failed)."""
    events: int = 0
    """Events written."""
    conflicts: int = 0
    """Appends refused with a version conflict."""
    max_batch: int = 0
    """Most requests handled in one transaction."""
    bulk_appends: int = 0
    """Appends written by the one-statement path (many actors in one INSERT)."""


_INLINE_MAX = 8
"""An idle writer commits a batch of at most this many requests on the loop's thread (no
thread hop for a lone writer); a bigger batch goes to the thread, so the loop goes on
with other tasks while SQLite works and syncs (it releases the GIL)."""

_STOP = object()
_CHECKPOINT = object()
CHECKPOINT_FRAMES = 1000
"""The writer thread checkpoints the WAL after about this many frames (pages) written,
as SQLite's automatic checkpoint does by default. The count is an over-estimate."""
_PAGE = 4096


class GroupCommitWriter:
    """The single writer of one store: a thread that commits queued requests in batches.

    `submit` is called on an event loop; requests submitted during one turn of that loop
    reach the thread together, so they share a transaction.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        path: str,
        on_commit: Callable[[], None],
    ) -> None:
        self._conn = conn
        self._ns = namespace
        self._path = path
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._pending: dict[asyncio.AbstractEventLoop, list[Request]] = {}
        self._use_bulk = True
        self._wrote = False
        self._solo = False
        self.inline = True
        """Whether an idle writer commits a loop's batch on the loop's thread."""
        self._conn_lock = threading.Lock()  # held by whoever uses the connection
        self._busy_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        self._unchecked = 0  # WAL frames written since the last checkpoint (estimated)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.stats = WriterStats()
        self._thread = threading.Thread(
            target=self._run, name=f"aether-sqlite-writer-{namespace}", daemon=True
        )
        self._thread.start()

    def submit(self, request: Request) -> None:
        """Queue `request` (on its loop); its future is resolved from the writer thread."""
        if self._closed:
            raise StoreClosedError(f"SQLite store {self._path}: the store is closed")
        pending = self._pending.get(request.loop)
        if pending is None:
            self._pending[request.loop] = [request]
            request.loop.call_soon(self._flush, request.loop)
        else:
            pending.append(request)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, None)
        if not batch:
            return
        if (
            self.inline
            and len(batch) <= _INLINE_MAX
            and self._queue.empty()
            and self._conn_lock.acquire(blocking=False)
        ):
            try:
                if not self._closed and self._commit(batch, inline=loop):
                    return
            finally:
                self._conn_lock.release()
        with self._lock:
            if not self._closed:
                self._queue.put(batch)
                return
        err = StoreClosedError(f"SQLite store {self._path}: the store is closed")
        _resolve([(r.future, err) for r in batch])  # type: ignore[misc]

    def flush_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand `loop`'s requests not yet flushed to the thread now (on `loop`'s thread)."""
        self._flush(loop)

    def close(self) -> None:
        """Finish the queued requests, stop the thread and close the connection (blocks).

        Call `flush_pending` on the loop first (`SQLiteEventStore.close` does).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        get, get_nowait, empty = self._queue.get, self._queue.get_nowait, queue.Empty
        try:
            while True:
                first = get()
                if first is _STOP:
                    return
                if first is _CHECKPOINT:
                    with self._conn_lock, contextlib.suppress(sqlite3.Error):
                        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    continue
                batch: list[Request] = list(first)  # type: ignore[call-overload]
                stop = checkpoint = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = get_nowait()
                    except empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    if more is _CHECKPOINT:
                        checkpoint = True
                        continue
                    batch.extend(more)  # type: ignore[arg-type]
                with self._conn_lock:
                    self._commit(batch)
                    if checkpoint:
                        with contextlib.suppress(sqlite3.Error):
                            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if stop:
                    return
        finally:
            with self._conn_lock:
                self._conn.close()

    def _commit(
        self, batch: list[Request], inline: asyncio.AbstractEventLoop | None = None
    ) -> bool:
        """Commit `batch` and resolve its futures; on `inline`'s thread if given.

        Inline, returns False without resolving anything when another connection holds
        the write lock (nothing was written): the caller queues the batch to the thread.
        """
        conn = self._conn
        try:
            if inline is not None:
                conn.execute("PRAGMA busy_timeout = 0")
            one = batch[0]
            if (
                len(batch) == 1
                and isinstance(one, AppendRequest)
                and (len(one.rows) == 1 or self._use_bulk)
            ):
                # autocommit: the conditional INSERT is its own (durable) transaction
                self._solo = False
                results = [self._try(one)]
                wrote = not isinstance(results[0], BaseException) and self._wrote
            else:
                self._solo = len(batch) == 1
                conn.execute("BEGIN IMMEDIATE")
                try:
                    done = self._bulk(batch)
                    wrote = bool(done)
                    results = []
                    for i, req in enumerate(batch):
                        positions = done.get(i)
                        if positions is not None:
                            results.append(positions)
                            continue
                        results.append(self._try(req))
                        wrote = wrote or self._wrote
                    if conn.in_transaction:
                        conn.execute("COMMIT" if wrote else "ROLLBACK")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as e:
            if inline is not None and e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False  # another process writes: the thread will wait for it
            results = [AetherError(f"SQLite store {self._path}: {e}") for _ in batch]
            wrote = False
        except BaseException as e:  # never leave a caller waiting forever
            msg = f"SQLite store {self._path}: writer failed: {e!r}"
            results = [AetherError(msg) for _ in batch]
            wrote = False
        finally:
            if inline is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        self._count(batch, results, wrote)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[object], object]]] = {}
        for req, res in zip(batch, results, strict=True):
            by_loop.setdefault(req.loop, []).append((req.future, res))  # type: ignore[arg-type]
        for loop, items in by_loop.items():
            if loop is inline:
                _resolve(items)
                continue
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                loop.call_soon_threadsafe(_resolve, items)
        if wrote:
            self._on_commit()
            # a commit rewrites the pages it touched: a few per event (the table, three
            # indexes, the actor row) plus the payload's own pages
            frames = 4
            for req in batch:
                if isinstance(req, SnapshotRequest):
                    frames += 2 + len(req.payload) // _PAGE
                else:
                    frames += sum(3 + len(r[-1]) // _PAGE for r in req.rows)
            self._unchecked += frames
            if self._unchecked >= CHECKPOINT_FRAMES:
                self._unchecked = 0
                self._queue.put(_CHECKPOINT)
        return True

    def _bulk(self, batch: list[Request]) -> dict[int, list[int]]:
        """Insert the first single-event append of each actor with one prepared statement.

        Returns ``{index in batch: [position]}`` for those that were the actor's next
        version. The others (and every other request) are left for `_try`, in order.
        """
        picked: list[int] = []
        seen: set[str] = set()
        for i, req in enumerate(batch):
            if isinstance(req, AppendRequest):
                if len(req.rows) == 1 and req.actor_id not in seen:
                    picked.append(i)
                seen.add(req.actor_id)
            elif isinstance(req, UnitRequest):
                seen.update(req.actors)
            else:
                seen.add(req.actor_id)
        if len(picked) < _BULK_MIN:
            return {}
        ns = self._ns
        rows = []
        for i in picked:
            req = batch[i]
            assert isinstance(req, AppendRequest)
            version, _, payload = req.rows[0]
            rows.append((ns, req.actor_id, version, payload, req.slice))
        conn = self._conn
        # One prepared statement stepped once per row, in batch order: the inserted rows
        # get consecutive positions (nobody else writes inside this transaction).
        count = conn.executemany(_APPEND_IF_NEXT, rows).rowcount
        if count <= 0:
            return {}
        last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - count + 1
        done: dict[int, list[int]] = {}
        if count == len(rows):
            done = {i: [p] for i, p in zip(picked, range(first, last + 1), strict=True)}
        else:  # some were not the actor's next version: which rows went in?
            actors = conn.execute(_ACTORS_OF_POSITIONS, (first, last)).fetchall()
            position_of = {a: p for (a,), p in zip(actors, range(first, last + 1), strict=True)}
            for i in picked:
                p = position_of.get(batch[i].actor_id)  # type: ignore[union-attr]
                if p is not None:
                    done[i] = [p]
        self.stats.bulk_appends += len(done)
        return done

    def _count(self, batch: list[Request], results: list[object], wrote: bool) -> None:
        stats = self.stats
        stats.requests += len(batch)
        stats.max_batch = max(stats.max_batch, len(batch))
        if wrote:
            stats.commits += 1
        for req, res in zip(batch, results, strict=True):
            if isinstance(res, VersionConflictError):
                stats.conflicts += 1
            elif (
                wrote
                and isinstance(req, AppendRequest | UnitRequest)
                and not isinstance(res, BaseException)
            ):
                stats.events += len(req.rows)

    def _try(self, req: Request) -> object:
        """Apply `req`; return its result or the validation error it failed with.

        Sets ``self._wrote`` when it changed the database. A request that fails writes
        nothing (one conditional statement, or a savepoint around a multi-event append).
        """
        self._wrote = False
        try:
            if isinstance(req, SnapshotRequest):
                self._apply_snapshot(req)
                return None
            if isinstance(req, UnitRequest):
                return self._append_unit(req)
            if len(req.rows) == 1:
                return self._append_one(req)
            return self._append_many(req)
        except (VersionConflictError, InvalidEventError, TrackingConflictError) as e:
            self._wrote = False
            return e

    def _append_one(self, req: AppendRequest) -> list[int]:
        version, _, payload = req.rows[0]
        try:
            cur = self._conn.execute(
                _APPEND_IF_NEXT, (self._ns, req.actor_id, version, payload, req.slice)
            )
        except sqlite3.IntegrityError:  # the UNIQUE key refused it (statement undone)
            raise VersionConflictError(
                req.actor_id, version - 1, self._latest(req.actor_id)
            ) from None
        if cur.rowcount != 1:
            return self._resave_or_conflict(req)
        self._wrote = True
        return [cur.lastrowid]  # type: ignore[list-item]

    def _append_many(self, req: AppendRequest) -> list[int]:
        if self._use_bulk:
            payloads = orjson.dumps([p.decode() for _, _, p in req.rows]).decode()
            first = req.rows[0][0]
            try:
                cur = self._conn.execute(
                    _APPEND_MANY_IF_NEXT, (self._ns, req.actor_id, first, payloads, req.slice)
                )
            except sqlite3.IntegrityError:  # the UNIQUE key refused a row (statement undone)
                raise VersionConflictError(
                    req.actor_id, first - 1, self._latest(req.actor_id)
                ) from None
            except sqlite3.OperationalError as e:
                if not _lacks_json(e):
                    raise
                self._use_bulk = False  # no JSON functions in this SQLite: the slow path
            else:
                if cur.rowcount != len(req.rows):
                    return self._resave_or_conflict(req)
                self._wrote = True
                last: int = cur.lastrowid  # type: ignore[assignment]
                return list(range(last - len(req.rows) + 1, last + 1))
        return self._append_many_slowly(req)

    def _append_many_slowly(self, req: AppendRequest) -> list[int]:
        """`_append_many` without JSON functions: first row conditional, then the rest."""
        conn, ns, actor, rows = self._conn, self._ns, req.actor_id, req.rows
        # Alone in its transaction, a failure rolls the transaction back: no savepoint.
        savepoint = not self._solo
        if savepoint:
            conn.execute("SAVEPOINT aether_append")
        try:
            cur = conn.execute(_APPEND_IF_NEXT, (ns, actor, rows[0][0], rows[0][2], req.slice))
            first: int = cur.lastrowid if cur.rowcount == 1 else 0  # type: ignore[assignment]
            if first:
                conn.executemany(_APPEND, [(ns, actor, v, p, req.slice) for v, _, p in rows[1:]])
        except BaseException as e:  # nothing of this request may stay
            conn.execute("ROLLBACK TO aether_append" if savepoint else "ROLLBACK")
            if savepoint:
                conn.execute("RELEASE aether_append")
            if isinstance(e, sqlite3.IntegrityError):  # the UNIQUE key refused a row
                raise VersionConflictError(actor, rows[0][0] - 1, self._latest(actor)) from None
            raise
        if savepoint:
            conn.execute("RELEASE aether_append")
        if not first:
            return self._resave_or_conflict(req)
        self._wrote = True
        return list(range(first, first + len(rows)))

    def _resave_or_conflict(self, req: AppendRequest) -> list[int]:
        """Positions of `req`'s events if they are stored already (`same_event`), else raise."""
        positions = self._stored_positions(req.actor_id, [(v, p) for v, _, p in req.rows])
        if positions is not None:
            return positions
        raise VersionConflictError(req.actor_id, req.rows[0][0] - 1, self._latest(req.actor_id))

    def _stored_positions(self, actor_id: str, rows: list[tuple[int, bytes]]) -> list[int] | None:
        """The positions of `rows` ``(version, payload)`` if each is stored already, or None.

        Same id and version with other content is a conflict, not a re-save.
        """
        stored = self._conn.execute(
            _STORED_RANGE, (self._ns, actor_id, rows[0][0], rows[-1][0])
        ).fetchall()
        try:
            if len(stored) == len(rows) and all(
                v == want_v
                and (
                    bytes(payload) == want_payload
                    or same_event(decode_event(payload), decode_event(want_payload))
                )
                for (v, _, payload), (want_v, want_payload) in zip(stored, rows, strict=True)
            ):
                return [pos for _, pos, _ in stored]
        except AetherError:  # a stored row that does not decode is not this event
            return None
        return None

    def _append_unit(self, req: UnitRequest) -> list[int]:
        """Check every actor of the unit (and its tracking record), then write it whole.

        Runs inside the writer's transaction (the write lock is held), so the checks and
        the inserts see the same state; nothing is written unless every check passed.
        """
        conn, ns = self._conn, self._ns
        groups: dict[str, list[tuple[int, bytes]]] = {}
        for actor, version, _, payload in req.rows:
            groups.setdefault(actor, []).append((version, payload))
        conflicts: list[ActorConflict] = []
        resaved: dict[str, list[int]] = {}
        fresh: list[ActorConflict] = []
        for actor, rows in groups.items():
            latest = self._latest(actor)
            if rows[0][0] == latest + 1:
                fresh.append(ActorConflict(actor, rows[0][0] - 1, latest))
                continue
            positions = self._stored_positions(actor, rows)
            if positions is None:
                conflicts.append(ActorConflict(actor, rows[0][0] - 1, latest))
            else:
                resaved[actor] = positions
        if conflicts:
            raise VersionConflictError.of(conflicts)
        if groups and not fresh:  # the identical unit, stored earlier
            seen: dict[str, int] = {}
            again: list[int] = []
            for actor, _, _, _ in req.rows:
                i = seen.get(actor, 0)
                again.append(resaved[actor][i])
                seen[actor] = i + 1
            return again
        if resaved:  # some actors' part is stored, others' not: not the same unit
            raise VersionConflictError.of(
                [ActorConflict(a, groups[a][0][0] - 1, self._latest(a)) for a in resaved]
            )
        tracking = req.tracking
        if tracking is not None:
            row = conn.execute(_TRACKING_REVISION, (ns, tracking.key)).fetchone()
            actual = 0 if row is None else int(row[0])
            if actual != tracking.expected:
                raise TrackingConflictError(tracking.key, tracking.expected, actual)
        conn.execute("SAVEPOINT aether_unit")
        try:
            out: list[int] = []
            for actor, version, slice_, payload in req.rows:
                cur = conn.execute(_APPEND, (ns, actor, version, payload, slice_))
                out.append(cur.lastrowid)  # type: ignore[arg-type]
            if tracking is not None:
                conn.execute(
                    _UPSERT_TRACKING,
                    (ns, tracking.key, tracking.position, tracking.expected + 1, tracking.data),
                )
        except BaseException:
            conn.execute("ROLLBACK TO aether_unit")
            conn.execute("RELEASE aether_unit")
            raise
        conn.execute("RELEASE aether_unit")
        self._wrote = True
        return out

    def _latest(self, actor_id: str) -> int:
        row = self._conn.execute(_LATEST, (self._ns, actor_id)).fetchone()
        return 0 if row is None else int(row[0])

    def _apply_snapshot(self, req: SnapshotRequest) -> None:
        latest = self._latest(req.actor_id)
        if req.version > latest:
            raise InvalidEventError(
                "version", f"snapshot version {req.version} is beyond the latest event {latest}"
            )
        self._conn.execute(_UPSERT_SNAPSHOT, (self._ns, req.actor_id, req.version, req.payload))
        self._wrote = True


def _lacks_json(error: sqlite3.OperationalError) -> bool:
    """Whether `error` says this SQLite was built without the JSON functions."""
    text = str(error)
    return "no such function: json" in text or "no such table: json_each" in text


def _resolve(items: list[tuple[asyncio.Future[object], object]]) -> None:
    for fut, res in items:
        if fut.done():  # the caller was cancelled; the outcome stands (re-save settles it)
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)
