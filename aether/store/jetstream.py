"""`JetStreamEventStore`: the production store, on NATS JetStream.

Layout (see `aether.subjects`): events of namespace ``ns`` in stream ``AETHER_<ns>`` on
``aether.<ns>.events.<actor-token>``, one subject per actor, so an actor's version is the
count of its subject's messages and the global position is the stream sequence.
Snapshots in ``AETHER_<ns>_SNAPSHOTS``.

Writes. The server checks every append: ``Nats-Expected-Last-Subject-Sequence`` carries
the stream sequence of the actor's last event (0 for a new actor), and the server
refuses the publish if the subject moved on (10071; 10164 on clustered streams). The
store keeps, per actor it has written or read, (latest version, its stream sequence),
so a writer appending to an actor it knows publishes at once, without a read; after a
conflict it reads the actor's last message (direct get) to report the actual version.
The event id travels as ``Nats-Msg-Id``. Re-saving an event that is already stored
(same id, same version; e.g. after a `PublishTimeoutError`) returns it, without a
duplicate, however long ago it was first saved. Appends from many tasks are in flight
together (no lock; at most ``jetstream.max_in_flight`` await acks).

``save_events`` publishes one JetStream atomic batch (ADR-50, nats-server 2.12+):
all or nothing. The server takes at most 1000 messages per batch, so a larger input is
split into consecutive batches of 1000, each atomic on its own: if a later batch fails
(e.g. a concurrent writer took the next version), the earlier ones stay stored. Without
atomic batch support on the server, ``save_events`` of more than one event raises
`UnsupportedServerError` instead of appending non-atomically.

Reads. ``get_latest_version`` is one direct get of the actor's last message.
``iter_events`` finds the stream sequence of ``from_version`` by a binary search of
direct gets (``next_by_subj``) and then streams only that actor's subject through a
pull consumer. ``read_all`` streams the namespace; ``watch`` follows it and survives
consumer loss and server restarts without gaps or duplicates. ``list_actors`` pages
through the stream's subjects (``subjects_filter``) and their message counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NATS

from aether.config import Settings
from aether.errors import AetherError, InvalidEventError, UnsupportedServerError
from aether.event import Event, Snapshot, decode_event, encode_event, encode_snapshot
from aether.store._js_api import (
    CONFLICT_CODES,
    ERR_LAST_SEQ_NOT_READY,
    JsApi,
    JsApiError,
    RawMsg,
    server_version,
)
from aether.store._js_batch import MAX_BATCH, BatchPublisher
from aether.store._js_publish import Publisher
from aether.store._js_reader import (
    DIRECT_BATCH_MAX,
    direct_batch,
    follow,
    read_range,
    seq_of,
    settle_background,
)
from aether.store._js_snapshots import JetStreamSnapshots
from aether.store._js_streams import (
    EVENT_FIELDS,
    SNAPSHOT_FIELDS,
    ensure_stream,
    events_stream_config,
    snapshots_stream_config,
)
from aether.store.base import check_batch, check_nonnegative_int, conflict, same_event
from aether.subjects import (
    actor_from_events_subject,
    events_subject,
    events_wildcard,
    stream_name,
    validate_actor_id,
    validate_namespace,
)

CACHE_MAX = 100_000
"""Actors whose (version, sequence) the store remembers; the oldest are forgotten first."""

_CONFLICT_RETRIES = 5
_NOT_READY_RETRIES = 50
_LIST_PAGE_CONCURRENCY = 64


@dataclass(slots=True)
class _Tip:
    """An actor's last event as read from the stream."""

    version: int
    seq: int
    msg: RawMsg | None


class JetStreamEventStore:
    """`EventStore` and `SnapshotStore` on a JetStream stream of one namespace.

    Open it with ``await JetStreamEventStore.open(settings)`` (connects, owns and closes
    the connection) or ``await JetStreamEventStore.from_client(nc, settings)`` (uses a
    connected nats-py client and leaves it open). The constructor plus
    ``await store.setup()`` is the same as `from_client`.
    """

    def __init__(
        self,
        nc: NATS,
        *,
        namespace: str | None = None,
        settings: Settings | None = None,
        owns_connection: bool = False,
    ) -> None:
        self._settings = settings if settings is not None else Settings()
        if not isinstance(self._settings, Settings):
            raise TypeError("settings must be an aether.Settings")
        ns = namespace if namespace is not None else self._settings.namespace
        self._ns = validate_namespace(ns)
        js = self._settings.jetstream
        self._nc = nc
        self._owns = owns_connection
        self._api = JsApi(nc, timeout=js.publish_timeout)
        self._pub = Publisher(nc, timeout=js.publish_timeout, max_in_flight=js.max_in_flight)
        self._batches = BatchPublisher(self._pub)
        self._snapshots = JetStreamSnapshots(self._api, self._pub, self._ns)
        self._stream = stream_name(self._ns)
        self._max = self._settings.max_event_bytes
        self._cache: dict[str, tuple[int, int]] = {}
        self._atomic = False
        self._direct_batch = False
        self._ready = False
        self._closed = False

    # -- opening and closing ------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings) -> JetStreamEventStore:
        """Connect as `settings` say and create or verify the streams (owns the connection)."""
        from aether.connect import connect

        nc = await connect(settings)
        store = cls(nc, settings=settings, owns_connection=True)
        try:
            await store.setup()
        except BaseException:
            await nc.close()
            raise
        return store

    @classmethod
    async def from_client(
        cls, nc: NATS, settings: Settings | None = None, *, namespace: str | None = None
    ) -> JetStreamEventStore:
        """A store on an already connected client (not closed by `close`).

        The store routes its own inboxes (pub acks, reads) past nats-py's per-message
        machinery (see `aether.store._js_raw`); the client's other subscriptions are
        unaffected.
        """
        store = cls(nc, namespace=namespace, settings=settings)
        await store.setup()
        return store

    async def setup(self) -> None:
        """Create the namespace's streams, or verify they match the settings."""
        js = self._settings.jetstream
        atomic = server_version(self._nc) >= (2, 12, 0)
        config = await ensure_stream(
            self._api, events_stream_config(self._ns, js, atomic=atomic), EVENT_FIELDS
        )
        self._atomic = bool(config.get("allow_atomic"))
        self._direct_batch = server_version(self._nc) >= (2, 11, 0)
        await ensure_stream(self._api, snapshots_stream_config(self._ns, js), SNAPSHOT_FIELDS)
        self._ready = True

    def _check_open(self) -> None:
        if self._closed:
            raise AetherError(f"JetStream store of namespace {self._ns!r}: the store is closed")

    async def close(self) -> None:
        """Fail pending publishes, drop subscriptions, close the connection if owned."""
        if self._closed:
            return
        self._closed = True
        await settle_background()
        await self._pub.close()
        if self._owns and not self._nc.is_closed:
            # nats-py's close raises when the server is already gone, and can wait on a
            # dead socket: neither should turn closing into an error or a hang.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5)

    async def __aenter__(self) -> JetStreamEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def namespace(self) -> str:
        """The namespace this store is bound to."""
        return self._ns

    @property
    def stream(self) -> str:
        """The events stream's name."""
        return self._stream

    @property
    def atomic_batches(self) -> bool:
        """Whether the stream accepts atomic batches (``save_events`` of many events)."""
        return self._atomic

    # -- the per-actor cache ------------------------------------------------------------

    def _remember(self, actor_id: str, version: int, seq: int) -> None:
        cur = self._cache.get(actor_id)
        if cur is not None and cur[0] >= version:
            return
        if cur is None and len(self._cache) >= CACHE_MAX:
            del self._cache[next(iter(self._cache))]
        self._cache[actor_id] = (version, seq)

    async def _tip(self, actor_id: str, subject: str) -> _Tip:
        """Read the actor's last event (direct get); refresh the cache."""
        self._check_open()
        msg = await self._api.direct_get(self._stream, {"last_by_subj": subject})
        if msg is None:
            self._cache.pop(actor_id, None)
            return _Tip(0, 0, None)
        version = int(orjson.loads(msg.data)["version"])
        self._cache.pop(actor_id, None)
        self._remember(actor_id, version, msg.seq)
        return _Tip(version, msg.seq, msg)

    # -- writes -------------------------------------------------------------------------

    async def save_event(self, event: Event) -> Event:
        """Append `event` iff its version is the actor's latest + 1 (checked by the server)."""
        payload = encode_event(event, self._max)
        return (await self._write(event.actor_id, [event], [payload]))[0]

    async def save_events(self, events: Sequence[Event]) -> list[Event]:
        """Append consecutive events of one actor atomically (in atomic batches of 1000)."""
        actor_id = check_batch(events)
        payloads = [encode_event(e, self._max) for e in events]
        if len(events) > 1 and not self._atomic:
            raise UnsupportedServerError(
                f"stream {self._stream} has no atomic batch publish (needs nats-server 2.12+ and "
                "allow_atomic); save_events of several events would not be atomic"
            )
        stored: list[Event] = []
        for i in range(0, len(events), MAX_BATCH):
            chunk = slice(i, i + MAX_BATCH)
            stored += await self._write(actor_id, events[chunk], payloads[chunk])
        return stored

    async def _write(
        self, actor_id: str, events: Sequence[Event], payloads: list[bytes]
    ) -> list[Event]:
        self._check_open()
        subject = events_subject(self._ns, actor_id)
        first = events[0]
        cached = self._cache.get(actor_id)
        tip: _Tip | None = None
        conflicts = not_ready = 0
        while True:
            if cached is None and first.version != 1 and tip is None:
                tip = await self._tip(actor_id, subject)
            if tip is not None:
                cached = (tip.version, tip.seq) if tip.version else None
            if cached is None:
                latest, expected = 0, 0
            else:
                latest, expected = cached
            if first.version != latest + 1:
                if tip is None:  # the cache may be behind another writer: look
                    tip = await self._tip(actor_id, subject)
                    continue
                return await self._settle(actor_id, subject, events, tip)
            try:
                return await self._publish(actor_id, subject, events, payloads, expected)
            except JsApiError as e:
                if e.err_code in CONFLICT_CODES:
                    conflicts += 1
                    tip = await self._tip(actor_id, subject)
                    if conflicts > _CONFLICT_RETRIES and first.version == tip.version + 1:
                        raise conflict(first, tip.version) from None
                    continue
                if e.err_code == ERR_LAST_SEQ_NOT_READY and not_ready < _NOT_READY_RETRIES:
                    not_ready += 1
                    await asyncio.sleep(min(0.01 * not_ready, 0.2))
                    continue
                raise

    async def _publish(
        self,
        actor_id: str,
        subject: str,
        events: Sequence[Event],
        payloads: list[bytes],
        expected: int,
    ) -> list[Event]:
        n = len(events)
        if n == 1:
            event = events[0]
            headers = {
                "Nats-Msg-Id": event.id,
                "Nats-Expected-Last-Subject-Sequence": str(expected),
            }
            ack = await self._pub.publish(subject, payloads[0], headers)
            if ack.get("duplicate") and not await self._is_stored_at(
                subject, event, payloads[0], ack["seq"]
            ):
                # The id was used by another event within the duplicate window: publish
                # without it (the expected-sequence check still guards the append).
                del headers["Nats-Msg-Id"]
                ack = await self._pub.publish(subject, payloads[0], headers)
        else:
            ack = await self._batches.publish(
                subject, payloads, {"Nats-Expected-Last-Subject-Sequence": str(expected)}
            )
        last_seq = int(ack["seq"])
        self._remember(actor_id, events[-1].version, last_seq)
        first_seq = last_seq - n + 1
        return [e.with_position(first_seq + i) for i, e in enumerate(events)]

    async def _is_stored_at(self, subject: str, event: Event, payload: bytes, seq: int) -> bool:
        msg = await self._api.direct_get(self._stream, {"seq": seq})
        if msg is None or msg.subject != subject:
            return False
        return bytes(msg.data) == payload or same_event(decode_event(msg.data), event)

    async def _settle(
        self, actor_id: str, subject: str, events: Sequence[Event], tip: _Tip
    ) -> list[Event]:
        """`events` do not follow the latest version: a re-save of stored events, or a conflict."""
        first, last = events[0], events[-1]
        if first.version >= 1 and last.version <= tip.version:
            stored = [
                e
                async for chunk in self._read(subject, first.version, last.version, tip)
                for e in chunk
            ]
            if len(stored) == len(events) and all(
                same_event(s, e) for s, e in zip(stored, events, strict=True)
            ):
                return stored
        raise conflict(first, tip.version)

    # -- reads --------------------------------------------------------------------------

    async def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version (0 if none): one direct get of its last message."""
        validate_actor_id(actor_id)
        return (await self._tip(actor_id, events_subject(self._ns, actor_id))).version

    async def get_events(self, actor_id: str, from_version: int = 0) -> list[Event]:
        """The actor's events with ``version >= from_version``."""
        return [e async for e in self.iter_events(actor_id, from_version)]

    async def iter_events(
        self, actor_id: str, from_version: int = 0, to_version: int | None = None
    ) -> AsyncIterator[Event]:
        """Stream the actor's events in ``[from_version, to_version]`` (reads only its subject)."""
        self._check_open()
        validate_actor_id(actor_id)
        check_nonnegative_int(from_version, "from_version")
        if to_version is not None:
            check_nonnegative_int(to_version, "to_version")
        subject = events_subject(self._ns, actor_id)
        tip = await self._tip(actor_id, subject)
        end = tip.version if to_version is None else min(to_version, tip.version)
        chunks = self._read(subject, max(from_version, 1), end, tip)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for e in chunk:
                    yield e

    async def _read(
        self, subject: str, start: int, end: int, tip: _Tip
    ) -> AsyncIterator[list[Event]]:
        """Versions ``start..end`` (``end <= tip.version``) of one actor, in chunks."""
        if start > end:
            return
        if start == end == tip.version and tip.msg is not None:
            yield [decode_event(tip.msg.data, tip.seq)]
            return
        start_seq = 1 if start == 1 else await self._seq_of_version(subject, start, tip)
        count = end - start + 1
        if count <= DIRECT_BATCH_MAX and self._direct_batch:
            rows = await direct_batch(self._api, self._stream, subject, start_seq, count)
            yield [
                e
                for e in (decode_event(data, seq) for seq, data in rows)
                if start <= e.version <= end
            ]
            return
        chunks = read_range(self._api, self._stream, subject, start_seq, end - start + 1)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                events = [decode_event(data, seq_of(ack)) for ack, data in chunk]
                if events[0].version < start or events[-1].version > end:
                    # only when old versions aged out meanwhile (max age): trim to the range
                    events = [e for e in events if start <= e.version <= end]
                yield events

    async def _seq_of_version(self, subject: str, version: int, tip: _Tip) -> int:
        """Stream sequence of the actor's event `version` (binary search, no scan).

        Every event of the subject before `version` has a smaller sequence, so the answer
        lies in ``[version, tip.seq - (tip.version - version)]``.
        """
        if version == tip.version:
            return tip.seq
        lo, hi = version, tip.seq - (tip.version - version)
        best = hi
        while lo <= hi:
            mid = (lo + hi) // 2
            msg = await self._api.direct_get(self._stream, {"seq": mid, "next_by_subj": subject})
            if msg is None:
                break
            v = int(orjson.loads(msg.data)["version"])
            if v == version:
                return msg.seq
            if v < version:
                lo = max(mid + 1, msg.seq + 1)
            else:
                best = min(best, msg.seq)
                hi = mid - 1
        return best  # the version is gone (max age): start at the first one after it

    async def read_all(self, from_position: int = 0) -> AsyncIterator[Event]:
        """Every event of the namespace with ``position >= from_position``, in order."""
        self._check_open()
        check_nonnegative_int(from_position, "from_position")
        chunks = read_range(
            self._api, self._stream, events_wildcard(self._ns), max(from_position, 1)
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for e in [decode_event(data, seq_of(ack)) for ack, data in chunk]:
                    yield e

    async def watch(self, from_position: int | None = None) -> AsyncIterator[Event]:
        """Events from `from_position` (None: only new ones), then live, until closed."""
        self._check_open()
        if from_position is None:
            info = await self._api.stream_info(self._stream)
            start = int((info or {}).get("state", {}).get("last_seq", 0)) + 1
        else:
            check_nonnegative_int(from_position, "from_position")
            start = max(from_position, 1)
        chunks = follow(
            self._api,
            self._stream,
            events_wildcard(self._ns),
            start,
            closed=lambda: self._closed,
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for e in [decode_event(data, seq_of(ack)) for ack, data in chunk]:
                    yield e

    async def list_actors(self) -> dict[str, int]:
        """Every actor with its latest version (subjects paged from stream info)."""
        counts: dict[str, int] = {}
        offset = 0
        while True:
            info = await self._api.stream_info(
                self._stream, subjects_filter=events_wildcard(self._ns), offset=offset
            )
            if info is None:
                break
            page = info.get("state", {}).get("subjects") or {}
            for subject, count in page.items():
                counts[actor_from_events_subject(subject)] = int(count)
            offset += len(page)
            if not page or offset >= int(info.get("total", 0)):
                break
        js = self._settings.jetstream
        if js.max_age or js.max_bytes >= 0:
            # Old events may have aged out: the count is then below the version.
            await self._exact_versions(counts)
        return counts

    async def _exact_versions(self, counts: dict[str, int]) -> None:
        sem = asyncio.Semaphore(_LIST_PAGE_CONCURRENCY)

        async def one(actor_id: str) -> None:
            async with sem:
                counts[actor_id] = await self.get_latest_version(actor_id)

        await asyncio.gather(*(one(a) for a in list(counts)))

    # -- snapshots ----------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the actor's latest; refused beyond the actor's latest event."""
        payload = encode_snapshot(snapshot)
        latest = await self.get_latest_version(snapshot.actor_id)
        if snapshot.version > latest:
            raise InvalidEventError(
                "version",
                f"snapshot version {snapshot.version} is beyond the latest event {latest}",
            )
        await self._snapshots.save(snapshot, payload)

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's most recent snapshot, or None."""
        return await self._snapshots.latest(actor_id)


__all__ = ["JetStreamEventStore"]
