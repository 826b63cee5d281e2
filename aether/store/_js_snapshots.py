"""Snapshots on JetStream: stream ``AETHERSNAP_<ns>``, one message kept per actor.

A snapshot replaces the actor's previous one only if it is not older: the write is
conditional on the subject's last sequence (server-checked), so two writers racing
cannot put an older snapshot over a newer one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from aether._nats.errors import ERR_LAST_SEQ_NOT_READY, JsApiError, public_error
from aether._nats.jsapi import JsApi, RawMsg
from aether.errors import AetherError
from aether.event import Snapshot, decode_snapshot, encode_snapshot
from aether.store._js_publish import Publisher
from aether.subjects import snapshot_stream_name, snapshots_subject, validate_actor_id

_ATTEMPTS = 10


class JetStreamSnapshots:
    """Latest-snapshot-per-actor storage of one namespace."""

    def __init__(
        self,
        api: JsApi,
        publisher: Publisher,
        namespace: str,
        get: Callable[[str, dict[str, Any]], Awaitable[RawMsg | None]] | None = None,
    ) -> None:
        self._api = api
        self._get = get if get is not None else api.direct_get
        self._pub = publisher
        self._ns = namespace
        self._stream = snapshot_stream_name(namespace)

    async def save(self, snapshot: Snapshot, payload: bytes | None = None) -> None:
        """Keep `snapshot` unless a newer one is already stored (the caller checked its version)."""
        payload = payload if payload is not None else encode_snapshot(snapshot)
        subject = snapshots_subject(self._ns, snapshot.actor_id)
        for _ in range(_ATTEMPTS):
            current = await self._get(self._stream, {"last_by_subj": subject})
            if current is not None and orjson.loads(current.data)["version"] > snapshot.version:
                return
            expected = current.seq if current is not None else 0
            try:
                await self._pub.publish(
                    subject, payload, {"Nats-Expected-Last-Subject-Sequence": str(expected)}
                )
                return
            except JsApiError as e:
                if e.conflict or e.err_code == ERR_LAST_SEQ_NOT_READY:
                    continue  # another writer got there first: look again
                raise public_error(e, f"snapshot of {snapshot.actor_id!r}") from None
        raise AetherError(f"snapshot of {snapshot.actor_id!r} kept losing races; not saved")

    async def latest(self, actor_id: str) -> Snapshot | None:
        """The actor's latest snapshot, or None."""
        validate_actor_id(actor_id)
        msg = await self._get(self._stream, {"last_by_subj": snapshots_subject(self._ns, actor_id)})
        return None if msg is None else decode_snapshot(msg.data)
