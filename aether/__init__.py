"""aether: event sourcing primitives for Python, powered by NATS JetStream."""

from __future__ import annotations

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
from aether.event import Event, Snapshot, decode_event, encode_event
from aether.store import EventStore, InMemoryEventStore, SnapshotStore

__version__ = "0.1.0"

__all__ = [
    "AetherError",
    "AuthError",
    "ClusterError",
    "ConfigError",
    "Event",
    "EventStore",
    "EventTooLargeError",
    "InMemoryEventStore",
    "InvalidEventError",
    "InvalidIdentifierError",
    "NatsUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PublishTimeoutError",
    "Settings",
    "Snapshot",
    "SnapshotStore",
    "StaleTermError",
    "StoreConfigMismatchError",
    "SubscriptionOverflowError",
    "UnsupportedServerError",
    "ValidationError",
    "VersionConflictError",
    "__version__",
    "decode_event",
    "encode_event",
]
