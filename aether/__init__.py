"""aether: event sourcing primitives for Python, powered by NATS JetStream.

The top level holds what a user needs every day: the model (`Event`, `Snapshot`,
`slice_of`), the stores and `open_store`, the bus, `ClusterNode`, `Settings`, the state
helpers `load` and `execute`, and the errors a caller catches. Everything else lives in
its module: `aether.errors` (the whole hierarchy), `aether.event` (codec, `fold_data`),
`aether.subjects`, `aether.state`, `aether.typed`, `aether.cluster`, `aether.jsonl`,
`aether.observability`, `aether.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aether.config import Settings
from aether.errors import (
    AetherError,
    AuthError,
    ConfigError,
    NatsUnavailableError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    StoreClosedError,
    SubscriptionOverflowError,
    TransientError,
    ValidationError,
    VersionConflictError,
)
from aether.event import Event, Snapshot
from aether.store import EventStore, InMemoryEventStore, SnapshotStore, Store, Tracking, open_store
from aether.subjects import slice_of

if TYPE_CHECKING:
    from aether.bus import EventBus, LocalEventBus, NatsEventBus, Overflow, Subscription
    from aether.cluster import ClusterNode
    from aether.state import execute, load
    from aether.store import JetStreamEventStore, SQLiteEventStore

# Names whose modules import nats-py, sqlite3 or more load on first use, so `import
# aether` (and every `aether` CLI start) stays fast.
_LAZY = {
    "EventBus": "aether.bus",
    "LocalEventBus": "aether.bus",
    "NatsEventBus": "aether.bus",
    "Overflow": "aether.bus",
    "Subscription": "aether.bus",
    "ClusterNode": "aether.cluster",
    "JetStreamEventStore": "aether.store.jetstream",
    "SQLiteEventStore": "aether.store.sqlite",
    "execute": "aether.state",
    "load": "aether.state",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aether' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

# The documented public API (README "Public API"; tests/test_public_api.py keeps both equal).
__all__ = [
    "AetherError",
    "AuthError",
    "ClusterNode",
    "ConfigError",
    "Event",
    "EventBus",
    "EventStore",
    "InMemoryEventStore",
    "JetStreamEventStore",
    "LocalEventBus",
    "NatsEventBus",
    "NatsUnavailableError",
    "NotFoundError",
    "OutcomeUnknownError",
    "Overflow",
    "PermissionDeniedError",
    "SQLiteEventStore",
    "Settings",
    "Snapshot",
    "SnapshotStore",
    "Store",
    "StoreClosedError",
    "Subscription",
    "SubscriptionOverflowError",
    "Tracking",
    "TransientError",
    "ValidationError",
    "VersionConflictError",
    "__version__",
    "execute",
    "load",
    "open_store",
    "slice_of",
]
