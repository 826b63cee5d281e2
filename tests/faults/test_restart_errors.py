"""What callers see while the single server is down or restarting: retriable errors only,
publishes issued while disconnected complete once it is back, no asyncio noise."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from aether.errors import NatsUnavailableError, UnsupportedServerError
from aether.store.jetstream import JetStreamEventStore
from tests.faults.helpers import ev, fault_settings
from tests.servers import NatsServer


async def test_publish_while_disconnected_completes_after_reconnect(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    store = await JetStreamEventStore.open(
        fault_settings([nats_server.url], **{"jetstream.publish_timeout": "20s"})
    )
    await store.save_event(ev("a", 1))
    await asyncio.to_thread(nats_server.stop)
    pending = [asyncio.ensure_future(store.save_event(ev(f"b{i}", 1))) for i in range(20)]
    pending.append(asyncio.ensure_future(store.save_event(ev("a", 2))))
    pending.append(asyncio.ensure_future(store.save_events([ev("c", 1), ev("d", 1)])))
    await asyncio.sleep(1)
    await asyncio.to_thread(nats_server.start)
    results = await asyncio.wait_for(asyncio.gather(*pending), 30)
    assert [e.version for e in results[:21]] == [1] * 20 + [2]
    assert await store.get_latest_version("a") == 2
    assert len({e.position for e in results[:21]}) == 21
    assert [e.version for e in results[21]] == [1, 1]
    assert await store.list_actors() == {"a": 2, "c": 1, "d": 1} | {f"b{i}": 1 for i in range(20)}
    await store.close()
    gc.collect()
    await asyncio.sleep(0)
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"]


async def test_reads_while_the_server_is_down_are_retriable(nats_server: NatsServer) -> None:
    store = await JetStreamEventStore.open(
        fault_settings([nats_server.url], **{"jetstream.publish_timeout": "500ms"})
    )
    await store.save_event(ev("a", 1))
    await asyncio.to_thread(nats_server.stop)
    for call in (store.get_latest_version("a"), store.get_events("a"), store.last_position()):
        with pytest.raises(NatsUnavailableError) as info:
            await call
        assert info.value.retriable and not isinstance(info.value, UnsupportedServerError)
    await asyncio.to_thread(nats_server.start)
    for _ in range(100):
        try:
            assert await store.get_latest_version("a") == 1
            break
        except NatsUnavailableError:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("the store did not recover")
    assert [e.version for e in await store.get_events("a")] == [1]
    await store.close()
