"""`ClusterNode`: membership, election and shard ownership of one process.

Every node heartbeats its entry, watches the bucket, campaigns for the lease and applies
the shard map. The leader recomputes the map (rendezvous hashing over the live nodes)
whenever membership or a node's acknowledgement changes and writes it with the next
epoch, fenced on its lease so a deposed leader's write is refused by the server.

Hand-off guarantees
-------------------
- **Planned moves** (a node joins, or the weights change): the leader first writes the
  shard as *in hand-off* (owner ``None``); the old owner runs ``on_released`` and then
  acknowledges the epoch in its heartbeat entry; only then does the leader write the new
  owner, whose ``on_acquired`` runs. A release always completes before the acquire starts.
- **Graceful stop** (`stop`, SIGTERM on ``aether node run``): the node releases all its
  shards, resigns the lease and deletes its entry; the others take over at once.
- **Crash** (SIGKILL, power loss): nothing runs on the dead node. Its lease and entry
  expire by TTL (``lease``, ``node_ttl``); then a new leader is elected and the shards
  are given to the survivors. A node that is alive but cut off from NATS releases all its
  shards itself ``node_ttl - margin`` after its last acknowledged heartbeat, before the
  server can expire its entry, so it never overlaps with the next owner unless the
  process is frozen longer than the margin (``min(heartbeat, node_ttl/4)``).
- **Rejoin on the current map**: before acquiring anything the node re-reads
  ``shardmap`` from the stream leader and acts on the newest map by epoch, never on one
  its view held from before a disconnect.
- **Replicated bucket**: the default lease is longer (`aether.cluster.defaults`) so a
  stream-leader election of the bucket is ridden out without releasing anything.

For writes that must never overlap, use the store's optimistic concurrency or the
leader term / the map's ``epoch`` and ``revision``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nats.aio.client import Client as NATS

from aether.cluster.defaults import default_lease, default_node_ttl
from aether.cluster.election import LEADER_KEY, Election, LeaderLease, TermCallback, call_back
from aether.cluster.hashing import shard_of, slices_of_shards, validate_shard_count
from aether.cluster.kv import BucketView, ClusterBucket, KvEntry, bounded, nats_errors
from aether.cluster.membership import (
    NODE_PREFIX,
    Membership,
    NodeInfo,
    aether_version,
    default_node_id,
    live_nodes,
)
from aether.cluster.shards import ShardMap, decode_shard_map, encode_shard_map, plan_next
from aether.cluster.status import SHARDMAP_KEY, ClusterStatus, status_from_entries
from aether.config import Settings
from aether.connect import connect
from aether.errors import ClusterError, StaleTermError, ValidationError
from aether.subjects import validate_node_id

if TYPE_CHECKING:
    from aether.processing import Policy, Processor, ProcessorHost, RetryPolicy
    from aether.store.base import EventStore

log = logging.getLogger("aether.cluster")

ShardCallback = Callable[[frozenset[int]], Awaitable[None] | None]


@runtime_checkable
class ShardListener(Protocol):
    """Something told about a node's shards: ``on_acquired``/``on_released`` (sync or async).

    Register with ``ClusterNode(listeners=[...])`` or `ClusterNode.add_listener`; several
    listeners (a processor host, metrics...) can observe one node.
    """

    def on_acquired(self, shards: frozenset[int]) -> Awaitable[None] | None:
        """The node now owns `shards` (after every release it had to make)."""

    def on_released(self, shards: frozenset[int]) -> Awaitable[None] | None:
        """The node no longer owns `shards`; return once they are handed over."""


def _positive(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(field, "must be a number of seconds > 0")
    return float(value)


def _callable(value: object, field: str) -> None:
    if value is not None and not callable(value):
        raise ValidationError(field, "must be callable or None")


class ClusterNode:
    """One member of a namespace's cluster (see the module doc for the guarantees).

    ``async with ClusterNode(settings, on_acquired=..., on_released=...) as node:`` joins,
    and leaves gracefully on exit. Callbacks may be plain functions or coroutines;
    ``on_acquired``/``on_released`` get a frozenset of shard numbers,
    ``on_elected``/``on_demoted`` the term. `listeners` (or `add_listener`) are further
    `ShardListener` objects told after the callbacks.

    `processors` (`aether.processing`) run on the shards the node owns, one segment per
    shard, over `store` (default: the store `settings` select, opened at `start` and
    closed at `stop`); `processor_host` is their `ProcessorHost` (a listener).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        node_id: str | None = None,
        *,
        shard_count: int | None = None,
        on_acquired: ShardCallback | None = None,
        on_released: ShardCallback | None = None,
        on_elected: TermCallback | None = None,
        on_demoted: TermCallback | None = None,
        listeners: Iterable[ShardListener] = (),
        heartbeat: float | None = None,
        lease: float | None = None,
        node_ttl: float | None = None,
        weight: float = 1.0,
        nc: NATS | None = None,
        processors: Iterable[Processor] = (),
        store: EventStore | None = None,
        processor_retry: RetryPolicy | None = None,
        processor_on_failure: Policy = "stop",
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        c = self.settings.cluster
        self.node_id = validate_node_id(node_id if node_id is not None else default_node_id())
        self.shard_count = validate_shard_count(
            shard_count if shard_count is not None else c.shard_count
        )
        self.heartbeat = _positive(heartbeat if heartbeat is not None else c.heartbeat, "heartbeat")
        self.lease = _positive(
            lease if lease is not None else default_lease(self.settings), "lease"
        )
        if node_ttl is None:
            # Unless set, a crashed node is dead after one lease: its shards move as soon
            # as a new leader is there (lease + heartbeat), whatever lease was chosen.
            node_ttl = default_node_ttl(self.settings, self.lease)
        self.node_ttl = _positive(node_ttl, "node_ttl")
        self.weight = _positive(weight, "weight")
        if self.lease < 2 * self.heartbeat:
            raise ValidationError("lease", "must be at least twice the heartbeat")
        if self.node_ttl < 2 * self.heartbeat:
            raise ValidationError("node_ttl", "must be at least twice the heartbeat")
        if isinstance(listeners, ShardListener) or callable(listeners):
            raise ValidationError("listeners", "must be a collection of listeners")
        for name, cb in (
            ("on_acquired", on_acquired),
            ("on_released", on_released),
            ("on_elected", on_elected),
            ("on_demoted", on_demoted),
        ):
            _callable(cb, name)
        self.namespace = self.settings.namespace
        self.on_acquired = on_acquired
        self.on_released = on_released
        self._listeners: list[ShardListener] = []
        for listener in listeners:
            self.add_listener(listener)
        self._processor_store = store
        self._own_processor_store = False
        self.processor_host: ProcessorHost | None = None
        procs = list(processors) if not isinstance(processors, str | bytes) else [processors]
        if procs:
            from aether.processing import ProcessorHost, RetryPolicy

            self.processor_host = ProcessorHost(
                store,
                procs,
                node=self,
                retry=processor_retry if processor_retry is not None else RetryPolicy(),
                on_failure=processor_on_failure,
            )
            self.add_listener(self.processor_host)
        self._user_on_elected = on_elected
        self._user_on_demoted = on_demoted
        self.instance = uuid.uuid4().hex
        self._nc = nc
        self._own_nc = nc is None
        self._bucket: ClusterBucket | None = None
        self._view: BucketView | None = None
        self._membership: Membership | None = None
        self._election: Election | None = None
        self._map: ShardMap | None = None
        self._held: frozenset[int] = frozenset()
        self._applied_epoch = 0
        self._fenced = False
        self._acquire_after = float("-inf")
        self._stopping = False
        self._map_checked_term: int | None = None
        self._node_seen: dict[str, tuple[object, ...]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._reconcile = asyncio.Event()
        self._apply_evt = asyncio.Event()
        self._beat_evt = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self.started: datetime | None = None

    # --- public view --------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the leader lease now."""
        return self._election is not None and self._election.is_leader

    @property
    def term(self) -> int | None:
        """The term this node leads in, or ``None``."""
        return self._election.term if self.is_leader and self._election else None

    @property
    def leader(self) -> LeaderLease | None:
        """The lease as last seen in the bucket (any node's)."""
        return self._election.current if self._election else None

    @property
    def shards(self) -> frozenset[int]:
        """The shards this node owns now (acquired and not released)."""
        return self._held

    @property
    def shard_map(self) -> ShardMap | None:
        """The latest shard map seen (``.epoch`` only grows; ``.revision`` is its bucket
        revision, both usable to fence a hand-off)."""
        return self._map

    @property
    def slices(self) -> frozenset[int]:
        """The slices of the shards this node owns now (for ``store.read_all(slices=)``)."""
        return slices_of_shards(self._held, self.shard_count)

    def add_listener(self, listener: ShardListener) -> None:
        """Also tell `listener` about acquired and released shards (after the callbacks).

        A listener has ``on_acquired(shards)`` and ``on_released(shards)`` (plain or
        async; a missing one is skipped). Releases are delivered in reverse order of
        registration, acquisitions in order; a release completes before any acquire.
        """
        if not any(callable(getattr(listener, n, None)) for n in ("on_acquired", "on_released")):
            raise ValidationError("listener", "needs an on_acquired or on_released method")
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: ShardListener) -> None:
        """Stop telling `listener` (no release is delivered to it)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    @property
    def listeners(self) -> tuple[ShardListener, ...]:
        """The registered listeners, in order."""
        return tuple(self._listeners)

    @property
    def in_contact(self) -> bool:
        """False while the node has released everything for lack of acknowledged heartbeats."""
        return not self._fenced

    @property
    def applied_epoch(self) -> int:
        """The epoch of the last shard map this node applied."""
        return self._applied_epoch

    @property
    def nc(self) -> NATS:
        """The NATS connection (after `start`)."""
        if self._nc is None:
            raise ClusterError("the node is not started")
        return self._nc

    def shard_of(self, actor_id: str) -> int:
        """The shard of `actor_id` in this cluster."""
        return shard_of(actor_id, self.shard_count)

    def owns(self, actor_id: str) -> bool:
        """Whether this node owns `actor_id`'s shard now."""
        return shard_of(actor_id, self.shard_count) in self._held

    def owner_of(self, actor_id: str) -> str | None:
        """The node owning `actor_id` by the latest map (``None``: unassigned or in hand-off)."""
        s = shard_of(actor_id, self.shard_count)
        return self._map.owner(s) if self._map is not None else None

    def status(self) -> ClusterStatus:
        """The cluster as this node sees it now (from its live view, no round trip)."""
        if self._view is None:
            raise ClusterError("the node is not started")
        return status_from_entries(self.namespace, self._view.entries)

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> ClusterNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connection_closed(self) -> bool:
        """Whether the node's NATS connection is closed for good (reconnects exhausted)."""
        return self._nc is not None and self._nc.is_closed

    async def start(self) -> ClusterNode:
        """Connect, join the cluster and start heartbeating, campaigning and applying."""
        if self._tasks:
            return self
        if self._stopping:
            raise ClusterError("a stopped ClusterNode cannot start again; create a new one")
        try:
            with nats_errors(f"node {self.node_id} joining namespace {self.namespace}"):
                await self._start()
        except BaseException:
            await self._close()
            raise
        return self

    async def _start(self) -> None:
        if self.processor_host is not None and self._processor_store is None:
            from aether.store import open_store

            self._processor_store = await open_store(self.settings)
            self._own_processor_store = True
            self.processor_host.store = self._processor_store
        if self.processor_host is not None:
            await self.processor_host.start()
        if self._nc is None:
            self._nc = await connect(self.settings)
        timeout = max(1.0, min(5.0, self.lease))
        self._bucket = await ClusterBucket.open(
            self._nc,
            self.namespace,
            replicas=self.settings.jetstream.replicas,
            request_timeout=timeout,
        )
        self._view = BucketView(
            self._bucket, self._on_entry, idle_heartbeat=min(5.0, max(0.5, self.heartbeat))
        )
        await self._view.start()
        await self._view.wait_ready(max(5.0, self.lease))
        raw = self._view.live(SHARDMAP_KEY)
        if raw is not None:
            current = replace(decode_shard_map(raw.value), revision=raw.revision)
            if current.shard_count != self.shard_count:
                raise ClusterError(
                    f"shard_count: the cluster in namespace {self.namespace!r} uses "
                    f"{current.shard_count} shards, this node was given {self.shard_count}"
                )
            self._map = current
        self.started = datetime.now(UTC)
        info = NodeInfo(
            node_id=self.node_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=self.started,
            heartbeat=self.started,
            shards=0,
            version=aether_version(),
            epoch=0,
            instance=self.instance,
            weight=self.weight,
        )
        self._membership = Membership(
            self._bucket, info, heartbeat=self.heartbeat, ttl=self.node_ttl
        )
        await self._membership.register(wait=self.node_ttl + self.heartbeat)
        self._election = Election(
            self._bucket,
            self.node_id,
            self.instance,
            lease=self.lease,
            heartbeat=self.heartbeat,
            on_elected=self._on_elected,
            on_demoted=self._on_demoted,
        )
        self._election.observe(self._view.entries.get(LEADER_KEY))
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_loop(), name=f"aether-heartbeat-{self.node_id}"
        )
        self._tasks = [
            asyncio.create_task(self._election.run(), name=f"aether-election-{self.node_id}"),
            self._heartbeat_task,
            asyncio.create_task(self._leader_loop(), name=f"aether-leader-{self.node_id}"),
            asyncio.create_task(self._apply_loop(), name=f"aether-apply-{self.node_id}"),
            asyncio.create_task(self._watchdog_loop(), name=f"aether-watchdog-{self.node_id}"),
        ]
        self._apply_evt.set()
        log.info("node %s joined namespace %s", self.node_id, self.namespace)

    async def stop(self) -> None:
        """Leave gracefully: release every shard, resign the lease, delete the entry."""
        if self._stopping:
            return
        self._stopping = True
        election, membership = self._election, self._membership
        if election is not None:
            election.stop()
        await self._cancel_tasks(keep_heartbeat=True)
        if election is not None:
            await election.resign()  # first: the others campaign while we release
        with contextlib.suppress(Exception):
            await bounded(self._apply(), max(self.lease, 5.0))
        await self._cancel_tasks()
        if self.processor_host is not None:
            with contextlib.suppress(Exception):
                await self.processor_host.stop()
        if membership is not None:
            with contextlib.suppress(Exception):
                await bounded(membership.deregister(), max(1.0, self.lease))
        await self._close()
        log.info("node %s left namespace %s", self.node_id, self.namespace)

    async def abort(self) -> None:
        """Stop abruptly *without* releasing, resigning or deregistering, like a crash.

        The lease and the node entry then expire by TTL. Meant for tests and benchmarks.
        """
        self._stopping = True
        if self._election is not None:
            self._election.stop()
        await self._cancel_tasks()
        if self.processor_host is not None:
            await self.processor_host.abort()
        await self._close()

    async def _cancel_tasks(self, keep_heartbeat: bool = False) -> None:
        # By reference, never by name: a node id may contain any word.
        keep = [t for t in self._tasks if keep_heartbeat and t is self._heartbeat_task]
        cancel = [t for t in self._tasks if t not in keep]
        # Cancel until done: nats-py awaits asyncio.wait_for, which on Python 3.11 can lose
        # a cancellation that races with a reply; the next cancel then lands.
        pending = set(cancel)
        for _ in range(250):
            if not pending:
                break
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.02)
        for t in pending:
            log.warning("task %s did not stop", t.get_name())
        self._tasks = keep

    async def _close(self) -> None:
        if self._view is not None:
            with contextlib.suppress(Exception):
                await bounded(self._view.stop(), 2.0)
        if self._own_processor_store and self._processor_store is not None:
            store, self._processor_store = self._processor_store, None
            with contextlib.suppress(Exception):
                await bounded(store.close(), 5.0)
        if self._own_nc and self._nc is not None:
            nc, self._nc = self._nc, None
            with contextlib.suppress(Exception):
                await bounded(nc.close(), 5.0)

    # --- event handling -----------------------------------------------------------------

    def _on_entry(self, entry: KvEntry) -> None:
        if entry.key == LEADER_KEY:
            if self._election is not None:
                self._election.observe(entry)
            self._reconcile.set()
        elif entry.key == SHARDMAP_KEY:
            if not entry.deleted:
                try:
                    m = replace(decode_shard_map(entry.value), revision=entry.revision)
                except ClusterError as e:
                    log.warning("ignoring shard map: %s", e)
                    return
                self._set_map(m)
            self._reconcile.set()
        elif entry.key.startswith(NODE_PREFIX):
            # Wake the leader only when what it plans from changes: who is alive, their
            # acknowledged epoch, their weight (not on every routine heartbeat).
            seen: tuple[object, ...] = (entry.deleted,)
            if not entry.deleted:
                try:
                    info = NodeInfo.from_json(entry.value)
                    seen = (False, info.epoch, info.weight)
                except ClusterError:
                    pass
            if self._node_seen.get(entry.key) != seen:
                self._node_seen[entry.key] = seen
                self._reconcile.set()

    def _set_map(self, m: ShardMap) -> None:
        old = self._map
        if old is None or m.epoch > old.epoch:
            self._map = m
            self._apply_evt.set()
        elif m.epoch == old.epoch and m.revision > old.revision == 0:
            self._map = replace(old, revision=m.revision)

    async def _on_elected(self, term: int) -> None:
        self._reconcile.set()
        await call_back(self._user_on_elected, term)

    async def _on_demoted(self, term: int) -> None:
        await call_back(self._user_on_demoted, term)

    @staticmethod
    async def _wait(evt: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await bounded(evt.wait(), seconds)
        evt.clear()

    # --- loops --------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        m = self._membership
        assert m is not None
        while True:
            await self._wait(self._beat_evt, self.heartbeat)
            until_lost = m.last_ok + m.ttl - m.margin - time.monotonic()
            # Bounded so the loss is noticed on time; once lost, give a reply all the time
            # it needs (a slow link must not keep the node out forever).
            limit = (
                2 * max(self.heartbeat, 1.0)
                if self._fenced
                else min(until_lost, 2 * self.heartbeat)
            )
            try:
                expired_before = m.reregistered
                await bounded(
                    m.beat(shards=len(self._held), epoch=self._applied_epoch), max(0.05, limit)
                )
                if m.reregistered != expired_before:
                    # The server had expired us: the leader may be moving our shards as a
                    # dead node's right now. Give that write time to land before reading
                    # the map we acquire from.
                    self._acquire_after = time.monotonic() + max(2 * self.heartbeat, 0.5)
                if self._fenced:
                    self._fenced = False
                    log.warning("node %s is back in contact; taking shards again", self.node_id)
                    self._apply_evt.set()
            except asyncio.CancelledError:
                raise
            except ClusterError as e:
                log.error("%s", e)
            except Exception as e:
                log.debug("heartbeat failed: %r", e)
            if m.lost() and not self._fenced:
                self._fenced = True
                log.warning(
                    "node %s lost contact for %.1fs; releasing its shards",
                    self.node_id,
                    self.node_ttl - m.margin,
                )
                self._apply_evt.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._wait(self._apply_evt, 3600.0)
            await self._apply()

    async def _apply(self) -> None:
        async with self._apply_lock:
            m = self._map
            if self._fenced or self._stopping or m is None:
                desired: frozenset[int] = frozenset()
            else:
                desired = m.shards_of(self.node_id)
            held = self._held
            released, acquired = held - desired, desired - held
            if released:
                self._held = held - released
                await self._tell_released(released)
            wait = self._acquire_after - time.monotonic()
            if acquired and wait > 0:
                acquired = frozenset()
                self._retry_apply(wait)
            if acquired:
                # Acquire only from the map the server holds *now* (read from the stream
                # leader), never from one seen before a disconnect: after a cut-off the
                # view may still show shards the leader has since given to others.
                current = await self._read_current_map()
                if current is None:
                    acquired = frozenset()
                    self._retry_apply()
                else:
                    if current is not m:
                        m = current
                        desired = m.shards_of(self.node_id)
                        gone = self._held - desired
                        if gone:
                            self._held -= gone
                            await self._tell_released(gone)
                    acquired = desired - self._held
                    if self._fenced or self._stopping:
                        acquired = frozenset()
            if acquired:
                self._held = self._held | acquired
                await self._tell_acquired(acquired)
            epoch = m.epoch if m is not None else 0
            if released or acquired or epoch != self._applied_epoch:
                self._applied_epoch = epoch
                self._beat_evt.set()

    async def _read_current_map(self) -> ShardMap | None:
        """The shard map on the server now (newest of it and the view), or ``None``."""
        assert self._bucket is not None
        try:
            raw = await bounded(self._bucket.get(SHARDMAP_KEY), max(1.0, self.heartbeat * 2))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.info("node %s could not read the current shard map: %r", self.node_id, e)
            return None
        if raw is None or raw.deleted:
            return None
        try:
            fresh = replace(decode_shard_map(raw.value), revision=raw.revision)
        except ClusterError as e:
            log.warning("ignoring shard map: %s", e)
            return None
        self._set_map(fresh)
        return self._map

    def _retry_apply(self, after: float | None = None) -> None:
        def again() -> None:
            self._apply_evt.set()

        delay = min(self.heartbeat, 0.5) if after is None else after
        asyncio.get_running_loop().call_later(delay, again)

    async def _tell_released(self, shards: frozenset[int]) -> None:
        await call_back(self.on_released, shards)
        for listener in reversed(self._listeners):
            await call_back(getattr(listener, "on_released", None), shards)

    async def _tell_acquired(self, shards: frozenset[int]) -> None:
        await call_back(self.on_acquired, shards)
        for listener in list(self._listeners):
            await call_back(getattr(listener, "on_acquired", None), shards)

    async def _leader_loop(self) -> None:
        while True:
            await self._wait(self._reconcile, self.heartbeat)
            election = self._election
            if election is None or not election.is_leader or self._stopping:
                continue
            term = election.term
            assert term is not None and self._bucket is not None and self._view is not None
            try:
                if self._map_checked_term != term:
                    raw = await self._bucket.get(SHARDMAP_KEY)
                    if raw is not None and not raw.deleted:
                        self._set_map(replace(decode_shard_map(raw.value), revision=raw.revision))
                    self._map_checked_term = term
                nodes = live_nodes(self._view.entries)
                live = {nid: info.epoch for nid, (info, _) in nodes.items()}
                weights = {nid: info.weight for nid, (info, _) in nodes.items()}
                nxt = plan_next(
                    self._map, live, shard_count=self.shard_count, term=term, weights=weights
                )
                if nxt is None:
                    continue
                rev = await election.write(SHARDMAP_KEY, encode_shard_map(nxt), term)
                self._set_map(replace(nxt, revision=rev))
                log.info(
                    "leader %s wrote shard map epoch %d (%d in hand-off)",
                    self.node_id,
                    nxt.epoch,
                    len(nxt.handoffs),
                )
            except asyncio.CancelledError:
                raise
            except StaleTermError as e:
                log.warning("%s", e)
            except Exception as e:
                log.warning("shard map update failed: %r", e)
                await asyncio.sleep(min(self.heartbeat, 0.5))

    async def _watchdog_loop(self) -> None:
        view, m = self._view, self._membership
        assert view is not None and m is not None
        while True:
            await asyncio.sleep(self.heartbeat)
            now = time.monotonic()
            quiet = now - view.last_update
            if not view.ready or (quiet > 3 * self.heartbeat + 1.0 and now - m.last_ok < quiet):
                log.info("bucket view quiet for %.1fs; restarting it", quiet)
                try:
                    await bounded(view.restart(), max(2.0, self.lease))
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.debug("view restart failed: %r", e)
