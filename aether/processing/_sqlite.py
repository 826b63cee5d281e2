"""`SQLiteProjection`: a projection into the user's SQLite database, exactly once."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Collection
from pathlib import Path

from aether.errors import ValidationError
from aether.event import Event

from ._types import Context, _event_types, validate_processor_name

Apply = Callable[[sqlite3.Connection, Event], None]
"""``apply(conn, event)``: write the event's effect with `conn` (inside the transaction)."""

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SQLiteProjection:
    """A processor applying events to the user's own SQLite database, with its
    checkpoint in the same transaction: each event's effect is in the database exactly
    once, however often the runner delivers it (after a crash, a hand-over, a retry).

    ::

        def apply(conn: sqlite3.Connection, event: Event) -> None:
            conn.execute(
                "INSERT INTO totals (order_id, total) VALUES (?, ?) "
                "ON CONFLICT (order_id) DO UPDATE SET total = total + excluded.total",
                (event.actor_id, event.data["amount"]),
            )

        projection = SQLiteProjection("order-totals", "read.db", apply,
                                      event_types={"OrderLine"})
        async with ProcessorHost(store, [projection]) ...   # or ClusterNode(processors=)

    For each event, in one ``BEGIN IMMEDIATE`` transaction: read the checkpoint of the
    event's segment from `table` (created if missing: ``processor, segment,
    position``), skip the event if its position is not after it, else call
    ``apply(conn, event)`` and store the event's position. A retried parked event
    (already behind the checkpoint) is recorded by position in ``<table>_parked``
    instead. If `apply` raises, the transaction is rolled back and the runner retries.

    `database` is a path (opened with WAL) or an open `sqlite3.Connection` (it must be
    in autocommit mode, ``isolation_level=None``). `apply` is synchronous and runs on the
    event loop: keep it to SQL. Several nodes (processes) may share one database file:
    the transaction serializes them and the checkpoint makes a stale owner's late write
    a no-op. The write lock is never waited for on the event loop: the projection sets
    the connection's busy timeout to 0 and, while another connection holds the lock,
    retries with ``await`` for up to `lock_timeout` seconds (then the attempt fails
    with SQLite's "database is locked" and the runner's retry policy applies), so a
    frozen process holding the database cannot stall this node's heartbeats.
    `checkpoint(segment)` reads a checkpoint back, `forget_checkpoints` deletes them (to
    rebuild after `aether.processing.reset`); `close` closes a connection opened here.
    """

    def __init__(
        self,
        name: str,
        database: str | Path | sqlite3.Connection,
        apply: Apply,
        *,
        event_types: Collection[str] | None = None,
        table: str = "aether_checkpoints",
        lock_timeout: float = 30.0,
    ) -> None:
        self.name = validate_processor_name(name)
        if (
            isinstance(lock_timeout, bool)
            or not isinstance(lock_timeout, int | float)
            or not 0 <= lock_timeout <= 3600
        ):
            raise ValidationError("lock_timeout", "must be a number of seconds in 0..3600")
        self.lock_timeout = float(lock_timeout)
        if not callable(apply):
            raise ValidationError("apply", "must be a function (connection, event) -> None")
        if not isinstance(table, str) or _TABLE.fullmatch(table) is None:
            raise ValidationError("table", "must be an SQL identifier of A-Z a-z 0-9 _")
        self.event_types = _event_types(event_types)
        self._apply = apply
        self.table = table
        if isinstance(database, sqlite3.Connection):
            if database.isolation_level is not None:
                raise ValidationError(
                    "database", "the connection must be in autocommit mode (isolation_level=None)"
                )
            self.connection = database
            self._own = False
        elif isinstance(database, str | Path):
            self.connection = sqlite3.connect(
                str(database), isolation_level=None, timeout=30.0, check_same_thread=False
            )
            self.connection.execute("PRAGMA journal_mode=WAL")
            self._own = True
        else:
            raise ValidationError("database", "must be a path or a sqlite3.Connection")
        self.connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (processor TEXT NOT NULL, "
            "segment TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (processor, segment))"
        )
        self.connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table}_parked (processor TEXT NOT NULL, "
            "position INTEGER NOT NULL, PRIMARY KEY (processor, position))"
        )
        self.connection.execute("PRAGMA busy_timeout = 0")

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another writer's lock without blocking the loop."""
        conn = self.connection
        deadline = 0.0
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.lock_timeout
                if now >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def handle(self, event: Event, ctx: Context) -> None:
        """Apply `event` and move the checkpoint in one transaction (skip if applied)."""
        conn = self.connection
        t = self.table
        position = ctx.position
        await self._begin()
        try:
            if ctx.redelivered_parked:
                done = conn.execute(
                    f"SELECT 1 FROM {t}_parked WHERE processor = ? AND position = ?",
                    (self.name, position),
                ).fetchone()
                if done is None:
                    self._apply(conn, event)
                    conn.execute(
                        f"INSERT INTO {t}_parked (processor, position) VALUES (?, ?)",
                        (self.name, position),
                    )
            else:
                row = conn.execute(
                    f"SELECT position FROM {t} WHERE processor = ? AND segment = ?",
                    (self.name, ctx.segment),
                ).fetchone()
                if row is None or position > int(row[0]):
                    self._apply(conn, event)
                    conn.execute(
                        f"INSERT INTO {t} (processor, segment, position) VALUES (?, ?, ?) "
                        "ON CONFLICT (processor, segment) DO UPDATE SET position = "
                        "excluded.position",
                        (self.name, ctx.segment, position),
                    )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def checkpoint(self, segment: str = "all") -> int:
        """The position this projection applied through on `segment` (0: none)."""
        row = self.connection.execute(
            f"SELECT position FROM {self.table} WHERE processor = ? AND segment = ?",
            (self.name, segment),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def forget_checkpoints(self) -> None:
        """Delete this projection's checkpoints (with `aether.processing.reset` to
        rebuild the read model: clear your tables in the same breath)."""
        conn = self.connection
        # A blocking call: it may wait for the lock like any synchronous SQLite write.
        conn.execute(f"PRAGMA busy_timeout = {int(self.lock_timeout * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute(f"DELETE FROM {self.table} WHERE processor = ?", (self.name,))
            conn.execute(f"DELETE FROM {self.table}_parked WHERE processor = ?", (self.name,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection if this projection opened it."""
        if self._own:
            self.connection.close()
