"""The store → bus relay: a processor that publishes every appended event onto a bus.

Any writer (the application, ``aether append``, a client in another language) appends
to the store only; the relay, run durably like any processor (``aether node run
--relay``, or ``ProcessorHost(store, [Relay(bus, namespace)], ...)``), publishes each
event to the namespace's bus subscribers, in position order per shard and in version
order per actor.

Delivery is at-least-once: `handle` returns only once the server has the event (the
bus is flushed), and the runner's checkpoint is committed after `handle` returned. A
graceful stop (or hand-over) persists the checkpoint of everything published, so
nothing is published twice; after a crash the events after the last committed
checkpoint are published again (subscribers see duplicates, identified by the event's
``id``, never a gap). Core NATS itself drops what a subscriber cannot receive while it
is disconnected: for gap-free following use the store's ``watch``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aether.bus.base import EventBus
from aether.errors import ValidationError
from aether.event import Event
from aether.processing._types import validate_processor_name
from aether.subjects import validate_namespace

DEFAULT_RELAY_NAME = "aether-relay"
"""The processor name (and so the checkpoint) of a relay unless one is given."""


class Relay:
    """A processor publishing every event it handles to `bus` under `namespace`.

    `name` keys its checkpoint: two relays with the same name share one, two names are
    two independent relays. `event_types` relays only those types (None: all).
    """

    def __init__(
        self,
        bus: EventBus,
        namespace: str,
        *,
        name: str = DEFAULT_RELAY_NAME,
        event_types: Collection[str] | None = None,
    ) -> None:
        validate_processor_name(name)
        if not callable(getattr(bus, "publish", None)):
            raise ValidationError("bus", "must be an EventBus (with publish)")
        self.bus = bus
        """The bus events are published on."""
        self.namespace = validate_namespace(namespace)
        """The bus namespace subscribers listen on (normally the store's)."""
        self.name = name
        """The processor's name."""
        self.event_types = frozenset(event_types) if event_types is not None else None
        """The event types relayed (None: every type)."""
        self.published = 0
        """Events published since this object was made (a duplicate counts again)."""

    async def handle(self, event: Event, ctx: Any) -> None:
        """Publish `event`; return once the bus's server has it (when it can tell)."""
        await self.bus.publish(self.namespace, event)
        flush = getattr(self.bus, "flush", None)
        if flush is not None:
            await flush()
        self.published += 1

    def __repr__(self) -> str:
        return f"Relay(name={self.name!r}, namespace={self.namespace!r})"
