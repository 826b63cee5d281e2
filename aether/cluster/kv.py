"""The namespace's cluster bucket (``aethercluster_<ns>``): CAS writes, TTLs and a live view.

A thin layer over the JetStream stream behind the KV bucket, for what nats-py's `KeyValue`
does not offer: a per-key TTL on every write (``Nats-TTL``, server 2.11+), create-if-absent
that also works over the server's expiry markers, a write fenced on *another* key's
revision (``Nats-Expected-Last-Subject-Sequence-Subject``) and a view of every key that
follows the bucket with one ordered consumer and can be restarted when it goes quiet.
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
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from aether.errors import ClusterError, NatsUnavailableError, UnsupportedServerError
from aether.errors import NotFoundError as AetherNotFoundError
from aether.subjects import cluster_bucket, validate_namespace

log = logging.getLogger("aether.cluster")

T = TypeVar("T")

MARKER_TTL = 60.0
"""How long the server keeps the marker it places when a key's TTL expires (seconds)."""

_WRONG_LAST_SEQUENCE = (10071, 10164)
_DELETE_OPS = ("DEL", "PURGE")


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
    except (NoRespondersError, ServiceUnavailableError, NatsTimeoutError, TimeoutError):
        raise NatsUnavailableError(
            f"{doing}: JetStream did not answer (is it enabled on the server?)"
        ) from None
    except (ConnectionClosedError, NoServersError) as e:
        raise NatsUnavailableError(f"{doing}: {type(e).__name__}") from None
    except NatsError as e:
        raise ClusterError(f"{doing}: {type(e).__name__}: {e}") from None


class CasConflictError(ClusterError):
    """A compare-and-set write found another revision than the one it expected."""


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


def _is_deleted(headers: dict[str, str] | None) -> bool:
    if not headers:
        return False
    if headers.get("KV-Operation") in _DELETE_OPS:
        return True
    return "Nats-Marker-Reason" in headers


class ClusterBucket:
    """The KV bucket holding a namespace's cluster state."""

    def __init__(self, nc: NATS, namespace: str, *, timeout: float = 5.0) -> None:
        validate_namespace(namespace)
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=timeout)
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
        version = nc.connected_server_version
        if version.major < 2 or (version.major == 2 and version.minor < 11):
            raise UnsupportedServerError(
                f"nats-server {version} lacks per-key TTLs; the cluster needs 2.11 or newer"
            )
        bucket = cls(nc, namespace, timeout=request_timeout)
        with nats_errors(f"opening bucket {bucket.name}"):
            return await bucket._open(replicas, create)

    async def _open(self, replicas: int, create: bool) -> ClusterBucket:
        bucket, namespace = self, self.namespace
        try:
            info = await bucket.js.stream_info(bucket.stream)
        except NotFoundError:
            if not create:
                raise AetherNotFoundError(
                    f"no cluster in namespace {namespace!r} (bucket {bucket.name} does not "
                    "exist; start a node with `aether node run`)"
                ) from None
            await bucket._create(replicas)
            return bucket
        if not info.config.allow_msg_ttl or not info.config.subject_delete_marker_ttl:
            raise ClusterError(
                f"bucket {bucket.name} exists without per-key TTLs and expiry markers; "
                "delete it (nats kv del) so aether can create it"
            )
        return bucket

    async def _create(self, replicas: int) -> None:
        config = api.KeyValueConfig(
            bucket=self.name,
            description=f"aether cluster state of namespace {self.namespace}",
            history=1,
            replicas=replicas,
            storage=api.StorageType.FILE,
            limit_marker_ttl=MARKER_TTL,
        )
        await self.js.create_key_value(config)

    # --- reads --------------------------------------------------------------------------

    async def get(self, key: str) -> KvEntry | None:
        """The last message of `key` (possibly a delete marker), or ``None`` if there is none."""
        try:
            msg = await self.js.get_msg(self.stream, subject=self.prefix + key)
        except NotFoundError:
            return None
        return KvEntry(
            key=key,
            value=msg.data or b"",
            revision=int(msg.seq or 0),
            created=msg.time or datetime.now(UTC),
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
            ack = await self.js.publish(self.prefix + key, value, headers=headers)
        except APIError as e:
            if e.err_code in _WRONG_LAST_SEQUENCE:
                raise CasConflictError(f"{key}: {e.description}") from None
            raise
        return int(ack.seq)

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


class BucketView:
    """Every key of the bucket, kept current by one ordered consumer.

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
        self._sub: JetStreamContext.PushSubscription | None = None
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

        async def on_msg(msg: Msg) -> None:
            if generation != self._generation:
                return
            meta = msg.metadata
            key = msg.subject[len(b.prefix) :]
            entry = KvEntry(
                key=key,
                value=msg.data or b"",
                revision=meta.sequence.stream,
                created=meta.timestamp,
                deleted=_is_deleted(msg.headers),
            )
            target = self.entries if self._ready.is_set() else fresh
            old = target.get(key)
            if old is None or old.revision < entry.revision:
                target[key] = entry
            self.last_update = asyncio.get_running_loop().time()
            if not self._ready.is_set() and meta.num_pending == 0:
                self._go_live(fresh)
            elif self._ready.is_set() and self.listener is not None:
                self.listener(entry)

        sub = await b.js.subscribe(
            b.prefix + ">",
            stream=b.stream,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
            idle_heartbeat=self.idle_heartbeat,
            inactive_threshold=max(30.0, self.idle_heartbeat * 10),
        )
        old, self._sub = self._sub, sub
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        info = await sub.consumer_info()
        if info.num_pending == 0 and sub.delivered == 0 and generation == self._generation:
            self._go_live(fresh)

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
        """Unsubscribe."""
        self._generation += 1
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def live(self, key: str) -> KvEntry | None:
        """The entry of `key` unless it is absent or deleted."""
        e = self.entries.get(key)
        return None if e is None or e.deleted else e
