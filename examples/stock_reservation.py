"""Stock reservation: a reactor that reserves stock when an order is placed, exactly once.

For each ``OrderPlaced`` event (``data``: ``items``, a mapping of SKU to quantity) it
appends one ``StockReserved`` event to the actor ``reservation-<order id>``, through
``ctx.append``: the output commits in one unit of work with the reactor's checkpoint,
so however often the order is handled (a crash between handling and committing, a
hand-over to another node), its reservation exists exactly once.

Host it with ``aether node run --processor examples.stock_reservation:reactor``.
"""

from __future__ import annotations

from aether import Event
from aether.processing import Context


class StockReservation:
    """The reactor: ``OrderPlaced`` in, ``StockReserved`` out."""

    name = "stock-reservation"
    event_types = frozenset({"OrderPlaced"})

    async def handle(self, event: Event, ctx: Context) -> None:
        """Reserve the order's items (the output is committed with the checkpoint)."""
        items = event.data.get("items") or {}
        ctx.append(
            Event(
                "StockReserved",
                f"reservation-{event.actor_id}",
                1,  # one reservation per order: its first and only event
                {"order": event.actor_id, "items": items},
                metadata={"causation_id": event.id},
            )
        )


reactor = StockReservation()
"""The reactor ``aether node run --processor examples.stock_reservation:reactor`` hosts."""
