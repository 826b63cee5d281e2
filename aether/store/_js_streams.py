"""The namespace's streams: the configuration Settings ask for, created or verified.

An existing stream is never changed: if it differs from the configuration in a field
aether relies on, `StoreConfigMismatchError` names every differing field. A namespace
made by aether 0.1 (events on ``aether.<ns>.events.<actor>``, without the slice token, or
snapshots in ``AETHER_<ns>_SNAPSHOTS``) raises `LegacyLayoutError` and is never used.

The events stream also holds the namespace's tracking records (``aether.<ns>.track.>``,
written by processors in the same atomic batch as their outputs); reads of events
always filter on the events subjects.
"""

from __future__ import annotations

from typing import Any

from aether._nats.errors import ERR_STREAM_NAME_IN_USE, ERR_SUBJECTS_OVERLAP, JsApiError
from aether._nats.jsapi import NS, JsApi
from aether.config import JetStreamSettings
from aether.errors import AetherError, LegacyLayoutError, StoreConfigMismatchError
from aether.subjects import (
    encode_token,
    events_wildcard,
    legacy_events_wildcard,
    legacy_snapshot_stream_name,
    snapshot_stream_name,
    snapshots_wildcard,
    stream_name,
)

DEFAULT_DUPLICATE_WINDOW = 120.0

_DURATIONS = frozenset({"max_age", "duplicate_window"})
EVENT_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "max_age",
    "max_bytes",
    "max_msgs_per_subject",
    "discard",
    "duplicate_window",
    "deny_delete",
    "deny_purge",
    "allow_direct",
    "allow_atomic",
)
SNAPSHOT_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "max_msgs_per_subject",
    "allow_direct",
)


def tracking_wildcard(namespace: str) -> str:
    """Subject filter of every tracking record of a namespace (in the events stream)."""
    return f"aether.{namespace}.track.>"


def tracking_subject(namespace: str, key: str) -> str:
    """Subject of tracking record `key` (validated by `check_tracking`)."""
    return f"aether.{namespace}.track.{encode_token(key)}"


async def check_legacy(api: JsApi, namespace: str) -> None:
    """Raise `LegacyLayoutError` if the events stream has aether 0.1's subjects.

    (aether 0.1's snapshot stream is found when the new one is created: its subjects
    overlap, see `legacy_snapshot_error`; no request to a stream the user may not see.)
    """
    name = stream_name(namespace)
    info = await api.stream_info(name)
    old = legacy_events_wildcard(namespace)
    if info is not None and old in (info.get("config", {}).get("subjects") or []):
        raise LegacyLayoutError(
            f"namespace {namespace} was created by aether 0.1 (subjects {old}); copy its "
            f"events into a new namespace, or delete stream {name}"
        )


def legacy_snapshot_error(namespace: str) -> LegacyLayoutError:
    """The error for a namespace whose snapshots are in aether 0.1's stream."""
    snap = legacy_snapshot_stream_name(namespace)
    return LegacyLayoutError(
        f"namespace {namespace} was created by aether 0.1 (snapshot stream {snap}); "
        f"delete stream {snap} (snapshots are rebuilt from events) or use a new namespace"
    )


def events_stream_config(namespace: str, js: JetStreamSettings, *, atomic: bool) -> dict[str, Any]:
    """The events stream: file storage, immutable while retained, direct get, atomic batches."""
    dup = js.duplicate_window or DEFAULT_DUPLICATE_WINDOW
    if js.max_age and dup > js.max_age:
        dup = js.max_age  # the server refuses a duplicate window longer than max age
    cfg: dict[str, Any] = {
        "name": stream_name(namespace),
        "subjects": [events_wildcard(namespace), tracking_wildcard(namespace)],
        "retention": "limits",
        "storage": "file",
        "num_replicas": js.replicas,
        "max_age": int(js.max_age * NS),
        "max_bytes": js.max_bytes,
        "max_msgs_per_subject": -1,
        "discard": "old",
        "duplicate_window": int(dup * NS),
        "deny_delete": True,
        "deny_purge": True,
        "allow_direct": True,
    }
    if atomic:
        cfg["allow_atomic"] = True
    return cfg


def snapshots_stream_config(namespace: str, js: JetStreamSettings) -> dict[str, Any]:
    """The snapshots stream: the latest message of each actor's subject is kept."""
    return {
        "name": snapshot_stream_name(namespace),
        "subjects": [snapshots_wildcard(namespace)],
        "retention": "limits",
        "storage": "file",
        "num_replicas": js.replicas,
        "max_msgs_per_subject": 1,
        "discard": "old",
        "allow_direct": True,
    }


_DEFAULTS: dict[str, Any] = {
    "allow_atomic": False,
    "allow_direct": False,
    "deny_delete": False,
    "deny_purge": False,
    "max_age": 0,
    "max_bytes": -1,
    "max_msgs_per_subject": -1,
}


def _show(field: str, value: Any) -> Any:
    if field in _DURATIONS and isinstance(value, int):
        return f"{value / NS:g}s"
    return value


def differences(
    have: dict[str, Any], want: dict[str, Any], fields: tuple[str, ...]
) -> dict[str, tuple[Any, Any]]:
    """The fields of `fields` in which `have` (the server's config) differs from `want`."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in fields:
        if f not in want:
            continue
        h = have.get(f, _DEFAULTS.get(f))
        w = want[f]
        if f == "subjects":
            h, w = sorted(h or []), sorted(w)
        if h != w:
            out[f] = (_show(f, h), _show(f, w))
    return out


async def ensure_stream(
    api: JsApi,
    want: dict[str, Any],
    fields: tuple[str, ...],
    *,
    on_overlap: AetherError | None = None,
) -> dict[str, Any]:
    """Create the stream `want` describes, or verify the existing one; return its config.

    `on_overlap` is raised if another stream already has the subjects.
    """
    name = want["name"]
    info = await api.stream_info(name)
    if info is None:
        try:
            info = await api.stream_create(want)
        except JsApiError as e:
            if e.err_code == ERR_SUBJECTS_OVERLAP and on_overlap is not None:
                raise on_overlap from None
            if e.err_code != ERR_STREAM_NAME_IN_USE:
                raise AetherError(f"cannot create stream {name}: {e.description}") from None
            info = await api.stream_info(name)  # created meanwhile with another config
            if info is None:
                raise AetherError(f"cannot create stream {name}: {e.description}") from None
    config: dict[str, Any] = info.get("config", {})
    diff = differences(config, want, fields)
    if diff:
        raise StoreConfigMismatchError(name, diff)
    return config
