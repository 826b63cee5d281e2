"""`JetStreamEventStore`: the production store, on NATS JetStream.

Layout (see `aether.subjects`): events of namespace ``ns`` in stream ``AETHER_<ns>`` on
``aether.<ns>.events.<slice>.<actor-token>``, one subject per actor, so an actor's
version is the count of its subject's messages and the global position is the stream
sequence. The same stream holds tracking records on ``aether.<ns>.track.<key>``
(never returned by event reads). Snapshots in ``AETHERSNAP_<ns>``. A namespace made by
aether 0.1's layout raises `LegacyLayoutError` at setup and is never used.

Writes. The server checks every append: ``Nats-Expected-Last-Subject-Sequence`` carries
the stream sequence of the actor's last event (0 for a new actor), and the server
refuses the publish if the subject moved on (10071; 10164 on clustered streams). The
store keeps, per actor it has written or read, (latest version, its stream sequence),
so a writer appending to an actor it knows publishes at once, without a read; after a
conflict it reads the actor's last message from the stream leader to report the
actual version. The event id travels as ``Nats-Msg-Id``. Re-saving an event that is
already stored (same id, same version; e.g. after a `PublishTimeoutError`) returns it,
without a duplicate, however long ago it was first saved. Appends from many tasks are in
flight together (no lock; at most ``jetstream.max_in_flight`` await acks).

While JetStream is busy (a stream leader election, a server restart, "duplicate message
id is in process", no responders) an append is re-sent, identical, within
``jetstream.publish_timeout``; if no answer comes, `PublishTimeoutError` (an
`OutcomeUnknownError`, retriable): the outcome is unknown and re-saving the same events
is safe. A publish issued while disconnected is sent on reconnect and awaited within the
same deadline. Reads during an outage raise `NatsUnavailableError` (retriable).

``save_events`` is a unit of work: the events of one or more actors (and optionally a
tracking record) in ONE JetStream atomic batch (ADR-50, nats-server 2.12+), with each
actor's expectation on its first message: all or nothing. At most `MAX_BATCH` (1000)
messages, the server's limit: a larger unit raises `UnitTooLargeError` (never split; a
tracking record takes one of the 1000). On a refusal, every actor not at its expected
version is named in the `VersionConflictError`; a tracking record that moved on gives
`TrackingConflictError` (when an actor is seen to conflict too, the `VersionConflictError`
is raised). Re-saving the identical unit returns the stored events.

Tracking records: the last message on ``aether.<ns>.track.<key-token>``, JSON
``{"key", "position", "data", "revision"}``. The revision counts the record's commits
(1, 2, ...); a commit expecting revision ``r`` carries
``Nats-Expected-Last-Subject-Sequence`` = the stream sequence of the record at ``r`` (0
for none), so the server fences a stale writer atomically with the unit's events. With
``jetstream.max_age`` a record not rewritten within it ages out like events do.

Reads. ``get_latest_version`` is one read of the actor's last message. ``iter_events``
finds the stream sequence of ``from_version`` by a binary search of single-message gets
(``next_by_subj``) and then streams only that actor's subject (batched direct get or a
pull consumer), checking that every version of the range came. ``read_all`` and
``watch`` select slices on the server (consumer ``filter_subjects``); ``watch`` follows
the stream and survives consumer loss and server restarts without gaps or duplicates.
``list_actors`` pages through the stream's subjects and their message counts. Messages
on aether subjects that aether cannot have written raise `CorruptEventError` in an
actor's reads; namespace-wide scans skip them, count them (`skipped_corrupt`) and log a
warning on logger ``aether.store``.

Replicated streams (``jetstream.replicas`` > 1) and what another process sees. Direct
gets are answered by any replica, and a follower may lag the leader. This store never
reports less than it has itself acknowledged: it keeps a per-actor high-water mark (the
version and sequence of its own last acknowledged append or read), a read older than it
is never returned nor cached, a conflict's ``actual`` is read from the stream leader,
and ``get_events(from_version=v)`` right after saving ``v`` contains ``v`` (a short
answer from a replica is completed from the leader). What *another* process sees right
after an append depends on ``jetstream.read_from``: with ``leader`` (the default) its
``get_latest_version``, ``get_events`` and the version checks of its next append go to
the stream leader, so it sees every acknowledged event (the append was acknowledged only
once a majority stored it, and the leader answers); with ``any`` they may be answered by
a replica that has not stored the append yet, so it may briefly see an older version
(its next append then gets a `VersionConflictError` whose ``actual`` is the leader's,
and a retry settles). ``read_all``/``watch`` of another process are served by a
consumer on one replica and deliver the event as soon as that replica stores it. On a
single server (R1) every read is the server's truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from aether._nats.errors import ERR_LAST_SEQ_NOT_READY, JsApiError, public_error
from aether._nats.info import server_version
from aether._nats.jsapi import JsApi, RawMsg
from aether.config import Settings
from aether.errors import (
    ActorConflict,
    AetherError,
    CorruptEventError,
    InvalidEventError,
    NatsUnavailableError,
    StoreClosedError,
    TrackingConflictError,
    UnitTooLargeError,
    UnsupportedServerError,
    VersionConflictError,
)
from aether.event import Event, Snapshot, decode_event, encode_event, encode_snapshot
from aether.store._js_batch import MAX_BATCH, BatchPublisher, Message
from aether.store._js_decode import CorruptCounter, actor_of_subject, decode_stored
from aether.store._js_publish import Publisher
from aether.store._js_reader import (
    DIRECT_BATCH_MAX,
    Chunk,
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
    check_legacy,
    ensure_stream,
    events_stream_config,
    legacy_snapshot_error,
    snapshots_stream_config,
    tracking_subject,
    tracking_wildcard,
)
from aether.store.base import (
    Tracking,
    TrackingRecord,
    check_nonnegative_int,
    check_tracking,
    check_unit,
    conflict,
    same_event,
)
from aether.subjects import (
    Slices,
    _slice_of,
    events_subject,
    events_wildcard,
    normalize_slices,
    slice_filters,
    stream_name,
    validate_actor_id,
    validate_namespace,
)

CACHE_MAX = 100_000
"""Actors whose (version, sequence) the store remembers; the oldest are forgotten first."""

_UNKNOWN = "\x00unknown"
_CONFLICT_RETRIES = 5
_NOT_READY_RETRIES = 50
_LIST_PAGE_CONCURRENCY = 64


@dataclass(slots=True)
class _Tip:
    """An actor's last event: its version and stream sequence (and message, if read)."""

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
        self._snapshots = JetStreamSnapshots(self._api, self._pub, self._ns, self._get)
        self._stream = stream_name(self._ns)
        self._max = self._settings.max_event_bytes
        self._cache: dict[str, tuple[int, int]] = {}
        self._own_seq: dict[int, int] = {}  # slice -> sequence of this store's last append
        self._corrupt = CorruptCounter(self._ns)
        self._track_all = tracking_wildcard(self._ns)
        self._track_prefix = self._track_all[:-1].encode()  # b"aether.<ns>.track."
        self._subject_actors: dict[bytes, str | None] = {}
        self._subjects: dict[str, str] = {}  # actor -> events subject
        self._tracks: dict[str, tuple[int, int]] = {}  # tracking key -> (revision, sequence)
        self._watch_starts: set[asyncio.Task[int]] = set()
        self._limits = bool(js.max_age) or js.max_bytes >= 0
        self._atomic = False
        self._direct_batch = False
        self._replicated = False
        self._leader_reads = False
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
            with contextlib.suppress(Exception):
                await store._pub.close()
                await nc.close()
            raise
        return store

    @classmethod
    async def from_client(
        cls, nc: NATS, settings: Settings | None = None, *, namespace: str | None = None
    ) -> JetStreamEventStore:
        """A store on an already connected client (not closed by `close`).

        The store routes its own inboxes (pub acks, reads) past nats-py's per-message
        machinery (see `aether._nats.raw`); the client's other subscriptions are
        unaffected.
        """
        store = cls(nc, namespace=namespace, settings=settings)
        await store.setup()
        return store

    async def setup(self) -> None:
        """Check JetStream, refuse a legacy layout, create or verify the streams."""
        js = self._settings.jetstream
        await self._api.check_jetstream()
        await check_legacy(self._api, self._ns)
        # Snapshots first: aether 0.1's snapshot stream shows as overlapping subjects, and
        # then nothing of the new layout is made.
        await ensure_stream(
            self._api,
            snapshots_stream_config(self._ns, js),
            SNAPSHOT_FIELDS,
            on_overlap=legacy_snapshot_error(self._ns),
        )
        atomic = server_version(self._nc) >= (2, 12, 0)
        config = await ensure_stream(
            self._api, events_stream_config(self._ns, js, atomic=atomic), EVENT_FIELDS
        )
        self._atomic = bool(config.get("allow_atomic"))
        self._direct_batch = server_version(self._nc) >= (2, 11, 0)
        self._replicated = int(config.get("num_replicas", 1)) > 1
        self._leader_reads = self._replicated and js.read_from == "leader"
        self._ready = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"JetStream store of namespace {self._ns!r}: the store is closed"
            )

    async def close(self) -> None:
        """Refuse further work, end watches, drop subscriptions, close the connection if owned."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._watch_starts):
            task.cancel()
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

    @property
    def max_batch(self) -> int:
        """The most events one `save_events` appends atomically: the server's 1000."""
        return MAX_BATCH

    @property
    def skipped_corrupt(self) -> int:
        """How many foreign or corrupt messages namespace-wide scans have skipped."""
        return self._corrupt.count

    @property
    def replicated(self) -> bool:
        """Whether the events stream has more than one replica."""
        return self._replicated

    # -- single-message reads -----------------------------------------------------------

    async def _get(
        self, stream: str, body: dict[str, Any], *, leader: bool | None = None
    ) -> RawMsg | None:
        """One message: from the stream leader (leader reads, or `leader`) or any replica.

        Retried briefly while JetStream is busy (a read is idempotent); then
        `NatsUnavailableError`.
        """
        use_leader = self._leader_reads if leader is None else (leader and self._replicated)
        get = self._api.msg_get if use_leader else self._api.direct_get
        deadline = time.monotonic() + self._api.timeout
        backoff = 0.02
        while True:
            self._check_open()
            try:
                return await get(stream, body)
            except NatsUnavailableError:
                if self._nc.is_closed or time.monotonic() + backoff > deadline:
                    raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    # -- the per-actor high-water mark ----------------------------------------------------

    def _remember(self, actor_id: str, version: int, seq: int) -> None:
        cur = self._cache.get(actor_id)
        if cur is not None and cur[0] >= version:
            return
        if cur is None and len(self._cache) >= CACHE_MAX:
            del self._cache[next(iter(self._cache))]
        self._cache[actor_id] = (version, seq)

    async def _tip(self, actor_id: str, subject: str, *, leader: bool | None = None) -> _Tip:
        """The actor's last event, never older than what this store acknowledged."""
        self._check_open()
        msg = await self._get(self._stream, {"last_by_subj": subject}, leader=leader)
        cached = self._cache.get(actor_id)
        if msg is None:
            if cached is not None:
                return _Tip(cached[0], cached[1], None)
            return _Tip(0, 0, None)
        version = decode_stored(msg.subject or subject, msg.data, msg.seq, actor_id).version
        if cached is not None and cached[0] > version:
            return _Tip(cached[0], cached[1], None)  # a replica behind this store's writes
        self._remember(actor_id, version, msg.seq)
        return _Tip(version, msg.seq, msg)

    # -- writes -------------------------------------------------------------------------

    async def _watch_barrier(self) -> None:
        # A watch(None) started before this write fixes its start first (see `watch`).
        if self._watch_starts:
            await asyncio.wait(list(self._watch_starts))

    async def save_event(self, event: Event) -> Event:
        """Append `event` iff its version is the actor's latest + 1 (checked by the server)."""
        payload = encode_event(event, self._max)
        return (await self._write(event.actor_id, [event], [payload]))[0]

    async def save_events(
        self, events: Sequence[Event], *, tracking: Tracking | None = None
    ) -> list[Event]:
        """Append a unit of work (one or more actors) in one atomic batch: all or none.

        With `tracking`, the tracking record is committed in the same batch (and `events`
        may be empty: a checkpoint alone); refused whole with `TrackingConflictError` when
        the record is not at ``tracking.expected``.
        """
        self._check_open()
        if tracking is not None:
            check_tracking(tracking)
            if isinstance(events, Sequence) and not isinstance(events, Event) and not events:
                await self._checkpoint(tracking)
                return []
        groups = check_unit(events, MAX_BATCH)
        if tracking is not None and len(events) + 1 > MAX_BATCH:
            raise UnitTooLargeError(len(events), MAX_BATCH - 1)
        payloads = [encode_event(e, self._max) for e in events]
        if len(events) == 1 and tracking is None:
            return await self._write(events[0].actor_id, events, payloads)
        if not self._atomic:
            raise UnsupportedServerError(
                f"stream {self._stream} has no atomic batch publish (needs nats-server 2.12+ "
                "and allow_atomic); a unit of several messages would not be atomic"
            )
        return await self._write_unit(groups, events, payloads, tracking)

    async def _write(
        self, actor_id: str, events: Sequence[Event], payloads: list[bytes]
    ) -> list[Event]:
        self._check_open()
        if self._watch_starts:
            await self._watch_barrier()
        subject = self._subject(actor_id)
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
                if tip is None or tip.msg is None:  # the cache may be behind: ask the leader
                    tip = await self._tip(actor_id, subject, leader=True)
                    if first.version == tip.version + 1:
                        continue
                return await self._settle(actor_id, subject, events, tip)
            headers = {
                "Nats-Msg-Id": first.id,
                "Nats-Expected-Last-Subject-Sequence": str(expected),
            }
            try:  # the publish, inline (a coroutine less per append)
                ack = await self._pub.publish(subject, payloads[0], headers)
                if ack.get("duplicate") and not await self._is_stored_at(
                    subject, first, payloads[0], ack["seq"]
                ):
                    # The id was used by another event within the duplicate window:
                    # publish without it (the expected-sequence check still guards it).
                    del headers["Nats-Msg-Id"]
                    ack = await self._pub.publish(subject, payloads[0], headers)
            except JsApiError as e:
                if e.conflict:
                    conflicts += 1
                    tip = await self._tip(actor_id, subject, leader=True)
                    if conflicts > _CONFLICT_RETRIES and first.version == tip.version + 1:
                        raise conflict(first, tip.version) from None
                    continue
                if e.err_code == ERR_LAST_SEQ_NOT_READY and not_ready < _NOT_READY_RETRIES:
                    not_ready += 1
                    await asyncio.sleep(min(0.01 * not_ready, 0.2))
                    continue
                raise public_error(e, f"append to stream {self._stream}", self._nc) from None
            seq = int(ack["seq"])
            self._acknowledged(actor_id, first.version, seq)
            return [first.with_position(seq)]

    def _subject(self, actor_id: str) -> str:
        """The actor's events subject (validates the id; remembered per actor)."""
        subject = self._subjects.get(actor_id)
        if subject is None:
            subject = events_subject(self._ns, actor_id)
            if len(self._subjects) >= CACHE_MAX:
                self._subjects.clear()
            self._subjects[actor_id] = subject
        return subject

    def _acknowledged(self, actor_id: str, version: int, seq: int) -> None:
        self._remember(actor_id, version, seq)
        if self._replicated:  # only replicated reads wait for the store's own appends
            sl = _slice_of(actor_id)
            if self._own_seq.get(sl, 0) < seq:
                self._own_seq[sl] = seq

    async def _is_stored_at(self, subject: str, event: Event, payload: bytes, seq: int) -> bool:
        msg = await self._get(self._stream, {"seq": seq}, leader=True)
        if msg is None or msg.subject != subject:
            return False
        if bytes(msg.data) == payload:
            return True
        try:
            return same_event(decode_event(msg.data), event)
        except Exception:
            return False

    async def _settle(
        self, actor_id: str, subject: str, events: Sequence[Event], tip: _Tip
    ) -> list[Event]:
        """`events` do not follow the latest version: a re-save of stored events, or a conflict."""
        stored = await self._stored_as(actor_id, subject, events, tip)
        if stored is not None:
            return stored
        raise conflict(events[0], tip.version)

    async def _stored_as(
        self, actor_id: str, subject: str, events: Sequence[Event], tip: _Tip
    ) -> list[Event] | None:
        """The stored events if `events` (one actor's) are stored already, else None."""
        first, last = events[0], events[-1]
        if not (first.version >= 1 and last.version <= tip.version):
            return None
        stored = [
            e
            async for chunk in self._read(actor_id, subject, first.version, last.version, tip)
            for e in chunk
        ]
        if len(stored) == len(events) and all(
            same_event(s, e) for s, e in zip(stored, events, strict=True)
        ):
            return stored
        return None

    # -- units of work and tracking records ---------------------------------------------

    async def _write_unit(
        self,
        groups: dict[str, list[Event]],
        events: Sequence[Event],
        payloads: list[bytes],
        tracking: Tracking | None,
    ) -> list[Event]:
        self._check_open()
        await self._watch_barrier()
        subjects = {a: self._subject(a) for a in groups}
        unknown = [a for a, g in groups.items() if a not in self._cache and g[0].version != 1]
        if unknown:
            await self._read_tips(unknown, subjects)
        not_ready = 0
        for _attempt in range(_CONFLICT_RETRIES + 1):
            beliefs = {a: self._cache.get(a, (0, 0)) for a in groups}
            off = [a for a, g in groups.items() if g[0].version != beliefs[a][0] + 1]
            if off:
                tips = await self._read_tips(off, subjects, leader=True)
                for a in off:
                    beliefs[a] = (tips[a].version, tips[a].seq)
                if any(groups[a][0].version != beliefs[a][0] + 1 for a in off):
                    return await self._settle_unit(groups, events, subjects, tracking)
            messages: list[Message] = []
            seen: set[str] = set()
            for e, payload in zip(events, payloads, strict=True):
                headers: dict[str, str] = {}
                if e.actor_id not in seen:
                    seen.add(e.actor_id)
                    headers["Nats-Expected-Last-Subject-Sequence"] = str(beliefs[e.actor_id][1])
                messages.append((subjects[e.actor_id], payload, headers))
            if tracking is not None:
                tseq = await self._tracking_seq(tracking)
                messages.append(self._tracking_message(tracking, tseq))
            try:
                ack = await self._batches.publish(messages)
            except JsApiError as e:
                if e.conflict:
                    await self._read_tips(list(groups), subjects, leader=True)
                    beliefs = {a: self._cache.get(a, (0, 0)) for a in groups}
                    if any(g[0].version != beliefs[a][0] + 1 for a, g in groups.items()):
                        return await self._settle_unit(groups, events, subjects, tracking)
                    if tracking is not None:
                        await self._check_tracking_at(tracking)
                    continue  # the cache was behind another writer: try again
                if e.err_code == ERR_LAST_SEQ_NOT_READY and not_ready < _NOT_READY_RETRIES:
                    not_ready += 1
                    await asyncio.sleep(min(0.01 * not_ready, 0.2))
                    continue
                raise public_error(e, f"append to stream {self._stream}", self._nc) from None
            last_seq = int(ack["seq"])
            first_seq = last_seq - len(messages) + 1
            stored: list[Event] = []
            lasts: dict[str, tuple[int, int]] = {}
            for i, event in enumerate(events):
                stored.append(event.with_position(first_seq + i))
                lasts[event.actor_id] = (event.version, first_seq + i)
            for a, (version, seq) in lasts.items():
                self._acknowledged(a, version, seq)
            if tracking is not None:
                self._tracked(tracking.key, tracking.expected + 1, last_seq)
            return stored
        # Kept losing races although every actor looked right: report what the leader has.
        return await self._settle_unit(groups, events, subjects, tracking, final=True)

    async def _read_tips(
        self, actors: list[str], subjects: dict[str, str], *, leader: bool | None = None
    ) -> dict[str, _Tip]:
        tips = await asyncio.gather(*(self._tip(a, subjects[a], leader=leader) for a in actors))
        return dict(zip(actors, tips, strict=True))

    async def _settle_unit(
        self,
        groups: dict[str, list[Event]],
        events: Sequence[Event],
        subjects: dict[str, str],
        tracking: Tracking | None,
        *,
        final: bool = False,
    ) -> list[Event]:
        """Some actor is not where the unit expects it: a re-save, or conflicts."""
        tips = await self._read_tips(list(groups), subjects, leader=True)
        conflicts: list[ActorConflict] = []
        stored: dict[str, list[Event]] = {}
        for a, g in groups.items():
            tip = tips[a]
            if g[0].version == tip.version + 1 and not final:
                continue
            found = await self._stored_as(a, subjects[a], g, tip)
            if found is not None:
                stored[a] = found
            else:
                conflicts.append(ActorConflict(a, g[0].version - 1, tip.version))
        if conflicts:
            raise VersionConflictError.of(conflicts)
        if len(stored) == len(groups):  # the identical unit, stored earlier
            by_id = {e.id: e for found in stored.values() for e in found}
            return [by_id[e.id] for e in events]
        # Some actors' part is stored and others' not: not the same unit; the actors whose
        # part is stored are the ones not at the unit's expected version.
        raise VersionConflictError.of(
            [
                ActorConflict(a, g[0].version - 1, tips[a].version)
                for a, g in groups.items()
                if a in stored
            ]
        )

    def _tracking_message(self, tracking: Tracking, expected_seq: int) -> Message:
        payload = orjson.dumps(
            {
                "key": tracking.key,
                "position": tracking.position,
                "data": tracking.data,
                "revision": tracking.expected + 1,
            }
        )
        return (
            tracking_subject(self._ns, tracking.key),
            payload,
            {"Nats-Expected-Last-Subject-Sequence": str(expected_seq)},
        )

    async def _tracking_seq(self, tracking: Tracking) -> int:
        """The stream sequence of the record at revision ``tracking.expected`` (0: none);
        `TrackingConflictError` if the record is elsewhere."""
        if tracking.expected == 0:
            return 0
        cached = self._tracks.get(tracking.key)
        if cached is not None and cached[0] == tracking.expected:
            return cached[1]
        record = await self.get_tracking(tracking.key)
        actual = record.revision if record is not None else 0
        if record is None or actual != tracking.expected:
            raise TrackingConflictError(tracking.key, tracking.expected, actual)
        return self._tracks[tracking.key][1]

    async def _check_tracking_at(self, tracking: Tracking) -> None:
        self._tracks.pop(tracking.key, None)
        record = await self.get_tracking(tracking.key)
        actual = record.revision if record is not None else 0
        if actual != tracking.expected:
            raise TrackingConflictError(tracking.key, tracking.expected, actual)

    def _tracked(self, key: str, revision: int, seq: int) -> None:
        if len(self._tracks) >= CACHE_MAX:
            self._tracks.clear()
        self._tracks[key] = (revision, seq)

    async def _checkpoint(self, tracking: Tracking) -> None:
        """A tracking record alone: one publish with the expectation."""
        if self._watch_starts:
            await self._watch_barrier()
        for _ in range(_NOT_READY_RETRIES):
            expected_seq = await self._tracking_seq(tracking)
            subject, payload, headers = self._tracking_message(tracking, expected_seq)
            try:
                ack = await self._pub.publish(subject, payload, headers)
            except JsApiError as e:
                if e.conflict:
                    await self._check_tracking_at(tracking)
                    continue  # the server said no, the leader says yes: look again
                if e.err_code == ERR_LAST_SEQ_NOT_READY:
                    await asyncio.sleep(0.02)
                    continue
                raise public_error(e, f"checkpoint {tracking.key!r}", self._nc) from None
            self._tracked(tracking.key, tracking.expected + 1, int(ack["seq"]))
            return
        raise TrackingConflictError(tracking.key, tracking.expected, -1)

    async def get_tracking(self, key: str) -> TrackingRecord | None:
        """The tracking record `key` as the stream leader holds it, or None.

        Its `revision` counts the record's commits (1 after the first); the next commit
        must expect it.
        """
        self._check_open()
        check_tracking(Tracking(key, 0, 0))
        subject = tracking_subject(self._ns, key)
        msg = await self._get(self._stream, {"last_by_subj": subject}, leader=True)
        if msg is None:
            return None
        try:
            d = orjson.loads(msg.data)
            position, data, revision = d["position"], d["data"], d["revision"]
            if (
                d["key"] != key
                or type(position) is not int
                or type(revision) is not int
                or not isinstance(data, dict)
            ):
                raise ValueError
        except Exception:
            raise CorruptEventError(
                msg.seq, "not an aether tracking record", subject=subject
            ) from None
        self._tracked(key, revision, msg.seq)
        return TrackingRecord(key, position, revision, data)

    # -- reads --------------------------------------------------------------------------

    async def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version (0 if none): one read of its last message."""
        validate_actor_id(actor_id)
        return (await self._tip(actor_id, self._subject(actor_id))).version

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
        chunks = self._read(actor_id, subject, max(from_version, 1), end, tip)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for e in chunk:
                    yield e

    async def _read(
        self, actor_id: str, subject: str, start: int, end: int, tip: _Tip
    ) -> AsyncGenerator[list[Event], None]:
        """Versions ``start..end`` (``end <= tip.version``) of one actor, in chunks.

        Every version of the range is checked to come, in order: a replica that is behind
        the leader (or a lost consumer) never shortens the read; what it lacks is read
        from the leader.
        """
        if start > end:
            return
        if start == end == tip.version and tip.msg is not None:
            yield [decode_stored(tip.msg.subject or subject, tip.msg.data, tip.seq, actor_id)]
            return
        start_seq = 1 if start == 1 else await self._seq_of_version(subject, start, tip)
        expect = start
        last_seq = start_seq - 1
        count = end - start + 1

        def check(rows: list[tuple[int, str, bytes]]) -> list[Event]:
            nonlocal expect, last_seq
            out: list[Event] = []
            for seq, subj, data in rows:
                # the rows come from a read filtered on the actor's own subject
                try:
                    e = decode_event(data, seq)
                    ok = e.actor_id == actor_id and type(e.version) is int
                except Exception:
                    ok = False
                if not ok:
                    e = decode_stored(subj or subject, data, seq, actor_id)
                if seq > last_seq:
                    last_seq = seq
                if e.version < expect or e.version > end:
                    if e.version < start or e.version > end:
                        continue  # old versions aged out meanwhile (max age): trim
                    raise CorruptEventError(
                        seq, f"version {e.version} where {expect} was expected", subject=subj
                    )
                if e.version > expect and not (self._limits and not out and expect == start):
                    raise CorruptEventError(
                        seq, f"version {e.version} where {expect} was expected", subject=subj
                    )
                # the first versions of the range aged out: start at the first one left
                expect = e.version + 1
                out.append(e)
            return out

        if count <= DIRECT_BATCH_MAX and self._direct_batch:
            rows = await direct_batch(self._api, self._stream, subject, start_seq, count)
            events = check(rows)
            if events:
                yield events
        else:
            until = tip.seq if self._replicated and not self._limits and end == tip.version else 0
            chunks = read_range(
                self._api, self._stream, [subject], start_seq, count, until_seq=until
            )
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    events = check([(seq_of(a), subject, d) for a, _, d in chunk])
                    if events:
                        yield events
        while expect <= end:
            # Short: a replica behind the leader. The rest comes from the leader.
            msg = await self._get(
                self._stream, {"seq": last_seq + 1, "next_by_subj": subject}, leader=True
            )
            if msg is None:
                if self._limits:
                    return
                raise NatsUnavailableError(
                    f"stream {self._stream} did not return version {expect} of {actor_id!r} "
                    "that it acknowledged; try again"
                )
            events = check([(msg.seq, msg.subject, msg.data)])
            if events:
                yield events

    async def _seq_of_version(self, subject: str, version: int, tip: _Tip) -> int:
        """Stream sequence of the actor's event `version` (binary search, no scan).

        Every event of the subject before `version` has a smaller sequence, so the answer
        lies in ``[version, tip.seq - (tip.version - version)]``. Asks the leader on a
        replicated stream (a replica's gaps would mislead the search).
        """
        if version == tip.version:
            return tip.seq
        lo, hi = version, tip.seq - (tip.version - version)
        best = hi
        while lo <= hi:
            mid = (lo + hi) // 2
            msg = await self._get(self._stream, {"seq": mid, "next_by_subj": subject}, leader=True)
            if msg is None:
                break
            try:
                v = int(orjson.loads(msg.data)["version"])
            except Exception:
                raise CorruptEventError(
                    msg.seq, "the payload is not an aether event", subject=subject
                ) from None
            if v == version:
                return msg.seq
            if v < version:
                lo = max(mid + 1, msg.seq + 1)
            else:
                best = min(best, msg.seq)
                hi = mid - 1
        return best  # the version is gone (max age): start at the first one after it

    def _own_until(self, selected: frozenset[int] | None) -> int:
        """The last sequence this store appended in `selected` (replicated streams only)."""
        if not self._replicated or self._limits or not self._own_seq:
            return 0
        if selected is None:
            return max(self._own_seq.values())
        return max((s for sl, s in self._own_seq.items() if sl in selected), default=0)

    def _scan(self, chunk: Chunk) -> list[Event]:
        """Decode a namespace scan's chunk; skip (count, log) foreign messages."""
        out: list[Event] = []
        actors = self._subject_actors
        for ack, subject, data in chunk:
            actor = actors.get(subject, _UNKNOWN)
            if actor is _UNKNOWN:
                actor = actor_of_subject(subject.decode())
                if len(actors) >= CACHE_MAX:
                    actors.clear()
                actors[subject] = actor
            seq = seq_of(ack)
            try:
                e = decode_event(data, seq)
                ok = (
                    actor is not None
                    and e.actor_id == actor
                    and type(e.version) is int
                    and e.version >= 1
                )
            except Exception:
                ok = False
            if ok:
                out.append(e)
                continue
            if actor is None and subject.startswith(self._track_prefix):
                continue  # a tracking record (an unfiltered read): not an event
            try:
                out.append(decode_stored(subject.decode(), data, seq))
            except CorruptEventError as err:
                self._corrupt.skip(err)
        return out

    async def _no_tracking_from(self, start: int) -> bool:
        """Whether the stream holds no tracking record at or after sequence `start` (one
        direct get; a replica that lags may miss a recent one, which `_scan` drops)."""
        try:
            found = await self._get(self._stream, {"seq": start, "next_by_subj": self._track_all})
        except StoreClosedError:
            raise
        except AetherError:  # no answer: the filtered read, which is right either way
            return False
        return found is None

    def read_all(
        self, from_position: int = 0, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Every event (of `slices`, if given) with ``position >= from_position``, in order.

        The slices are selected by the server (consumer filter subjects).
        """
        self._check_open()
        check_nonnegative_int(from_position, "from_position")
        selected = normalize_slices(slices)
        return self._read_all(max(from_position, 1), selected)

    async def _read_all(self, start: int, selected: frozenset[int] | None) -> AsyncIterator[Event]:
        filters = slice_filters(self._ns, selected)
        if selected is None and await self._no_tracking_from(start):
            # Only events from here on: read the stream unfiltered. nats-server delivers
            # about half as fast through a wildcard filter over many subjects, even one
            # that matches everything (nats-server#7852). A tracking record written
            # meanwhile is dropped by _scan.
            filters = []
        chunks = read_range(
            self._api,
            self._stream,
            filters,
            start,
            until_seq=self._own_until(selected),
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for e in self._scan(chunk):
                    yield e

    def watch(
        self, from_position: int | None = None, *, slices: Slices | None = None
    ) -> AsyncIterator[Event]:
        """Events from `from_position` (None: those appended after this call), then live.

        The start is fixed by this call, before the first iteration: with None, the
        stream's last sequence is asked for at once, and this store's writes issued after
        the call wait for that answer, so an event saved right after ``watch()`` returned
        is delivered. Ends when the store is closed. No gaps or duplicates across consumer
        loss and server restarts.
        """
        self._check_open()
        selected = normalize_slices(slices)
        if from_position is None:
            task = asyncio.get_running_loop().create_task(self._stream_last_seq())
            self._watch_starts.add(task)
            task.add_done_callback(self._watch_started)
            return self._follow(task, selected)
        check_nonnegative_int(from_position, "from_position")
        return self._follow(max(from_position, 1), selected)

    def _watch_started(self, task: asyncio.Task[int]) -> None:
        self._watch_starts.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the watch raises it when iterated

    async def _stream_last_seq(self) -> int:
        # The stream's last message by an (isolated) get, not stream info's last_seq: that
        # one can be taken while an atomic batch is half stored, and a watch starting
        # after it would deliver the rest of a unit of work without its beginning.
        msg = await self._get(self._stream, {"last_by_subj": ">"}, leader=True)
        return 0 if msg is None else msg.seq

    async def _follow(
        self, start: int | asyncio.Task[int], selected: frozenset[int] | None
    ) -> AsyncIterator[Event]:
        if isinstance(start, asyncio.Task):
            try:
                start = await start + 1
            except (asyncio.CancelledError, StoreClosedError):
                if self._closed:
                    return  # closed before the start was known: the watch just ends
                raise
        if self._closed:
            return
        chunks = follow(
            self._api,
            self._stream,
            slice_filters(self._ns, selected),
            start,
            closed=lambda: self._closed,
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for e in self._scan(chunk):
                    yield e
                    if self._closed:
                        return

    async def last_position(self) -> int:
        """The position of the namespace's last event (0 when none), from the leader."""
        self._check_open()
        msg = await self._get(
            self._stream, {"last_by_subj": events_wildcard(self._ns)}, leader=True
        )
        return 0 if msg is None else msg.seq

    async def list_actors(self) -> dict[str, int]:
        """Every actor with its latest version (subjects paged from stream info)."""
        self._check_open()
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
                actor = actor_of_subject(subject)
                if actor is None:
                    self._corrupt.skip(
                        CorruptEventError(0, "not an aether events subject", subject=subject)
                    )
                    continue
                counts[actor] = int(count)
            offset += len(page)
            if not page or offset >= int(info.get("total", 0)):
                break
        if self._limits:
            # Old events may have aged out: the count is then below the version.
            await self._exact_versions(counts)
        return counts

    async def _exact_versions(self, counts: dict[str, int]) -> None:
        sem = asyncio.Semaphore(_LIST_PAGE_CONCURRENCY)

        async def one(actor_id: str) -> None:
            async with sem:
                try:
                    counts[actor_id] = await self.get_latest_version(actor_id)
                except CorruptEventError as e:
                    self._corrupt.skip(e)

        await asyncio.gather(*(one(a) for a in list(counts)))

    # -- snapshots ----------------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the actor's latest; refused beyond the actor's latest event."""
        self._check_open()
        payload = encode_snapshot(snapshot)
        latest = await self.get_latest_version(snapshot.actor_id)
        if snapshot.version > latest:
            raise InvalidEventError(
                "snapshot.version",
                f"snapshot version {snapshot.version} is beyond the latest event {latest}",
            )
        await self._snapshots.save(snapshot, payload)

    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        """The actor's most recent snapshot, or None."""
        self._check_open()
        return await self._snapshots.latest(actor_id)


__all__ = ["JetStreamEventStore"]
