"""Bulk input for ``aether append --file``: parse and check a JSON-lines file, then plan it.

Each non-blank line is one JSON object with the wire-format keys ``actor_id``,
``event_type`` and ``data``, and optionally ``version``, ``metadata``, ``id`` and
``timestamp``. The whole file is checked before anything is written. Versions left out
are assigned in file order from the actor's latest stored version; consecutive lines of
one actor become one atomic ``save_events`` batch (split every `MAX_BATCH` events).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from aether.errors import ValidationError
from aether.event import Event, check_exact_ints, encode_event, event_from_dict
from aether_cli.session import explain_non_finite

MAX_BATCH = 1000
"""Most events in one atomic batch (a longer run of one actor is split)."""

ACTORS_LISTED_ABOVE = 64
"""Above this many distinct actors, latest versions come from one `list_actors` call."""


class BulkInputError(ValidationError):
    """A line of the bulk file is invalid; nothing was written."""

    def __init__(self, line: int, rule: str) -> None:
        self.line = line
        super().__init__(f"line {line}", rule)


@dataclass(slots=True)
class BulkItem:
    """One parsed line: its number, its event, and whether the line gave the version."""

    line: int
    event: Event
    explicit_version: bool


def parse_lines(payload: bytes, max_event_bytes: int) -> list[BulkItem]:
    """Parse and validate every line of `payload`; raise `BulkInputError` on the first bad one."""
    items: list[BulkItem] = []
    ids: dict[str, int] = {}
    for number, raw in enumerate(payload.split(b"\n"), start=1):
        if not raw.strip():
            continue
        item = parse_line(raw, number, max_event_bytes)
        if item.event.id in ids:
            raise BulkInputError(
                number, f"id {item.event.id!r} is already used on line {ids[item.event.id]}"
            )
        ids[item.event.id] = number
        items.append(item)
    return items


def parse_line(raw: bytes, number: int, max_event_bytes: int) -> BulkItem:
    """Parse one line into a validated `BulkItem` (a missing version is set later)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        try:
            explain_non_finite(raw, "")
        except ValidationError as precise:
            raise BulkInputError(number, f"{precise.field.lstrip('.')}: {precise.rule}") from None
        raise BulkInputError(number, f"is not valid JSON ({e})") from None
    if type(obj) is not dict:
        raise BulkInputError(number, "must be a JSON object")
    try:
        check_exact_ints(obj, raw, "")
    except ValidationError as e:
        raise BulkInputError(number, f"{e.field.lstrip('.')}: {e.rule}") from None
    explicit = "version" in obj
    if not explicit:
        obj["version"] = 1  # placeholder; the real one is assigned by `assign_versions`
    try:
        event = event_from_dict(obj)
        encode_event(event, max_event_bytes)
    except ValidationError as e:
        raise BulkInputError(number, str(e)) from None
    return BulkItem(number, event, explicit)


async def assign_versions(
    items: Sequence[BulkItem],
    latest_version: Callable[[str], Awaitable[int]],
    list_actors: Callable[[], Awaitable[dict[str, int]]],
) -> None:
    """Give every item its version: per actor, consecutive in file order.

    An actor's first line starts at its own version, or at the stored latest + 1 when it
    has none; a later line that states a version must state exactly the next one.
    """
    first_auto = {i.event.actor_id for i in items if not i.explicit_version}
    known: dict[str, int] | None = None
    if len(first_auto) > ACTORS_LISTED_ABOVE:
        known = await list_actors()
    next_version: dict[str, tuple[int, int]] = {}  # actor -> (next version, line of previous)
    for item in items:
        actor = item.event.actor_id
        if actor in next_version:
            expected, previous = next_version[actor]
            if item.explicit_version and item.event.version != expected:
                raise BulkInputError(
                    item.line,
                    f"version must be {expected} (actor {actor!r} is at version "
                    f"{expected - 1} on line {previous}), got {item.event.version}",
                )
        elif item.explicit_version:
            expected = item.event.version
        elif known is not None:
            expected = known.get(actor, 0) + 1
        else:
            expected = await latest_version(actor) + 1
        if item.event.version != expected:
            item.event = dataclasses.replace(item.event, version=expected)
        next_version[actor] = (expected + 1, item.line)


def plan_batches(items: Sequence[BulkItem], max_batch: int = MAX_BATCH) -> list[list[BulkItem]]:
    """Group consecutive lines of one actor into batches of at most `max_batch`."""
    batches: list[list[BulkItem]] = []
    for item in items:
        last = batches[-1] if batches else None
        if last and last[-1].event.actor_id == item.event.actor_id and len(last) < max_batch:
            last.append(item)
        else:
            batches.append([item])
    return batches
