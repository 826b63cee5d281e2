"""The event bus: ephemeral fan-out of events to live subscribers, isolated by namespace.

`LocalEventBus` works inside one process, `NatsEventBus` across processes over core
NATS. Both hand out `Subscription` objects with an explicit `Overflow` policy. Durable,
gap-free following of a namespace is the store's ``watch``, not the bus.
"""

from __future__ import annotations

from aether.bus.base import DEFAULT_BUFFER, EventBus, Overflow, Subscription
from aether.bus.local import LocalEventBus
from aether.bus.nats import NatsEventBus

__all__ = [
    "DEFAULT_BUFFER",
    "EventBus",
    "LocalEventBus",
    "NatsEventBus",
    "Overflow",
    "Subscription",
]
