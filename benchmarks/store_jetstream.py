"""JetStream event store vs raw nats-py: same server, same ~210-byte payload, one run.

Cases (events/s of aether and of the raw nats-py baseline, the ratio, and each side's
client CPU per event, which stays meaningful when the machine is busy):

1. ``sequential``: one append at a time (await each) vs ``js.publish`` with the headers
   aether sends: ``Nats-Expected-Last-Subject-Sequence`` and ``Nats-Msg-Id``.
2. ``pipelined``: appends in flight across 1,000 actors (each actor appends its next
   version as soon as the previous one is acknowledged) vs ``js.publish_async`` with the
   same headers (the faster of: rounds of one publish per actor then ``publish_async_completed``,
   or one ``publish_async`` chain per actor), and, for reference, gathered ``js.publish``.
   The raw variants send one pre-encoded payload; ``pipelined, raw encodes`` compares
   with chains that also do aether's per-event work by hand (``encode_event`` of each
   `Event`, its id as the message id).
3. ``batch10`` / ``batch100``: atomic ``save_events`` vs a raw ADR-50 atomic batch
   (``Nats-Batch-Id`` / ``Nats-Batch-Sequence`` / ``Nats-Batch-Commit``, expectation on the
   first message).
4. ``replay``: one actor of 10,000 events among 50,000, decoded into `Event` objects, vs
   the fastest raw transport read (which decodes nothing) among: an ordered push consumer,
   a hand-written pull loop (``$JS.API.CONSUMER.MSG.NEXT`` with batches outstanding into a
   callback subscription), nats-py's ``fetch()`` and batched direct get.
5. ``read_all``: every event of a 50,000-event namespace vs the raw pull loop with the
   namespace's filter and without any (nats-server delivers about twice as fast
   unfiltered; aether reads unfiltered when the stream holds no tracking records from
   the start position on), and the ordered push consumer.
6. ``unit2``: a unit of work of 2 actors x 1 event (one ``save_events``, an atomic batch
   with an expectation on each subject) vs the same two events as two single
   ``save_event`` calls awaited one after the other; a raw ADR-50 batch of the same two
   messages is shown for reference.
7. ``slice1/8``: ``read_all(slices=range(128))`` (the server filters: consumer filter
   subjects) vs ``read_all()`` dropping the other slices in Python, on SLICE_EVENTS events
   of SLICE_ACTORS actors: wanted events delivered per second, and what the server sent
   each reader's connection (messages and bytes, counted by the server's ``/connz``).

Run ``python -m benchmarks.store_jetstream`` (``--quick`` is the default; ``--full`` for
longer runs; ``--server URL`` to use a running server instead of starting one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from aether.event import Event, encode_event

EXPECT = "Nats-Expected-Last-Subject-Sequence"
MSG_ID = "Nats-Msg-Id"
REPLAY_ACTOR_EVENTS = 10_000
NAMESPACE_EVENTS = 50_000
PIPELINE_ACTORS = 1_000
SLICE_EVENTS = {True: 20_000, False: 100_000}
SLICE_ACTORS = 2_000
WANTED_SLICES = range(0, 128)


@dataclass(frozen=True)
class Sizes:
    """How much work each case does, per trial. Each write case runs `trials` trials,
    alternating raw and aether, and keeps each side's best: on a busy machine the best
    of several short trials is the least disturbed figure of each."""

    trials: int
    sequential: int
    pipelined_rounds: int  # events per actor in a trial; x PIPELINE_ACTORS events
    batches10: int
    batches100: int
    read_repeats: int
    units: int


QUICK = Sizes(
    trials=6,
    sequential=300,
    pipelined_rounds=3,
    batches10=10,
    batches100=5,
    read_repeats=3,
    units=100,
)
FULL = Sizes(
    trials=6,
    sequential=2_000,
    pipelined_rounds=20,
    batches10=100,
    batches100=30,
    read_repeats=5,
    units=500,
)


# --- payload ----------------------------------------------------------------------------


def make_event(actor_id: str, version: int) -> Event:
    """A ~210-byte event (encoded) for `actor_id` at `version`."""
    return Event(
        event_type="AccountCredited",
        actor_id=actor_id,
        version=version,
        data={"amount": 1250 + version, "currency": "EUR"},
    )


def payload_size() -> int:
    """Bytes of one encoded benchmark event."""
    return len(encode_event(make_event("acct-000001", 1)))


def rate(count: int, seconds: float) -> float:
    """Events per second."""
    return count / seconds if seconds > 0 else float("inf")


# --- streams ----------------------------------------------------------------------------


def stream_config(name: str, subjects: list[str]) -> api.StreamConfig:
    """A file-storage stream configured like aether's event stream."""
    return api.StreamConfig(
        name=name,
        subjects=subjects,
        storage=api.StorageType.FILE,
        num_replicas=1,
        allow_direct=True,
        allow_atomic=True,
        duplicate_window=120.0,
        deny_delete=True,
        deny_purge=False,
    )


async def raw_stream(js: JetStreamContext, name: str) -> tuple[str, str]:
    """Create stream `name` on ``raw.<name>.events.*``; return (stream, subject prefix)."""
    prefix = f"raw.{name}.events."
    await js.add_stream(stream_config(name, [prefix + "*"]))
    return name, prefix


# --- raw writes -------------------------------------------------------------------------


async def raw_sequential(js: JetStreamContext, subject: str, payloads: list[bytes]) -> float:
    """Publish one at a time with the expected-subject-sequence and message-id headers
    (as aether sends them); return seconds."""
    last = 0
    ids = _msg_ids(len(payloads), 1)[0]
    t0 = time.perf_counter()
    for p, msg_id in zip(payloads, ids, strict=True):
        ack = await js.publish(subject, p, headers={MSG_ID: msg_id, EXPECT: str(last)})
        last = ack.seq
    return time.perf_counter() - t0


def _msg_ids(actors: int, rounds: int) -> list[list[str]]:
    """A unique ``Nats-Msg-Id`` per message (made before the timed part, like the events
    aether is handed: their ids exist before ``save_event``)."""
    return [[str(uuid.uuid4()) for _ in range(actors)] for _ in range(rounds)]


async def raw_publish_async_rounds(
    js: JetStreamContext, subjects: list[str], payload: bytes, rounds: int
) -> float:
    """Per round, one ``publish_async`` per actor (headers: its last sequence and a
    message id, as aether sends), then wait."""
    last = [0] * len(subjects)
    ids = _msg_ids(len(subjects), rounds)
    t0 = time.perf_counter()
    for r in range(rounds):
        futs = [
            await js.publish_async(s, payload, headers={MSG_ID: ids[r][i], EXPECT: str(last[i])})
            for i, s in enumerate(subjects)
        ]
        await js.publish_async_completed()
        for i, f in enumerate(futs):
            last[i] = f.result().seq
    return time.perf_counter() - t0


async def raw_publish_async_chains(
    js: JetStreamContext, subjects: list[str], payload: bytes, rounds: int
) -> float:
    """One task per actor: ``publish_async`` its next event when the previous is acked."""
    ids = _msg_ids(len(subjects), rounds)

    async def actor(i: int, subject: str) -> None:
        last = 0
        for r in range(rounds):
            headers = {MSG_ID: ids[r][i], EXPECT: str(last)}
            fut = await js.publish_async(subject, payload, headers=headers)
            last = (await fut).seq

    t0 = time.perf_counter()
    await asyncio.gather(*(actor(i, s) for i, s in enumerate(subjects)))
    return time.perf_counter() - t0


async def raw_publish_async_chains_encoding(
    js: JetStreamContext, subjects: list[str], per_actor: list[list[Event]]
) -> float:
    """Like `raw_publish_async_chains`, doing aether's per-event work by hand as well:
    ``encode_event`` each `Event` (validation included) and send its id as the message id."""

    async def actor(subject: str, events: list[Event]) -> None:
        last = 0
        for e in events:
            headers = {MSG_ID: e.id, EXPECT: str(last)}
            fut = await js.publish_async(subject, encode_event(e), headers=headers)
            last = (await fut).seq

    t0 = time.perf_counter()
    await asyncio.gather(*(actor(s, ev) for s, ev in zip(subjects, per_actor, strict=True)))
    return time.perf_counter() - t0


async def raw_gathered_publish(
    js: JetStreamContext, subjects: list[str], payload: bytes, rounds: int
) -> float:
    """One task per actor, each awaiting ``js.publish`` (request/reply) in turn."""
    ids = _msg_ids(len(subjects), rounds)

    async def actor(i: int, subject: str) -> None:
        last = 0
        for r in range(rounds):
            headers = {MSG_ID: ids[r][i], EXPECT: str(last)}
            last = (await js.publish(subject, payload, headers=headers)).seq

    t0 = time.perf_counter()
    await asyncio.gather(*(actor(i, s) for i, s in enumerate(subjects)))
    return time.perf_counter() - t0


async def raw_atomic_batch(nc: NATS, subject: str, payloads: list[bytes], expect_last: int) -> int:
    """Publish `payloads` to `subject` as one ADR-50 atomic batch; return the last sequence.

    Messages 1..n-1 are plain publishes (no reply: the server acks the batch as a whole on
    the commit); the expectation rides on the first message; the last carries
    ``Nats-Batch-Commit: 1`` and is a request answered with the pub ack.
    """
    batch_id = uuid.uuid4().hex
    n = len(payloads)
    for i, p in enumerate(payloads[:-1], start=1):
        hdr = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i)}
        if i == 1:
            hdr[EXPECT] = str(expect_last)
        await nc.publish(subject, p, headers=hdr)
    hdr = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n), "Nats-Batch-Commit": "1"}
    if n == 1:
        hdr[EXPECT] = str(expect_last)
    msg = await nc.request(subject, payloads[-1], timeout=5.0, headers=hdr)
    resp = json.loads(msg.data)
    if "error" in resp:
        raise RuntimeError(f"atomic batch rejected: {resp['error']}")
    if resp.get("count") != n:
        raise RuntimeError(f"atomic batch stored {resp.get('count')} of {n}")
    return int(resp["seq"])


async def raw_unit(nc: NATS, subjects: list[str], payloads: list[bytes], last: list[int]) -> int:
    """One ADR-50 atomic batch of one message per subject, each with its own expectation
    (``last[i]``, the subject's last sequence); return the batch's last sequence."""
    batch_id = uuid.uuid4().hex
    n = len(payloads)
    for i, (subject, p) in enumerate(zip(subjects, payloads, strict=True), start=1):
        hdr = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i), EXPECT: str(last[i - 1])}
        if i < n:
            await nc.publish(subject, p, headers=hdr)
            continue
        hdr["Nats-Batch-Commit"] = "1"
        resp = json.loads((await nc.request(subject, p, timeout=5.0, headers=hdr)).data)
        if "error" in resp:
            raise RuntimeError(f"atomic batch rejected: {resp['error']}")
        return int(resp["seq"])
    raise ValueError("an empty unit")


async def raw_units(nc: NATS, prefix: str, tag: str, n: int) -> float:
    """`n` raw units over two subjects (``from``, ``to``), one after the other; seconds."""
    subjects = [f"{prefix}from-{tag}", f"{prefix}to-{tag}"]
    last = [0, 0]
    payloads = [encode_event(make_event("from", 1)), encode_event(make_event("to", 1))]
    t0 = time.perf_counter()
    for _ in range(n):
        seq = await raw_unit(nc, subjects, payloads, last)
        last = [seq - 1, seq]
    return time.perf_counter() - t0


async def raw_batches(nc: NATS, subject: str, payloads: list[bytes], size: int) -> float:
    """Consecutive atomic batches of `size` on one subject; return seconds."""
    last = 0
    t0 = time.perf_counter()
    for i in range(0, len(payloads), size):
        last = await raw_atomic_batch(nc, subject, payloads[i : i + size], last)
    return time.perf_counter() - t0


# --- raw reads (decode nothing) ---------------------------------------------------------


def _ephemeral_config(subject: str | None) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        name=uuid.uuid4().hex,
        filter_subject=subject,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )


async def read_ordered_push(
    nc: NATS, js: JetStreamContext, stream: str, subject: str, expected: int
) -> float:
    """nats-py ordered push consumer with a callback; stop after `expected` messages."""
    done = asyncio.get_running_loop().create_future()
    n = 0

    async def cb(msg: Msg) -> None:
        nonlocal n
        n += 1
        if n == expected:
            done.set_result(None)

    t0 = time.perf_counter()
    sub = await js.subscribe(
        subject,
        stream=stream,
        cb=cb,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.ALL,
    )
    await asyncio.wait_for(done, 120)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    return elapsed


async def read_pull_loop(
    nc: NATS,
    js: JetStreamContext,
    stream: str,
    subject: str | None,
    expected: int,
    batch: int = 500,
    outstanding: int = 4,
) -> float:
    """Hand-written pull: ``CONSUMER.MSG.NEXT`` requests kept `outstanding` batches ahead,
    delivered into a plain callback subscription."""
    cfg = _ephemeral_config(subject)
    t0 = time.perf_counter()
    await js.add_consumer(stream, cfg)
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{cfg.name}"
    request = json.dumps({"batch": batch, "expires": 10_000_000_000}).encode()
    inbox = nc.new_inbox()
    done = asyncio.get_running_loop().create_future()
    n = 0
    in_batch = 0
    publish = nc.publish

    async def cb(msg: Msg) -> None:
        nonlocal n, in_batch
        if not msg.data:  # a status message (408 request expired, ...): no event
            return
        n += 1
        in_batch += 1
        if in_batch == batch:
            in_batch = 0
            await publish(next_subject, request, reply=inbox)
        if n == expected:
            done.set_result(None)

    sub = await nc.subscribe(inbox, cb=cb)
    for _ in range(outstanding):
        await publish(next_subject, request, reply=inbox)
    await asyncio.wait_for(done, 120)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, str(cfg.name))
    return elapsed


async def read_pull_loop_unfiltered(
    nc: NATS, js: JetStreamContext, stream: str, subject: str, expected: int
) -> float:
    """`read_pull_loop` on a consumer without a subject filter (the stream holds only the
    events read): nats-server delivers faster unfiltered, and aether's read_all knows."""
    return await read_pull_loop(nc, js, stream, None, expected)


async def read_fetch(
    nc: NATS, js: JetStreamContext, stream: str, subject: str, expected: int, batch: int = 500
) -> float:
    """nats-py pull subscription, ``fetch(batch)`` in a loop."""
    cfg = _ephemeral_config(subject)
    t0 = time.perf_counter()
    psub = await js.pull_subscribe(subject, stream=stream, config=cfg)
    n = 0
    while n < expected:
        msgs = await psub.fetch(batch=min(batch, expected - n), timeout=10)
        n += len(msgs)
    elapsed = time.perf_counter() - t0
    await psub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, str(cfg.name))
    return elapsed


async def read_direct_batch(
    nc: NATS, js: JetStreamContext, stream: str, subject: str, expected: int, batch: int = 1000
) -> float:
    """Batched direct get (``next_by_subj``) into a callback; each batch ends with an EOB
    status carrying the last sequence, and the next batch starts after it."""
    api_subject = f"$JS.API.DIRECT.GET.{stream}"
    inbox = nc.new_inbox()
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {"n": 0, "fut": loop.create_future()}

    async def cb(msg: Msg) -> None:
        if msg.data:
            state["n"] += 1
            return
        hdr = msg.headers or {}
        if hdr.get("Status") == "204" or hdr.get("Status") == "404":
            fut = state["fut"]
            if not fut.done():
                fut.set_result(hdr)

    sub = await nc.subscribe(inbox, cb=cb)
    t0 = time.perf_counter()
    seq = 1
    while state["n"] < expected:
        state["fut"] = loop.create_future()
        req = json.dumps({"seq": seq, "next_by_subj": subject, "batch": batch}).encode()
        await nc.publish(api_subject, req, reply=inbox)
        hdr = await asyncio.wait_for(state["fut"], 30)
        if hdr.get("Status") == "404":
            break
        seq = int(hdr["Nats-Last-Sequence"]) + 1
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    if state["n"] < expected:
        raise RuntimeError(f"direct get read {state['n']} of {expected}")
    return elapsed


Reader = Callable[[NATS, JetStreamContext, str, str, int], Awaitable[float]]
RAW_READERS: dict[str, Reader] = {
    "ordered_push": read_ordered_push,
    "pull_loop": read_pull_loop,
    "pull_loop_unfiltered": read_pull_loop_unfiltered,
    "fetch": read_fetch,
    "direct_batch": read_direct_batch,
}
REPLAY_READERS = ["ordered_push", "pull_loop", "fetch", "direct_batch"]
"""Raw readers of one actor's subject (an unfiltered read would not be one actor's)."""
READ_ALL_READERS = ["pull_loop", "pull_loop_unfiltered", "ordered_push"]
"""Raw readers of the whole namespace (its stream holds nothing else here)."""


# --- populating the read namespace ------------------------------------------------------


def read_workload() -> tuple[str, list[tuple[str, list[Event]]]]:
    """The 50,000-event namespace: the replay actor's 10,000 events in batches of 250 and
    400 other actors of 100 events; written concurrently, so they interleave."""
    replay_actor = "replay-actor"
    work: list[tuple[str, list[Event]]] = []
    for first in range(1, REPLAY_ACTOR_EVENTS + 1, 250):
        work.append(
            (replay_actor, [make_event(replay_actor, v) for v in range(first, first + 250)])
        )
    per_actor = 100
    for a in range((NAMESPACE_EVENTS - REPLAY_ACTOR_EVENTS) // per_actor):
        actor = f"acct-{a:06d}"
        work.append((actor, [make_event(actor, v) for v in range(1, per_actor + 1)]))
    return replay_actor, work


async def populate_raw(nc: NATS, prefix: str, work: list[tuple[str, list[Event]]]) -> None:
    """Write the read workload with raw atomic batches (without aether's store)."""
    last: dict[str, int] = {}

    async def write(actor: str, events: list[Event]) -> None:
        payloads = [encode_event(e) for e in events]
        last[actor] = await raw_atomic_batch(nc, prefix + actor, payloads, last.get(actor, 0))

    await _per_actor_chains(work, write)


async def _per_actor_chains(
    work: list[tuple[str, list[Event]]], write: Callable[[str, list[Event]], Awaitable[Any]]
) -> None:
    # One actor's batches go one after the other; different actors' concurrently, at most
    # 32 batches in flight (the server allows 50 per stream).
    sem = asyncio.Semaphore(32)
    by_actor: dict[str, list[list[Event]]] = {}
    for actor, events in work:
        by_actor.setdefault(actor, []).append(events)

    async def chain(actor: str, batches: list[list[Event]]) -> None:
        for events in batches:
            async with sem:
                await write(actor, events)

    await asyncio.gather(*(chain(a, b) for a, b in by_actor.items()))


# --- aether's side ----------------------------------------------------------------------


async def open_aether(nc: NATS, namespace: str) -> Any | None:
    """aether's JetStream store on `nc` for `namespace`, or None if it is not available."""
    try:
        from aether.config import Settings
        from aether.store.jetstream import JetStreamEventStore
    except ImportError:
        return None
    return await JetStreamEventStore.from_client(nc, Settings(), namespace=namespace)


async def aether_sequential(store: Any, events: list[Event]) -> float:
    """``save_event`` one at a time; return seconds."""
    t0 = time.perf_counter()
    for e in events:
        await store.save_event(e)
    return time.perf_counter() - t0


async def aether_pipelined(store: Any, per_actor: list[list[Event]]) -> float:
    """One task per actor, each awaiting ``save_event`` of its next version; seconds."""

    async def actor(events: list[Event]) -> None:
        for e in events:
            await store.save_event(e)

    t0 = time.perf_counter()
    await asyncio.gather(*(actor(evs) for evs in per_actor))
    return time.perf_counter() - t0


async def aether_batches(store: Any, events: list[Event], size: int) -> float:
    """Consecutive ``save_events`` of `size` on one actor; seconds."""
    t0 = time.perf_counter()
    for i in range(0, len(events), size):
        await store.save_events(events[i : i + size])
    return time.perf_counter() - t0


async def aether_replay(store: Any, actor_id: str, expected: int) -> float:
    """``iter_events`` of one actor, decoded into `Event` objects; seconds."""
    t0 = time.perf_counter()
    n = 0
    async for _ in store.iter_events(actor_id):
        n += 1
    elapsed = time.perf_counter() - t0
    if n != expected:
        raise RuntimeError(f"aether replay read {n} of {expected} events")
    return elapsed


async def aether_read_all(store: Any, expected: int) -> float:
    """``read_all`` of the namespace, decoded; seconds."""
    t0 = time.perf_counter()
    n = 0
    async for _ in store.read_all():
        n += 1
    elapsed = time.perf_counter() - t0
    if n != expected:
        raise RuntimeError(f"aether read_all read {n} of {expected} events")
    return elapsed


async def aether_units(store: Any, tag: str, n: int) -> float:
    """`n` units of two actors x one event (``save_events``); seconds."""
    t0 = time.perf_counter()
    for v in range(1, n + 1):
        await store.save_events([make_event(f"from-{tag}", v), make_event(f"to-{tag}", v)])
    return time.perf_counter() - t0


async def aether_single_pairs(store: Any, tag: str, n: int) -> float:
    """The same events as `n` pairs of single ``save_event`` calls; seconds."""
    t0 = time.perf_counter()
    for v in range(1, n + 1):
        await store.save_event(make_event(f"from1-{tag}", v))
        await store.save_event(make_event(f"to1-{tag}", v))
    return time.perf_counter() - t0


# --- wire counts (the server's /connz) ----------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """What the server sent to (``msgs_in``/``bytes_in``) and received from one client
    connection, as its monitoring endpoint counts them."""

    msgs_in: int
    bytes_in: int
    msgs_out: int
    bytes_out: int

    def since(self, before: Wire) -> Wire:
        """The traffic between `before` and this count."""
        return Wire(
            self.msgs_in - before.msgs_in,
            self.bytes_in - before.bytes_in,
            self.msgs_out - before.msgs_out,
            self.bytes_out - before.bytes_out,
        )


async def wire_count(monitor: str, connection_name: str) -> Wire:
    """The counts of the connection named `connection_name` (the server's ``out_*`` are
    what the client received)."""
    import urllib.request

    def fetch() -> dict[str, Any]:
        with urllib.request.urlopen(f"{monitor}/connz?limit=4096", timeout=5) as r:
            return dict(json.loads(r.read()))

    for c in (await asyncio.to_thread(fetch))["connections"]:
        if c.get("name") == connection_name:
            return Wire(c["out_msgs"], c["out_bytes"], c["in_msgs"], c["in_bytes"])
    raise RuntimeError(f"the server lists no connection named {connection_name}")


async def read_slice_range(
    url: str, namespace: str, monitor: str | None, *, server_side: bool
) -> tuple[int, int, float, Wire | None]:
    """On a connection of its own: read the namespace's WANTED_SLICES, selected by the
    server (`server_side`) or by dropping the others in Python. Returns (wanted events,
    events received, seconds, what the server sent this connection during the read)."""
    from aether.subjects import slice_of

    name = f"aether-bench-reader-{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(url, name=name, max_reconnect_attempts=1)
    try:
        store = await open_aether(nc, namespace)
        assert store is not None
        before = await wire_count(monitor, name) if monitor else None
        wanted = received = 0
        t0 = time.perf_counter()
        if server_side:
            async for _ in store.read_all(slices=WANTED_SLICES):
                received += 1
            wanted = received
        else:
            async for e in store.read_all():
                received += 1
                if slice_of(e.actor_id) in WANTED_SLICES:
                    wanted += 1
        seconds = time.perf_counter() - t0
        wire = (await wire_count(monitor, name)).since(before) if monitor and before else None
        return wanted, received, seconds, wire
    finally:
        await nc.close()


async def stream_like(nc: NATS, template: str, name: str, subjects: list[str]) -> None:
    """Create stream `name` on `subjects` with the configuration of stream `template`."""
    info = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{template}", b"", timeout=5)).data)
    config = dict(info["config"])
    for key in ("name", "subjects", "metadata", "created", "sources", "mirror"):
        config.pop(key, None)
    config.update(name=name, subjects=subjects)
    resp = json.loads(
        (
            await nc.request(
                f"$JS.API.STREAM.CREATE.{name}", json.dumps(config).encode(), timeout=5
            )
        ).data
    )
    if "error" in resp:
        raise RuntimeError(f"cannot create stream {name}: {resp['error']}")


# --- the run ----------------------------------------------------------------------------


def result_row(case: str, aether: float | None, baseline: float, **extra: Any) -> dict[str, Any]:
    """One table row."""
    return {
        "case": case,
        "aether": aether,
        "baseline": baseline,
        "ratio": (aether / baseline) if aether is not None and baseline else None,
        **extra,
    }


class Bench:
    """One run: a raw connection, an aether connection, the streams it made."""

    def __init__(self, quick: bool, server_url: str, monitor: str | None = None) -> None:
        self.quick = quick
        self.sizes = QUICK if quick else FULL
        self.url = server_url
        self.monitor = monitor
        self.tag = uuid.uuid4().hex[:8]
        self.streams: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.aether_available = True
        self.phases: dict[str, float] = {}

    async def __aenter__(self) -> Bench:
        self.nc = await nats.connect(self.url, max_reconnect_attempts=1)
        self.js = self.nc.jetstream(publish_async_max_pending=4000)
        # aether on a connection of its own: its hooks never touch the raw baseline's
        self.anc = await nats.connect(self.url, max_reconnect_attempts=1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in self.streams:
            with contextlib.suppress(Exception):
                await self.js.delete_stream(s)
        await self.anc.close()
        await self.nc.close()

    def phase(self, what: str, t0: float) -> None:
        """Note on stderr how long a phase took (wall clock)."""
        seconds = time.perf_counter() - t0
        self.phases[what] = round(seconds, 2)
        print(f"  {what}: {seconds:.1f}s", file=sys.stderr)

    async def streams_for(self, case: str) -> tuple[Any | None, str]:
        """aether's store for `case` and a raw stream configured like aether's; returns
        (store or None, raw subject prefix)."""
        ns = f"bench_{self.tag}_{case}"
        store = await open_aether(self.anc, ns) if self.aether_available else None
        raw = f"RAW_{self.tag}_{case}"
        prefix = f"raw.{self.tag}.{case}.events."
        if store is None:
            self.aether_available = False
            await self.js.add_stream(stream_config(raw, [prefix + "*"]))
        else:
            self.streams += [store.stream, f"{store.stream}_SNAPSHOTS"]
            await stream_like(self.nc, store.stream, raw, [prefix + "*"])
        self.streams.append(raw)
        return store, prefix

    async def sequential(self) -> None:
        """Case 1."""
        n = self.sizes.sequential
        store, prefix = await self.streams_for("seq")
        best = Best()
        for r in range(self.sizes.trials):
            actor = f"seq-{r}"
            payloads = [encode_event(make_event(actor, v)) for v in range(1, n + 1)]
            await best.measure("raw", n, raw_sequential(self.js, prefix + actor, payloads))
            if store is not None:
                events = [make_event(actor, v) for v in range(1, n + 1)]
                await best.measure("aether", n, aether_sequential(store, events))
        self.rows.append(best.row("sequential", "raw"))

    async def pipelined(self) -> None:
        """Case 2."""
        rounds = self.sizes.pipelined_rounds
        n = rounds * PIPELINE_ACTORS
        store, prefix = await self.streams_for("pipe")
        payload = encode_event(make_event("acct-000000", 1))
        best = Best()
        variants = {
            "publish_async": raw_publish_async_rounds,
            "publish_async_chains": raw_publish_async_chains,
            "gathered_publish": raw_gathered_publish,
        }
        for r in range(self.sizes.trials):
            for name, fn in variants.items():
                subjects = [f"{prefix}{name}-{r}-{a}" for a in range(PIPELINE_ACTORS)]
                await best.measure(name, n, fn(self.js, subjects, payload, rounds))
            per_actor = [
                [make_event(f"pipe-{r}-{a}", v) for v in range(1, rounds + 1)]
                for a in range(PIPELINE_ACTORS)
            ]
            subjects = [f"{prefix}pipe-enc-{r}-{a}" for a in range(PIPELINE_ACTORS)]
            work = raw_publish_async_chains_encoding(self.js, subjects, per_actor)
            await best.measure("publish_async_chains_encoding", n, work)
            if store is not None:
                per_actor = [
                    [make_event(f"pipe-{r}-{a}", v) for v in range(1, rounds + 1)]
                    for a in range(PIPELINE_ACTORS)
                ]
                await best.measure("aether", n, aether_pipelined(store, per_actor))
        baseline = max(("publish_async", "publish_async_chains"), key=lambda k: best.rate[k])
        self.rows.append(best.row("pipelined", baseline))
        self.rows.append(best.row("pipelined, raw encodes", "publish_async_chains_encoding"))

    async def batches(self, size: int, count: int) -> None:
        """Case 3."""
        n = size * count
        store, prefix = await self.streams_for(f"batch{size}")
        best = Best()
        for r in range(self.sizes.trials):
            actor = f"batch-{r}"
            payloads = [encode_event(make_event(actor, v)) for v in range(1, n + 1)]
            await best.measure("raw", n, raw_batches(self.nc, prefix + actor, payloads, size))
            if store is not None:
                events = [make_event(actor, v) for v in range(1, n + 1)]
                await best.measure("aether", n, aether_batches(store, events, size))
        self.rows.append(best.row(f"batch{size}", "raw"))

    async def reads(self) -> None:
        """Cases 4 and 5: populate a 50,000-event namespace, then read it both ways."""
        store, prefix = await self.streams_for("read")
        replay_actor, work = read_workload()
        t0 = time.perf_counter()
        if store is not None:
            from aether.subjects import events_subject, events_wildcard

            async def write(actor: str, events: list[Event]) -> None:
                await store.save_events(events)

            await _per_actor_chains(work, write)
            stream = store.stream
            actor_subject = events_subject(store.namespace, replay_actor)
            all_subject = events_wildcard(store.namespace)
        else:
            await populate_raw(self.nc, prefix, work)
            stream = f"RAW_{self.tag}_read"
            actor_subject, all_subject = prefix + replay_actor, prefix + "*"
        self.phase(f"populate {NAMESPACE_EVENTS} events", t0)
        for case, subject, expected, readers in (
            ("replay", actor_subject, REPLAY_ACTOR_EVENTS, REPLAY_READERS),
            ("read_all", all_subject, NAMESPACE_EVENTS, READ_ALL_READERS),
        ):
            best = Best()
            for _ in range(self.sizes.read_repeats):
                for name in readers:
                    reader = RAW_READERS[name]
                    await best.measure(
                        name, expected, reader(self.nc, self.js, stream, subject, expected)
                    )
                if store is not None:
                    if case == "replay":
                        coro = aether_replay(store, replay_actor, expected)
                    else:
                        coro = aether_read_all(store, expected)
                    await best.measure("aether", expected, coro)
            fastest = max(readers, key=lambda k: best.rate[k])
            self.rows.append(best.row(case, fastest))

    async def units(self) -> None:
        """Case 6."""
        n = self.sizes.units
        store, prefix = await self.streams_for("unit")
        best = Best()
        for r in range(self.sizes.trials):
            await best.measure("raw_atomic_batch", 2 * n, raw_units(self.nc, prefix, str(r), n))
            if store is not None:
                await best.measure("aether", 2 * n, aether_units(store, str(r), n))
                await best.measure("two_single_saves", 2 * n, aether_single_pairs(store, str(r), n))
        if store is not None:
            self.rows.append(best.row("unit2", "two_single_saves"))

    async def slices(self) -> None:
        """Case 7: populate SLICE_EVENTS events over SLICE_ACTORS actors, then read 1/8 of
        the slices both ways, each read on a fresh connection whose traffic is counted."""
        store, _prefix = await self.streams_for("slice")
        if store is None:
            return
        total = SLICE_EVENTS[self.quick]
        per_actor = total // SLICE_ACTORS
        work = [
            (f"acct-{a:05d}", [make_event(f"acct-{a:05d}", v) for v in range(1, per_actor + 1)])
            for a in range(SLICE_ACTORS)
        ]
        t0 = time.perf_counter()

        async def write(actor: str, events: list[Event]) -> None:
            await store.save_events(events)

        await _per_actor_chains(work, write)
        self.phase(f"populate {total} events", t0)
        rates: dict[str, float] = {}
        wires: dict[str, Wire | None] = {}
        counts: dict[str, tuple[int, int]] = {}
        for _ in range(self.sizes.read_repeats):
            for side, server_side in (("aether", True), ("client_filter", False)):
                wanted, received, seconds, wire = await read_slice_range(
                    self.url, store.namespace, self.monitor, server_side=server_side
                )
                if rate(wanted, seconds) > rates.get(side, 0.0):
                    rates[side] = rate(wanted, seconds)
                wires[side] = wire
                counts[side] = (wanted, received)
        if counts["aether"][0] != counts["client_filter"][0]:
            raise RuntimeError(f"the two reads disagree on the wanted events: {counts}")
        self.rows.append(
            result_row(
                "slice1/8",
                rates["aether"],
                rates["client_filter"],
                baseline_transport="client_filter",
                raw={"client_filter": rates["client_filter"]},
                cpu_us_per_event={},
                unit="wanted events/s",
                total_events=total,
                wanted_events=counts["aether"][0],
                received_events={k: v[1] for k, v in counts.items()},
                wire={
                    k: None if w is None else {"msgs": w.msgs_in, "bytes": w.bytes_in}
                    for k, w in wires.items()
                },
            )
        )


class Best:
    """Per side (aether, or a raw variant): the best events/s over the trials and the
    least client CPU per event (microseconds; the server's CPU is not counted)."""

    def __init__(self) -> None:
        self.rate: dict[str, float] = {}
        self.cpu_us: dict[str, float] = {}

    async def measure(self, side: str, count: int, work: Awaitable[float]) -> None:
        """Await `work` (it returns the seconds its timed part took) and keep the best.

        Every side starts from a collected heap: a full collection landing inside one
        short trial (tens of milliseconds) would otherwise decide its figure."""
        gc.collect()
        c0 = time.process_time()
        seconds = await work
        cpu = time.process_time() - c0
        self.rate[side] = max(self.rate.get(side, 0.0), rate(count, seconds))
        self.cpu_us[side] = min(self.cpu_us.get(side, float("inf")), cpu / count * 1e6)

    def row(self, case: str, baseline: str) -> dict[str, Any]:
        """The table row, `baseline` naming the raw variant compared against."""
        raw = {k: v for k, v in self.rate.items() if k != "aether"}
        return result_row(
            case,
            self.rate.get("aether"),
            self.rate[baseline],
            baseline_transport=baseline,
            raw=raw,
            cpu_us_per_event={k: round(v, 1) for k, v in self.cpu_us.items()},
        )


async def run_async(quick: bool, server_url: str, monitor: str | None = None) -> dict[str, Any]:
    """Every case against the server at `server_url` (its monitoring endpoint `monitor`
    counts the slice readers' traffic, when given); return all figures."""
    async with Bench(quick, server_url, monitor) as b:
        for what, step in (
            ("sequential", b.sequential),
            ("pipelined", b.pipelined),
            ("batch10", lambda: b.batches(10, b.sizes.batches10)),
            ("batch100", lambda: b.batches(100, b.sizes.batches100)),
            ("reads", b.reads),
            ("unit2", b.units),
            ("slice1/8", b.slices),
        ):
            t0 = time.perf_counter()
            await step()
            b.phase(what, t0)
        return {
            "payload_bytes": payload_size(),
            "quick": quick,
            "aether": b.aether_available,
            "rows": b.rows,
            "phase_seconds": b.phases,
        }


def print_table(result: dict[str, Any]) -> None:
    """The human table: events/s, ratio, and client CPU per event (us) of each side."""
    head = f"{'case':<22} {'aether ev/s':>11} {'baseline ev/s':>13} {'ratio':>6}"
    print(head + "  baseline (raw variants ev/s; client CPU us/event)")
    for r in result["rows"]:
        a = f"{r['aether']:,.0f}" if r["aether"] is not None else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        cpu = r["cpu_us_per_event"]
        others = [(k, v) for k, v in r["raw"].items() if k != r["baseline_transport"]]
        raw = ", ".join(f"{k} {v:,.0f}" for k, v in others)
        detail = r["baseline_transport"] + (f" (others: {raw})" if raw else "")
        cpus = " / ".join(f"{k} {v:g}" for k, v in cpu.items())
        extra = f"; cpu {cpus}" if cpus else ""
        if r.get("wire"):
            extra += "; server sent " + ", ".join(
                f"{k} {w['msgs']:,} msgs / {w['bytes']:,} B" if w else f"{k} -"
                for k, w in r["wire"].items()
            )
        print(f"{r['case']:<22} {a:>11} {r['baseline']:>13,.0f} {ratio:>6}  {detail}{extra}")


def run(quick: bool = True, server_url: str | None = None) -> dict[str, Any]:
    """Run the benchmark (starting a nats-server unless `server_url`); return the figures."""
    if server_url is not None:
        return asyncio.run(run_async(quick, server_url))
    from tests.servers import NatsServer, free_port, wait_jetstream_ready

    with tempfile.TemporaryDirectory(prefix="aether-bench-js-") as tmp:
        http = free_port()
        server = NatsServer(
            store_dir=Path(tmp) / "js", name="aether-bench", extra_config=f"http: 127.0.0.1:{http}"
        )
        server.start()
        try:
            wait_jetstream_ready([server.url])
            return asyncio.run(run_async(quick, server.url, f"http://127.0.0.1:{http}"))
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m benchmarks.store_jetstream [--quick|--full] [--server URL]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True, help="short run (default)")
    mode.add_argument("--full", action="store_true", help="longer run, steadier figures")
    parser.add_argument("--server", default=None, help="use this NATS URL, start no server")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the nats-server this script started is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    result = run(quick=not args.full, server_url=args.server)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
