"""aether: event sourcing primitives for Python, powered by NATS JetStream."""

from __future__ import annotations

from aether.bus import EventBus, LocalEventBus, NatsEventBus, Overflow, Subscription
from aether.cluster import ClusterNode, ClusterStatus, ShardMap, shard_of
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
from aether.store import (
    EventStore,
    InMemoryEventStore,
    JetStreamEventStore,
    SnapshotStore,
    SQLiteEventStore,
)

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
    "shard_of",
]
