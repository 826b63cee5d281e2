"""An append span in one process, a process span linked to it in another.

The two processes share only an SQLite file: the trace context travels in the event's
``traceparent`` metadata. Each records its spans with the OTel SDK's in-memory exporter
and prints them as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

COMMON = """
import asyncio, json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from aether import Event, Settings
from aether.store import open_store
from aether.observability import instrument_store, process_span

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
settings = Settings.load(
    overrides={"store": "sqlite", "sqlite.path": sys.argv[1], "namespace": "shop"},
    search_default_files=False,
)

def dump():
    out = []
    for s in exporter.get_finished_spans():
        out.append({
            "name": s.name,
            "trace_id": s.context.trace_id,
            "span_id": s.context.span_id,
            "kind": s.kind.name,
            "attributes": dict(s.attributes),
            "links": [[l.context.trace_id, l.context.span_id] for l in s.links],
        })
    print(json.dumps(out))
"""

WRITER = (
    COMMON
    + """
async def main():
    store = instrument_store(await open_store(settings), namespace="shop")
    try:
        await store.save_event(Event("OrderPlaced", "order-1", 1, {"total": 5}))
        paid, shipped = Event("OrderPaid", "order-1", 2), Event("OrderShipped", "order-1", 3)
        await store.save_events([paid, shipped])
    finally:
        await store.close()
    dump()
asyncio.run(main())
"""
)

READER = (
    COMMON
    + """
async def main():
    store = instrument_store(await open_store(settings), namespace="shop")
    try:
        async for e in store.read_all():
            with process_span(e, "shipping"):
                pass
    finally:
        await store.close()
    dump()
asyncio.run(main())
"""
)

RUNNER = (
    COMMON
    + """
from aether.processing import ProcessorRunner, processor

async def ship(event, ctx):
    pass

async def main():
    store = instrument_store(await open_store(settings), namespace="shop")
    try:
        await ProcessorRunner(store, processor("shipping", ship), idle_interval=0.05).drain()
    finally:
        await store.close()
    dump()
asyncio.run(main())
"""
)


def run(code: str, db: Path) -> list[dict[str, Any]]:
    p = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    spans: list[dict[str, Any]] = json.loads(p.stdout)
    return spans


def test_process_span_links_to_the_append_span_of_another_process(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    written = run(WRITER, db)
    sends = [s for s in written if s["kind"] == "PRODUCER"]
    assert [s["name"] for s in sends] == ["send aether.shop.events"] * 2
    assert sends[0]["attributes"]["messaging.system"] == "nats"
    assert sends[1]["attributes"]["messaging.batch.message_count"] == 2

    read = run(READER, db)
    processed = [s for s in read if s["name"] == "process aether.shipping"]
    assert len(processed) == 3
    appends = [[s["trace_id"], s["span_id"]] for s in sends]
    # each event links to the append that wrote it (the batch's two share one)
    assert [p["links"] for p in processed] == [[appends[0]], [appends[1]], [appends[1]]]
    assert all(p["kind"] == "CONSUMER" for p in processed)
    assert all(p["attributes"]["messaging.operation.type"] == "process" for p in processed)
    assert {p["trace_id"] for p in processed}.isdisjoint({s["trace_id"] for s in sends})
    # the replay itself is a receive span over 3 messages
    [replay] = [s for s in read if s["kind"] == "CONSUMER" and s["name"].startswith("receive")]
    assert replay["attributes"]["messaging.batch.message_count"] == 3


def test_a_processor_runner_links_its_process_spans_to_the_appends(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    written = run(WRITER, db)
    appends = [[s["trace_id"], s["span_id"]] for s in written if s["kind"] == "PRODUCER"]
    processed = [s for s in run(RUNNER, db) if s["name"] == "process aether.shipping"]
    assert [p["links"] for p in processed] == [[appends[0]], [appends[1]], [appends[1]]]
    assert all(p["kind"] == "CONSUMER" for p in processed)
