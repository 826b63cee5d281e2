"""Balanced sticky assignment, hand-off planning and the shard map's JSON (pure, hypothesis)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether.cluster.shards import (
    Move,
    ShardMap,
    assign,
    compact_ranges,
    decode_shard_map,
    diff_owners,
    encode_shard_map,
    plan_next,
    quotas,
)
from aether.errors import ClusterError, InvalidIdentifierError, ValidationError

node_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=1,
    max_size=20,
)
node_sets = st.sets(node_ids, min_size=1, max_size=12)
shard_counts = st.integers(min_value=1, max_value=256)
# pure-Python hashing on a shared 2-core machine: no per-example deadline
quick = settings(deadline=None, max_examples=50)


@quick
@given(node_sets, shard_counts)
def test_every_shard_has_exactly_one_live_owner(nodes: set[str], s: int) -> None:
    owners = assign(s, nodes)
    assert len(owners) == s
    assert all(o in nodes for o in owners)


@quick
@given(node_sets, shard_counts, st.randoms(use_true_random=False))
def test_assignment_does_not_depend_on_order(nodes: set[str], s: int, rnd: random.Random) -> None:
    listed = sorted(nodes)
    shuffled = listed[:]
    rnd.shuffle(shuffled)
    assert assign(s, listed) == assign(s, shuffled) == assign(s, shuffled + listed[:1])


@quick
@given(st.sets(node_ids, min_size=2, max_size=12), shard_counts, st.data())
def test_removing_a_node_moves_only_its_shards(
    nodes: set[str], s: int, data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(sorted(nodes)))
    before = assign(s, nodes)
    after = assign(s, nodes - {gone}, current=before)
    moves = diff_owners(before, after)
    assert all(m.source == gone for m in moves)
    assert len(moves) == before.count(gone)
    assert gone not in after


@settings(deadline=None, max_examples=30)
@given(st.sets(node_ids, min_size=1, max_size=12), st.integers(1, 1024), node_ids)
def test_adding_a_node_moves_s_over_n_plus_1_onto_it_only(
    nodes: set[str], s: int, new: str
) -> None:
    if new in nodes:
        return
    n = len(nodes)
    before = assign(s, nodes)
    after = assign(s, nodes | {new}, current=before)
    moves = diff_owners(before, after)
    assert all(m.target == new for m in moves)  # only to the newcomer
    assert s // (n + 1) <= len(moves) <= -(-s // (n + 1))


@quick
@given(st.sets(node_ids, min_size=1, max_size=12), st.integers(1, 1024), st.data())
def test_balanced_after_any_history(nodes: set[str], s: int, data: st.DataObject) -> None:
    # Joins and leaves in any order keep every live node at floor or ceil of S/n.
    current = assign(s, nodes)
    live = set(nodes)
    for _ in range(4):
        if len(live) > 1 and data.draw(st.booleans()):
            live.discard(data.draw(st.sampled_from(sorted(live))))
        else:
            live.add(data.draw(node_ids))
        current = assign(s, live, current=current)
        counts = [current.count(x) for x in live]
        assert sum(counts) == s
        assert min(counts) >= s // len(live) and max(counts) <= -(-s // len(live))


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("s", [64, 256, 1024])
def test_balance_at_3_5_10_nodes(n: int, s: int) -> None:
    rnd = random.Random(n * 7919 + s)
    for _ in range(20):
        nodes = {f"node-{rnd.randrange(10**9)}" for _ in range(n)}
        owners = assign(s, nodes)
        counts = [owners.count(x) for x in nodes]
        assert min(counts) > 0
        assert max(counts) / (s / len(nodes)) <= 1.25


def test_plain_rendezvous_is_unbalanced_which_is_why_quotas() -> None:
    from aether.cluster.shards import rendezvous_owner

    nodes = sorted(f"n{i}" for i in range(10))
    owners = [rendezvous_owner(s, nodes) for s in range(64)]
    assert max(owners.count(x) for x in nodes) / 6.4 > 1.25


def test_weights_skew_the_share() -> None:
    owners = assign(1024, ["a", "b", "c"], {"a": 2.0, "b": 1.0, "c": 1.0})
    assert owners.count("a") == 512 and owners.count("b") == owners.count("c") == 256
    assert assign(64, ["a", "b"], {"a": 3, "b": 3}) == assign(64, ["a", "b"])
    # a tiny weight still gets a shard while there are enough
    tiny = assign(8, ["a", "b"], {"a": 1000.0, "b": 0.001})
    assert tiny.count("b") == 1


def test_quotas_sum_and_prefer_current_holders() -> None:
    q = quotas(10, ["a", "b", "c"], held={"c": 4, "a": 3, "b": 3})
    assert sum(q.values()) == 10 and q["c"] == 4


@pytest.mark.parametrize(
    ("nodes", "weights", "field"),
    [
        ([], None, "nodes"),
        ("abc", None, "nodes"),
        (["a b"], None, "nodes"),
        (["a", "b"], {"a": 0}, "weights[a]"),
        (["a", "b"], {"a": math.nan}, "weights[a]"),
    ],
)
def test_bad_assignment_input(nodes: object, weights: object, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        assign(8, nodes, weights)  # type: ignore[arg-type]
    assert e.value.field == field
    if field == "nodes" and nodes == ["a b"]:
        assert isinstance(e.value, InvalidIdentifierError)


def test_plan_first_map_then_nothing_to_do() -> None:
    m = plan_next(None, {"a": 0, "b": 0}, shard_count=16, term=7)
    assert m is not None and m.epoch == 1 and m.term == 7 and m.settled
    assert plan_next(m, {"a": 1, "b": 1}, shard_count=16, term=7) is None


def test_planned_move_releases_before_it_acquires() -> None:
    m1 = plan_next(None, {"a": 0}, shard_count=32, term=1)
    assert m1 is not None and m1.nodes == {"a"}
    # b joins: a still owns the moving shards, so they go into hand-off first
    m2 = plan_next(m1, {"a": 1, "b": 0}, shard_count=32, term=1)
    assert m2 is not None and not m2.settled and m2.epoch == 2
    moving = {h.shard for h in m2.handoffs}
    assert moving and all(m2.owner(s) is None for s in moving)
    assert all(h.source == "a" and h.target == "b" for h in m2.handoffs)
    assert "b" not in m2.nodes
    # a has not acknowledged epoch 2 yet: nothing changes
    assert plan_next(m2, {"a": 1, "b": 2}, shard_count=32, term=1) is None
    # a acknowledged: b gets them
    m3 = plan_next(m2, {"a": 2, "b": 2}, shard_count=32, term=1)
    assert m3 is not None and m3.settled and m3.shards_of("b") == frozenset(moving)
    assert m3.epoch == 3


def test_dead_owner_moves_at_once_and_dead_source_ends_hand_off() -> None:
    m1 = plan_next(None, {"a": 0, "b": 0}, shard_count=32, term=1)
    assert m1 is not None
    m2 = plan_next(m1, {"a": 1}, shard_count=32, term=2)  # b died
    assert m2 is not None and m2.settled and m2.nodes == {"a"} and m2.term == 2
    m3 = plan_next(m2, {"a": 2, "c": 0}, shard_count=32, term=2)
    assert m3 is not None and m3.handoffs
    m4 = plan_next(m3, {"c": 0}, shard_count=32, term=2)  # a died during hand-off
    assert m4 is not None and m4.settled and m4.nodes == {"c"}


def test_shard_count_mismatch_is_refused() -> None:
    m = plan_next(None, {"a": 0}, shard_count=8, term=1)
    with pytest.raises(ClusterError, match="shard_count"):
        plan_next(m, {"a": 1}, shard_count=16, term=1)


@quick
@given(node_sets, shard_counts, st.integers(0, 2**40), st.integers(0, 2**40))
def test_json_round_trip(nodes: set[str], s: int, epoch: int, term: int) -> None:
    owners = list(assign(s, nodes))
    handoffs = []
    if s > 1:
        owners[0] = None
        handoffs.append(Move(0, sorted(nodes)[0], sorted(nodes)[-1]))
    m = ShardMap(epoch=epoch, term=term, owners=tuple(owners), handoffs=tuple(handoffs))
    assert decode_shard_map(encode_shard_map(m)) == m


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"format": 2}',
        b'{"format":1,"epoch":1,"term":1,"shard_count":2,"nodes":["a"],"owners":[0]}',
        b'{"format":1,"epoch":1,"term":1,"shard_count":1,"nodes":["a"],"owners":[5]}',
    ],
)
def test_malformed_json_is_a_cluster_error(raw: bytes) -> None:
    with pytest.raises(ClusterError):
        decode_shard_map(raw)


def test_diff_names_the_moves() -> None:
    a = ShardMap(1, 1, ("x", "x", "y"))
    b = ShardMap(2, 1, ("x", "y", "y"))
    assert a.diff(b) == [Move(1, "x", "y")]
    with pytest.raises(ValidationError):
        diff_owners(("x",), ("x", "y"))


def test_compact_ranges() -> None:
    assert compact_ranges([0, 1, 2, 3, 7, 9, 10, 11, 12]) == "0-3,7,9-12"
    assert compact_ranges([]) == "-"
    assert compact_ranges([5]) == "5"


def test_shard_map_validates() -> None:
    with pytest.raises(ValidationError) as e:
        ShardMap(-1, 0, ("a",))
    assert e.value.field == "epoch"
    with pytest.raises(ValidationError) as e:
        ShardMap(1, 0, ("a",), (Move(0, "a", "b"),))
    assert e.value.field == "handoffs"
