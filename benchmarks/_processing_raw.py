"""The raw nats-py baseline of `benchmarks.processing`: durable pull consumers, batched acks.

The same work as aether's processors, hand-written: a durable pull consumer (``AckAll``)
on the namespace's event stream, ``fetch`` in batches, each message decoded
(``orjson.loads``, as any consumer of the JSON wire format must) and handed to the work,
then one ack for the batch (the last message's, which acknowledges all before it). For
the SQLite projection, each batch is one transaction holding the consumer's stream
sequence (so the read model is exactly-once like aether's), committed before the ack.
Three "nodes" are three consumers on three connections, each filtered to a third of the
slices (``filter_subjects``), like aether's shards.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js import api

from aether.subjects import slice_filters, stream_name

BATCH = 500
"""Messages per fetch (and per ack)."""

PROJECTION_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS totals (actor TEXT PRIMARY KEY, n INTEGER NOT NULL,"
    " amount INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
)

UPSERT = (
    "INSERT INTO totals (actor, n, amount) VALUES (?, 1, ?) ON CONFLICT(actor) DO UPDATE"
    " SET n = n + 1, amount = amount + excluded.amount"
)


def open_db(path: Path) -> sqlite3.Connection:
    """A read-model database like the user's: WAL, NORMAL sync, the schema created."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for stmt in PROJECTION_SCHEMA:
        conn.execute(stmt)
    return conn


def thirds(parts: int) -> list[frozenset[int]]:
    """The slices 0-1023 cut into `parts` contiguous ranges."""
    return [frozenset(s for s in range(1024) if s * parts // 1024 == i) for i in range(parts)]


async def raw_consume(
    url: str,
    namespace: str,
    expected: int,
    *,
    slices: frozenset[int] | None = None,
    db: Path | None = None,
) -> int:
    """Consume `expected` events of `namespace` (of `slices`) with a fresh durable pull
    consumer; no-op work, or the SQLite projection into `db`. Returns events handled."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = stream_name(namespace)
    durable = "raw-" + uuid.uuid4().hex[:10]
    filters = slice_filters(namespace, slices)
    cfg = api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.ALL,
        deliver_policy=api.DeliverPolicy.ALL,
        max_ack_pending=BATCH * 4,
    )
    if len(filters) == 1:
        cfg.filter_subject = filters[0]
    else:
        cfg.filter_subjects = filters
    await js.add_consumer(stream, cfg)
    psub = await js.pull_subscribe_bind(durable, stream=stream)
    conn = open_db(db) if db is not None else None
    handled = 0
    try:
        while handled < expected:
            try:
                msgs = await psub.fetch(batch=BATCH, timeout=5)
            except nats.errors.TimeoutError:
                continue
            if conn is not None:
                conn.execute("BEGIN")
                for m in msgs:
                    e: Any = orjson.loads(m.data)
                    conn.execute(UPSERT, (e["actor_id"], e["data"]["amount"]))
                seq = msgs[-1].metadata.sequence.stream
                conn.execute("INSERT OR REPLACE INTO checkpoint (id, seq) VALUES (1, ?)", (seq,))
                conn.execute("COMMIT")
            else:
                for m in msgs:
                    orjson.loads(m.data)
            await msgs[-1].ack()
            handled += len(msgs)
        return handled
    finally:
        if conn is not None:
            conn.close()
        await js.delete_consumer(stream, durable)
        await nc.close()


async def raw_run(
    url: str, namespace: str, expected: int, *, nodes: int = 1, db_dir: Path | None = None
) -> float:
    """Seconds for `nodes` raw consumers to handle the namespace's `expected` events."""
    parts: list[frozenset[int] | None] = list(thirds(nodes)) if nodes > 1 else [None]
    sizes = [expected] if nodes == 1 else await _shard_sizes(url, namespace, parts)
    t0 = time.perf_counter()
    counts = await asyncio.gather(
        *(
            raw_consume(
                url,
                namespace,
                sizes[i],
                slices=part,
                db=db_dir / f"raw-{i}.db" if db_dir is not None else None,
            )
            for i, part in enumerate(parts)
        )
    )
    elapsed = time.perf_counter() - t0
    assert sum(counts) == expected, (counts, expected)
    return elapsed


async def _shard_sizes(url: str, namespace: str, parts: list[frozenset[int] | None]) -> list[int]:
    """How many events each part's slices hold (from the stream's subject counts)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(
            stream_name(namespace), subjects_filter=f"aether.{namespace}.events.>"
        )
        per_slice: dict[int, int] = {}
        for subject, n in (info.state.subjects or {}).items():
            tokens = subject.split(".")
            if tokens[2] != "events":
                continue  # a checkpoint record of aether's processors, not an event
            s = int(tokens[3])
            per_slice[s] = per_slice.get(s, 0) + n
        return [sum(n for s, n in per_slice.items() if p is None or s in p) for p in parts]
    finally:
        await nc.close()
