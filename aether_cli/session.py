"""Helpers the store commands share: open and always close the store, parse JSON options."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from aether.config import Settings
from aether.errors import InvalidEventError
from aether.event import JSONValue, check_json_value, loads_json_object
from aether.store import open_store
from aether.store.base import EventStore


@asynccontextmanager
async def store_session(settings: Settings, *, create: bool = True) -> AsyncIterator[EventStore]:
    """Open the store `settings` select and close it however the block ends.

    Read-only commands pass ``create=False``: a store or namespace that does not exist
    is then `NotFoundError` (exit 4, one line naming the path or namespace), never an
    empty store created on a mistyped path or namespace.
    """
    store = await open_store(settings, create=create)
    try:
        yield store
    finally:
        await store.close()


def read_only_session(settings: Settings) -> AbstractAsyncContextManager[EventStore]:
    """`store_session` for a read-only command: opens only a store that exists."""
    return store_session(settings, create=False)


def read_input(source: str, option: str) -> bytes:
    """The bytes of file `source`, or of stdin when `source` is ``-``.

    Raises `InvalidEventError` naming `option` when the file cannot be read.
    """
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as e:
        raise InvalidEventError(option, f"cannot read {source!r} ({e.strerror})") from None


def json_object_option(value: str | None, option: str) -> dict[str, JSONValue]:
    """Parse a JSON-object option: inline JSON, ``@file.json``, or ``@-`` for stdin.

    None gives ``{}``. Raises `InvalidEventError` naming `option` for anything else than
    a JSON object with finite numbers.
    """
    if value is None:
        return {}
    text: str | bytes = value
    if value.startswith("@"):
        text = read_input(value[1:], option)
    try:
        return loads_json_object(text, option)
    except InvalidEventError:
        explain_non_finite(text, option)
        raise


def explain_non_finite(text: str | bytes, option: str) -> None:
    """Raise the precise `InvalidEventError` when `text` is JSON but for NaN or infinity.

    orjson refuses ``NaN`` as a syntax error; this names the offending value instead.
    Returns quietly when `text` is not JSON for another reason.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return
    check_json_value(value, option)
