"""A client in another language, following only the README's "Appending from another
language" steps (plain nats-py, none of aether's publishing code), appends events that
aether reads back, and is refused the way the README says."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import nats
import pytest
from nats.js.errors import APIError

from aether._xxh64 import xxh64_pure
from aether.config import Settings
from aether.store import open_store
from tests.servers import NatsServer

NS = "interop"
STREAM = f"AETHER_{NS}"


def foreign_subject(actor_id: str) -> str:
    """The events subject, computed from the README's rules alone."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", actor_id):
        token = actor_id
    else:
        token = "=" + base64.urlsafe_b64encode(actor_id.encode()).decode().rstrip("=")
    return f"aether.{NS}.events.{xxh64_pure(actor_id.encode()) % 1024}.{token}"


def foreign_event(
    actor_id: str, version: int, data: dict[str, Any], event_id: str | None = None
) -> tuple[str, bytes]:
    event_id = event_id or str(uuid.uuid4())
    body = {
        "id": event_id,
        "event_type": "Foreign",
        "actor_id": actor_id,
        "version": version,
        "data": data,
        "timestamp": "2026-01-02T03:04:05.000006Z",
        "metadata": {"client": "other-language"},
    }
    return event_id, json.dumps(body).encode()


async def test_a_foreign_client_appends_as_the_readme_says(nats_server: NatsServer) -> None:
    settings = Settings.load(
        overrides={"namespace": NS, "store": "jetstream", "nats.servers": [nats_server.url]},
        search_default_files=False,
    )
    store = await open_store(settings)  # creates the streams
    nc = await nats.connect(nats_server.url)
    try:
        from aether import Event

        await store.save_event(Event("Placed", "user@example.com", 1, {"n": 1}))
        js = nc.jetstream()
        subject = foreign_subject("user@example.com")

        # step 2: the actor's last event, from the stream leader
        last = await js.get_last_msg(STREAM, subject)
        version, seq = json.loads(last.data or b"")["version"], last.seq
        assert version == 1

        # step 3: publish version + 1 with both headers
        event_id, payload = foreign_event("user@example.com", version + 1, {"n": 2})
        headers = {"Nats-Expected-Last-Subject-Sequence": str(seq), "Nats-Msg-Id": event_id}
        ack = await js.publish(subject, payload, headers=headers)
        stored = await store.get_events("user@example.com")
        assert [(e.version, e.id, e.data) for e in stored] == [
            (1, stored[0].id, {"n": 1}),
            (2, event_id, {"n": 2}),
        ]
        assert stored[1].position == ack.seq

        # the same publish again (a retry after a lost ack): refused by the expectation;
        # the last event is the retried one, so it was stored once
        with pytest.raises(APIError) as refused:
            await js.publish(subject, payload, headers=headers)
        assert refused.value.err_code in (10071, 10164)
        assert json.loads((await js.get_last_msg(STREAM, subject)).data or b"")["id"] == event_id

        # another writer's event at the same version: refused the same way, nothing stored
        _, stale = foreign_event("user@example.com", version + 1, {"n": 3})
        with pytest.raises(APIError) as refused:
            await js.publish(
                subject, stale, headers={"Nats-Expected-Last-Subject-Sequence": str(seq)}
            )
        assert refused.value.err_code in (10071, 10164)
        assert await store.get_latest_version("user@example.com") == 2

        # an id used twice within the duplicate window: the ack says duplicate and names
        # the first message; published again without Nats-Msg-Id, it is stored
        _, reused = foreign_event("user@example.com", 3, {"n": 3}, event_id)
        expect = {"Nats-Expected-Last-Subject-Sequence": str(ack.seq)}
        dup = await js.publish(subject, reused, headers={**expect, "Nats-Msg-Id": event_id})
        assert dup.duplicate and dup.seq == ack.seq
        assert await store.get_latest_version("user@example.com") == 2
        third = await js.publish(subject, reused, headers=expect)
        assert not third.duplicate
        assert [e.id for e in await store.get_events("user@example.com", 3)] == [event_id]

        # step 4: an atomic batch over two new actors (expected sequence 0: no events yet)
        batch = str(uuid.uuid4())
        msgs = [foreign_event(a, 1, {"batch": True}) for a in ("x.1", "y-2")]
        first_headers = {
            "Nats-Batch-Id": batch,
            "Nats-Batch-Sequence": "1",
            "Nats-Expected-Last-Subject-Sequence": "0",
        }
        reply = await nc.request(foreign_subject("x.1"), msgs[0][1], 5, headers=first_headers)
        assert reply.data == b""  # the server takes the batch so far
        commit_headers = {
            "Nats-Batch-Id": batch,
            "Nats-Batch-Sequence": "2",
            "Nats-Batch-Commit": "1",
            "Nats-Expected-Last-Subject-Sequence": "0",
        }
        reply = await nc.request(foreign_subject("y-2"), msgs[1][1], 5, headers=commit_headers)
        assert json.loads(reply.data)["count"] == 2
        assert [e.id for e in await store.get_events("x.1")] == [msgs[0][0]]
        assert [e.id for e in await store.get_events("y-2")] == [msgs[1][0]]
        assert [(e.actor_id, e.version) async for e in store.read_all()] == [
            ("user@example.com", 1),
            ("user@example.com", 2),
            ("user@example.com", 3),
            ("x.1", 1),
            ("y-2", 1),
        ]
    finally:
        await nc.close()
        await store.close()
