"""Identifier rules and the NATS subject layout.

Actor ids and event types are free-form; NATS subject tokens are not. A value made only
of ``[A-Za-z0-9_-]`` is used as its own token. Anything else (dots, wildcards, spaces,
``@``, non-ASCII, ...) is encoded as ``=`` followed by the unpadded base64url of its UTF-8
bytes. ``=`` is not in the pass-through alphabet, so an encoded token can never equal a
pass-through one: the mapping is reversible and no id can reach another id's subject.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache

from aether._xxh64 import xxh64
from aether.errors import InvalidIdentifierError, ValidationError

NAMESPACE_MAX = 64
EVENT_TYPE_MAX = 256
ACTOR_ID_MAX_BYTES = 1024
NODE_ID_MAX = 64

_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SAFE_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENCODED_PREFIX = "="


def validate_namespace(namespace: object, field: str = "namespace") -> str:
    """Return `namespace` if it is 1–64 chars of ``[A-Za-z0-9_-]``, else raise."""
    if not isinstance(namespace, str):
        raise InvalidIdentifierError(field, "must be a string")
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidIdentifierError(
            field, f"must be 1-{NAMESPACE_MAX} characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    return namespace


def validate_event_type(event_type: object, field: str = "event_type") -> str:
    """Return `event_type` if it is 1–256 printable chars without whitespace or wildcards."""
    if not isinstance(event_type, str):
        raise InvalidIdentifierError(field, "must be a string")
    if not event_type:
        raise InvalidIdentifierError(field, "must not be empty")
    if len(event_type) > EVENT_TYPE_MAX:
        raise InvalidIdentifierError(field, f"must be at most {EVENT_TYPE_MAX} characters")
    # str.isprintable() is False for every whitespace character except the ASCII space.
    if not event_type.isprintable() or " " in event_type:
        raise InvalidIdentifierError(field, "must be printable, without whitespace")
    if "*" in event_type or ">" in event_type:
        raise InvalidIdentifierError(field, "must not contain the NATS wildcards '*' or '>'")
    return event_type


def validate_actor_id(actor_id: object, field: str = "actor_id") -> str:
    """Return `actor_id` if it is a non-empty string of at most 1024 UTF-8 bytes
    without control characters, else raise."""
    if not isinstance(actor_id, str):
        raise InvalidIdentifierError(field, "must be a string")
    if not actor_id:
        raise InvalidIdentifierError(field, "must not be empty")
    if _SAFE_TOKEN_RE.fullmatch(actor_id) and len(actor_id) <= ACTOR_ID_MAX_BYTES:
        return actor_id  # fast path: plain ASCII, nothing else to check
    try:
        size = len(actor_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidIdentifierError(field, "must be valid UTF-8 (no lone surrogates)") from None
    if size > ACTOR_ID_MAX_BYTES:
        raise InvalidIdentifierError(field, f"must be at most {ACTOR_ID_MAX_BYTES} bytes of UTF-8")
    if any(_is_control(c) for c in actor_id):
        raise InvalidIdentifierError(field, "must not contain control characters")
    return actor_id


def validate_node_id(node_id: object, field: str = "node_id") -> str:
    """Return `node_id` if it is 1–64 chars of ``[A-Za-z0-9_-]`` (it is used as a KV key)."""
    if not isinstance(node_id, str) or not _NODE_ID_RE.fullmatch(node_id):
        raise InvalidIdentifierError(
            field, f"must be 1-{NODE_ID_MAX} characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    return node_id


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0 or c in "\u2028\u2029"


def encode_token(value: str) -> str:
    """Encode an (already validated) actor id or event type as one NATS subject token."""
    if _SAFE_TOKEN_RE.fullmatch(value):
        return value
    raw = base64.urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=")
    return _ENCODED_PREFIX + raw.decode("ascii")


def decode_token(token: str) -> str:
    """Invert `encode_token`; raise `InvalidIdentifierError` for a token it cannot produce."""
    if not token.startswith(_ENCODED_PREFIX):
        if not _SAFE_TOKEN_RE.fullmatch(token):
            raise InvalidIdentifierError("token", f"{token!r} is not an aether subject token")
        return token
    body = token[1:]
    try:
        value = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidIdentifierError("token", f"{token!r} is not an aether subject token") from None
    # b64decode skips stray characters and ignores trailing bits: only the canonical
    # encoding of a non-empty value is a token, so no two tokens decode to one id.
    if not value or encode_token(value) != token:
        raise InvalidIdentifierError("token", f"{token!r} is not an aether subject token")
    return value


# --- slices ------------------------------------------------------------------------------

SLICE_COUNT = 1024
"""Every actor belongs to one of this many fixed slices (the unit of server-side selection)."""


@lru_cache(maxsize=65536)
def _slice_of(actor_id: str) -> int:
    return xxh64(actor_id.encode("utf-8")) % SLICE_COUNT


def slice_of(actor_id: str) -> int:
    """The slice (0-1023) of `actor_id`: ``XXH64(utf8(actor_id), seed 0) mod 1024``.

    Stable across processes, machines and languages (test vectors in the README).
    """
    return _slice_of(validate_actor_id(actor_id))


Slices = range | frozenset[int] | set[int] | list[int] | tuple[int, ...]
"""A selection of slices: a range (``range(0, 128)``) or a collection of slice numbers."""


def normalize_slices(slices: object, field: str = "slices") -> frozenset[int] | None:
    """Validate a slice selection; None (all slices) stays None.

    Returns the selected slice numbers. An empty selection is refused (it would read
    nothing, which is never what a caller meant).
    """
    if slices is None:
        return None
    if isinstance(slices, str | bytes) or not isinstance(
        slices, range | frozenset | set | list | tuple
    ):
        raise ValidationError(field, "must be a range or a collection of slice numbers")
    out: set[int] = set()
    for s in slices:
        if type(s) is not int or not 0 <= s < SLICE_COUNT:
            raise ValidationError(
                field, f"slice numbers must be integers 0-{SLICE_COUNT - 1}, got {s!r}"
            )
        out.add(s)
    if not out:
        raise ValidationError(field, "must select at least one slice")
    return frozenset(out)


def slice_ranges(slices: frozenset[int]) -> list[tuple[int, int]]:
    """The slices as sorted, inclusive ``(first, last)`` runs."""
    runs: list[tuple[int, int]] = []
    for s in sorted(slices):
        if runs and runs[-1][1] == s - 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


def parse_slices(text: str, field: str = "slices") -> frozenset[int]:
    """Parse ``"0-127"``, ``"5"`` or ``"0-7,512-519"`` into slice numbers."""
    out: set[int] = set()
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field, "must be slice numbers or ranges like 0-127,512")
    for part in text.split(","):
        part = part.strip()
        lo_s, sep, hi_s = part.partition("-")
        if not lo_s.isdigit() or (sep and not hi_s.isdigit()) or len(part) > 9:
            raise ValidationError(field, f"{part!r} is not a slice number or range like 0-127")
        lo, hi = int(lo_s), int(hi_s) if sep else int(lo_s)
        if not 0 <= lo <= hi < SLICE_COUNT:
            raise ValidationError(
                field, f"{part!r}: slices are 0-{SLICE_COUNT - 1}, a range goes low-high"
            )
        out.update(range(lo, hi + 1))
    return frozenset(out)


# --- the subject and stream layout -------------------------------------------------------
#
# Names of streams and buckets. Every name is a fixed prefix and then the namespace, and
# no prefix is a prefix of another followed by namespace characters, so no namespace
# can produce a name of another namespace, of any kind (tests/test_subjects.py proves it
# over the namespace alphabet). The events stream keeps the documented ``AETHER_<ns>``;
# every other name starts with a prefix that is not ``AETHER_`` (``_`` is in the
# namespace alphabet, so ``AETHER_<ns>_SNAPSHOTS`` was namespace ``<ns>_SNAPSHOTS``'s
# events stream). KV bucket names may only use ``[A-Za-z0-9_-]``, hence prefixes there.

EVENTS_STREAM_PREFIX = "AETHER_"
SNAPSHOTS_STREAM_PREFIX = "AETHERSNAP_"
CLUSTER_BUCKET_PREFIX = "aethercluster_"
PROCESSOR_STREAM_PREFIX = "AETHERPROC_"
PROCESSOR_BUCKET_PREFIX = "aetherproc_"


def stream_name(namespace: str) -> str:
    """JetStream stream holding a namespace's events."""
    return EVENTS_STREAM_PREFIX + namespace


def snapshot_stream_name(namespace: str) -> str:
    """JetStream stream holding a namespace's snapshots (one message kept per subject)."""
    return SNAPSHOTS_STREAM_PREFIX + namespace


def legacy_snapshot_stream_name(namespace: str) -> str:
    """The snapshot stream name of aether 0.1 (collides with namespace ``<ns>_SNAPSHOTS``)."""
    return f"AETHER_{namespace}_SNAPSHOTS"


def legacy_cluster_bucket(namespace: str) -> str:
    """The cluster bucket name of aether 0.1."""
    return f"aether_{namespace}_cluster"


def events_subject(namespace: str, actor_id: str) -> str:
    """Subject of one actor's events: ``aether.<ns>.events.<slice>.<actor-token>``."""
    return f"aether.{namespace}.events.{_slice_of(actor_id)}.{encode_token(actor_id)}"


def events_wildcard(namespace: str) -> str:
    """Subject filter matching every event of a namespace."""
    return f"aether.{namespace}.events.*.*"


def legacy_events_wildcard(namespace: str) -> str:
    """The events subjects of aether 0.1 (no slice token): ``aether.<ns>.events.*``."""
    return f"aether.{namespace}.events.*"


def slice_filter(namespace: str, slice_: int) -> str:
    """Subject filter matching the events of one slice."""
    return f"aether.{namespace}.events.{slice_}.*"


def slice_filters(namespace: str, slices: frozenset[int] | None) -> list[str]:
    """Subject filters selecting `slices` (None: the whole namespace, one filter)."""
    if slices is None or len(slices) == SLICE_COUNT:
        return [events_wildcard(namespace)]
    return [slice_filter(namespace, s) for s in sorted(slices)]


def snapshots_subject(namespace: str, actor_id: str) -> str:
    """Subject of one actor's snapshots."""
    return f"aether.{namespace}.snapshots.{encode_token(actor_id)}"


def snapshots_wildcard(namespace: str) -> str:
    """Subject filter matching every snapshot of a namespace."""
    return f"aether.{namespace}.snapshots.*"


def bus_subject(namespace: str, event_type: str, actor_id: str) -> str:
    """Core NATS subject an event is published on by the bus."""
    return f"aether.{namespace}.bus.{encode_token(event_type)}.{encode_token(actor_id)}"


def bus_filter(
    namespace_pattern: str, event_type: str | None = None, actor_id: str | None = None
) -> str:
    """Bus subscription subject; `namespace_pattern` is a namespace or ``*``."""
    t = encode_token(event_type) if event_type is not None else "*"
    a = encode_token(actor_id) if actor_id is not None else "*"
    return f"aether.{namespace_pattern}.bus.{t}.{a}"


def cluster_bucket(namespace: str) -> str:
    """JetStream KV bucket holding a namespace's cluster state."""
    return CLUSTER_BUCKET_PREFIX + namespace


def processor_stream_name(namespace: str) -> str:
    """JetStream stream holding a namespace's processor checkpoints and parked events."""
    return PROCESSOR_STREAM_PREFIX + namespace


def processor_bucket(namespace: str) -> str:
    """JetStream KV bucket for a namespace's processor state (when a KV is used)."""
    return PROCESSOR_BUCKET_PREFIX + namespace


def inbox_prefix(namespace: str) -> str:
    """The reply-subject prefix of a namespace's clients (private replies per namespace)."""
    return f"_INBOX_aether.{namespace}"


def node_rpc_subject(namespace: str, node_id: str) -> str:
    """Prefix of a node's RPC subjects (append ``.<verb>``)."""
    return f"aether.{namespace}.node.{node_id}"


def slice_from_events_subject(subject: str) -> int:
    """The slice token of an events subject (``aether.<ns>.events.<slice>.<token>``)."""
    parts = subject.split(".")
    if len(parts) != 5 or not parts[3].isdigit() or not 0 <= int(parts[3]) < SLICE_COUNT:
        raise InvalidIdentifierError("subject", f"{subject!r} is not an aether events subject")
    return int(parts[3])


def actor_from_events_subject(subject: str) -> str:
    """The actor id of an events subject (``aether.<ns>.events.<slice>.<token>``).

    Raises `InvalidIdentifierError` for a subject aether cannot have written (a foreign
    message): a token that is not canonical, or a slice token that is not the actor's.
    """
    parts = subject.split(".")
    if len(parts) != 5:
        raise InvalidIdentifierError("subject", f"{subject!r} is not an aether events subject")
    actor_id = decode_token(parts[4])
    if parts[3] != str(_slice_of(actor_id)):
        raise InvalidIdentifierError(
            "subject", f"{subject!r}: slice {parts[3]} is not actor {actor_id!r}'s slice"
        )
    return actor_id


def validate_namespace_pattern(pattern: object, field: str = "namespace") -> str:
    """A namespace, or ``*`` for every namespace (admin tools)."""
    if pattern == "*":
        return "*"
    return validate_namespace(pattern, field)
