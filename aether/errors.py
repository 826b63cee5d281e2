"""The exception hierarchy: every error aether raises derives from `AetherError`.

::

    AetherError                       .retriable: may the same call succeed if repeated?
    ├── ValidationError (ValueError)  bad input; nothing was written (.field, .rule)
    │   ├── InvalidIdentifierError    namespace, event type, actor id, node id, slice
    │   ├── InvalidEventError         malformed event or snapshot, too deep, cyclic...
    │   │   ├── EventTooLargeError    encoded size above the limit (.size, .limit)
    │   │   └── UnitTooLargeError     more events in one unit of work than the store takes
    │   ├── InvalidLineError          a line of JSON-lines input (.line; .field "line N")
    │   └── InvalidBenchParameterError  a benchmark parameter breaks its rule
    ├── VersionConflictError          an actor was not at the expected version (.conflicts)
    ├── NotFoundError                 no such store file, namespace, stream, snapshot...
    ├── ConfigError                   invalid settings
    │   ├── StoreConfigMismatchError  an existing stream or bucket differs; not changed
    │   └── LegacyLayoutError         a namespace made by an older aether layout
    ├── TransientError                retriable: try again later (.retriable is True)
    │   ├── NatsUnavailableError      NATS not reachable (refused, timed out, lost)
    │   └── OutcomeUnknownError       sent, but no answer: re-saving the same events is safe
    │       └── PublishTimeoutError   the publish was not acknowledged in time
    ├── AuthError                     credentials or certificate refused (final)
    ├── TlsRequiredError              TLS was configured and the server does not offer it
    ├── PermissionDeniedError         NATS refused a subject, stream or bucket
    ├── UnsupportedServerError        the server really lacks a feature (e.g. atomic batch)
    ├── CorruptEventError             a stored message is not an aether event (.position)
    ├── StoreClosedError              the store was closed
    ├── TrackingConflictError         a tracking record moved on: the writer was fenced
    ├── SubscriptionOverflowError     a bus subscription with Overflow.ERROR fell behind
    ├── ProcessorError                a processor cannot do what was asked
    │   ├── ProcessorRunningError     refused while a runner owns the processor (reset)
    │   ├── ProcessorStoppedError     a runner was stopped or fenced (another owner claimed)
    │   └── ProcessorTimeoutError     wait_for: not processed in time (also a TimeoutError)
    └── ClusterError                  cluster operation failed
        └── StaleTermError            a fenced write carried a term no longer current

`retriable` is the one attribute to branch on: `TransientError` and its subclasses are
retriable, everything else is final (a `VersionConflictError` is final for the same
events; re-load, re-decide and append new ones: `aether.state.execute` does that).
"""

from __future__ import annotations

from dataclasses import dataclass


class AetherError(Exception):
    """Root of every error raised by aether."""

    retriable: bool = False
    """Whether repeating the same call later may succeed (True only for `TransientError`)."""


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


class EventTooLargeError(InvalidEventError):
    """An encoded event is larger than the configured or server maximum payload."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(field, f"encoded size {size} bytes exceeds the limit of {limit} bytes")


class UnitTooLargeError(InvalidEventError):
    """A unit of work holds more events than the store can append atomically (`limit`)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            "events",
            f"a unit of work holds at most {limit} events on this store, got {size} "
            "(it is never split: append smaller units)",
        )


class InvalidLineError(ValidationError):
    """A line of JSON-lines input (`aether.jsonl`) is invalid; nothing was written.

    `line` is its number (1-based); `field` is ``"line N"`` and `rule` says what is wrong,
    naming the event field where there is one (``"id: must be ..."``).
    """

    def __init__(self, line: int, rule: str) -> None:
        self.line = line
        super().__init__(f"line {line}", rule)


@dataclass(frozen=True, slots=True)
class ActorConflict:
    """One actor of a unit of work that was not at its expected version."""

    actor_id: str
    expected: int
    actual: int


class InvalidBenchParameterError(ValidationError):
    """A benchmark parameter breaks its rule; nothing was run."""


class VersionConflictError(AetherError):
    """An append expected actors at some versions but the store holds others.

    `conflicts` lists every actor of the unit that was not at its expected version;
    `actor_id`, `expected` and `actual` describe the first of them (the only one for a
    single-actor append). `expected` is the latest version the writer believed (its first
    event's version minus one); `actual` is the latest version the store holds.
    Nothing of the unit was written. Reload and retry, or give up.
    """

    def __init__(
        self,
        actor_id: str,
        expected: int,
        actual: int,
        *,
        conflicts: list[ActorConflict] | None = None,
    ) -> None:
        self.actor_id = actor_id
        self.expected = expected
        self.actual = actual
        self.conflicts = conflicts or [ActorConflict(actor_id, expected, actual)]
        more = len(self.conflicts) - 1
        tail = f" (and {more} more actor{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(
            f"version conflict on actor {actor_id!r}: expected latest version {expected}, "
            f"store has {actual}{tail}"
        )

    @classmethod
    def of(cls, conflicts: list[ActorConflict]) -> VersionConflictError:
        """The error for a non-empty list of conflicting actors."""
        first = conflicts[0]
        return cls(first.actor_id, first.expected, first.actual, conflicts=conflicts)


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


class LegacyLayoutError(ConfigError):
    """A namespace was created by an older aether with another layout; it is not used."""


class TransientError(AetherError):
    """A failure that may pass: the same call can be repeated later (`retriable`)."""

    retriable = True


class NatsUnavailableError(TransientError):
    """NATS cannot be reached (refused, timed out, lost and not back in time)."""


class OutcomeUnknownError(TransientError):
    """A write was sent but its outcome is unknown; saving the identical events again is
    safe (it is a no-op if they were stored)."""


class PublishTimeoutError(OutcomeUnknownError):
    """A publish was not acknowledged in time; its outcome is unknown (re-save to settle it)."""


class AuthError(AetherError):
    """NATS refused the credentials or certificate (never carries the secret). Final."""


class TlsRequiredError(AetherError):
    """TLS was asked for and the server does not offer it; nothing was sent."""


class PermissionDeniedError(AetherError):
    """NATS refused a subject, stream or bucket to this user."""


class UnsupportedServerError(AetherError):
    """The NATS server lacks a feature aether needs (e.g. atomic batch publish, 2.12+)."""


class CorruptEventError(AetherError):
    """A stored message is not an aether event (bad JSON, wrong keys, or an actor or
    version that does not match its subject): written by something other than aether.

    `position` is where it is stored (stream sequence or row), `reason` what is wrong.
    """

    def __init__(self, position: int, reason: str, *, subject: str | None = None) -> None:
        self.position = position
        self.reason = reason
        self.subject = subject
        where = f" on {subject}" if subject else ""
        super().__init__(f"message at position {position}{where} is not an aether event: {reason}")


class StoreClosedError(AetherError):
    """The store (or bus) was closed; it refuses work."""


class TrackingConflictError(AetherError):
    """A commit expected tracking record `key` at `expected` but it is at `actual`.

    Nothing of the commit was written. For a processor this means another owner claimed
    the shard: the writer was fenced and must stop working on it.
    """

    def __init__(self, key: str, expected: int, actual: int) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"tracking record {key!r} is at revision {actual}, the commit expected {expected}"
        )


class SubscriptionOverflowError(AetherError):
    """A bus subscription with `Overflow.ERROR` could not keep up."""


class ProcessorError(AetherError):
    """A processor operation failed (see the subclasses)."""


class ProcessorRunningError(ProcessorError):
    """Refused while a live runner owns the processor's segment (`processor`, `segment`,
    `owner`): stop it first (e.g. stop the nodes hosting it)."""

    def __init__(self, processor: str, segment: str, owner: str | None) -> None:
        self.processor = processor
        self.segment = segment
        self.owner = owner
        by = f" by {owner}" if owner else ""
        super().__init__(f"processor {processor!r} segment {segment} is running{by}")


class ProcessorStoppedError(ProcessorError):
    """The runner was stopped, or fenced: another owner claimed its segment."""


class ProcessorTimeoutError(ProcessorError, TimeoutError):
    """`wait_for` gave up: the processor had not processed through `position` in time.

    Not a `TransientError`: waiting again may help, but nothing about the call failed.
    """

    def __init__(self, processor: str, position: int, timeout: float, reached: int) -> None:
        self.processor = processor
        self.position = position
        self.timeout = timeout
        self.reached = reached
        super().__init__(
            f"processor {processor!r} did not reach position {position} within {timeout:g}s "
            f"(it is at {reached})"
        )


class ClusterError(AetherError):
    """A cluster operation failed (lost lease, stale term, missing bucket...)."""


class StaleTermError(ClusterError):
    """A write carried a leadership term that is no longer current; it was refused."""
