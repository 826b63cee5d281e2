"""The exception hierarchy: every error aether raises derives from `AetherError`."""

from __future__ import annotations


class AetherError(Exception):
    """Root of every error raised by aether."""


class ValidationError(AetherError, ValueError):
    """Input broke a rule; nothing was written. `field` names the input, `rule` the rule."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class InvalidIdentifierError(ValidationError):
    """A namespace, event type, actor id or node id breaks the identifier rules."""


class InvalidEventError(ValidationError):
    """An event (or snapshot) is malformed: bad version, non-JSON data, NaN, naive timestamp..."""


class EventTooLargeError(ValidationError):
    """An encoded event is larger than the configured or server maximum payload."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(field, f"encoded size {size} bytes exceeds the limit of {limit} bytes")


class VersionConflictError(AetherError):
    """An append expected the actor to be at `expected` but the store holds `actual`.

    `expected` is the latest version the writer believed (its event's version minus one);
    `actual` is the latest version the store holds. Reload and retry, or give up.
    """

    def __init__(self, actor_id: str, expected: int, actual: int) -> None:
        self.actor_id = actor_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"version conflict on actor {actor_id!r}: expected latest version {expected}, "
            f"store has {actual}"
        )


class NotFoundError(AetherError):
    """The thing asked for does not exist (an actor with no events, a missing stream...)."""


class ConfigError(AetherError):
    """Settings are invalid: unknown key, wrong type, unreadable file."""


class StoreConfigMismatchError(ConfigError):
    """An existing stream or bucket differs from the configuration; it was not changed."""

    def __init__(self, name: str, differences: dict[str, tuple[object, object]]) -> None:
        self.name = name
        self.differences = differences
        parts = ", ".join(
            f"{k} is {have!r}, want {want!r}" for k, (have, want) in differences.items()
        )
        super().__init__(f"{name} exists with a different configuration: {parts}")


class NatsUnavailableError(AetherError):
    """NATS cannot be reached (refused, timed out, lost and not back in time)."""


class AuthError(NatsUnavailableError):
    """NATS refused the credentials or certificate (never carries the secret)."""


class PermissionDeniedError(AetherError):
    """NATS refused a subject, stream or bucket to this user."""


class PublishTimeoutError(AetherError):
    """A publish was not acknowledged in time; its outcome is unknown (re-save to settle it)."""


class UnsupportedServerError(AetherError):
    """The NATS server lacks a feature aether needs (e.g. atomic batch publish, 2.12+)."""


class SubscriptionOverflowError(AetherError):
    """A bus subscription with `Overflow.ERROR` could not keep up."""


class ClusterError(AetherError):
    """A cluster operation failed (lost lease, stale term, missing bucket...)."""


class StaleTermError(ClusterError):
    """A write carried a leadership term that is no longer current; it was refused."""
