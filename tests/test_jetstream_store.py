"""JetStream store specifics: stream configuration, atomic batches, idempotency, no read
before publish, bounded failures, subject encoding. The shared rules are in tests/contract."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
import pytest

from aether._nats.errors import JsApiError
from aether._nats.jsapi import JsApi
from aether._nats.raw import flush
from aether.config import Settings
from aether.errors import (
    AetherError,
    EventTooLargeError,
    NatsUnavailableError,
    PublishTimeoutError,
    StoreConfigMismatchError,
    UnitTooLargeError,
    UnsupportedServerError,
    VersionConflictError,
)
from aether.event import Event
from aether.store._js_batch import BatchPublisher
from aether.store._js_publish import Publisher
from aether.store.jetstream import JetStreamEventStore
from aether.subjects import decode_token, slice_of
from tests.servers import NatsServer, free_port

_ns = itertools.count()


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings for a fresh namespace on `url`."""
    values: dict[str, Any] = {
        "namespace": f"js{next(_ns)}",
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


async def stream_config(url: str, name: str) -> dict[str, Any]:
    """The server's configuration of stream `name`."""
    nc = await nats.connect(url)
    try:
        msg = await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=5)
        return orjson.loads(msg.data)["config"]  # type: ignore[no-any-return]
    finally:
        await nc.close()


# -- stream configuration ----------------------------------------------------------------


async def test_streams_are_created_as_settings_say(nats_server: NatsServer) -> None:
    settings = settings_for(
        nats_server.url,
        **{
            "jetstream.max_age": "30d",
            "jetstream.max_bytes": "1GB",
            "jetstream.duplicate_window": "5m",
        },
    )
    store = await JetStreamEventStore.open(settings)
    await store.close()
    cfg = await stream_config(nats_server.url, f"AETHER_{settings.namespace}")
    ns = settings.namespace
    assert cfg["subjects"] == [f"aether.{ns}.events.*.*", f"aether.{ns}.track.>"]
    assert cfg["storage"] == "file" and cfg["num_replicas"] == 1
    assert cfg["max_age"] == 30 * 86400 * 10**9
    assert cfg["max_bytes"] == 1024**3
    assert cfg["duplicate_window"] == 300 * 10**9
    assert cfg["deny_delete"] is True and cfg["deny_purge"] is True
    assert cfg["allow_direct"] is True and cfg["allow_atomic"] is True
    snap = await stream_config(nats_server.url, f"AETHERSNAP_{settings.namespace}")
    assert snap["max_msgs_per_subject"] == 1
    assert snap["subjects"] == [f"aether.{settings.namespace}.snapshots.*"]


async def test_existing_matching_stream_is_reused(nats_server: NatsServer) -> None:
    settings = settings_for(nats_server.url)
    first = await JetStreamEventStore.open(settings)
    await first.save_event(ev("a", 1))
    await first.close()
    second = await JetStreamEventStore.open(settings)
    assert await second.get_latest_version("a") == 1
    await second.close()


async def test_existing_stream_with_other_config_is_refused_not_changed(
    nats_server: NatsServer,
) -> None:
    settings = settings_for(nats_server.url, **{"jetstream.max_age": "1h"})
    store = await JetStreamEventStore.open(settings)
    await store.close()
    other = settings_for(
        nats_server.url,
        namespace=settings.namespace,
        **{"jetstream.max_age": "2h", "jetstream.duplicate_window": "1m"},
    )
    with pytest.raises(StoreConfigMismatchError) as info:
        await JetStreamEventStore.open(other)
    assert set(info.value.differences) == {"max_age", "duplicate_window"}
    assert "max_age" in str(info.value) and f"AETHER_{settings.namespace}" in str(info.value)
    cfg = await stream_config(nats_server.url, f"AETHER_{settings.namespace}")
    assert cfg["max_age"] == 3600 * 10**9  # unchanged


async def test_foreign_stream_without_immutability_is_refused(nats_server: NatsServer) -> None:
    settings = settings_for(nats_server.url)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    ns = settings.namespace
    await js.add_stream(
        name=f"AETHER_{ns}", subjects=[f"aether.{ns}.events.*.*", f"aether.{ns}.track.>"]
    )
    await nc.close()
    with pytest.raises(StoreConfigMismatchError) as info:
        await JetStreamEventStore.open(settings)
    assert {"deny_delete", "deny_purge", "allow_direct", "allow_atomic"} <= set(
        info.value.differences
    )


# -- atomic batches ----------------------------------------------------------------------


async def test_unit_over_1000_is_refused_never_split(store: JetStreamEventStore) -> None:
    assert store.max_batch == 1000
    with pytest.raises(UnitTooLargeError) as info:
        await store.save_events([ev("big", v, n=v) for v in range(1, 1002)])
    assert info.value.limit == 1000 and "1000" in str(info.value)
    assert await store.get_latest_version("big") == 0
    assert await store.last_position() == 0


async def test_long_history_in_units_of_1000(store: JetStreamEventStore) -> None:
    events = [ev("big", v, n=v) for v in range(1, 2502)]
    stored: list[Event] = []
    for i in range(0, len(events), 1000):
        stored += await store.save_events(events[i : i + 1000])
    assert [e.version for e in stored] == list(range(1, 2502))
    positions = [e.position for e in stored]
    assert positions == list(range(positions[0], positions[0] + 2501))
    assert [e.id for e in await store.get_events("big")] == [e.id for e in events]
    # from the middle, longer than one batched direct get: binary search + consumer
    middle = [e.version async for e in store.iter_events("big", 1200, 2000)]
    assert middle == list(range(1200, 2001))
    assert [e.version async for e in store.iter_events("big", 2400)] == list(range(2400, 2502))


async def test_conflicting_batch_writes_nothing(store: JetStreamEventStore) -> None:
    await store.save_events([ev("a", 1), ev("a", 2)])
    other = await JetStreamEventStore.open(store._settings)  # a second writer
    await other.save_event(ev("a", 3))
    with pytest.raises(VersionConflictError) as info:
        await store.save_events([ev("a", v) for v in range(3, 1003)])
    assert (info.value.expected, info.value.actual) == (2, 3)
    assert await store.get_latest_version("a") == 3
    assert len(await store.get_events("a")) == 3
    await other.close()


async def test_stream_without_atomic_batches_raises_instead_of_appending(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(name="PLAIN", subjects=["plain.*"])
    pub = Publisher(nc, timeout=5, max_in_flight=16)
    with pytest.raises(UnsupportedServerError):
        await BatchPublisher(pub).publish([("plain.a", p, {}) for p in (b"1", b"2", b"3")])
    assert (await nc.jetstream().stream_info("PLAIN")).state.messages == 0
    await pub.close()
    await nc.close()


async def test_store_without_atomic_batches_refuses_save_events(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    store = await JetStreamEventStore.from_client(nc, settings_for(nats_server.url))
    store._atomic = False  # as on a server older than 2.12
    with pytest.raises(UnsupportedServerError):
        await store.save_events([ev("a", 1), ev("a", 2)])
    assert await store.get_latest_version("a") == 0
    assert (await store.save_events([ev("a", 1)]))[0].version == 1  # one event needs no batch
    await store.close()
    assert nc.is_connected  # from_client does not close the caller's connection
    await nc.close()


# -- idempotency -------------------------------------------------------------------------


async def test_resave_after_a_lost_ack_is_success_without_duplicate(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost: list[bytes] = []
    original = Publisher._on_reply

    def drop_first_ack(
        self: Publisher, subject: bytes, reply: bytes, data: bytes, headers: Any
    ) -> None:
        if not lost and b'"seq":2' in data:
            lost.append(data)  # the server stored version 2, the ack never reaches us
            return
        original(self, subject, reply, data, headers)

    monkeypatch.setattr(Publisher, "_on_reply", drop_first_ack)
    store = await JetStreamEventStore.open(
        settings_for(nats_server.url, **{"jetstream.publish_timeout": "1s"})
    )
    await store.save_event(ev("a", 1))
    event = ev("a", 2, x=1)
    started = time.monotonic()
    with pytest.raises(PublishTimeoutError):
        await store.save_event(event)
    assert time.monotonic() - started < 5
    assert lost
    again = await store.save_event(event)
    assert again.id == event.id and again.position == 2
    assert [e.id for e in await store.get_events("a")][1:] == [event.id]
    await store.close()


async def test_resave_outside_the_duplicate_window(nats_server: NatsServer) -> None:
    store = await JetStreamEventStore.open(
        settings_for(nats_server.url, **{"jetstream.duplicate_window": "200ms"})
    )
    first = await store.save_event(ev("a", 1))
    event = ev("a", 2)
    stored = await store.save_event(event)
    await store.save_event(ev("a", 3))
    await asyncio.sleep(0.4)
    fresh = await JetStreamEventStore.open(store._settings)  # knows nothing of "a"
    assert (await fresh.save_event(event)).position == stored.position
    assert (await fresh.save_event(first)).position == first.position
    with pytest.raises(VersionConflictError):
        await fresh.save_event(ev("a", 2))  # same version, another id
    assert len(await fresh.get_events("a")) == 3
    await fresh.close()
    await store.close()


async def test_event_id_reused_by_another_actor_is_still_stored(store: JetStreamEventStore) -> None:
    a = await store.save_event(Event("X", "a", 1, id="same-id"))
    b = await store.save_event(Event("X", "b", 1, id="same-id"))  # within the duplicate window
    assert a.position != b.position
    assert [e.actor_id for e in await store.get_events("b")] == ["b"]


# -- the cache: no read before publish ---------------------------------------------------


async def test_known_actor_needs_no_read_before_publish(store: JetStreamEventStore) -> None:
    gets: list[dict[str, Any]] = []
    direct_get = store._api.direct_get

    async def counting(stream: str, body: dict[str, Any]) -> Any:
        gets.append(body)
        return await direct_get(stream, body)

    store._api.direct_get = counting  # type: ignore[method-assign]
    await store.save_event(ev("new", 1))  # a new actor: expected sequence 0, no read
    for v in range(2, 21):
        await store.save_event(ev("new", v))
    await store.save_events([ev("new", 21), ev("new", 22)])
    assert gets == []
    # a conflict refreshes the entry with one read, and the next append needs none
    other = await JetStreamEventStore.open(store._settings)
    await other.save_event(ev("new", 23))
    with pytest.raises(VersionConflictError) as info:
        await store.save_event(ev("new", 23))
    assert info.value.actual == 23
    reads = len(gets)
    assert reads >= 1
    await store.save_event(ev("new", 24))
    assert len(gets) == reads
    await other.close()


# -- failures are bounded ----------------------------------------------------------------


async def test_unreachable_server_is_nats_unavailable() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(NatsUnavailableError) as info:
        await JetStreamEventStore.open(settings_for(url))
    assert url in str(info.value)
    assert time.monotonic() - started < 10


async def test_publish_to_a_stopped_server_times_out_instead_of_hanging(
    nats_server: NatsServer,
) -> None:
    store = await JetStreamEventStore.open(
        settings_for(nats_server.url, **{"jetstream.publish_timeout": "1s"})
    )
    await store.save_event(ev("a", 1))
    nats_server.stop()
    started = time.monotonic()
    with pytest.raises((PublishTimeoutError, NatsUnavailableError)):
        await store.save_event(ev("a", 2))
    with pytest.raises(NatsUnavailableError):
        await store.get_latest_version("a")
    assert time.monotonic() - started < 10
    await store.close()


async def test_many_appends_are_in_flight_at_once(store: JetStreamEventStore) -> None:
    pub = store._pub
    peak = 0
    send_now = pub._send_now

    def tracking(*args: Any, **kwargs: Any) -> Any:
        nonlocal peak
        peak = max(peak, pub._in_flight)  # publishes sent or being sent, not yet acked
        return send_now(*args, **kwargs)

    pub._send_now = tracking  # type: ignore[method-assign]
    await asyncio.gather(*(store.save_event(ev(f"p{i}", 1)) for i in range(200)))
    assert peak > 10  # no global lock serialises the appends
    assert len(await store.list_actors()) == 200


# -- subjects ----------------------------------------------------------------------------


async def test_actor_ids_never_reach_a_subject_unencoded(store: JetStreamEventStore) -> None:
    ids = ["a.b", "a*b", "a>b", "a b", "$sys", "a", "b", "user@example.com", "ünï", "a.>"]
    for i, actor in enumerate(ids):
        await store.save_event(ev(actor, 1, i=i))
    nc = await nats.connect(store._nc.connected_url.geturl())
    msg = await nc.request(
        f"$JS.API.STREAM.INFO.{store.stream}",
        orjson.dumps({"subjects_filter": ">"}),
        timeout=5,
    )
    await nc.close()
    subjects = orjson.loads(msg.data)["state"]["subjects"]
    prefix = f"aether.{store.namespace}.events."
    assert all(s.startswith(prefix) for s in subjects)
    pairs = [s[len(prefix) :].split(".", 1) for s in subjects]
    assert all(sl == str(slice_of(decode_token(t))) for sl, t in pairs)
    tokens = [t for _, t in pairs]
    assert all("." not in t and "*" not in t and ">" not in t and " " not in t for t in tokens)
    assert sorted(decode_token(t) for t in tokens) == sorted(ids)
    assert await store.list_actors() == dict.fromkeys(ids, 1)
    for i, actor in enumerate(ids):
        assert [e.data for e in await store.get_events(actor)] == [{"i": i}]


# -- reads -------------------------------------------------------------------------------


async def test_iter_events_from_the_middle_of_an_interleaved_stream(
    store: JetStreamEventStore,
) -> None:
    for v in range(1, 41):
        await store.save_event(ev("x", v))
        await store.save_event(ev("y", v))
    for start in (1, 2, 17, 39, 40):
        got = [e.version async for e in store.iter_events("x", start)]
        assert got == list(range(start, 41))
    got = [e.version async for e in store.iter_events("x", 10, 12)]
    assert got == [10, 11, 12]
    assert [e.version async for e in store.iter_events("x", 41)] == []
    positions = [e.position async for e in store.iter_events("y", 5)]
    assert positions == sorted(positions) and len(positions) == 36


async def test_watch_from_a_position_then_live(store: JetStreamEventStore) -> None:
    for v in range(1, 4):
        await store.save_event(ev("w", v))
    it = store.watch(2)
    got = [await asyncio.wait_for(anext(it), 10) for _ in range(2)]
    assert [e.position for e in got] == [2, 3]
    await store.save_event(ev("w", 4))
    assert (await asyncio.wait_for(anext(it), 10)).version == 4
    await it.aclose()


async def test_api_error_carries_the_server_code(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    with pytest.raises(JsApiError) as info:
        await JsApi(nc, 5).stream_create({"name": "BAD", "subjects": ["x.*"], "storage": "nope"})
    assert info.value.err_code > 0
    await nc.close()


async def test_event_over_the_server_max_payload_is_too_large(store: JetStreamEventStore) -> None:
    await store.save_event(ev("a", 1))
    limit = store._nc.max_payload
    blob = "x" * (limit - 300)  # within max_event_bytes (1 MiB), not within NATS's limit
    with pytest.raises(EventTooLargeError):
        await store.save_event(ev("a", 2, blob=blob))
    assert await store.get_latest_version("a") == 1


async def test_a_closed_store_fails_with_a_clear_error(nats_server: NatsServer) -> None:
    store = await JetStreamEventStore.open(settings_for(nats_server.url))
    await store.save_event(ev("a", 1))
    await store.close()
    with pytest.raises(AetherError, match="closed"):
        await store.save_event(ev("a", 2))
    with pytest.raises(AetherError, match="closed"):
        await store.get_latest_version("a")
    with pytest.raises(AetherError, match="closed"):
        await store.get_events("a")


async def test_a_closed_store_refuses_work_and_its_watch_ends(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        store = await JetStreamEventStore.from_client(nc, settings_for(nats_server.url))
        await store.save_event(ev("a", 1))
        watch = store.watch(from_position=1)
        assert (await anext(watch)).version == 1
        await store.close()
        with pytest.raises(AetherError, match="closed"):
            await store.save_event(ev("a", 2))
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(watch), 10)
        assert not nc.is_closed  # a client handed in stays the caller's
    finally:
        await nc.close()


async def test_an_idle_watch_keeps_its_consumer(
    nats_server: NatsServer, store: JetStreamEventStore
) -> None:
    spy = await nats.connect(nats_server.url)
    creates: list[str] = []

    async def count(msg: Any) -> None:
        creates.append(msg.subject)

    await spy.subscribe("$JS.API.CONSUMER.CREATE.>", cb=count)
    await flush(spy, 5)
    try:
        watch = store.watch()
        first = asyncio.ensure_future(anext(watch))
        await asyncio.sleep(4.5)  # idle for more than three idle heartbeats
        await store.save_event(ev("a", 1))
        assert (await asyncio.wait_for(first, 10)).version == 1
        assert len(creates) == 1, creates
        await watch.aclose()
    finally:
        await spy.close()
