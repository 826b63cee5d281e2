"""The namespace's cluster bucket (``aethercluster_<ns>``): CAS writes, TTLs and a live view.

A thin layer over the JetStream stream behind the KV bucket (through aether's JetStream
API, `aether._nats.jsapi`), for what a plain KV client does not offer: a per-key TTL on
every write (``Nats-TTL``, server 2.11+), create-if-absent that also works over the
server's expiry markers, a write fenced on *another* key's revision
(``Nats-Expected-Last-Subject-Sequence-Subject``) and a view of every key that follows
the bucket with one push consumer and can be restarted when it goes quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from nats.aio.client import Client as NATS

from aether._nats.errors import CasConflictError, JsApiError, cluster_failure, is_nats_error
from aether._nats.info import server_version
from aether._nats.jsapi import JsApi, RawMsg
from aether._nats.raw import RawSubscription, header_value, subscribe_raw
from aether.errors import AetherError, ClusterError, UnsupportedServerError
from aether.errors import NotFoundError as AetherNotFoundError
from aether.subjects import cluster_bucket, validate_namespace

log = logging.getLogger("aether.cluster")

T = TypeVar("T")

MARKER_TTL = 60.0
"""How long the server keeps the marker it places when a key's TTL expires (seconds)."""

_DELETE_OPS = (b"DEL", b"PURGE")


async def bounded(aw: Awaitable[T], seconds: float) -> T:
    """Await `aw` for at most `seconds` (`TimeoutError`), cancellation-safe.

    Used instead of ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation
    that arrives as the awaited thing completes (a task would then never stop).
    """
    async with asyncio.timeout(seconds):
        return await aw


@contextlib.contextmanager
def nats_errors(doing: str) -> Iterator[None]:
    """Turn nats-py errors raised while `doing` something into aether errors."""
    try:
        yield
    except CasConflictError:
        raise
    except Exception as e:
        if isinstance(e, JsApiError | TimeoutError) or is_nats_error(e):
            raise cluster_failure(e, doing) from None
        raise


@dataclass(frozen=True)
class KvEntry:
    """The last message of one key: its value, revision and the server's timestamp.

    `deleted` is true for a delete or purge marker, including the marker the server
    places when the key's TTL expires.
    """

    key: str
    value: bytes
    revision: int
    created: datetime
    deleted: bool = False

    def age(self, now: datetime | None = None) -> float:
        """Seconds since the server stored this entry (by the local wall clock)."""
        return ((now or datetime.now(UTC)) - self.created).total_seconds()


def ttl_header(seconds: float) -> str:
    """A ``Nats-TTL`` value for `seconds`, rounded *up* to whole seconds (at least 1s).

    nats-server keeps TTLs in whole seconds and truncates a fraction (``1500ms`` expires
    after 1 s, measured on 2.15.1): a key would vanish before the holder's own deadline,
    and a follower could take over a lease its leader still believes it holds. Rounding
    up keeps the server's expiry at or after the deadline every holder computes.
    """
    return f"{max(1, math.ceil(seconds))}s"


def _is_deleted(headers: bytes | None) -> bool:
    if not headers:
        return False
    if header_value(headers, b"KV-Operation") in _DELETE_OPS:
        return True
    return header_value(headers, b"Nats-Marker-Reason") is not None


class ClusterBucket:
    """The KV bucket holding a namespace's cluster state."""

    def __init__(self, nc: NATS, namespace: str, *, timeout: float = 5.0) -> None:
        validate_namespace(namespace)
        self.nc = nc
        self.api = JsApi(nc, timeout)
        self.namespace = namespace
        self.name = cluster_bucket(namespace)
        self.stream = f"KV_{self.name}"
        self.prefix = f"$KV.{self.name}."
        self.timeout = timeout

    @classmethod
    async def open(
        cls,
        nc: NATS,
        namespace: str,
        *,
        replicas: int = 1,
        create: bool = True,
        request_timeout: float = 5.0,
    ) -> ClusterBucket:
        """Open the bucket, creating it when `create` (else `ClusterError` if it is missing)."""
        version = server_version(nc)
        if version < (2, 11, 0):
            text = ".".join(map(str, version))
            raise UnsupportedServerError(
                f"nats-server {text} lacks per-key TTLs; the cluster needs 2.11 or newer"
            )
        bucket = cls(nc, namespace, timeout=request_timeout)
        with nats_errors(f"opening bucket {bucket.name}"):
            return await bucket._open(replicas, create)

    async def _open(self, replicas: int, create: bool) -> ClusterBucket:
        bucket, namespace = self, self.namespace
        info = await bucket.api.stream_info(bucket.stream)
        if info is None:
            if not create:
                raise AetherNotFoundError(
                    f"no cluster in namespace {namespace!r} (bucket {bucket.name} does not exist)"
                ) from None
            await bucket._create(replicas)
            return bucket
        config = info.get("config") or {}
        if not config.get("allow_msg_ttl") or not config.get("subject_delete_marker_ttl"):
            raise ClusterError(
                f"bucket {bucket.name} exists without per-key TTLs and expiry markers; "
                "delete it (nats kv del) so aether can create it"
            )
        return bucket

    async def _create(self, replicas: int) -> None:
        await self.api.kv_create(
            self.name,
            description=f"aether cluster state of namespace {self.namespace}",
            history=1,
            replicas=replicas,
            marker_ttl=MARKER_TTL,
        )

    # --- reads --------------------------------------------------------------------------

    async def get(self, key: str) -> KvEntry | None:
        """The last message of `key` (possibly a delete marker), or ``None`` if there is none."""
        msg: RawMsg | None = await self.api.kv_last(self.name, key)
        if msg is None:
            return None
        return KvEntry(
            key=key,
            value=msg.data or b"",
            revision=msg.seq,
            created=msg.stored_at(),
            deleted=_is_deleted(msg.headers),
        )

    async def snapshot(self) -> dict[str, KvEntry]:
        """Every key's last entry, deleted ones included, read in one pass."""
        view = BucketView(self)
        await view.start()
        try:
            await view.wait_ready(self.timeout)
            return dict(view.entries)
        finally:
            await view.stop()

    # --- writes -------------------------------------------------------------------------

    async def _publish(self, key: str, value: bytes, headers: dict[str, str]) -> int:
        try:
            ack = await self.api.publish(self.prefix + key, value, headers=headers)
        except JsApiError as e:
            if e.conflict:
                raise CasConflictError(f"{key}: {e.description}") from None
            raise cluster_failure(e, f"writing {key} to bucket {self.name}") from None
        return int(ack.get("seq", 0))

    async def put(self, key: str, value: bytes, *, last: int | None, ttl: float | None) -> int:
        """Write `key`; with `last`, only if its last revision is `last` (0: absent)."""
        headers: dict[str, str] = {}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        if ttl is not None:
            headers["Nats-TTL"] = ttl_header(ttl)
        return await self._publish(key, value, headers)

    async def create(self, key: str, value: bytes, *, ttl: float | None) -> int:
        """Write `key` only if it is absent (never written, deleted, or expired)."""
        try:
            return await self.put(key, value, last=0, ttl=ttl)
        except CasConflictError:
            entry = await self.get(key)
            if entry is None or not entry.deleted:
                raise
            return await self.put(key, value, last=entry.revision, ttl=ttl)

    async def delete(self, key: str, *, last: int | None = None) -> int:
        """Place a delete marker on `key`; with `last`, only if its last revision is `last`."""
        headers = {"KV-Operation": "DEL"}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        return await self._publish(key, b"", headers)

    async def put_fenced(
        self, key: str, value: bytes, *, fence_key: str, fence_revision: int
    ) -> int:
        """Write `key` only if `fence_key`'s last revision is `fence_revision` (server-checked)."""
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(fence_revision),
            "Nats-Expected-Last-Subject-Sequence-Subject": self.prefix + fence_key,
        }
        return await self._publish(key, value, headers)


def _entry_of(
    prefix_len: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
) -> tuple[KvEntry, int]:
    """The entry a push-consumer delivery carries, and how many are still pending.

    The ack subject holds the metadata: ``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>.<consumer seq>.<timestamp ns>.<pending>`` (9 tokens; longer with a domain).
    """
    tokens = reply.split(b".")
    seq, ts, pending = (
        (int(tokens[5]), int(tokens[7]), int(tokens[8]))
        if len(tokens) == 9
        else (int(tokens[-5]), int(tokens[-3]), int(tokens[-2]))
    )
    entry = KvEntry(
        key=subject[prefix_len:].decode(),
        value=data or b"",
        revision=seq,
        created=datetime.fromtimestamp(ts / 1e9, UTC),
        deleted=_is_deleted(headers),
    )
    return entry, pending


class BucketView:
    """Every key of the bucket, kept current by one push consumer.

    `entries` maps each key to its last `KvEntry` (deleted ones included). `listener` is
    called (synchronously, in the event loop) after each change. `restart()` rebuilds the
    consumer from the current state of the bucket (after a lost server, say).
    """

    def __init__(
        self,
        bucket: ClusterBucket,
        listener: Callable[[KvEntry], None] | None = None,
        *,
        idle_heartbeat: float = 1.0,
    ) -> None:
        self.bucket = bucket
        self.entries: dict[str, KvEntry] = {}
        self.listener = listener
        self.idle_heartbeat = idle_heartbeat
        self.last_update = 0.0
        self._sub: RawSubscription | None = None
        self._consumer: str | None = None
        self._ready = asyncio.Event()
        self._generation = 0

    @property
    def ready(self) -> bool:
        """Whether the initial state has been read."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Subscribe; the view is ready once every key's last entry has arrived."""
        self._generation += 1
        generation = self._generation
        self._ready.clear()
        fresh: dict[str, KvEntry] = {}
        b = self.bucket
        nc = b.nc
        prefix_len = len(b.prefix)
        delivered = 0

        def on_msg(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
            nonlocal delivered
            if generation != self._generation:
                return
            if not reply:  # an idle heartbeat (status 100): no entry
                return
            delivered += 1
            entry, pending = _entry_of(prefix_len, subject, reply, data, headers)
            ready = self._ready.is_set()
            target = self.entries if ready else fresh
            old = target.get(entry.key)
            if old is None or old.revision < entry.revision:
                target[entry.key] = entry
            self.last_update = asyncio.get_running_loop().time()
            if not ready and pending == 0:
                self._go_live(fresh)
            elif ready and self.listener is not None:
                self.listener(entry)

        inbox = nc.new_inbox()
        sub = await subscribe_raw(nc, inbox, on_msg)
        config = {
            "deliver_policy": "last_per_subject",
            "filter_subject": b.prefix + ">",
            "ack_policy": "none",
            "deliver_subject": inbox,
            "idle_heartbeat": int(self.idle_heartbeat * 1e9),
            "inactive_threshold": int(max(30.0, self.idle_heartbeat * 10) * 1e9),
            "mem_storage": True,
            "num_replicas": 1,
        }
        try:
            with nats_errors(f"reading bucket {b.name}"):
                info = await b.api.consumer_create(b.stream, config)
        except BaseException:
            await sub.unsubscribe()
            raise
        old_sub, self._sub = self._sub, sub
        old_consumer, self._consumer = self._consumer, str(info.get("name", ""))
        await self._drop(old_sub, old_consumer)
        idle = int(info.get("num_pending", 0)) == 0 and delivered == 0
        if idle and generation == self._generation:
            self._go_live(fresh)

    async def _drop(self, sub: RawSubscription | None, consumer: str | None) -> None:
        if sub is not None:
            await sub.unsubscribe()
        if consumer:
            with contextlib.suppress(AetherError):
                await self.bucket.api.consumer_delete(self.bucket.stream, consumer)

    def _go_live(self, fresh: dict[str, KvEntry]) -> None:
        if self._ready.is_set():
            return
        self.entries = fresh
        self.last_update = asyncio.get_running_loop().time()
        self._ready.set()
        if self.listener is not None:
            for entry in list(fresh.values()):
                self.listener(entry)

    async def wait_ready(self, limit: float) -> None:
        """Wait until the initial state is in; raise `ClusterError` after `limit` seconds."""
        try:
            await bounded(self._ready.wait(), limit)
        except TimeoutError:
            raise ClusterError(f"reading bucket {self.bucket.name} timed out") from None

    async def restart(self) -> None:
        """Drop the consumer and read the bucket afresh."""
        await self.start()

    async def stop(self) -> None:
        """Unsubscribe and delete the consumer."""
        self._generation += 1
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        if self.bucket.nc.is_closed:
            return
        await self._drop(sub, consumer)

    def live(self, key: str) -> KvEntry | None:
        """The entry of `key` unless it is absent or deleted."""
        e = self.entries.get(key)
        return None if e is None or e.deleted else e
