"""Order totals: a projection of the orders into your own SQLite database, exactly once.

Each ``OrderPlaced`` event (``data``: ``customer``, ``total_cents``) adds one order and its
total to the customer's row of the ``order_totals`` table; ``OrderCancelled`` (same
data) takes them off again. `SQLiteProjection` applies each event and moves the
processor's checkpoint in the same SQLite transaction, so after any crash, restart or
hand-over every event is counted exactly once.

The database is ``$ORDER_TOTALS_DB`` (default ``order_totals.db`` in the current
directory). Host it on every node of a cluster with::

    aether node run --processor examples.order_totals:projection

or run it in your own process with ``ProcessorRunner(store, projection)``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from aether import Event
from aether.processing import SQLiteProjection

SCHEMA = """
CREATE TABLE IF NOT EXISTS order_totals (
    customer    TEXT PRIMARY KEY,
    orders      INTEGER NOT NULL,
    total_cents INTEGER NOT NULL
)
"""

EVENT_TYPES = frozenset({"OrderPlaced", "OrderCancelled"})


def apply(db: sqlite3.Connection, event: Event) -> None:
    """Apply one order event to the read model (inside the projection's transaction)."""
    sign = 1 if event.event_type == "OrderPlaced" else -1
    db.execute(
        "INSERT INTO order_totals (customer, orders, total_cents) VALUES (?, ?, ?)"
        " ON CONFLICT (customer) DO UPDATE SET orders = orders + excluded.orders,"
        " total_cents = total_cents + excluded.total_cents",
        (event.data["customer"], sign, sign * event.data["total_cents"]),
    )


def fold(totals: dict[str, tuple[int, int]], event: Event) -> dict[str, tuple[int, int]]:
    """The same read model folded directly (to check the projection against)."""
    if event.event_type in EVENT_TYPES:
        sign = 1 if event.event_type == "OrderPlaced" else -1
        orders, cents = totals.get(event.data["customer"], (0, 0))
        totals[event.data["customer"]] = (orders + sign, cents + sign * event.data["total_cents"])
    return totals


def totals(database: str | Path) -> dict[str, tuple[int, int]]:
    """The read model: customer -> (orders, total in cents)."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT customer, orders, total_cents FROM order_totals ORDER BY customer"
        ).fetchall()
    return {customer: (orders, cents) for customer, orders, cents in rows}


def make_projection(database: str | Path) -> SQLiteProjection:
    """The order-totals projection writing into `database` (its table created)."""
    with sqlite3.connect(database) as db:
        db.execute(SCHEMA)
    db.close()
    return SQLiteProjection("order-totals", database, apply, event_types=EVENT_TYPES)


projection = make_projection(os.environ.get("ORDER_TOTALS_DB", "order_totals.db"))
"""The projection ``aether node run --processor examples.order_totals:projection`` hosts."""
