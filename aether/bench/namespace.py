"""The throw-away namespace of a benchmark run, and its removal afterwards.

A run from `Settings` writes to ``bench-<random>`` (SQLite: a temporary file beside the
configured one) and removes it on exit: the SQLite file, or the namespace's JetStream
streams. A namespace set explicitly is used as is and never removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aether._nats.jsapi import JsApi
from aether.config import Settings
from aether.errors import AetherError

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

log = logging.getLogger("aether.bench")

_DELETE_TIMEOUT = 5.0  # seconds for one STREAM.DELETE request


def _namespace_given(settings: Settings) -> bool:
    return settings.sources.get("namespace", "default") != "default"


@contextlib.asynccontextmanager
async def bench_target(
    settings: Settings, *, keep: bool = False
) -> AsyncIterator[tuple[Settings, str, bool]]:
    """Settings for a throw-away namespace (and SQLite file), removed on exit unless `keep`.

    Yields ``(settings, namespace, kept)``. A namespace set explicitly (flag, environment
    or file) is used as is and never removed (``kept`` is True).
    """
    token = secrets.token_hex(4)
    given = _namespace_given(settings)
    namespace = settings.namespace if given else f"bench-{token}"
    kept = keep or given
    kind = settings.resolved_store
    changes: dict[str, Any] = {"namespace": namespace}
    temp_db: Path | None = None
    made_dir: Path | None = None
    if kind == "sqlite" and not kept:
        parent = Path(settings.sqlite.path).parent
        if not parent.exists():
            parent.mkdir(parents=True)
            made_dir = parent
        temp_db = parent / f"bench-{token}.db"
        changes["sqlite"] = dataclasses.replace(settings.sqlite, path=str(temp_db))
    bench_settings = settings.replace(**changes)
    try:
        yield bench_settings, namespace, kept
    finally:
        if temp_db is not None:
            _remove_db(temp_db, made_dir)
        if kind == "jetstream" and not kept:
            await delete_namespace_streams(bench_settings)


def _remove_db(db: Path, made_dir: Path | None) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(db) + suffix).unlink()
    if made_dir is not None:
        with contextlib.suppress(OSError):
            made_dir.rmdir()


async def delete_namespace_streams(settings: Settings) -> list[str]:
    """Delete the JetStream streams of ``settings.namespace`` (events and snapshots).

    Only for throw-away benchmark namespaces: deleting a whole stream is allowed even
    with deny-delete/deny-purge. Returns the names deleted.
    """
    from aether.connect import connect
    from aether.subjects import snapshot_stream_name, stream_name

    deleted: list[str] = []
    try:
        nc = await connect(settings)
    except AetherError as e:
        log.warning("bench: could not connect to delete the bench streams: %s", e)
        return deleted
    try:
        for name in (stream_name(settings.namespace), snapshot_stream_name(settings.namespace)):
            try:
                if await _delete_stream(nc, name):
                    deleted.append(name)
            except Exception as e:  # a failed clean-up must not hide the figures
                log.warning("bench: could not delete stream %s: %s", name, e)
    finally:
        await nc.close()
    return deleted


async def _delete_stream(nc: NATS, name: str) -> bool:
    """Delete stream `name`; False when there is none."""
    return await JsApi(nc, _DELETE_TIMEOUT).stream_delete(name)
