"""aether: event sourcing primitives for Python, powered by NATS JetStream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aether.config import Settings
from aether.errors import (
    AetherError,
    AuthError,
    ClusterError,
    ConfigError,
    EventTooLargeError,
    InvalidEventError,
    InvalidIdentifierError,
    NatsUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    PublishTimeoutError,
    StaleTermError,
    StoreConfigMismatchError,
    SubscriptionOverflowError,
    UnsupportedServerError,
    ValidationError,
    VersionConflictError,
)
from aether.event import Event, Snapshot, decode_event, encode_event, fold_data
from aether.store import EventStore, InMemoryEventStore, SnapshotStore, open_store

if TYPE_CHECKING:
    from aether.bus import EventBus, LocalEventBus, NatsEventBus, Overflow, Subscription
    from aether.cluster import ClusterNode, ClusterStatus, ShardMap, shard_of
    from aether.store import JetStreamEventStore, SQLiteEventStore

# Names whose modules import nats-py or sqlite3 load on first use, so `import aether`
# (and every `aether` CLI start) stays fast.
_LAZY = {
    "EventBus": "aether.bus",
    "LocalEventBus": "aether.bus",
    "NatsEventBus": "aether.bus",
    "Overflow": "aether.bus",
    "Subscription": "aether.bus",
    "ClusterNode": "aether.cluster",
    "ClusterStatus": "aether.cluster",
    "ShardMap": "aether.cluster",
    "shard_of": "aether.cluster",
    "JetStreamEventStore": "aether.store.jetstream",
    "SQLiteEventStore": "aether.store.sqlite",
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

__all__ = [
    "AetherError",
    "AuthError",
    "ClusterError",
    "ClusterNode",
    "ClusterStatus",
    "ConfigError",
    "Event",
    "EventBus",
    "EventStore",
    "EventTooLargeError",
    "InMemoryEventStore",
    "InvalidEventError",
    "InvalidIdentifierError",
    "JetStreamEventStore",
    "LocalEventBus",
    "NatsEventBus",
    "NatsUnavailableError",
    "NotFoundError",
    "Overflow",
    "PermissionDeniedError",
    "PublishTimeoutError",
    "SQLiteEventStore",
    "Settings",
    "ShardMap",
    "Snapshot",
    "SnapshotStore",
    "StaleTermError",
    "StoreConfigMismatchError",
    "Subscription",
    "SubscriptionOverflowError",
    "UnsupportedServerError",
    "ValidationError",
    "VersionConflictError",
    "__version__",
    "decode_event",
    "encode_event",
    "fold_data",
    "open_store",
    "shard_of",
]
