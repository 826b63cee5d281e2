"""JetStream units of work, tracking records, slices, watch start, corrupt messages,
legacy layouts and close: on one real nats-server."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest

from aether.config import Settings
from aether.errors import (
    CorruptEventError,
    LegacyLayoutError,
    StoreClosedError,
    TrackingConflictError,
    UnsupportedServerError,
    VersionConflictError,
)
from aether.event import Event
from aether.store.base import Tracking
from aether.store.jetstream import JetStreamEventStore
from aether.subjects import events_subject, slice_of
from tests.servers import NatsServer, free_port, nats_server_binary, wait_for_port

_ns = itertools.count()


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings for a fresh namespace on `url`."""
    values: dict[str, Any] = {
        "namespace": f"jsu{next(_ns)}",
        "store": "jetstream",
        "nats.servers": [url],
    }
    values.update(overrides)
    return Settings.load(overrides=values, search_default_files=False)


def ev(actor: str, version: int, **data: Any) -> Event:
    """An event of `actor` at `version`."""
    return Event(event_type="Happened", actor_id=actor, version=version, data=data)


@pytest.fixture
async def store(nats_server: NatsServer) -> AsyncIterator[JetStreamEventStore]:
    """A store on a fresh namespace."""
    s = await JetStreamEventStore.open(settings_for(nats_server.url))
    yield s
    await s.close()


async def everything(store: JetStreamEventStore, **kw: Any) -> list[Event]:
    """All events `read_all` yields."""
    return [e async for e in store.read_all(**kw)]


# -- units of work -----------------------------------------------------------------------


async def test_unit_over_two_actors_is_stored_whole(store: JetStreamEventStore) -> None:
    await store.save_event(ev("a", 1))
    stored = await store.save_events([ev("a", 2), ev("b", 1), ev("a", 3), ev("b", 2)])
    assert [(e.actor_id, e.version) for e in stored] == [("a", 2), ("b", 1), ("a", 3), ("b", 2)]
    assert [e.position for e in stored] == [2, 3, 4, 5]
    assert [e.version for e in await store.get_events("a")] == [1, 2, 3]
    assert [e.version for e in await store.get_events("b")] == [1, 2]
    assert await store.get_latest_version("b") == 2


async def test_unit_with_one_stale_actor_writes_nothing_and_names_it(
    store: JetStreamEventStore,
) -> None:
    await store.save_events([ev("a", 1), ev("b", 1)])
    other = await JetStreamEventStore.open(store._settings)
    await other.save_event(ev("b", 2))
    before = await everything(store)
    with pytest.raises(VersionConflictError) as info:
        await store.save_events([ev("a", 2), ev("b", 2)])
    assert [(c.actor_id, c.expected, c.actual) for c in info.value.conflicts] == [("b", 1, 2)]
    assert [e.id for e in await everything(store)] == [e.id for e in before]
    with pytest.raises(VersionConflictError) as both:
        await store.save_events([ev("a", 5), ev("b", 7)])
    assert {(c.actor_id, c.expected, c.actual) for c in both.value.conflicts} == {
        ("a", 4, 1),
        ("b", 6, 2),
    }
    await other.close()


async def test_identical_unit_resave_is_a_noop(store: JetStreamEventStore) -> None:
    unit = [ev("a", 1, x=1), ev("b", 1, y=2)]
    stored = await store.save_events(unit)
    fresh = await JetStreamEventStore.open(store._settings)
    again = await fresh.save_events(unit)
    assert [(e.id, e.position) for e in again] == [(e.id, e.position) for e in stored]
    assert len(await everything(store)) == 2
    with pytest.raises(VersionConflictError):  # the same versions with other events
        await fresh.save_events([ev("a", 1), ev("b", 1)])
    await fresh.close()


async def test_racing_units_over_overlapping_pairs_stay_whole(store: JetStreamEventStore) -> None:
    actors = [f"acct-{i}" for i in range(6)]
    other = await JetStreamEventStore.open(store._settings)
    units_done = 0

    async def worker(w: int) -> None:
        nonlocal units_done
        s = store if w % 2 else other
        rng = random.Random(w)
        for k in range(4):
            pair = rng.sample(actors, 2)
            while True:
                versions = [await s.get_latest_version(a) for a in pair]
                unit = [ev(a, v + 1, unit=f"{w}-{k}") for a, v in zip(pair, versions, strict=True)]
                try:
                    await s.save_events(unit)
                    units_done += 1
                    break
                except VersionConflictError:
                    await asyncio.sleep(rng.random() / 100)

    await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(32))), 90)
    assert units_done == 128
    events = await everything(store)
    assert len(events) == 256
    units: dict[str, list[int]] = {}
    for e in events:
        assert e.position is not None
        units.setdefault(e.data["unit"], []).append(e.position)
    assert len(units) == 128
    assert all(len(p) == 2 and p[1] == p[0] + 1 for p in units.values())
    for a in actors:
        versions = [e.version for e in await store.get_events(a)]
        assert versions == list(range(1, len(versions) + 1))
    await other.close()


# -- tracking records --------------------------------------------------------------------


async def test_tracking_commits_with_the_events_and_fences(store: JetStreamEventStore) -> None:
    assert await store.get_tracking("proc.0") is None
    stored = await store.save_events(
        [ev("out", 1)], tracking=Tracking("proc.0", position=7, expected=0, data={"owner": "n1"})
    )
    record = await store.get_tracking("proc.0")
    assert record is not None
    assert (record.position, record.data) == (7, {"owner": "n1"})
    assert record.revision == 1 and stored[0].position == 1
    # a stale writer (expected 0 again) is fenced, and its events are not written
    with pytest.raises(TrackingConflictError) as info:
        await store.save_events([ev("out", 2)], tracking=Tracking("proc.0", 9, expected=0))
    assert (info.value.expected, info.value.actual) == (0, record.revision)
    assert await store.get_latest_version("out") == 1
    # a checkpoint alone
    assert await store.save_events([], tracking=Tracking("proc.0", 10, record.revision)) == []
    after = await store.get_tracking("proc.0")
    assert after is not None and after.position == 10 and after.revision == 2
    with pytest.raises(TrackingConflictError):
        await store.save_events([], tracking=Tracking("proc.0", 11, record.revision))
    # tracking records are not events
    assert [e.actor_id for e in await everything(store)] == ["out"]
    assert await store.last_position() == stored[0].position
    assert await store.list_actors() == {"out": 1}


async def test_read_all_unfiltered_only_where_no_tracking_record_follows(
    store: JetStreamEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aether.store.jetstream as js_module

    filters_seen: list[list[str]] = []
    real_read_range = js_module.read_range

    def spy(api: Any, stream: str, filters: list[str], *args: Any, **kw: Any) -> Any:
        filters_seen.append(list(filters))
        return real_read_range(api, stream, filters, *args, **kw)

    monkeypatch.setattr(js_module, "read_range", spy)
    await store.save_event(ev("a", 1))
    assert [e.actor_id for e in await everything(store)] == ["a"]
    assert filters_seen.pop() == []  # only events: the whole stream, unfiltered
    # b at 2 and the tracking record at 3, in one batch; a's version 2 at 4
    await store.save_events([ev("b", 1)], tracking=Tracking("proj.0", 1, expected=0))
    await store.save_event(ev("a", 2))
    assert [(e.actor_id, e.version) for e in await everything(store)] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
    ]
    assert filters_seen.pop() != []  # a tracking record ahead: the server filters
    assert [e.position for e in await everything(store, from_position=5)] == []
    assert [e.version for e in await everything(store, from_position=4)] == [2]
    assert filters_seen[-2:] == [[], []]  # the tracking record lies before the start

    # A tracking record that the probe missed (written meanwhile) is dropped, not counted.
    async def no_tracking(start: int) -> bool:
        return True

    monkeypatch.setattr(store, "_no_tracking_from", no_tracking)
    assert [e.position for e in await everything(store)] == [1, 2, 4]
    assert filters_seen.pop() == [] and store.skipped_corrupt == 0
    sliced = await everything(store, slices=[slice_of("a")])
    assert [e.actor_id for e in sliced] == ["a", "a"] and filters_seen.pop() != []


async def test_two_writers_with_the_same_expected_one_wins(store: JetStreamEventStore) -> None:
    other = await JetStreamEventStore.open(store._settings)
    await store.save_events([], tracking=Tracking("p.1", 0, 0))
    rec = await store.get_tracking("p.1")
    assert rec is not None
    results = await asyncio.gather(
        store.save_events([ev("x", 1, w=1)], tracking=Tracking("p.1", 1, rec.revision)),
        other.save_events([ev("y", 1, w=2)], tracking=Tracking("p.1", 1, rec.revision)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, list)]
    fenced = [r for r in results if isinstance(r, TrackingConflictError)]
    assert len(wins) == 1 and len(fenced) == 1, results
    assert len(await everything(store)) == 1
    await other.close()


# -- slices ------------------------------------------------------------------------------


async def test_read_all_and_watch_by_slices(store: JetStreamEventStore) -> None:
    actors = [f"actor-{i}" for i in range(60)]
    for a in actors:
        await store.save_event(ev(a, 1))
    wanted = frozenset(slice_of(a) for a in actors[:10])
    got = await everything(store, slices=wanted)
    assert {e.actor_id for e in got} == {a for a in actors if slice_of(a) in wanted}
    assert [e.position for e in got] == sorted(e.position for e in got if e.position)
    tail = await everything(store, from_position=30, slices=range(0, 512))
    assert all(e.position and e.position >= 30 and slice_of(e.actor_id) < 512 for e in tail)
    it = store.watch(0, slices=wanted)
    seen = [await asyncio.wait_for(anext(it), 10) for _ in range(len(got))]
    assert [e.id for e in seen] == [e.id for e in got]
    inside = next(a for a in (f"new-{i}" for i in range(10_000)) if slice_of(a) in wanted)
    outside = next(a for a in (f"new-{i}" for i in range(10_000)) if slice_of(a) not in wanted)
    await store.save_event(ev(outside, 1))
    await store.save_event(ev(inside, 1))
    assert (await asyncio.wait_for(anext(it), 10)).actor_id == inside
    await it.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def monitored_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A nats-server with its monitoring endpoint; yields (client URL, monitor URL)."""
    http = free_port()
    server = NatsServer(
        store_dir=tmp_path_factory.mktemp("monitored") / "js",
        extra_config=f"http: 127.0.0.1:{http}",
    )
    server.start()
    try:
        yield server.url, f"http://127.0.0.1:{http}"
    finally:
        server.stop()


async def sent_to(monitor: str, connection_name: str) -> int:
    """How many messages the server has sent to the connection named `connection_name`."""
    import json
    import urllib.request

    def fetch() -> Any:
        with urllib.request.urlopen(f"{monitor}/connz?limit=1024", timeout=5) as r:
            return json.loads(r.read())

    for c in (await asyncio.to_thread(fetch))["connections"]:
        if c.get("name") == connection_name:
            return int(c["out_msgs"])
    raise AssertionError(f"no connection named {connection_name}")


async def test_a_slice_reader_receives_only_its_slices(monitored_server: tuple[str, str]) -> None:
    url, monitor = monitored_server
    settings = settings_for(url)
    writer = await JetStreamEventStore.open(settings)
    actors = [f"acct-{i}" for i in range(400)]
    for a in actors:
        await writer.save_events([ev(a, 1), ev(a, 2)])
    wanted = range(0, 128)  # 1/8 of the slices
    expected = 2 * sum(1 for a in actors if slice_of(a) in wanted)
    assert 0 < expected < 800
    nc = await nats.connect(url, name="slice-reader")
    reader = await JetStreamEventStore.from_client(nc, Settings(), namespace=settings.namespace)
    try:
        before = await sent_to(monitor, "slice-reader")
        got = [e async for e in reader.read_all(slices=wanted)]
        during_read = await sent_to(monitor, "slice-reader") - before
        assert len(got) == expected and all(slice_of(e.actor_id) in wanted for e in got)
        # the events themselves plus a few control replies (consumer create, end of data)
        assert expected <= during_read <= expected + 10, (expected, during_read)
        before = await sent_to(monitor, "slice-reader")
        it = reader.watch(0, slices=wanted)
        watched = [await asyncio.wait_for(anext(it), 10) for _ in range(expected)]
        await it.aclose()  # type: ignore[attr-defined]
        during_watch = await sent_to(monitor, "slice-reader") - before
        assert [e.id for e in watched] == [e.id for e in got]
        assert during_watch <= expected + 10, (expected, during_watch)
    finally:
        await reader.close()
        await nc.close()
        await writer.close()


async def test_watch_starts_when_called(store: JetStreamEventStore) -> None:
    await store.save_event(ev("a", 1))
    it = store.watch()  # no iteration yet
    saved = await store.save_event(ev("a", 2))  # right after watch() returned
    first = await asyncio.wait_for(anext(it), 10)
    assert first.id == saved.id
    await it.aclose()  # type: ignore[attr-defined]


async def test_last_position(store: JetStreamEventStore) -> None:
    assert await store.last_position() == 0
    await store.save_event(ev("a", 1))
    last = await store.save_event(ev("b", 1))
    assert await store.last_position() == last.position


# -- foreign messages --------------------------------------------------------------------


async def test_foreign_messages_fail_the_actor_and_are_skipped_by_scans(
    store: JetStreamEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await store.save_event(ev("good", 1))
    await store.save_event(ev("victim", 1))
    ns = store.namespace
    nc = await nats.connect(store._nc.connected_url.geturl())
    js = nc.jetstream()
    await js.publish(events_subject(ns, "victim"), b"not json")
    wrong_actor = Event("X", "other", 2).to_json() if hasattr(Event, "to_json") else None
    from aether.event import encode_event

    await js.publish(events_subject(ns, "victim2"), encode_event(ev("good", 2)))
    wrong_slice = f"aether.{ns}.events.{(slice_of('zz') + 1) % 1024}.zz"
    await js.publish(wrong_slice, encode_event(ev("zz", 1)))
    await nc.close()
    del wrong_actor
    with pytest.raises(CorruptEventError) as info:
        await store.get_events("victim")
    assert info.value.position == 3
    with pytest.raises(CorruptEventError):
        await store.get_latest_version("victim")
    with pytest.raises(CorruptEventError):
        await store.get_events("victim2")  # the payload names actor "good"
    assert [e.version for e in await store.get_events("good")] == [1]
    with caplog.at_level(logging.WARNING, logger="aether.store"):
        got = await everything(store)
    assert [e.actor_id for e in got] == ["good", "victim"]
    assert store.skipped_corrupt == 3
    assert any("foreign" in r.message for r in caplog.records)
    actors = await store.list_actors()
    assert "zz" not in actors and actors["good"] == 1
    it = store.watch(0)
    seen = [await asyncio.wait_for(anext(it), 10) for _ in range(2)]
    assert [e.actor_id for e in seen] == ["good", "victim"]
    await it.aclose()  # type: ignore[attr-defined]


# -- legacy layouts, no JetStream, close -------------------------------------------------


async def test_legacy_layout_is_refused_with_a_way_forward(nats_server: NatsServer) -> None:
    settings = settings_for(nats_server.url)
    ns = settings.namespace
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(name=f"AETHER_{ns}", subjects=[f"aether.{ns}.events.*"])
    with pytest.raises(LegacyLayoutError) as info:
        await JetStreamEventStore.open(settings)
    assert f"AETHER_{ns}" in str(info.value) and "aether 0.1" in str(info.value)
    other = settings_for(nats_server.url)
    ons = other.namespace
    await nc.jetstream().add_stream(
        name=f"AETHER_{ons}_SNAPSHOTS", subjects=[f"aether.{ons}.snapshots.*"]
    )
    with pytest.raises(LegacyLayoutError) as snap:
        await JetStreamEventStore.open(other)
    assert f"AETHER_{ons}_SNAPSHOTS" in str(snap.value)
    names = {s.config.name for s in await nc.jetstream().streams_info()}
    assert f"AETHERSNAP_{ns}" not in names and f"AETHER_{ons}" not in names  # nothing half-made
    await nc.close()


@pytest.fixture
def plain_server() -> Iterator[str]:
    """A nats-server without JetStream; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


async def test_server_without_jetstream_is_unsupported(plain_server: str) -> None:
    settings = settings_for(plain_server, **{"jetstream.publish_timeout": "500ms"})
    with pytest.raises(UnsupportedServerError) as info:
        await JetStreamEventStore.open(settings)
    assert "JetStream" in str(info.value)


async def test_closed_store_refuses_everything(store: JetStreamEventStore) -> None:
    await store.save_event(ev("a", 1))
    it = store.watch(0)
    assert (await asyncio.wait_for(anext(it), 10)).version == 1
    pending = asyncio.ensure_future(anext(it))
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 10)
    for call in (
        store.save_event(ev("a", 2)),
        store.save_events([ev("a", 2), ev("b", 1)]),
        store.get_latest_version("a"),
        store.get_events("a"),
        store.last_position(),
        store.list_actors(),
        store.get_tracking("k"),
    ):
        with pytest.raises(StoreClosedError):
            await call
    with pytest.raises(StoreClosedError):
        store.read_all()
    with pytest.raises(StoreClosedError):
        store.watch()
