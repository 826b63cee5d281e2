"""Decoding stored messages, refusing anything aether cannot have written.

A message on an aether events subject may come from another writer (a script, another
language, a mistake): not JSON, wrong keys, an actor that is not its subject's, or a
subject aether never produces (a non-canonical token, a slice that is not the actor's).
`decode_stored` turns every such message into `CorruptEventError(position, reason,
subject=)`; an actor's reads raise it, namespace-wide scans skip and count it.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from aether.errors import CorruptEventError, InvalidIdentifierError
from aether.event import Event, decode_event
from aether.subjects import actor_from_events_subject

log = logging.getLogger("aether.store")


@lru_cache(maxsize=65536)
def actor_of_subject(subject: str) -> str | None:
    """The actor of an events subject, or None for a subject aether cannot have written."""
    try:
        return actor_from_events_subject(subject)
    except InvalidIdentifierError:
        return None


def decode_stored(subject: str, data: bytes, seq: int, actor_id: str | None = None) -> Event:
    """The event stored at `seq` on `subject`; `CorruptEventError` if it is not one.

    With `actor_id`, the message must also be that actor's (an actor read).
    """
    actor = actor_of_subject(subject)
    if actor is None:
        raise CorruptEventError(seq, "the subject is not an aether events subject", subject=subject)
    if actor_id is not None and actor != actor_id:
        raise CorruptEventError(seq, f"the subject is not actor {actor_id!r}'s", subject=subject)
    try:
        event = decode_event(data, seq)
    except Exception as e:  # bad JSON, missing keys, wrong types: not written by aether
        raise CorruptEventError(
            seq, f"the payload is not an aether event ({type(e).__name__})", subject=subject
        ) from None
    if event.actor_id != actor:
        raise CorruptEventError(
            seq, f"the payload names actor {event.actor_id!r}, not its subject's", subject=subject
        )
    version = event.version
    if type(version) is not int or version < 1:
        raise CorruptEventError(seq, f"version {version!r} is not a version", subject=subject)
    return event


class CorruptCounter:
    """Counts (and logs) corrupt messages skipped by namespace-wide scans."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.count = 0

    def skip(self, error: CorruptEventError) -> None:
        """Count one skipped message and log a warning naming it."""
        self.count += 1
        log.warning("namespace %s: skipped a foreign message: %s", self.namespace, error)
