"""`instrument_store` / `instrument_bus`: counters and histograms move, spans are made."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from aether import Event, InMemoryEventStore
from aether.bus import LocalEventBus
from aether.errors import VersionConflictError
from aether.observability import (
    TRACEPARENT_KEY,
    InstrumentedStore,
    JsonLogFormatter,
    ProcessorStatsRecord,
    configure_logging,
    instrument_bus,
    instrument_store,
    parse_traceparent,
    process_span,
    register_processor_stats,
    serve_metrics,
)
from tests.observability.helpers import local, scrape, value


def ev(actor: str, version: int, **md: str) -> Event:
    return Event("Happened", actor, version, {"n": version}, metadata=dict(md))


async def test_appends_are_counted_by_outcome_and_kind() -> None:
    store = instrument_store(InMemoryEventStore(), kind="memtest")
    assert isinstance(store, InstrumentedStore)
    before = local()
    await store.save_event(ev("a-1", 1))
    await store.save_events([ev("a-1", 2), ev("b-1", 1), ev("a-1", 3)])
    with pytest.raises(VersionConflictError):
        await store.save_event(ev("a-1", 2))
    after = local()
    assert value(after, "aether_appended_events_total", store="memtest") == 4
    ok = value(after, "aether_append_duration_seconds_count", store="memtest", outcome="ok")
    assert ok == 2
    conflicts = "aether_append_duration_seconds_count"
    assert value(after, conflicts, store="memtest", outcome="conflict") == 1
    assert value(before, conflicts, store="memtest", outcome="conflict") == 0
    inf = value(
        after, "aether_append_duration_seconds_bucket", store="memtest", outcome="ok", le="+Inf"
    )
    assert inf == ok
    assert value(after, "aether_append_duration_seconds_sum", store="memtest", outcome="ok") > 0
    les = sorted(
        (float(dict(k)["le"]), v)
        for (n, k), v in after.items()
        if n == "aether_append_duration_seconds_bucket"
        and ("store", "memtest") in k
        and ("outcome", "ok") in k
    )
    assert [v for _, v in les] == sorted(v for _, v in les)  # cumulative buckets
    # replay of one actor and of the whole log
    assert [e.version for e in await store.get_events("a-1")] == [1, 2, 3]
    assert len([e async for e in store.read_all()]) == 4
    assert len([e async for e in store.iter_events("b-1")]) == 1
    s = local()
    assert value(s, "aether_replayed_events_total", store="memtest", read="actor") == 4
    assert value(s, "aether_replayed_events_total", store="memtest", read="all") == 4
    assert await store.last_position() == 4
    from aether.store import EventStore, SnapshotStore

    assert isinstance(store, EventStore) and isinstance(store, SnapshotStore)
    assert store.max_batch == InMemoryEventStore().max_batch
    await store.close()


async def test_watch_is_fixed_at_the_call_and_counted() -> None:
    async with instrument_store(InMemoryEventStore(), kind="watchtest") as store:
        await store.save_event(ev("w-1", 1))
        it = store.watch()  # starts after w-1 v1: fixed before the first iteration
        await store.save_event(ev("w-1", 2))
        got = await it.__anext__()
        assert (got.version, got.position) == (2, 2)
        await it.aclose()
    assert value(local(), "aether_replayed_events_total", store="watchtest", read="watch") == 1


async def test_append_span_and_traceparent_then_linked_process_span(spans: Any) -> None:
    store = instrument_store(InMemoryEventStore(), namespace="orders")
    stored = await store.save_event(ev("o-1", 1))
    tp = stored.metadata[TRACEPARENT_KEY]
    [append] = [s for s in spans.get_finished_spans() if s.name.startswith("send")]
    assert append.name == "send aether.orders.events"
    assert append.attributes["messaging.system"] == "nats"
    assert append.attributes["messaging.operation.type"] == "send"
    assert append.attributes["messaging.destination.name"] == "aether.orders.events"
    assert append.attributes["messaging.message.id"] == stored.id
    ctx = parse_traceparent(tp)
    assert (ctx.trace_id, ctx.span_id) == (append.context.trace_id, append.context.span_id)
    # the stored event carries it (read back), and a caller's own traceparent is kept
    [back] = await store.get_events("o-1")
    assert back.metadata[TRACEPARENT_KEY] == tp
    mine = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    kept = await store.save_event(ev("o-1", 2, traceparent=mine))
    assert kept.metadata[TRACEPARENT_KEY] == mine

    with process_span(back, "projection") as span:
        assert span.is_recording()
    [proc] = [s for s in spans.get_finished_spans() if s.name.startswith("process")]
    assert proc.attributes["messaging.operation.type"] == "process"
    assert proc.attributes["aether.processor"] == "projection"
    [link] = proc.links
    assert (link.context.trace_id, link.context.span_id) == (ctx.trace_id, ctx.span_id)
    s = local()
    assert (
        value(
            s,
            "aether_processor_handler_duration_seconds_count",
            processor="projection",
            outcome="ok",
        )
        >= 1
    )


async def test_batch_span_counts_messages_and_errors_are_recorded(spans: Any) -> None:
    store = instrument_store(InMemoryEventStore(), kind="spantest")
    await store.save_events([ev("x-1", 1), ev("x-1", 2), ev("y-1", 1)])
    with pytest.raises(VersionConflictError):
        await store.save_events([ev("x-1", 1)])
    send = [s for s in spans.get_finished_spans() if s.name.startswith("send")]
    assert send[0].attributes["messaging.batch.message_count"] == 3
    assert send[1].attributes["aether.outcome"] == "conflict"
    assert send[1].status.status_code.name == "ERROR"


async def test_resaving_the_same_event_stays_idempotent_despite_the_new_traceparent(
    spans: Any,
) -> None:
    store = instrument_store(InMemoryEventStore(), kind="idem")
    e = ev("i-1", 1)
    first = await store.save_event(e)
    again = await store.save_event(e)  # a retry of the same event: a no-op success
    assert again.position == first.position
    assert again.metadata == first.metadata
    with pytest.raises(VersionConflictError):  # another event at that version still conflicts
        await store.save_event(ev("i-1", 1))


async def test_bus_publish_deliver_and_drops_are_counted(spans: Any) -> None:
    bus = instrument_bus(LocalEventBus(), kind="bustest")
    sub = await bus.subscribe("ns", buffer=2, overflow="drop_newest")
    for i in range(1, 6):
        await bus.publish("ns", ev("p-1", i))
    got = [await sub.__anext__(), await sub.__anext__()]
    assert [e.version for e in got] == [1, 2]
    assert TRACEPARENT_KEY in got[0].metadata
    await sub.close()
    await bus.close()
    s = local()
    assert value(s, "aether_bus_published_events_total", bus="bustest") == 5
    assert value(s, "aether_bus_delivered_events_total", bus="bustest", overflow="drop_newest") == 2
    assert value(s, "aether_bus_dropped_events_total", bus="bustest", overflow="drop_newest") == 3
    receive = [x for x in spans.get_finished_spans() if x.name == "receive aether.ns"]
    assert len(receive) == 2 and len(receive[0].links) == 1


def test_processor_stats_and_http_serving() -> None:
    stats = [
        ProcessorStatsRecord(
            "orders-view",
            3,
            checkpoint=90,
            lag_events=10,
            lag_seconds=1.5,
            handled=90,
            retried=2,
            parked=1,
        )
    ]

    class Runtime:
        def processor_stats(self) -> list[ProcessorStatsRecord]:
            return stats

    reg = register_processor_stats(Runtime())
    server = serve_metrics("127.0.0.1:0")
    try:
        s = scrape(server.url)
        key = {"processor": "orders-view", "shard": "3"}
        assert value(s, "aether_processor_checkpoint_position", **key) == 90
        assert value(s, "aether_processor_lag_events", **key) == 10
        assert value(s, "aether_processor_lag_seconds", **key) == 1.5
        assert value(s, "aether_processor_handled_events_total", **key) == 90
        assert value(s, "aether_processor_retries_total", **key) == 2
        assert value(s, "aether_processor_parked_events_total", **key) == 1
        stats[0] = ProcessorStatsRecord("orders-view", 3, checkpoint=100, lag_events=0)
        assert value(scrape(server.url), "aether_processor_lag_events", **key) == 0
    finally:
        server.close()
        reg.close()
    assert value(local(), "aether_processor_lag_events", processor="orders-view", shard="3") == 0


def test_labels_never_carry_actor_ids() -> None:
    names = {labels for (_, labels) in local()}
    keys = {k for labels in names for k, _ in labels}
    assert keys <= {
        "store",
        "outcome",
        "read",
        "bus",
        "overflow",
        "namespace",
        "node",
        "shard",
        "processor",
        "le",
        "version",
        "implementation",
        "major",
        "minor",
        "patchlevel",
        "direction",
    }


def test_json_log_formatter_one_object_per_line() -> None:
    buf = io.StringIO()
    handler = configure_logging(json=True, stream=buf)
    try:
        logging.getLogger("aether.cluster").info("took %d shards", 4, extra={"shard": 7, "term": 3})
        logging.getLogger("aether.store").warning("plain")
    finally:
        logging.getLogger("aether").removeHandler(handler)
    lines = buf.getvalue().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["logger"] == "aether.cluster" and first["message"] == "took 4 shards"
    assert first["level"] == "info" and first["shard"] == 7 and first["term"] == 3
    assert first["time"].endswith("Z")
    assert second["level"] == "warning" and "shard" not in second
    assert isinstance(JsonLogFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
