"""`SQLiteProjection`: a projection into the user's SQLite database, exactly once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from pathlib import Path

from aether.event import Event

from ._types import Context

Apply = Callable[[sqlite3.Connection, Event], None]


class SQLiteProjection:
    """A processor applying events to the user's SQLite database with its checkpoint in
    the same transaction."""

    def __init__(
        self,
        name: str,
        database: str | Path | sqlite3.Connection,
        apply: Apply,
        *,
        event_types: Collection[str] | None = None,
        table: str = "aether_checkpoints",
    ) -> None:
        raise NotImplementedError

    async def handle(self, event: Event, ctx: Context) -> None:
        """Apply `event` and move the checkpoint in one transaction (skip if applied)."""
        raise NotImplementedError
