"""`ProcessorRunner`: one processor over one store and one slice range (a segment)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

from aether.errors import (
    ProcessorError,
    ProcessorStoppedError,
    StoreClosedError,
    TrackingConflictError,
    TransientError,
    ValidationError,
)
from aether.event import Event
from aether.observability.processors import ProcessorStatsRecord, process_span
from aether.store.base import EventStore, Tracking
from aether.subjects import Slices, normalize_slices, slice_ranges

from ._record import (
    INDEX_KEY,
    Parked,
    SegmentRecord,
    add_to_list,
    cut,
    load,
    processor_key,
    segment_key,
)
from ._types import (
    Context,
    Policy,
    Processor,
    RetryPolicy,
    SegmentStatus,
    State,
    _event_types,
    validate_processor_name,
)

log = logging.getLogger("aether.processing")

_SEGMENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Fenced(Exception):
    """Another owner claimed the segment (or the fence refused): stop, commit nothing."""


class _Halt(Exception):
    """Stop requested while waiting between attempts: leave the event unprocessed."""


class _End:
    """The watch ended (store closed) or failed (`error`)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


_WAKE = object()
Mutation = Callable[[SegmentRecord], None]


def _positive(value: object, field: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise ValidationError(field, "must be an integer" if integer else "must be a number")
    if not value > 0:
        raise ValidationError(field, "must be > 0")
    return float(value)


def _error_text(err: BaseException) -> str:
    text = str(err)
    return cut(f"{type(err).__name__}: {text}" if text else type(err).__name__)


class ProcessorRunner:
    """Runs `processor` over `store`'s events of `slices` (None: all) from the durable
    checkpoint of segment `segment`, in position order (so each actor in version order).

    Delivery is at-least-once: the checkpoint is committed every `batch_events` events or
    `batch_interval` seconds (and at once when the handler appended events through
    ``ctx.append``, which commit in the same unit as the checkpoint: exactly once).
    A failing handler is retried (`retry`), then `on_failure` applies: ``"stop"`` waits
    at the event (see `status`; `aether.processing.retry_parked` / `skip_parked` or a
    restart resume it) or ``"park"`` parks it, and the actor's later events, durably
    (at most `max_parked`; beyond that the runner stops).

    `start` claims the segment: it commits a new claim on the segment's tracking record,
    so a previous owner's next commit is refused by the store (`TrackingConflictError`)
    and that runner stops without applying anything more. `fence`, if given, is awaited
    before every commit; if it raises, the runner stops as fenced. `owner` (a node id)
    and `epoch` are shown in status. While running the runner commits at least every
    `keepalive` seconds; a record not refreshed within three keepalives shows as
    ``paused``. `idle_interval` is how long it waits without events before it checks
    whether the namespace's head moved past its checkpoint in other slices.
    """

    def __init__(
        self,
        store: EventStore,
        processor: Processor,
        *,
        slices: Slices | None = None,
        segment: str = "all",
        retry: RetryPolicy = RetryPolicy(),
        on_failure: Policy = "stop",
        fence: Callable[[], Awaitable[None]] | None = None,
        shard: int | None = None,
        shard_count: int | None = None,
        owner: str | None = None,
        epoch: int | None = None,
        batch_events: int = 100,
        batch_interval: float = 0.2,
        idle_interval: float = 0.25,
        keepalive: float = 2.0,
        max_parked: int = 500,
        stop_timeout: float = 30.0,
    ) -> None:
        if not isinstance(store, EventStore):
            raise ValidationError("store", "must be an aether EventStore")
        self.name = validate_processor_name(getattr(processor, "name", None), "processor.name")
        if not callable(getattr(processor, "handle", None)):
            raise ValidationError("processor.handle", "must be an async method (event, ctx)")
        self._event_types = _event_types(
            getattr(processor, "event_types", None), "processor.event_types"
        )
        if (
            not isinstance(segment, str)
            or not 1 <= len(segment) <= 64
            or not set(segment) <= _SEGMENT_CHARS
        ):
            raise ValidationError("segment", "must be 1-64 characters of A-Z a-z 0-9 _ -")
        if on_failure not in ("stop", "park"):
            raise ValidationError("on_failure", "must be 'stop' or 'park'")
        if not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", "must be an aether.processing.RetryPolicy")
        if fence is not None and not callable(fence):
            raise ValidationError("fence", "must be an async callable or None")
        if shard is not None and (type(shard) is not int or shard < 0):
            raise ValidationError("shard", "must be a shard number or None")
        if shard_count is not None and (type(shard_count) is not int or shard_count < 1):
            raise ValidationError("shard_count", "must be a positive integer or None")
        self.batch_events = int(_positive(batch_events, "batch_events", integer=True))
        self.batch_interval = _positive(batch_interval, "batch_interval")
        self.idle_interval = _positive(idle_interval, "idle_interval")
        self.keepalive = _positive(keepalive, "keepalive")
        self.max_parked = int(_positive(max_parked, "max_parked", integer=True))
        self.stop_timeout = _positive(stop_timeout, "stop_timeout")
        self.store = store
        self.processor = processor
        self._slices = normalize_slices(slices)
        self._slices_text = None if self._slices is None else _ranges_text(self._slices)
        self.segment = segment
        self.shard = shard
        self.shard_count = shard_count
        self.retry = retry
        self.on_failure: Policy = on_failure
        self.owner = owner
        self.epoch = epoch
        self._fence = fence
        self._key = segment_key(self.name, segment)
        self._claim = uuid.uuid4().hex
        self._rev = 0
        self._rec = SegmentRecord()
        self._blocked: dict[str, int] = {}
        self._checkpoint = 0
        self._done = 0
        self._uncommitted = 0
        self._last_commit = 0.0
        self._head = 0
        self._next_ts: datetime | None = None
        self._state: str = "new"
        self._stopping = False
        self._stop_evt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[object] | None = None
        self._changed = asyncio.Event()
        self._want = 0
        self._polls = 0
        self._last_error: str | None = None
        self.handled = 0
        """Events handled successfully since this runner started."""
        self.retried = 0
        """Handler retries since this runner started."""
        self.parked_count = 0
        """Events this runner parked."""

    # --- public -------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The position processed through (in memory; the checkpoint may trail it)."""
        return self._done

    @property
    def checkpoint(self) -> int:
        """The last committed checkpoint."""
        return self._checkpoint

    @property
    def running(self) -> bool:
        """Whether the runner's task is alive."""
        return self._task is not None and not self._task.done()

    @property
    def fenced(self) -> bool:
        """Whether the runner stopped because another owner claimed its segment."""
        return self._state == "fenced"

    async def start(self) -> None:
        """Claim the segment and start processing from its checkpoint.

        A segment that stopped at a failed event is retried from it (fresh attempts).
        """
        if self._task is not None:
            return
        if self._stopping:
            raise ProcessorStoppedError("a stopped ProcessorRunner cannot start again")
        await self._claim_segment()
        self._state = "running"
        self._task = asyncio.create_task(self._main(), name=f"aether-proc-{self._key}")

    async def stop(self) -> None:
        """Stop taking events, finish the one in flight, persist the checkpoint."""
        self._stopping = True
        self._stop_evt.set()
        self._wake()
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
        if not done:
            log.warning("processor %s did not stop in time; cancelling it", self._key)
            await self._cancel()

    async def abort(self) -> None:
        """Cancel at once, committing nothing (like a crash; for tests and hosts)."""
        self._stopping = True
        self._stop_evt.set()
        await self._cancel()
        self._state = "aborted"

    async def run_until(self, position: int) -> None:
        """Process through `position` and commit the checkpoint there; if the runner was
        not started, start it and stop it afterwards. Returns early if the segment stops
        at a failed event; raises `ProcessorStoppedError` if the runner ends (fenced,
        store closed) first."""
        if type(position) is not int or position < 0:
            raise ValidationError("position", "must be an integer >= 0")
        started_here = self._task is None
        if started_here:
            await self.start()
        try:
            await self._wait_position(position)
        finally:
            if started_here:
                await self.stop()

    async def drain(self) -> None:
        """Process until caught up with the store's last position at the call."""
        await self.run_until(await self.store.last_position())

    def status(self) -> SegmentStatus:
        """The segment's status as this runner sees it (no I/O)."""
        rec = self._rec
        state: State
        if rec.stopped_at is not None:
            state = "stopped"
        elif self.running:
            state = "running"
        else:
            state = "idle"
        lag = max(0, self._head - self._done)
        lag_s: float | None = 0.0 if lag == 0 else None
        if lag and self._next_ts is not None:
            lag_s = max(0.0, (datetime.now(UTC) - self._next_ts).total_seconds())
        return SegmentStatus(
            processor=self.name,
            segment=self.segment,
            shard=self.shard,
            state=state,
            owner=self.owner if self.running else None,
            checkpoint=self._checkpoint,
            head=max(self._head, self._done),
            lag_events=lag,
            lag_seconds=lag_s,
            parked=len(rec.parked),
            last_error=rec.error or self._last_error,
            stopped_at=rec.stopped_at,
        )

    def processor_stats(self) -> list[ProcessorStatsRecord]:
        """Its stats for `aether.observability.register_processor_stats`."""
        s = self.status()
        return [
            ProcessorStatsRecord(
                processor=self.name,
                shard=self.shard,
                checkpoint=s.checkpoint,
                lag_events=s.lag_events,
                lag_seconds=s.lag_seconds,
                handled=self.handled,
                retried=self.retried,
                parked=self.parked_count,
            )
        ]

    # --- claim and commits --------------------------------------------------------------

    async def _claim_segment(self) -> None:
        if self.shard is not None and self.shard_count is not None:
            await add_to_list(
                self.store,
                processor_key(self.name),
                "segments",
                self.segment,
                shard_count=self.shard_count,
            )
        else:
            await add_to_list(self.store, processor_key(self.name), "segments", self.segment)
        await add_to_list(self.store, INDEX_KEY, "names", self.name)
        for _ in range(100):
            loaded = await load(self.store, self._key)
            rec = loaded.data.copy() if loaded is not None else SegmentRecord()
            if loaded is not None and rec.slices != self._slices_text:
                raise ProcessorError(
                    f"segment {self.segment} of processor {self.name!r} was processed over "
                    f"slices {rec.slices or 'all'}, not {self._slices_text or 'all'}; "
                    "reset it before changing its slices"
                )
            position = loaded.position if loaded is not None else 0
            expected = loaded.revision if loaded is not None else 0
            rec.claim, rec.owner, rec.epoch = self._claim, self.owner, self.epoch
            rec.shard, rec.slices, rec.keepalive = self.shard, self._slices_text, self.keepalive
            rec.state = "running"
            rec.stopped_at = None
            rec.retry_stopped = False
            rec.skip_stopped = None
            rec.seen = time.time()
            rec.commits += 1
            try:
                await self.store.save_events(
                    [], tracking=Tracking(self._key, position, expected, rec.to_json())
                )
            except TrackingConflictError:
                continue
            self._adopt(expected + 1, rec)
            self._checkpoint = self._done = position
            self._last_commit = time.monotonic()
            self._notify()
            log.info("processor %s claimed by %s at position %d", self._key, self.owner, position)
            return
        raise ProcessorError(f"could not claim {self._key}: its record keeps changing")

    def _adopt(self, revision: int, rec: SegmentRecord) -> None:
        self._rev = revision
        self._rec = rec
        blocked: dict[str, int] = {}
        for p in rec.parked:
            if p.actor_id not in blocked or p.position < blocked[p.actor_id]:
                blocked[p.actor_id] = p.position
        self._blocked = blocked

    async def _commit(
        self,
        position: int,
        outputs: Sequence[Event] = (),
        mutate: Mutation | None = None,
    ) -> None:
        """Commit checkpoint `position` (never backwards), `outputs` and `mutate`d data.

        Raises `_Fenced` when another owner holds the segment; a `VersionConflictError`
        or `ValidationError` of the outputs propagates (the attempt failed).
        """
        position = max(position, self._checkpoint)
        rec = self._next_record(mutate)
        deadline: float | None = None
        delay = 0.05
        while True:
            if self._fence is not None:
                try:
                    await self._fence()
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    raise _Fenced(str(e)) from e
            try:
                await self.store.save_events(
                    list(outputs),
                    tracking=Tracking(self._key, position, self._rev, rec.to_json()),
                )
            except TrackingConflictError:
                loaded = await load(self.store, self._key)
                if loaded is None or loaded.data.claim != self._claim:
                    raise _Fenced(f"{self._key} was claimed by another owner") from None
                if loaded.data.commits == rec.commits and loaded.position == position:
                    self._adopt(loaded.revision, loaded.data)  # our commit had landed
                    break
                # Changed by an admin call (parked list, requests): apply ours on top.
                self._adopt(loaded.revision, loaded.data)
                rec = self._next_record(mutate)
                continue
            except TransientError as e:
                now = time.monotonic()
                if self._stopping:
                    deadline = deadline or now + min(5.0, self.stop_timeout / 2)
                    if now > deadline:
                        raise
                log.info("processor %s commit failed (%s); retrying", self._key, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self._adopt(self._rev + 1, rec)
            break
        self._checkpoint = position
        self._done = max(self._done, position)
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._notify()

    def _next_record(self, mutate: Mutation | None) -> SegmentRecord:
        rec = self._rec.copy()
        if mutate is not None:
            mutate(rec)
        rec.seen = time.time()
        rec.commits += 1
        return rec

    async def _flush(self) -> None:
        if self._done > self._checkpoint or self._uncommitted:
            await self._commit(self._done)

    # --- main loop ----------------------------------------------------------------------

    async def _main(self) -> None:
        graceful = True
        try:
            while not self._stopping:
                if self._rec.stopped_at is not None:
                    await self._stopped_wait()
                    continue
                if any(p.retry for p in self._rec.parked):
                    await self._retry_parked()
                    continue
                if not await self._follow():
                    break
        except _Fenced as e:
            graceful = False
            self._state = "fenced"
            log.warning("processor %s fenced: %s; it stopped", self._key, e)
        except _Halt:
            pass
        except StoreClosedError:
            graceful = False
        except asyncio.CancelledError:
            raise
        except Exception as e:
            graceful = False
            self._last_error = _error_text(e)
            log.exception("processor %s failed", self._key)
        finally:
            self._notify()
        if graceful:
            await self._release()
        if self._state == "running":
            self._state = "stopped"
        self._notify()

    async def _release(self) -> None:
        def release(rec: SegmentRecord) -> None:
            rec.claim = None
            rec.state = "stopped" if rec.stopped_at is not None else "idle"

        try:
            await self._commit(self._done, mutate=release)
        except _Fenced:
            self._state = "fenced"
        except Exception as e:
            log.warning("processor %s could not persist its checkpoint: %r", self._key, e)

    async def _follow(self) -> bool:
        """Follow the watch; False when it ended for good (store closed)."""
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1024)
        self._queue = queue
        pump = asyncio.create_task(self._pump(queue, self._done + 1), name=f"pump-{self._key}")
        last_event = time.monotonic()
        last_poll = time.monotonic()
        try:
            while not self._stopping:
                now = time.monotonic()
                timeout = self._tick_timeout(now, last_event)
                item: object | None
                if not queue.empty():
                    item = queue.get_nowait()
                else:
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        item = None
                if isinstance(item, _End):
                    if item.error is None:
                        return False
                    log.warning("processor %s watch failed: %r", self._key, item.error)
                    await self._sleep(0.5)
                    return True
                if isinstance(item, Event):
                    last_event = time.monotonic()
                    if item.position is None or item.position <= self._done:
                        continue
                    self._head = max(self._head, item.position)
                    if not await self._process(item):
                        return True
                    if self._uncommitted >= self.batch_events:
                        await self._flush()
                    continue
                now = time.monotonic()
                if self._done > self._checkpoint and (
                    now - self._last_commit >= self.batch_interval
                    or self._checkpoint < self._want <= self._done
                ):
                    await self._flush()
                idle = self.idle_interval if self._want <= self._done else 0.02
                if queue.empty() and now - last_event >= min(idle, self.idle_interval):
                    await self._advance_idle()
                    last_event = time.monotonic()
                if now - last_poll >= min(1.0, self.keepalive / 2):
                    last_poll = now
                    if await self._poll():
                        return True
                if time.monotonic() - self._last_commit >= self.keepalive:
                    await self._commit(self._done)
            return True
        finally:
            self._queue = None
            await cancel_task(pump)

    def _tick_timeout(self, now: float, last_event: float) -> float:
        dues = [self._last_commit + self.keepalive, now + min(1.0, self.keepalive / 2)]
        if self._done > self._checkpoint:
            dues.append(self._last_commit + self.batch_interval)
        dues.append(last_event + self.idle_interval)
        if self._want > self._checkpoint:
            dues.append(min(now + 0.02, last_event + 0.02))
        return max(0.001, min(dues) - now)

    async def _pump(self, queue: asyncio.Queue[object], start: int) -> None:
        it: AsyncIterator[Event] = self.store.watch(start, slices=self._slices)
        try:
            async for e in it:
                await queue.put(e)
            await queue.put(_End())
        except asyncio.CancelledError:
            raise
        except StoreClosedError:
            await queue.put(_End())
        except Exception as e:
            await queue.put(_End(e))
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()

    async def _advance_idle(self) -> None:
        """No event for a while: if the head moved on and none of the positions up to it
        is in our slices, we processed through the head."""
        try:
            head = await self.store.last_position()
        except TransientError:
            return
        self._head = max(self._head, head)
        if head <= self._done:
            self._next_ts = None
            return
        if self._slices is None:
            return  # the watch delivers every position: it is on its way
        found = False
        reader = self.store.read_all(self._done + 1, slices=self._slices)
        try:
            async for e in reader:
                found = e.position is not None and e.position <= head
                if found:
                    self._next_ts = e.timestamp
                break
        except TransientError:
            return
        finally:
            aclose = getattr(reader, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(BaseException):
                    await aclose()
        if not found and head > self._done:
            self._done = head
            self._next_ts = None
            self._notify()
            if self._want and self._want <= head:
                await self._flush()

    async def _poll(self) -> bool:
        """Re-read the record (fencing, admin requests); True when the caller must
        return to the main loop (a request to act on)."""
        try:
            loaded = await load(self.store, self._key)
        except TransientError:
            return False
        if loaded is None or loaded.data.claim != self._claim:
            raise _Fenced(f"{self._key} was claimed by another owner")
        if loaded.revision != self._rev:
            self._adopt(loaded.revision, loaded.data)
        self._polls += 1
        self._notify()
        rec = self._rec
        return any(p.retry for p in rec.parked) or rec.stopped_at is not None

    # --- events -------------------------------------------------------------------------

    async def _process(self, e: Event) -> bool:
        """Handle one live event; False when the segment stopped at it."""
        assert e.position is not None
        if self._event_types is not None and e.event_type not in self._event_types:
            self._advance(e.position)
            return True
        if self.on_failure == "park" and e.actor_id in self._blocked:
            first = self._blocked[e.actor_id]
            return await self._park(e, f"waits behind the parked event at position {first}", 0)
        failure = await self._attempts(e, redelivered=False)
        if failure is None:
            self.handled += 1
            self._advance(e.position)
            return True
        error, attempts = failure
        self._last_error = error
        if self.on_failure == "park":
            return await self._park(e, error, attempts)
        return await self._stop_at(e, error)

    def _advance(self, position: int) -> None:
        if position > self._done:
            self._done = position
            self._uncommitted += 1
            self._notify()

    async def _park(self, e: Event, error: str, attempts: int) -> bool:
        assert e.position is not None
        if len(self._rec.parked) >= self.max_parked:
            return await self._stop_at(e, f"parked list full ({self.max_parked}); {error}")
        entry = Parked(
            e.position, e.actor_id, e.version, e.event_type, cut(error), attempts, time.time()
        )

        def add(rec: SegmentRecord) -> None:
            rec.parked.append(entry)

        await self._commit(e.position, mutate=add)
        self.parked_count += 1
        log.warning(
            "processor %s parked the event at position %d: %s", self._key, e.position, error
        )
        return True

    async def _stop_at(self, e: Event, error: str) -> bool:
        assert e.position is not None
        position = e.position

        def stop(rec: SegmentRecord) -> None:
            rec.stopped_at = position
            rec.error = cut(error)
            rec.state = "stopped"

        await self._commit(self._done, mutate=stop)
        log.error("processor %s stopped at position %d: %s", self._key, position, error)
        return False

    async def _attempts(
        self, e: Event, *, redelivered: bool, done: Mutation | None = None
    ) -> tuple[str, int] | None:
        """Call the handler up to `retry.attempts` times; commit outputs with the
        checkpoint. None on success, else (last error, attempts)."""
        assert e.position is not None
        error = ""
        n = self.retry.attempts
        for attempt in range(1, n + 1):
            ctx = Context(
                event=e,
                position=e.position,
                attempt=attempt,
                shard=self.shard,
                segment=self.segment,
                processor=self.name,
                redelivered_parked=redelivered,
            )
            try:
                with process_span(e, self.name):
                    await self.processor.handle(e, ctx)
                outputs = ctx.outputs
                if outputs or done is not None:
                    target = self._done if redelivered else e.position
                    await self._commit(target, outputs, mutate=done)
                return None
            except (_Fenced, _Halt, asyncio.CancelledError):
                raise
            except Exception as err:
                error = _error_text(err)
                log.info("processor %s attempt %d at %d: %s", self._key, attempt, e.position, error)
                if attempt < n:
                    self.retried += 1
                    await self._sleep(self.retry.delay(attempt))
                    if self._stopping:
                        raise _Halt() from None
        return error, n

    async def _retry_parked(self) -> None:
        """Retry the parked entries asked for, in position order; an actor whose retry
        fails keeps its later entries parked (its order holds)."""
        entries = sorted((p for p in self._rec.parked if p.retry), key=lambda p: p.position)
        failed: set[str] = set()
        for p in entries:
            if self._stopping:
                return
            first = self._blocked.get(p.actor_id)
            if p.actor_id in failed or (first is not None and first < p.position):
                await self._commit(self._done, mutate=_update(p.position, retry=False))
                continue
            event = await self._fetch(p)
            if event is None:
                err = "the event is no longer in the store"
                await self._commit(self._done, mutate=_update(p.position, retry=False, error=err))
                failed.add(p.actor_id)
                continue
            failure = await self._attempts(event, redelivered=True, done=_remove(p.position))
            if failure is None:
                self.handled += 1
                log.info("processor %s retried parked position %d", self._key, p.position)
                continue
            error, attempts = failure
            failed.add(p.actor_id)
            await self._commit(
                self._done,
                mutate=_update(p.position, retry=False, error=error, add_attempts=attempts),
            )

    async def _fetch(self, p: Parked) -> Event | None:
        async for e in self.store.iter_events(p.actor_id, p.version, p.version):
            return e
        return None

    async def _stopped_wait(self) -> None:
        """Wait at a failed event until a retry or skip is asked for (or stop)."""
        while not self._stopping:
            rec = self._rec
            if rec.stopped_at is None:
                return
            if rec.skip_stopped is not None and rec.skip_stopped == rec.stopped_at:
                skipped = rec.stopped_at

                def skip(r: SegmentRecord) -> None:
                    r.stopped_at = r.error = r.skip_stopped = None
                    r.state = "running"

                await self._commit(skipped, mutate=skip)
                self._done = max(self._done, skipped)
                log.info("processor %s skipped position %d", self._key, skipped)
                return
            if rec.retry_stopped:

                def resume(r: SegmentRecord) -> None:
                    r.stopped_at = r.error = None
                    r.retry_stopped = False
                    r.state = "running"

                await self._commit(self._done, mutate=resume)
                return
            await self._sleep(min(0.5, self.keepalive / 2))
            await self._poll()
            if time.monotonic() - self._last_commit >= self.keepalive:
                await self._commit(self._done)

    # --- helpers ------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_evt.wait(), seconds)

    def _wake(self) -> None:
        q = self._queue
        if q is not None:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(_WAKE)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_position(self, position: int) -> None:
        self._want = max(self._want, position)
        self._wake()
        polls = self._polls
        try:
            while self._checkpoint < position:
                rec = self._rec
                if (
                    rec.stopped_at is not None
                    and not rec.retry_stopped
                    and rec.skip_stopped is None
                    and self._polls > polls
                ):
                    return  # stopped at a failed event, and no request to go on seen
                if not self.running:
                    raise ProcessorStoppedError(
                        f"processor {self._key} ended at position {self._done} "
                        f"before reaching {position}"
                    )
                changed = self._changed
                self._wake()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.5)
        finally:
            self._want = 0

    async def _cancel(self) -> None:
        if self._task is not None:
            await cancel_task(self._task)


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancel `task` until it is done (bounded): a cancellation racing with a reply can
    be lost inside nats-py on Python 3.11, so one `cancel()` is not always enough."""
    for _ in range(250):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.02)
    if not task.done():
        log.warning("task %s did not stop", task.get_name())
    elif not task.cancelled():
        with contextlib.suppress(BaseException):
            task.result()


def _ranges_text(slices: frozenset[int]) -> str:
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in slice_ranges(slices))


def _remove(position: int) -> Mutation:
    def remove(rec: SegmentRecord) -> None:
        rec.parked = [p for p in rec.parked if p.position != position]

    return remove


def _update(
    position: int,
    *,
    retry: bool,
    error: str | None = None,
    add_attempts: int = 0,
) -> Mutation:
    def update(rec: SegmentRecord) -> None:
        for p in rec.parked:
            if p.position == position:
                p.retry = retry
                if error is not None:
                    p.error = cut(error)
                p.attempts += add_attempts

    return update
