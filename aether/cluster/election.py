"""Leader election on a lease key, with the winning revision as the fencing term.

Protocol (all compare-and-set on the KV stream; no client-side locks):

- **Campaign**: write ``leader`` only if it is absent (never written, deleted, or expired)
  or, for a follower that has watched the same revision for a whole lease, only if it
  is still exactly that revision. The stream revision of the winning write is the
  **term**: strictly increasing, unique, and handed to ``on_elected(term)``.
- **Renew**: every heartbeat the leader rewrites ``leader`` with
  ``Nats-Expected-Last-Subject-Sequence`` = its last revision and ``Nats-TTL`` = lease.
  When renewals stop, the server deletes the key after the lease and places a marker.
- **Step down first**: the lease is valid until ``send time of the last acknowledged
  renewal + lease``; the server and the followers count from *later* instants (store
  time, observation time), so a leader that cannot renew demotes itself at
  ``send + lease - margin`` on its own monotonic clock, before anyone can take over,
  and calls ``on_demoted(term)``.
- **Fencing**: `fenced_put` writes a key only if ``leader`` is still at the revision the
  leader last wrote (``Nats-Expected-Last-Subject-Sequence-Subject``), checked by the
  server: a leader whose term has ended gets `StaleTermError` and nothing is written.
- **Resign**: delete ``leader`` (CAS on our revision); followers watching the key
  campaign at once instead of waiting for the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from nats.errors import Error as NatsError

from aether._nats.errors import CasConflictError
from aether.cluster._kv import ClusterBucket, KvEntry, bounded
from aether.errors import ClusterError, OutcomeUnknownError, StaleTermError, TransientError

log = logging.getLogger("aether.cluster")

LEADER_KEY = "leader"
"""The lease key in the cluster bucket."""

TermCallback = Callable[[int], Awaitable[None] | None]


@dataclass(frozen=True)
class LeaderLease:
    """The ``leader`` entry: who holds the lease, in which term, for how long."""

    node_id: str
    instance: str
    lease: float
    term: int
    revision: int
    renewed: datetime

    def lease_left(self, now: datetime | None = None) -> float:
        """Seconds until the lease runs out if it is not renewed (server timestamps)."""
        return self.lease - ((now or datetime.now(UTC)) - self.renewed).total_seconds()


def decode_lease(entry: KvEntry | None) -> LeaderLease | None:
    """The lease in a ``leader`` entry, or ``None`` if absent, deleted or malformed."""
    if entry is None or entry.deleted:
        return None
    try:
        doc = orjson.loads(entry.value)
        return LeaderLease(
            node_id=str(doc["node_id"]),
            instance=str(doc["instance"]),
            lease=float(doc["lease"]),
            term=int(doc.get("term") or entry.revision),
            revision=entry.revision,
            renewed=entry.created,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


async def fenced_put(bucket: ClusterBucket, key: str, value: bytes, *, leader_revision: int) -> int:
    """Write `key` only while ``leader`` is at `leader_revision`; else `StaleTermError`."""
    try:
        return await bucket.put_fenced(
            key, value, fence_key=LEADER_KEY, fence_revision=leader_revision
        )
    except CasConflictError:
        raise StaleTermError(
            f"{key}: refused, the leader lease moved past revision {leader_revision}"
        ) from None


async def call_back(cb: Callable[..., object] | None, *args: object) -> None:
    """Call a sync or async callback; log (never raise) what it raises."""
    if cb is None:
        return
    try:
        result = cb(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("cluster callback %r failed", cb)


class Election:
    """Campaigns for, holds, renews and gives up the ``leader`` lease of one node.

    Call `observe` with every change of the ``leader`` key (the node's bucket view does),
    run `run` as a task, and `resign` when stopping.
    """

    def __init__(
        self,
        bucket: ClusterBucket,
        node_id: str,
        instance: str,
        *,
        lease: float,
        heartbeat: float,
        on_elected: TermCallback | None = None,
        on_demoted: TermCallback | None = None,
    ) -> None:
        if lease < 2 * heartbeat:
            raise ClusterError("lease: must be at least twice the heartbeat")
        self.bucket = bucket
        self.node_id = node_id
        self.instance = instance
        self.lease = lease
        self.heartbeat = heartbeat
        self.margin = min(heartbeat / 2, lease / 4)
        self.on_elected = on_elected
        self.on_demoted = on_demoted
        self.term: int | None = None
        self.revision: int | None = None
        self.deadline = float("-inf")
        self.current: LeaderLease | None = None
        self._seen: tuple[int, float] | None = None  # (revision, monotonic first seen)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopped = False
        self._takeover_logged = 0
        self.elections = 0
        self.resolve_limit = 2 * lease + 10.0
        """How long `write` keeps reading back an unanswered write before giving up."""

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the lease now (by its own clock)."""
        return self.term is not None and time.monotonic() < self.deadline

    def observe(self, entry: KvEntry | None) -> None:
        """Note the current ``leader`` entry (from a watch or a read) and wake the loop."""
        self.current = decode_lease(entry)
        rev = entry.revision if entry is not None else 0
        if self._seen is None or self._seen[0] != rev:
            self._seen = (rev, time.monotonic())
        self._wake.set()

    def _value(self) -> bytes:
        doc: dict[str, object] = {
            "node_id": self.node_id,
            "instance": self.instance,
            "lease": self.lease,
        }
        if self.term is not None:
            doc["term"] = self.term
        return orjson.dumps(doc)

    async def _renew(self) -> int:
        assert self.revision is not None
        return await self.bucket.put(LEADER_KEY, self._value(), last=self.revision, ttl=self.lease)

    async def _campaign(self, last: int) -> None:
        sent = time.monotonic()
        try:
            async with self._lock:
                rev = await bounded(
                    self.bucket.put(LEADER_KEY, self._value(), last=last, ttl=self.lease),
                    self.lease,
                )
        except CasConflictError:
            self.observe(await self.bucket.get(LEADER_KEY))
            return
        self.term = self.revision = rev
        self.deadline = sent + self.lease - self.margin
        self.elections += 1
        log.info("node %s elected leader, term %d", self.node_id, rev)
        await call_back(self.on_elected, rev)

    async def _demote(self, why: str) -> None:
        term, self.term = self.term, None
        self.deadline = float("-inf")
        if term is not None:
            level = logging.INFO if why == "resigned" else logging.WARNING
            log.log(level, "node %s demoted from term %d: %s", self.node_id, term, why)
            await call_back(self.on_demoted, term)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await bounded(self._wake.wait(), max(0.0, seconds))

    async def run(self) -> None:
        """Campaign, lead and renew until `stop`/`resign` (run it as a task)."""
        while not self._stopped:
            try:
                if self.term is not None:
                    await self._lead_step()
                else:
                    await self._follow_step()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS down, timeouts: retry after a beat
                log.debug("election step failed: %r", e)
                await asyncio.sleep(min(self.heartbeat, 0.5))

    async def _lead_step(self) -> None:
        now = time.monotonic()
        if now >= self.deadline:
            await self._demote("the lease ran out before a renewal was acknowledged")
            return
        await asyncio.sleep(min(self.heartbeat, max(0.0, self.deadline - now)))
        if self.term is None or self._stopped:
            return
        sent = time.monotonic()
        if sent >= self.deadline:
            await self._demote("the lease ran out before a renewal was acknowledged")
            return
        try:
            async with self._lock:
                if self.term is None:
                    return
                try:
                    rev = await bounded(self._renew(), max(0.01, self.deadline - sent))
                except CasConflictError:
                    # A renewal whose ack was lost (stream-leader change) may have landed:
                    # then the lease is still ours at a revision we did not learn.
                    if not await bounded(self._adopt_own(), max(0.01, self.deadline - sent)):
                        raise
                    rev = await bounded(self._renew(), max(0.01, self.deadline - sent))
                self.revision = rev
                self.deadline = sent + self.lease - self.margin
        except CasConflictError:
            await self._demote("the lease was taken over")
        except (TimeoutError, Exception) as e:
            # Retried every heartbeat until the lease runs out on our clock (which is
            # before the server's TTL): a stream-leader election within the lease is
            # ridden out without giving anything up.
            log.debug("renewal failed: %r", e)

    async def _adopt_own(self) -> bool:
        """If ``leader`` holds our own entry of this term, adopt its revision (lock held)."""
        entry = await self.bucket.get(LEADER_KEY)
        lease = decode_lease(entry)
        if lease is None or lease.instance != self.instance or lease.term != self.term:
            return False
        if lease.revision != self.revision:
            log.info("node %s adopts its own renewal at revision %d", self.node_id, lease.revision)
            self.revision = lease.revision
        return True

    async def _follow_step(self) -> None:
        self._wake.clear()  # an observation from now on ends the sleep below
        cur, seen = self.current, self._seen
        if seen is None:
            self.observe(await self.bucket.get(LEADER_KEY))
            return
        rev, since = seen
        if cur is None:
            await self._campaign(last=rev)
        elif cur.instance == self.instance:
            await self._campaign(last=rev)  # our own entry from a term we gave up
        elif time.monotonic() >= since + cur.lease:
            if self._takeover_logged != rev:
                self._takeover_logged = rev
                log.info("leader %s silent for a lease; taking over", cur.node_id)
            await self._campaign(last=rev)
        else:
            await self._sleep(min(self.heartbeat, since + cur.lease - time.monotonic()))
            return
        if self.term is None:
            await self._sleep(self.heartbeat)

    async def write(self, key: str, value: bytes, term: int) -> int:
        """Write `key` fenced on the lease of `term`; `StaleTermError` if that term is over.

        When the server's answer does not come in time (a frozen process, a lost reply, a
        stream-leader change), the outcome is resolved by reading the keys from the
        stream leader: `value` under `key` means the write landed (its revision is
        returned); ``leader`` moved past the fence revision means the term is over and the
        write was refused or superseded (`StaleTermError`). The lock is held meanwhile, so
        no renewal moves the fence. If neither can be told within `resolve_limit`,
        `OutcomeUnknownError` (retriable; the leader loop plans and writes again).
        """
        async with self._lock:
            now = time.monotonic()
            if self.term != term or self.revision is None or now >= self.deadline:
                raise StaleTermError(f"{key}: refused, term {term} is not current on this node")
            try:
                return await self._write_locked(key, value, term)
            except StaleTermError as e:
                refused = e
        await self._demote("a fenced write was refused")
        raise refused

    async def _write_locked(self, key: str, value: bytes, term: int) -> int:
        transient = (TimeoutError, TransientError, NatsError, OSError)
        for attempt in range(2):
            fence = self.revision
            assert fence is not None
            left = max(0.01, self.deadline - time.monotonic())
            try:
                return await bounded(
                    fenced_put(self.bucket, key, value, leader_revision=fence), left
                )
            except StaleTermError:
                # Refused; unless the fence moved by a renewal of ours whose ack was lost.
                try:
                    adopted = await bounded(self._adopt_own(), left)
                except transient:
                    adopted = False
                if attempt or not adopted or self.revision == fence:
                    raise
                if time.monotonic() >= self.deadline:
                    raise
            except transient as e:
                log.info("fenced write of %s unanswered (%r); reading it back", key, e)
                return await self._resolve(key, value, fence, term)
        raise AssertionError("unreachable")

    async def _resolve(self, key: str, value: bytes, fence: int, term: int) -> int:
        """Settle a fenced write whose answer never came (see `write`); lock held."""
        give_up = time.monotonic() + self.resolve_limit
        resent = False
        while True:
            try:
                got = await bounded(self.bucket.get(key), self.bucket.timeout)
                lease = await bounded(self.bucket.get(LEADER_KEY), self.bucket.timeout)
            except (TimeoutError, TransientError, NatsError, OSError) as e:
                log.debug("reading back %s failed: %r", key, e)
            else:
                if got is not None and not got.deleted and got.value == value:
                    return got.revision
                if lease is None or lease.revision != fence:
                    raise StaleTermError(
                        f"{key}: refused, the leader lease moved past revision {fence} "
                        f"(term {term} is over; the write was refused or superseded)"
                    )
                now = time.monotonic()
                if not resent and now < self.deadline:
                    # Still our lease and nothing landed: the write was lost; send it again
                    # (same fence, so it lands at most once in this term's lease).
                    resent = True
                    try:
                        return await bounded(
                            fenced_put(self.bucket, key, value, leader_revision=fence),
                            max(0.01, self.deadline - now),
                        )
                    except (TimeoutError, TransientError, NatsError, OSError) as e:
                        log.debug("re-sending %s failed: %r", key, e)
            if time.monotonic() >= give_up:
                raise OutcomeUnknownError(
                    f"{key}: the fenced write was not answered and could not be read back; "
                    "its outcome is unknown (writing the same value again is safe)"
                )
            await asyncio.sleep(min(0.25, self.heartbeat))

    def stop(self) -> None:
        """Stop campaigning (a held lease is kept until `resign`)."""
        self._stopped = True
        self._wake.set()

    async def resign(self) -> None:
        """Give the lease up now (CAS delete) and stop campaigning."""
        self.stop()
        async with self._lock:
            if self.term is not None and self.revision is not None:
                with contextlib.suppress(Exception):
                    await bounded(self.bucket.delete(LEADER_KEY, last=self.revision), self.lease)
        await self._demote("resigned")
