"""The bus's hot path to and from the wire format of `aether.event`.

`WireEncoder` encodes with `encode_event` (one codec for stores and bus) and caches the
validated identifiers and their subject tokens, so building a bus subject costs a dict
lookup per event.
"""

from __future__ import annotations

import logging
from typing import Any

from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    decode_event,
    encode_event,
    validate_event,
)
from aether.subjects import (
    encode_token,
    validate_actor_id,
    validate_event_type,
    validate_namespace,
)

log = logging.getLogger("aether.bus")

_CACHE_LIMIT = 65536


class WireEncoder:
    """Validates and encodes events for one bus, with bounded identifier caches."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._types: dict[str, str] = {}
        self._actors: dict[str, str] = {}
        self._subjects: dict[tuple[str, str, str], str] = {}

    def subject(self, namespace: str, event_type: str, actor_id: str) -> str:
        """The bus subject of an event; validates the three identifiers (cached)."""
        key = (namespace, event_type, actor_id)
        subject = self._subjects.get(key)
        if subject is None:
            validate_namespace(namespace)
            subject = (
                f"aether.{namespace}.bus.{self.type_token(event_type)}.{self.actor_token(actor_id)}"
            )
            if len(self._subjects) >= _CACHE_LIMIT:
                self._subjects.clear()
            self._subjects[key] = subject
        return subject

    def type_token(self, event_type: str) -> str:
        """The validated subject token of `event_type`."""
        tok = self._types.get(event_type)
        if tok is None:
            tok = encode_token(validate_event_type(event_type))
            if len(self._types) >= _CACHE_LIMIT:
                self._types.clear()
            self._types[event_type] = tok
        return tok

    def actor_token(self, actor_id: str) -> str:
        """The validated subject token of `actor_id`."""
        tok = self._actors.get(actor_id)
        if tok is None:
            tok = encode_token(validate_actor_id(actor_id))
            if len(self._actors) >= _CACHE_LIMIT:
                self._actors.clear()
            self._actors[actor_id] = tok
        return tok

    def encode(self, event: Event) -> bytes:
        """Validate `event` and return its wire bytes; raise if invalid or too large."""
        if type(event) is not Event:
            validate_event(event)  # raises the precise error
        self.type_token(event.event_type)
        self.actor_token(event.actor_id)
        return self._payload(event)

    def encode_for(self, namespace: str, event: Event) -> tuple[str, bytes]:
        """Validate `namespace` and `event`; return the bus subject and the wire bytes."""
        if type(event) is not Event:
            validate_event(event)  # raises the precise error
        subject = self._subjects.get((namespace, event.event_type, event.actor_id))
        if subject is None:
            subject = self.subject(namespace, event.event_type, event.actor_id)
        return subject, self._payload(event)

    def _payload(self, event: Event) -> bytes:
        return encode_event(event, self.max_bytes)


def decode_wire(payload: bytes) -> Event:
    """`decode_event` of a bus message (kept as the bus's name for it)."""
    return decode_event(payload)


def decode_message(msg: Any) -> Event | None:
    """Decode a NATS message of the bus; None (and a warning) when it is not an event."""
    try:
        return decode_wire(msg.data)
    except (ValueError, KeyError, TypeError) as e:
        log.warning(
            "ignored a message on %s that is not an aether event (%s: %s)",
            getattr(msg, "subject", "?"),
            type(e).__name__,
            e,
        )
        return None
