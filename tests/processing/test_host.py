"""`ProcessorHost` without a cluster, its stats, and `ClusterNode(processors=)` input."""

from __future__ import annotations

import pytest

from aether.cluster import ClusterNode
from aether.errors import ValidationError
from aether.observability import ProcessorStats, ProcessorStatsSource
from aether.processing import ProcessorHost, processor_status, wait_for
from aether.store.base import EventStore
from tests.processing.helpers import MemoryProjection, Workload, direct_fold


async def test_a_host_runs_every_processor_over_all_slices(store: EventStore) -> None:
    w = Workload(10)
    await w.append(store, 100)
    a, b = MemoryProjection("one"), MemoryProjection("two")
    host = ProcessorHost(store, [a, b], idle_interval=0.05)
    assert isinstance(host, ProcessorStatsSource)
    await host.start()
    head = await store.last_position()
    await wait_for(host, "one", head, timeout=30)
    await wait_for(host, "two", head, timeout=30)
    fold = await direct_fold(store)
    assert a.totals == fold and b.totals == fold
    stats = host.processor_stats()
    assert [s.processor for s in stats] == ["one", "two"]
    assert all(isinstance(s, ProcessorStats) for s in stats)
    assert all(s.handled == 100 and s.shard is None for s in stats)
    assert [s.state for s in host.statuses()] == ["running", "running"]
    await host.stop()
    durable = await processor_status(store)
    assert [(s.processor, s.state, s.checkpoint) for s in durable] == [
        ("one", "idle", head),
        ("two", "idle", head),
    ]


async def test_bad_processors_are_refused(store: EventStore) -> None:
    p = MemoryProjection("same")
    with pytest.raises(ValidationError) as info:
        ProcessorHost(store, [p, MemoryProjection("same")])
    assert info.value.field == "processors[1].name"
    with pytest.raises(ValidationError):
        ProcessorHost(store, p)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ProcessorHost(None, [p])
    with pytest.raises(ValidationError):
        ClusterNode(processors=[p, MemoryProjection("same")], shard_count=4)


@pytest.mark.parametrize("kind", ["memory"])
async def test_stats_reach_the_metrics_registry(store: EventStore) -> None:
    pytest.importorskip("prometheus_client")
    from aether.observability import register_processor_stats, registry

    w = Workload(3)
    await w.append(store, 10)
    host = ProcessorHost(store, [MemoryProjection("metered")], idle_interval=0.05)
    await host.start()
    await wait_for(host, "metered", await store.last_position(), timeout=30)
    reg = register_processor_stats(host)
    try:
        value = registry().get_sample_value(
            "aether_processor_handled_events_total", {"processor": "metered", "shard": ""}
        )
        assert value == 10
    finally:
        reg.close()
        await host.stop()


@pytest.mark.parametrize("kind", ["memory"])
async def test_a_cancelled_supervisor_ends_instead_of_restarting(store: EventStore) -> None:
    # asyncio.run() cancels every task at exit, supervisors and runners together:
    # a supervisor that swallowed its own cancellation restarted runners forever.
    import asyncio

    host = ProcessorHost(store, [MemoryProjection("cancelled")], idle_interval=0.05)
    await host.start()
    supervisors = list(host._supervisors.values())
    runners = dict(host._runners)
    assert supervisors and runners
    for r in runners.values():
        assert r._task is not None
        r._task.cancel()
    for t in supervisors:
        t.cancel()
    done, pending = await asyncio.wait(supervisors, timeout=5)
    assert not pending, "a cancelled supervisor kept running"
    assert all(t.cancelled() for t in done)
    await asyncio.sleep(0.5)  # longer than the first restart delay
    assert host._runners == runners, "a runner was restarted after cancellation"
    await host.stop()
