"""JSON-lines import: parse, validate with line numbers, assign versions, plan, append.

Each non-blank line is one JSON object in the event wire format: ``actor_id`` and
``event_type`` are required, ``data`` defaults to ``{}``, and ``version``, ``metadata``,
``id`` and ``timestamp`` are optional. `import_lines` checks the whole input before it
writes anything (the first bad line raises `InvalidLineError` with its number), gives
every line without a version the next version of its actor in input order (from the
actor's latest stored version), and appends consecutive lines of one actor as one
atomic ``save_events`` unit (at most `MAX_BATCH` events, or the store's ``max_batch``).

Input is bounded: a line longer than ``max_event_bytes`` is refused by its number as
soon as it is read (so ``/dev/zero`` ends at once), and so is input of more than
`MAX_EVENTS` events or `MAX_INPUT_BYTES` bytes. An explicit but invalid ``id`` (``0``,
``""``, ``false``) is refused, never replaced by a fresh one; timestamps must convert to
UTC within years 1-9999.

::

    from aether.jsonl import import_lines
    with open("events.jsonl", "rb") as f:
        result = await import_lines(store, f)
    print(result.appended, result.actors)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from aether.errors import InvalidLineError, ValidationError
from aether.event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    check_exact_ints,
    check_json_value,
    encode_event,
    event_from_dict,
)
from aether.store.base import EventStore

MAX_BATCH = 1000
"""Most events in one atomic unit (a longer run of one actor is cut into several)."""

ACTORS_LISTED_ABOVE = 64
"""Above this many distinct actors, latest versions come from one `list_actors` call."""

MAX_EVENTS = 1_000_000
"""Most events one import takes (the whole input is held and checked before writing)."""

MAX_INPUT_BYTES = 1024**3
"""Most bytes one import reads (1 GiB)."""

ID_MAX = 256

__all__ = [
    "ACTORS_LISTED_ABOVE",
    "MAX_BATCH",
    "MAX_EVENTS",
    "MAX_INPUT_BYTES",
    "ImportItem",
    "ImportProgress",
    "ImportResult",
    "assign_versions",
    "import_lines",
    "iter_lines",
    "parse_line",
    "parse_lines",
    "plan_batches",
]


@dataclass(slots=True)
class ImportItem:
    """One parsed line: its number, its event, and whether the line gave the version."""

    line: int
    event: Event
    explicit_version: bool


@dataclass
class ImportProgress:
    """How far an import got; updated as units are written, so after a failure it says
    what was written (`appended` events, up to the line before `failed_line`)."""

    appended: int = 0
    batches_written: int = 0
    batches: int = 0
    actors: dict[str, int] = field(default_factory=dict)
    failed_line: int | None = None


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: events, units, and each actor's last version."""

    appended: int
    batches: int
    actors: dict[str, int]


def iter_lines(
    source: IO[bytes] | bytes | Iterable[bytes],
    max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    *,
    max_input_bytes: int = MAX_INPUT_BYTES,
) -> Iterator[tuple[int, bytes]]:
    """``(number, line)`` for every line of `source` (a binary file, bytes, or lines),
    reading at most `max_line_bytes` + 1 bytes per line: a longer line raises
    `InvalidLineError` with its number before the rest of it is read."""
    total = 0
    if isinstance(source, bytes | bytearray):
        chunks: Iterable[bytes] = _split(bytes(source))
    elif hasattr(source, "readline"):
        chunks = _read(source, max_line_bytes)  # type: ignore[arg-type]
    else:
        chunks = source
    for number, raw in enumerate(chunks, start=1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > max_line_bytes:
            raise InvalidLineError(
                number, f"is longer than max_event_bytes ({max_line_bytes} bytes)"
            )
        total += len(raw)
        if total > max_input_bytes:
            raise InvalidLineError(
                number, f"the input is larger than {max_input_bytes} bytes: split it"
            )
        yield number, line


def _split(payload: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(payload):
        end = payload.find(b"\n", start)
        if end < 0:
            yield payload[start:]
            return
        yield payload[start : end + 1]
        start = end + 1


def _read(f: IO[bytes], max_line_bytes: int) -> Iterator[bytes]:
    while True:
        raw = f.readline(max_line_bytes + 3)  # the line, "\r\n", and one byte too many
        if not raw:
            return
        yield raw


def parse_lines(
    source: IO[bytes] | bytes | Iterable[bytes],
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    *,
    max_events: int = MAX_EVENTS,
) -> list[ImportItem]:
    """Parse and validate every line of `source`; raise `InvalidLineError` on the first
    bad one (ids must also be unique within the input)."""
    items: list[ImportItem] = []
    ids: dict[str, int] = {}
    for number, raw in iter_lines(source, max_event_bytes):
        if not raw.strip():
            continue
        if len(items) >= max_events:
            raise InvalidLineError(number, f"the input has more than {max_events} events: split it")
        item = parse_line(raw, number, max_event_bytes)
        if item.event.id in ids:
            raise InvalidLineError(
                number, f"id {item.event.id!r} is already used on line {ids[item.event.id]}"
            )
        ids[item.event.id] = number
        items.append(item)
    return items


def _rule(e: ValidationError) -> str:
    where = e.field.lstrip(".")
    return f"{where}: {e.rule}" if where else e.rule


def parse_line(
    raw: bytes, number: int, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> ImportItem:
    """Parse one line into a validated `ImportItem` (a missing version is set later)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        _explain_non_finite(raw, number)
        raise InvalidLineError(number, f"is not valid JSON ({e})") from None
    if type(obj) is not dict:
        raise InvalidLineError(number, "must be a JSON object")
    try:
        check_exact_ints(obj, raw, "")
    except ValidationError as e:
        raise InvalidLineError(number, _rule(e)) from None
    except RecursionError:
        raise InvalidLineError(number, "is nested too deeply") from None
    _check_id(obj, number)
    _check_timestamp(obj, number)
    explicit = "version" in obj
    if not explicit:
        obj["version"] = 1  # placeholder; the real one is assigned by `assign_versions`
    try:
        event = event_from_dict(obj)
        encode_event(event, max_event_bytes)
    except ValidationError as e:
        raise InvalidLineError(number, str(e)) from None
    except (RecursionError, OverflowError, ValueError) as e:
        raise InvalidLineError(number, f"is not a valid event ({type(e).__name__})") from None
    return ImportItem(number, event, explicit)


def _explain_non_finite(raw: bytes, number: int) -> None:
    """orjson refuses ``NaN`` as a syntax error; name the offending value instead."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return
    try:
        check_json_value(value, "")
    except ValidationError as e:
        raise InvalidLineError(number, _rule(e)) from None
    except RecursionError:
        raise InvalidLineError(number, "is nested too deeply") from None


def _check_id(obj: dict[str, Any], number: int) -> None:
    if "id" not in obj:
        return
    value = obj["id"]
    if not isinstance(value, str) or not value or len(value) > ID_MAX or not value.isprintable():
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InvalidLineError(
            number,
            f"id: must be a non-empty string of at most {ID_MAX} printable characters, "
            f"got {shown} (leave it out for a fresh id)",
        )


def _check_timestamp(obj: dict[str, Any], number: int) -> None:
    value = obj.get("timestamp")
    if not isinstance(value, str):
        return  # absent, or the wrong type: event_from_dict names it
    shown = repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    try:
        ts = datetime.fromisoformat(value)
        if ts.tzinfo is not None:
            ts.astimezone(UTC)
    except ValueError:
        raise InvalidLineError(number, f"timestamp: {shown} is not an RFC 3339 timestamp") from None
    except OverflowError:
        raise InvalidLineError(
            number, f"timestamp: {shown} is out of range once converted to UTC (years 1-9999)"
        ) from None


async def assign_versions(
    items: Sequence[ImportItem],
    latest_version: Callable[[str], Awaitable[int]],
    list_actors: Callable[[], Awaitable[dict[str, int]]],
) -> None:
    """Give every item its version: per actor, consecutive in input order.

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
                raise InvalidLineError(
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


def plan_batches(items: Sequence[ImportItem], max_batch: int = MAX_BATCH) -> list[list[ImportItem]]:
    """Group consecutive lines of one actor into units of at most `max_batch`."""
    batches: list[list[ImportItem]] = []
    for item in items:
        last = batches[-1] if batches else None
        if last and last[-1].event.actor_id == item.event.actor_id and len(last) < max_batch:
            last.append(item)
        else:
            batches.append([item])
    return batches


async def import_lines(
    store: EventStore,
    source: IO[bytes] | bytes | Iterable[bytes],
    *,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_batch: int | None = None,
    progress: ImportProgress | None = None,
    on_unit: Callable[[ImportProgress], None] | None = None,
) -> ImportResult:
    """Append every event of JSON-lines `source` to `store` (see the module doc).

    Raises `InvalidLineError` (nothing written) for a bad line or version; a store error
    on a unit (e.g. `VersionConflictError`) propagates with the earlier units written:
    `progress` (if given) then says how many and from which line nothing was.
    `on_unit(progress)` is called after each unit is written.
    """
    items = parse_lines(source, max_event_bytes)
    await assign_versions(items, store.get_latest_version, store.list_actors)
    limit = min(max_batch or MAX_BATCH, getattr(store, "max_batch", MAX_BATCH) or MAX_BATCH)
    batches = plan_batches(items, limit)
    state = progress if progress is not None else ImportProgress()
    state.batches = len(batches)
    for batch in batches:
        state.failed_line = batch[0].line
        await store.save_events([item.event for item in batch])
        state.failed_line = None
        state.appended += len(batch)
        state.batches_written += 1
        state.actors[batch[-1].event.actor_id] = batch[-1].event.version
        if on_unit is not None:
            on_unit(state)
    return ImportResult(state.appended, len(batches), dict(state.actors))
