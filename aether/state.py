"""Load an actor's state and run "load, decide, append" with retries: no base class.

Two functions over any `EventStore` (memory, SQLite, JetStream):

- `load(store, actor_id, fold, initial)` folds the actor's latest snapshot plus the
  events after it into a state, and returns it with its version (`Loaded`).
- `execute(store, actor_id, decide, fold, initial)` loads, calls ``decide(state)`` for
  the new events, appends them as one unit at the right versions, and on a
  `VersionConflictError` re-loads and re-decides; on a retriable error (``.retriable``)
  it tries again with exponential backoff and jitter. It snapshots every
  ``snapshot_every`` events and returns an `Executed`.

``fold(state, event) -> state`` applies one event (it may return a new state or change
the given one and return it); `initial` is the state of an actor without events (copied
for every load, so a fold that changes its state in place is fine).

``decide(state)`` (plain or ``async``) returns the new events as *drafts*: an iterable of
``(event_type, data)`` pairs, `Draft` objects (with metadata or an id), `Event` objects
(their version and actor are assigned), or, with ``registry=``, registered typed objects
(`aether.typed.Registry`). Returning nothing (``None`` or ``[]``) appends nothing. An
exception raised by ``decide`` (a domain rule: "insufficient funds") is propagated at
once, never retried.

Snapshots hold the state as a JSON object: a dict state is stored as is; another state
needs a ``codec`` (an object with ``encode(state) -> dict`` and ``decode(dict) -> state``,
e.g. ``registry.state_codec(Account)``). A snapshot is only ever a starting point: the
events after it are always read.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from aether.errors import AetherError, InvalidEventError, VersionConflictError
from aether.event import Event, JSONValue, Snapshot
from aether.store.base import EventStore, SnapshotStore

if TYPE_CHECKING:
    from aether.typed import Registry

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_RETRIES",
    "Draft",
    "Executed",
    "JsonStateCodec",
    "Loaded",
    "StateCache",
    "StateCodec",
    "execute",
    "load",
]

S = TypeVar("S")

DEFAULT_RETRIES = 20
"""How many times `execute` tries again (conflicts and retriable errors together)."""
DEFAULT_BACKOFF = 0.005
"""The first retry waits up to this many seconds; each further one up to twice as long."""
DEFAULT_MAX_BACKOFF = 1.0
"""No retry waits longer than this many seconds."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Draft:
    """A new event as ``decide`` returns it: its type and data, no actor, no version.

    `execute` assigns the actor and the next versions. `id` (default: a new random id)
    and `metadata` are passed on unchanged.
    """

    event_type: str
    data: dict[str, JSONValue] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """An actor's state as of `version` (0: no events), and where it was built from.

    `snapshot_version` is the version of the snapshot it started from (0: none);
    `events_read` how many events were folded onto it.
    """

    state: S
    version: int
    snapshot_version: int = 0
    events_read: int = 0


@dataclass(frozen=True, slots=True)
class Executed(Generic[S]):
    """What `execute` did: the state and version after its events, and the events stored.

    `events` is empty when ``decide`` returned nothing (then `state` and `version` are the
    loaded ones). `attempts` is 1 plus the retries made (after conflicts and retriable
    errors), `conflicts` the version conflicts among them. `snapshot` is the snapshot saved after
    the append, if the policy asked for one; `snapshot_error` the error that prevented
    saving it (the events are stored regardless; the next snapshot catches up).
    """

    state: S
    version: int
    events: list[Event]
    attempts: int = 1
    conflicts: int = 0
    snapshot: Snapshot | None = None
    snapshot_error: Exception | None = None


@runtime_checkable
class StateCodec(Protocol[S]):
    """How a state is kept in a snapshot: a JSON object and back."""

    def encode(self, state: S) -> dict[str, JSONValue]:
        """The JSON object stored as ``Snapshot.state``."""
        ...

    def decode(self, data: dict[str, JSONValue]) -> S:
        """The state a stored ``Snapshot.state`` stands for."""
        ...


class JsonStateCodec:
    """The default codec: the state is a dict of JSON values, stored as is."""

    def encode(self, state: Any) -> dict[str, JSONValue]:
        """`state` itself; anything but a dict is refused (pass a codec for other states)."""
        if type(state) is not dict:
            raise InvalidEventError(
                "snapshot.state",
                f"a {type(state).__name__} state needs a codec to be snapshotted "
                "(encode to a dict and back); only dict states are stored as is",
            )
        return state

    def decode(self, data: dict[str, JSONValue]) -> Any:
        """The stored dict."""
        return data


_JSON = JsonStateCodec()


@dataclass(slots=True)
class _Entry:
    state: Any
    version: int
    snapshot_version: int


class StateCache:
    """An in-process cache of folded states, safe under concurrent writers.

    A cached state is only a starting point: `load` and `execute` read the events after
    its version from the store every time, so a state cached before another process
    appended is brought up to date, never trusted as current; and an append built on a
    stale cache fails with a version conflict (then the entry is dropped). Entries are
    per store, actor and fold function; at most `max_entries` are kept (least recently
    used dropped first). States are copied in and out, so a fold that mutates its state
    cannot corrupt the cache.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise InvalidEventError("max_entries", f"must be an integer >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, str, object], tuple[object, _Entry]] = OrderedDict()
        self.hits = 0
        """Loads that started from a cached state."""
        self.misses = 0
        """Loads that found nothing cached."""

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, store: object, actor_id: str, fold: object) -> _Entry | None:
        key = (id(store), actor_id, fold)
        found = self._entries.get(key)
        if found is None or found[0] is not store:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        entry = found[1]
        return _Entry(copy.deepcopy(entry.state), entry.version, entry.snapshot_version)

    def _put(self, store: object, actor_id: str, fold: object, entry: _Entry) -> None:
        key = (id(store), actor_id, fold)
        current = self._entries.get(key)
        if current is not None and current[0] is store and current[1].version > entry.version:
            return  # a concurrent task cached a later state already
        self._entries[key] = (
            store,
            _Entry(copy.deepcopy(entry.state), entry.version, entry.snapshot_version),
        )
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, store: object, actor_id: str, fold: object) -> None:
        """Forget the state cached for `actor_id` (on `store`, with `fold`)."""
        self._entries.pop((id(store), actor_id, fold), None)

    def clear(self) -> None:
        """Forget every cached state."""
        self._entries.clear()


def _snapshot_store(store: object, snapshots: SnapshotStore | None) -> SnapshotStore | None:
    if snapshots is not None:
        return snapshots
    if callable(getattr(store, "get_latest_snapshot", None)) and callable(
        getattr(store, "save_snapshot", None)
    ):
        return store  # type: ignore[return-value]
    return None


async def load(
    store: EventStore,
    actor_id: str,
    fold: Callable[[S, Any], S],
    initial: S,
    *,
    snapshots: SnapshotStore | None = None,
    codec: StateCodec[S] | None = None,
    cache: StateCache | None = None,
    registry: Registry | None = None,
) -> Loaded[S]:
    """The actor's state: its latest snapshot (or `initial`) with every later event folded.

    `snapshots` defaults to `store` when it is a `SnapshotStore` too (every aether store
    is). `codec` turns snapshot state into a state (default: dict states as is). With a
    `cache`, a cached state is the starting point instead and the events after it are
    read. With a `registry`, `fold` receives typed objects (`Registry.from_event`:
    unknown types stay `Event`s).
    """
    return await _load(store, actor_id, fold, initial, snapshots, codec, cache, registry)


async def _load(
    store: EventStore,
    actor_id: str,
    fold: Callable[[S, Any], S],
    initial: S,
    snapshots: SnapshotStore | None,
    codec: StateCodec[S] | None,
    cache: StateCache | None,
    registry: Registry | None,
) -> Loaded[S]:
    base = cache._get(store, actor_id, fold) if cache is not None else None
    if base is None:
        base = await _from_snapshot(store, actor_id, initial, snapshots, codec)
    state: S = base.state
    version = base.version
    read = 0
    async for event in store.iter_events(actor_id, version + 1):
        if event.version != version + 1:
            raise InvalidEventError(
                "version",
                f"actor {actor_id!r}: the store has version {event.version} but not "
                f"{version + 1} (removed by retention?): its state cannot be folded "
                "without a snapshot at or after the gap",
            )
        state = fold(state, registry.from_event(event) if registry is not None else event)
        version = event.version
        read += 1
    if cache is not None:
        cache._put(store, actor_id, fold, _Entry(state, version, base.snapshot_version))
    return Loaded(state, version, base.snapshot_version, read)


async def _from_snapshot(
    store: EventStore,
    actor_id: str,
    initial: Any,
    snapshots: SnapshotStore | None,
    codec: StateCodec[Any] | None,
) -> _Entry:
    source = _snapshot_store(store, snapshots)
    snap = await source.get_latest_snapshot(actor_id) if source is not None else None
    if snap is None:
        return _Entry(copy.deepcopy(initial), 0, 0)
    return _Entry((codec or _JSON).decode(snap.state), snap.version, snap.version)


async def execute(
    store: EventStore,
    actor_id: str,
    decide: Callable[[S], Any],
    fold: Callable[[S, Any], S],
    initial: S,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    max_backoff: float = DEFAULT_MAX_BACKOFF,
    snapshot_every: int | None = None,
    cache: StateCache | None = None,
    snapshots: SnapshotStore | None = None,
    codec: StateCodec[S] | None = None,
    registry: Registry | None = None,
) -> Executed[S]:
    """Load the actor, ``decide(state)`` its new events, append them as one unit; retry.

    On a `VersionConflictError` (another writer appended first) it re-loads and calls
    `decide` again; on an error whose ``retriable`` is true it tries again after
    ``uniform(0, min(max_backoff, backoff * 2**n))`` seconds (a write whose outcome is
    unknown is re-sent as the identical events first, which the store stores at most
    once). After `retries` further attempts the last error is raised. Errors from
    `decide` and `fold`, and final store errors, are raised at once.

    With `snapshot_every=N`, a snapshot of the new state is saved once the actor is N or
    more events past its latest snapshot. See the module docstring for drafts, `codec`,
    `cache` and `registry`.
    """
    if type(retries) is not int or retries < 0:
        raise InvalidEventError("retries", f"must be an integer >= 0, got {retries!r}")
    for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
        if type(value) not in (int, float) or not 0 <= value < float("inf"):
            raise InvalidEventError(name, f"must be a finite number of seconds >= 0, got {value!r}")
    if snapshot_every is not None and (type(snapshot_every) is not int or snapshot_every < 1):
        raise InvalidEventError(
            "snapshot_every", f"must be an integer >= 1 or None, got {snapshot_every!r}"
        )
    attempt = 0
    conflicts = 0

    async def pause(error: BaseException) -> None:
        nonlocal attempt
        attempt += 1
        if attempt > retries:
            raise error
        delay = min(max_backoff, backoff * 2 ** (attempt - 1))
        await asyncio.sleep(random.uniform(0, delay))

    while True:
        try:
            loaded = await _load(store, actor_id, fold, initial, snapshots, codec, cache, registry)
        except AetherError as e:
            if not e.retriable:
                raise
            await pause(e)
            continue
        result = decide(loaded.state)
        if inspect.isawaitable(result):
            result = await result
        events = _events(result, actor_id, loaded.version, registry)
        if not events:
            return Executed(loaded.state, loaded.version, [], attempt + 1, conflicts)
        try:
            stored = await _save(store, events, pause)
        except VersionConflictError as e:
            conflicts += 1
            if cache is not None:
                cache.discard(store, actor_id, fold)
            await pause(e)
            continue
        break
    state = loaded.state
    for event in stored:
        state = fold(state, registry.from_event(event) if registry is not None else event)
    version = stored[-1].version
    snapshot_version = loaded.snapshot_version
    snap: Snapshot | None = None
    snap_error: Exception | None = None
    if snapshot_every is not None and version - snapshot_version >= snapshot_every:
        snap, snap_error = await _snapshot(store, snapshots, codec, actor_id, version, state)
        if snap is not None:
            snapshot_version = version
    if cache is not None:
        cache._put(store, actor_id, fold, _Entry(state, version, snapshot_version))
    return Executed(state, version, stored, attempt + 1, conflicts, snap, snap_error)


async def _save(
    store: EventStore, events: list[Event], pause: Callable[[BaseException], Awaitable[None]]
) -> list[Event]:
    while True:
        try:
            return await store.save_events(events)
        except VersionConflictError:
            raise
        except AetherError as e:
            if not e.retriable:
                raise
            await pause(e)  # the identical events again: stored at most once


async def _snapshot(
    store: EventStore,
    snapshots: SnapshotStore | None,
    codec: StateCodec[Any] | None,
    actor_id: str,
    version: int,
    state: Any,
) -> tuple[Snapshot | None, Exception | None]:
    source = _snapshot_store(store, snapshots)
    if source is None:
        return None, InvalidEventError("snapshots", "the store keeps no snapshots")
    try:
        snap = Snapshot(actor_id, version, (codec or _JSON).encode(state))
        await source.save_snapshot(snap)
    except AetherError as e:
        log.warning("snapshot of %r at version %d not saved: %s", actor_id, version, e)
        return None, e
    return snap, None


def _events(drafts: object, actor_id: str, latest: int, registry: Registry | None) -> list[Event]:
    if drafts is None:
        return []
    if isinstance(drafts, Event | Draft | str | bytes | Mapping) or not isinstance(
        drafts, Iterable
    ):
        raise InvalidEventError(
            "decide",
            f"must return an iterable of event drafts (or None), got {type(drafts).__name__}",
        )
    events: list[Event] = []
    for i, draft in enumerate(drafts):
        version = latest + 1 + i
        events.append(_event(draft, actor_id, version, registry, i))
    return events


def _event(draft: object, actor_id: str, version: int, registry: Registry | None, i: int) -> Event:
    if isinstance(draft, Event):
        if draft.actor_id != actor_id:
            raise InvalidEventError(
                f"decide[{i}].actor_id",
                f"must be {actor_id!r} (the actor being executed), got {draft.actor_id!r}",
            )
        return dataclasses.replace(draft, version=version, position=None)
    if isinstance(draft, Draft):
        event = Event(draft.event_type, actor_id, version, draft.data, metadata=draft.metadata)
        return event if draft.id is None else dataclasses.replace(event, id=draft.id)
    if isinstance(draft, tuple) and len(draft) == 2 and isinstance(draft[0], str):
        return Event(draft[0], actor_id, version, draft[1])
    if registry is not None and registry.knows(draft):
        return registry.to_event(draft, actor_id, version)
    raise InvalidEventError(
        f"decide[{i}]",
        "must be an (event_type, data) pair, a Draft, an Event"
        + (" or a registered typed event" if registry is not None else "")
        + f", got {type(draft).__name__}",
    )
