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

from aether.errors import InvalidIdentifierError

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


# --- the subject and stream layout -------------------------------------------------------


def stream_name(namespace: str) -> str:
    """JetStream stream holding a namespace's events."""
    return f"AETHER_{namespace}"


def snapshot_stream_name(namespace: str) -> str:
    """JetStream stream holding a namespace's snapshots (one message kept per subject)."""
    return f"AETHER_{namespace}_SNAPSHOTS"


def events_subject(namespace: str, actor_id: str) -> str:
    """Subject of one actor's events."""
    return f"aether.{namespace}.events.{encode_token(actor_id)}"


def events_wildcard(namespace: str) -> str:
    """Subject filter matching every event of a namespace."""
    return f"aether.{namespace}.events.*"


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
    return f"aether_{namespace}_cluster"


def node_rpc_subject(namespace: str, node_id: str) -> str:
    """Prefix of a node's RPC subjects (append ``.<verb>``)."""
    return f"aether.{namespace}.node.{node_id}"


def actor_from_events_subject(subject: str) -> str:
    """The actor id of an events subject (``aether.<ns>.events.<token>``)."""
    return decode_token(subject.rsplit(".", 1)[1])


def validate_namespace_pattern(pattern: object, field: str = "namespace") -> str:
    """A namespace, or ``*`` for every namespace (admin tools)."""
    if pattern == "*":
        return "*"
    return validate_namespace(pattern, field)
