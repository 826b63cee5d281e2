"""ClusterNode on a real nats-server: election, fail-over, hand-off, fencing, membership."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from aether.cluster import ClusterNode, fenced_put, read_status
from aether.cluster.election import LEADER_KEY
from aether.cluster.shards import assign, encode_shard_map
from aether.cluster.status import SHARDMAP_KEY
from aether.connect import connect
from aether.errors import ClusterError, StaleTermError, ValidationError
from tests.cluster.helpers import (
    HEARTBEAT,
    LEASE,
    NODE_TTL,
    SLACK,
    Ownership,
    cluster_settings,
    describe,
    leaders,
    settled_on,
    wait_until,
)
from tests.servers import NatsServer

S = 32


@pytest.fixture
async def make_node(nats_server: NatsServer) -> AsyncIterator:
    started: list[ClusterNode] = []

    async def make(node_id: str, **kw: object) -> ClusterNode:
        opts: dict[str, object] = {
            "shard_count": S,
            "heartbeat": HEARTBEAT,
            "lease": LEASE,
            "node_ttl": NODE_TTL,
        }
        opts.update(kw)
        node = ClusterNode(cluster_settings(nats_server.url), node_id, **opts)  # type: ignore[arg-type]
        await node.start()
        started.append(node)
        return node

    yield make
    for n in started:
        await n.abort()


async def start_three(make_node, own: Ownership | None = None) -> list[ClusterNode]:
    nodes = []
    for i in range(3):
        cbs = own.callbacks(f"n{i}") if own else {}
        nodes.append(await make_node(f"n{i}", **cbs))
    await wait_until(
        lambda: settled_on(nodes, S), 2 * SLACK, "3 nodes settle", lambda: describe(nodes)
    )
    return nodes


async def test_three_nodes_elect_one_leader_and_own_every_shard_once(
    make_node, nats_server
) -> None:
    own = Ownership()
    nodes = await start_three(make_node, own)
    assert len(leaders(nodes)) == 1
    assert not own.violations
    assert sorted(own.owner) == list(range(S))
    for n in nodes:
        for actor in ("user-1", "order-42", "a.b"):
            assert n.owner_of(actor) == nodes[0].owner_of(actor)
            assert n.owns(actor) == (n.owner_of(actor) == n.node_id)
    st = nodes[0].status()
    assert [x.info.node_id for x in st.nodes] == ["n0", "n1", "n2"]
    assert st.leader is not None and st.leader.node_id == leaders(nodes)[0].node_id
    assert sum(x.info.shards for x in st.nodes) <= S
    info = st.nodes[0].info
    assert info.pid > 0 and info.host and info.version and info.heartbeat >= info.started


async def test_leader_crash_elects_a_higher_term_and_reassigns_shards(make_node) -> None:
    own = Ownership()
    nodes = await start_three(make_node, own)
    old = leaders(nodes)[0]
    old_term = old.term
    assert old_term is not None
    await old.abort()  # a crash: no resign, no release, no deregister
    own.forget(old.node_id)
    rest = [n for n in nodes if n is not old]
    took = await wait_until(
        lambda: len(leaders(rest)) == 1,
        LEASE + HEARTBEAT + SLACK,
        "new leader",
        lambda: describe(rest),
    )
    new = leaders(rest)[0]
    assert new.term is not None and new.term > old_term, (new.term, old_term)
    await wait_until(
        lambda: settled_on(rest, S),
        NODE_TTL + SLACK,
        "dead node's shards move",
        lambda: describe(rest),
    )
    assert not own.violations
    assert set(own.owner.values()) == {n.node_id for n in rest}
    print(f"new leader after {took:.2f}s (lease {LEASE}s, heartbeat {HEARTBEAT}s)")


async def test_graceful_stop_fails_over_without_waiting_for_the_ttl(make_node) -> None:
    # A 10 s lease and TTL: a fail-over within a few seconds cannot come from expiry.
    kw = {"lease": 10.0, "node_ttl": 10.0, "heartbeat": 0.5}
    nodes = [await make_node(f"g{i}", **kw) for i in range(2)]
    await wait_until(lambda: settled_on(nodes, S), 2 * SLACK, "settle", lambda: describe(nodes))
    old = leaders(nodes)[0]
    other = next(n for n in nodes if n is not old)
    start = time.monotonic()
    await old.stop()
    assert old.shards == frozenset()
    await wait_until(
        lambda: other.is_leader, 5.0, "fail-over before the 10s lease", lambda: describe(nodes)
    )
    await wait_until(
        lambda: len(other.shards) == S, 5.0, "takes every shard", lambda: describe(nodes)
    )
    assert time.monotonic() - start < 10.0
    st = other.status()
    assert [x.info.node_id for x in st.nodes] == [other.node_id]


async def test_a_joining_node_takes_about_one_nth_released_before_acquired(make_node) -> None:
    own = Ownership()
    nodes = await start_three(make_node, own)
    before = nodes[0].shard_map
    assert before is not None
    joiner = await make_node("n3", **own.callbacks("n3"))
    everyone = [*nodes, joiner]
    await wait_until(
        lambda: settled_on(everyone, S), 2 * SLACK, "4 nodes settle", lambda: describe(everyone)
    )
    after = everyone[0].shard_map
    assert after is not None
    moves = before.diff(after)
    assert all(m.target == "n3" for m in moves), moves
    assert after.owners == assign(S, ["n0", "n1", "n2", "n3"], current=before.owners)
    # exactly its quota: floor or ceil of S/4, all taken by the joiner
    assert S // 4 <= len(moves) <= -(-S // 4), len(moves)
    assert not own.violations, own.violations  # nobody acquired a shard still held


async def test_a_paused_leader_demotes_itself_and_its_stale_write_is_refused(make_node) -> None:
    events: list[tuple[str, str, int]] = []

    def track(node_id: str) -> dict[str, object]:
        return {
            "on_elected": lambda t: events.append(("elected", node_id, t)),
            "on_demoted": lambda t: events.append(("demoted", node_id, t)),
        }

    nodes = [await make_node(f"p{i}", **track(f"p{i}")) for i in range(3)]
    await wait_until(lambda: settled_on(nodes, S), 2 * SLACK, "settle", lambda: describe(nodes))
    paused = leaders(nodes)[0]
    term = paused.term
    election = paused._election
    assert election is not None and term is not None
    last_revision = election.revision
    blocked = asyncio.Event()
    real_put = election.bucket.put

    async def put(key: str, value: bytes, **kw: object):  # renewals hang, like a partition
        if key == LEADER_KEY:
            await blocked.wait()
        return await real_put(key, value, **kw)  # type: ignore[arg-type]

    election.bucket.put = put  # type: ignore[method-assign]
    rest = [n for n in nodes if n is not paused]
    await wait_until(lambda: not paused.is_leader, LEASE + SLACK, "paused leader demotes itself")
    await wait_until(
        lambda: len(leaders(rest)) == 1, LEASE + SLACK, "new leader", lambda: describe(nodes)
    )
    new_term = leaders(rest)[0].term
    assert new_term is not None and new_term > term
    names = [(e[0], e[1]) for e in events]
    assert names.index(("demoted", paused.node_id)) < len(names) - 1 - names[::-1].index(
        ("elected", leaders(rest)[0].node_id)
    ), events  # it stepped down before the new leader was elected
    assert ("demoted", paused.node_id, term) in events
    smap = paused.shard_map
    assert smap is not None
    # the deposed leader's write: refused on the node...
    with pytest.raises(StaleTermError):
        await election.write(SHARDMAP_KEY, encode_shard_map(smap), term)
    # ...and by the server, with its last lease revision as the fence
    assert last_revision is not None
    before = await rest[0]._bucket.get(SHARDMAP_KEY)  # type: ignore[union-attr]
    with pytest.raises(StaleTermError):
        await fenced_put(rest[0]._bucket, SHARDMAP_KEY, b"{}", leader_revision=last_revision)  # type: ignore[arg-type]
    after = await rest[0]._bucket.get(SHARDMAP_KEY)  # type: ignore[union-attr]
    assert before is not None and after is not None and after.revision == before.revision
    blocked.set()


async def test_a_crashed_node_is_dead_for_everyone_after_the_ttl(make_node, nats_server) -> None:
    nodes = await start_three(make_node)
    victim = next(n for n in nodes if not n.is_leader)
    await victim.abort()
    rest = [n for n in nodes if n is not victim]
    await wait_until(
        lambda: all(victim.node_id not in {x.info.node_id for x in n.status().nodes} for n in rest),
        NODE_TTL + SLACK,
        "entry expires for every node",
    )
    nc = await connect(cluster_settings(nats_server.url))
    try:
        st = await read_status(nc, "ct")  # a fresh reader agrees: the server removed it
    finally:
        await nc.close()
    assert victim.node_id not in {x.info.node_id for x in st.nodes}
    assert st.leader is not None


async def test_stop_resigns_and_deregisters(make_node, nats_server) -> None:
    node = await make_node("solo")
    await wait_until(lambda: node.is_leader and len(node.shards) == S, SLACK, "solo leads")
    await node.stop()
    nc = await connect(cluster_settings(nats_server.url))
    try:
        st = await read_status(nc, "ct")
    finally:
        await nc.close()
    assert st.leader is None and st.nodes == ()
    with pytest.raises(ClusterError, match="cannot start again"):
        await node.start()


async def test_weights_skew_the_assignment(make_node) -> None:
    heavy = await make_node("heavy", weight=3.0, shard_count=64)
    light = await make_node("light", weight=1.0, shard_count=64)
    both = [heavy, light]
    await wait_until(lambda: settled_on(both, 64), SLACK, "settle", lambda: describe(both))
    assert heavy.shard_map is not None
    assert (len(heavy.shards), len(light.shards)) == (48, 16)  # quotas 3:1


async def test_a_node_id_in_use_is_refused(make_node) -> None:
    await make_node("dup")
    with pytest.raises(ClusterError, match="in use"):
        await make_node("dup")


async def test_a_different_shard_count_is_refused(make_node) -> None:
    a = await make_node("a")
    await wait_until(lambda: a.shard_map is not None, SLACK, "first map")
    with pytest.raises(ClusterError, match="shard_count"):
        await make_node("b", shard_count=S * 2)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"node_id": "a b"}, "node_id"),
        ({"shard_count": 0}, "shard_count"),
        ({"heartbeat": 0}, "heartbeat"),
        ({"heartbeat": 1.0, "lease": 1.5}, "lease"),
        ({"heartbeat": 1.0, "lease": 5.0, "node_ttl": 1.0}, "node_ttl"),
        ({"on_acquired": 5}, "on_acquired"),
    ],
)
def test_bad_arguments_are_rejected(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        ClusterNode(cluster_settings("nats://127.0.0.1:1"), **kw)  # type: ignore[arg-type]
    assert e.value.field == field


async def test_a_node_id_naming_a_task_stops_cleanly(make_node) -> None:
    # Tasks are held by reference: a node id containing "heartbeat" (or any task's name)
    # must not confuse stop().
    node = await make_node("heartbeat-1")
    other = await make_node("election-apply-leader")
    both = [node, other]
    await wait_until(lambda: settled_on(both, S), SLACK, "settle", lambda: describe(both))
    for n in both:
        tasks = list(n._tasks)
        assert tasks
        election = n._election
        assert election is not None
        resign = election.resign
        alive_at_resign: list[str] = []

        async def recording_resign(n=n, resign=resign, alive=alive_at_resign) -> None:  # type: ignore[no-untyped-def]
            alive.extend(t.get_name() for t in n._tasks if not t.done())
            await resign()

        election.resign = recording_resign  # type: ignore[method-assign]
        await n.stop()
        # only the heartbeat runs while the node resigns and releases
        assert alive_at_resign == [f"aether-heartbeat-{n.node_id}"], alive_at_resign
        assert all(t.done() for t in tasks), [t.get_name() for t in tasks if not t.done()]
        assert n._tasks == [] and n.shards == frozenset()


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, str, frozenset[int]]]) -> None:
        self.name, self.log = name, log

    async def on_acquired(self, shards: frozenset[int]) -> None:
        await asyncio.sleep(0)
        self.log.append((self.name, "acquired", shards))

    def on_released(self, shards: frozenset[int]) -> None:
        self.log.append((self.name, "released", shards))


async def test_several_listeners_observe_acquire_and_release(make_node) -> None:
    log: list[tuple[str, str, frozenset[int]]] = []
    first, second = Recorder("first", log), Recorder("second", log)

    def cb(shards: frozenset[int]) -> None:
        log.append(("callback", "acquired", shards))

    a = await make_node("a", listeners=[first], on_acquired=cb)
    a.add_listener(second)
    a.add_listener(second)  # once only
    assert a.listeners == (first, second)
    await wait_until(lambda: len(a.shards) == S, SLACK, "a owns everything")
    assert [(n, k) for n, k, _ in log] == [
        ("callback", "acquired"),
        ("first", "acquired"),
        ("second", "acquired"),
    ]
    assert all(s == frozenset(range(S)) for _, _, s in log)
    assert a.slices == frozenset(range(1024))
    log.clear()
    b = await make_node("b")
    both = [a, b]
    await wait_until(lambda: settled_on(both, S), SLACK, "settle", lambda: describe(both))
    released = [(n, s) for n, k, s in log if k == "released"]
    assert [n for n, _ in released] == ["second", "first"]  # reverse order
    assert released[0][1] == released[1][1] == frozenset(range(S)) - a.shards
    assert a.shard_map is not None and a.shard_map.revision > 0
    assert b.shard_map is not None and b.shard_map.revision == a.shard_map.revision
    a.remove_listener(first)
    assert a.listeners == (second,)
    with pytest.raises(ValidationError):
        a.add_listener(object())  # type: ignore[arg-type]
