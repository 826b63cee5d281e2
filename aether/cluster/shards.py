"""Shard assignment (pure, no I/O): rendezvous with bounded loads, the `ShardMap`, its JSON.

Every live node has a **quota**: its share ``S * weight / total_weight`` rounded down,
the ``S - sum`` remaining shards going one each to the nodes with the largest fractional
part (ties: the node holding more shards now, then the higher ``node_score(node, S)``),
and at least one shard per node while ``S >= n``. With equal weights every node gets
``floor(S/n)`` or ``ceil(S/n)`` shards: max/mean is at most ``ceil(S/n) / (S/n)``.

`assign` with a `current` assignment is **sticky**: each live node keeps up to its quota
of the shards it has now (those it scores highest), and only the others (a dead node's,
or those above a quota) are placed, each to the highest ``node_score(node, s)``
(``XXH64(utf8(node_id), seed=s)``) among the nodes still under quota, taken in descending
order of score over all (shard, node) pairs. So a node that leaves moves only its own
shards and a node that joins takes exactly its quota (``floor`` or ``ceil`` of
``S/(n+1)``), all from the others and onto itself only. Without `current` the same
placement runs from scratch (rendezvous hashing with bounded loads): the result depends
only on the node set, not on its order.

The map the leader publishes may hold shards *in hand-off*: their owner is ``None`` and
`ShardMap.handoffs` names the node that must release them (``source``) and the node that
will get them (``target``). The target is assigned only once the source has acknowledged
an epoch in which it no longer owns the shard, or has died (see `plan_next`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from aether.cluster.hashing import node_score, validate_shard_count
from aether.errors import ClusterError, ValidationError
from aether.subjects import validate_node_id

SHARD_MAP_FORMAT = 1
"""Version of the JSON encoding of a `ShardMap`."""


def _check_nodes(nodes: Iterable[str], field_name: str = "nodes") -> list[str]:
    if isinstance(nodes, str):
        raise ValidationError(field_name, "must be a collection of node ids, not a string")
    out = sorted({validate_node_id(n, field_name) for n in nodes})
    if not out:
        raise ValidationError(field_name, "must name at least one node")
    return out


def _check_weights(weights: Mapping[str, float] | None, nodes: Sequence[str]) -> dict[str, float]:
    if not weights:
        return {}
    out: dict[str, float] = {}
    for n in nodes:
        w = weights.get(n, 1.0)
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0:
            raise ValidationError(f"weights[{n}]", "must be a finite number > 0")
        out[n] = float(w)
    if len(set(out.values())) <= 1:
        return {}  # all equal: the unweighted (integer) comparison gives the same result
    return out


def rendezvous_owner(shard: int, nodes: Sequence[str]) -> str:
    """The node of `nodes` with the highest ``node_score(node, shard)`` (plain rendezvous)."""
    return max(sorted(nodes), key=lambda n: node_score(n, shard))


def quotas(
    shard_count: int,
    nodes: Iterable[str],
    weights: Mapping[str, float] | None = None,
    held: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """How many shards each node gets (see the module doc); the values sum to `shard_count`.

    `held` (node → shards it holds now) only breaks ties, so that as few shards as
    possible move.
    """
    validate_shard_count(shard_count)
    ordered = _check_nodes(nodes)
    w = _check_weights(weights, ordered)
    return _quotas(shard_count, tuple(ordered), w, dict(held or {}))


def _quotas(
    shard_count: int, nodes: Sequence[str], w: Mapping[str, float], held: Mapping[str, int]
) -> dict[str, int]:
    n = len(nodes)
    if not w:
        base, extra = divmod(shard_count, n)
        share = {x: base for x in nodes}
        frac = {x: 0.0 for x in nodes}
    else:
        total = sum(w.values())
        exact = {x: shard_count * w[x] / total for x in nodes}
        share = {x: math.floor(exact[x]) for x in nodes}
        frac = {x: exact[x] - share[x] for x in nodes}
        extra = shard_count - sum(share.values())
    order = sorted(nodes, key=lambda x: (-frac[x], -held.get(x, 0), -node_score(x, shard_count), x))
    for x in order[:extra]:
        share[x] += 1
    if shard_count >= n:  # nobody live is left without a shard: take from the largest
        for x in nodes:
            if share[x] == 0:
                richest = max(order, key=lambda y: (share[y], -order.index(y)))
                share[richest] -= 1
                share[x] = 1
    return share


def assign(
    shard_count: int,
    nodes: Iterable[str],
    weights: Mapping[str, float] | None = None,
    *,
    current: Sequence[str | None] | None = None,
) -> tuple[str, ...]:
    """The owner of every shard (index = shard) among `nodes` (see the module doc).

    The result does not depend on the order of `nodes`; duplicates count once. `weights`
    (node → positive number, default 1) skews the share of each node. `current` (one
    entry per shard: the node owning it now or about to, ``None`` for nobody) makes the
    assignment sticky: as few shards as possible move.
    """
    validate_shard_count(shard_count)
    ordered = _check_nodes(nodes)
    w = _check_weights(weights, ordered)
    if current is not None and len(current) != shard_count:
        raise ValidationError("current", f"must have {shard_count} entries")
    cur = tuple(current) if current is not None else (None,) * shard_count
    return _assign(shard_count, tuple(ordered), tuple(sorted(w.items())), cur)


@lru_cache(maxsize=64)
def _assign(
    shard_count: int,
    nodes: tuple[str, ...],
    weights: tuple[tuple[str, float], ...],
    current: tuple[str | None, ...],
) -> tuple[str, ...]:
    live = set(nodes)
    mine: dict[str, list[int]] = {x: [] for x in nodes}
    for s, o in enumerate(current):
        if o in live:
            mine[o].append(s)
    quota = _quotas(shard_count, nodes, dict(weights), {x: len(v) for x, v in mine.items()})
    owners: list[str | None] = [None] * shard_count
    room: dict[str, int] = {}
    for x in nodes:
        keep = sorted(mine[x], key=lambda s: -node_score(x, s))[: quota[x]]
        for s in keep:
            owners[s] = x
        room[x] = quota[x] - len(keep)
    open_nodes = [x for x in nodes if room[x] > 0]
    pairs = sorted(
        (
            (node_score(x, s), x, s)
            for s in range(shard_count)
            if owners[s] is None
            for x in open_nodes
        ),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    for _, x, s in pairs:
        if owners[s] is None and room[x] > 0:
            owners[s] = x
            room[x] -= 1
    assert all(o is not None for o in owners)
    return tuple(o for o in owners if o is not None)


@dataclass(frozen=True, order=True)
class Move:
    """Shard `shard` goes from `source` to `target` (``None``: nobody / in hand-off)."""

    shard: int
    source: str | None
    target: str | None


@dataclass(frozen=True)
class ShardMap:
    """Who owns which shard, as written by the leader of `term` at `epoch`.

    `owners[s]` is the node owning shard ``s``, or ``None`` while it is in hand-off
    (then `handoffs` has a `Move` for it naming the releasing and the receiving node).
    Shard ``s`` holds the slices ``aether.cluster.slices_of_shard(s, shard_count)``.
    """

    epoch: int
    term: int
    owners: tuple[str | None, ...]
    handoffs: tuple[Move, ...] = field(default=())
    revision: int = field(default=0, compare=False)
    """The bucket revision the map was read at or written with (0: not stored yet).

    Not part of the JSON; fence a hand-off on it (or on `epoch`, which only grows)."""

    def __post_init__(self) -> None:
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or self.epoch < 0:
            raise ValidationError("epoch", "must be an integer >= 0")
        if isinstance(self.term, bool) or not isinstance(self.term, int) or self.term < 0:
            raise ValidationError("term", "must be an integer >= 0")
        validate_shard_count(len(self.owners), "owners")
        for m in self.handoffs:
            if not 0 <= m.shard < len(self.owners) or self.owners[m.shard] is not None:
                raise ValidationError("handoffs", f"shard {m.shard} is not in hand-off")

    @property
    def shard_count(self) -> int:
        """How many shards the map covers."""
        return len(self.owners)

    @property
    def settled(self) -> bool:
        """Every shard has an owner (nothing is in hand-off)."""
        return not self.handoffs and all(o is not None for o in self.owners)

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes owning at least one shard."""
        return frozenset(o for o in self.owners if o is not None)

    def owner(self, shard: int) -> str | None:
        """The node owning `shard`, or ``None`` while it is in hand-off."""
        return self.owners[shard]

    def shards_of(self, node_id: str) -> frozenset[int]:
        """The shards `node_id` owns."""
        return frozenset(s for s, o in enumerate(self.owners) if o == node_id)

    def counts(self) -> dict[str, int]:
        """How many shards each owning node has."""
        out: dict[str, int] = {}
        for o in self.owners:
            if o is not None:
                out[o] = out.get(o, 0) + 1
        return out

    def intended(self) -> tuple[str | None, ...]:
        """The owner of every shard once the hand-offs complete (their targets)."""
        out = list(self.owners)
        for m in self.handoffs:
            out[m.shard] = m.target
        return tuple(out)

    def diff(self, newer: ShardMap) -> list[Move]:
        """The shards whose owner differs in `newer`, as moves from this map's owner."""
        return diff_owners(self.owners, newer.owners)


def diff_owners(old: Sequence[str | None], new: Sequence[str | None]) -> list[Move]:
    """The moves that turn assignment `old` into `new` (same shard count)."""
    if len(old) != len(new):
        raise ValidationError("owners", f"shard counts differ: {len(old)} and {len(new)}")
    return [Move(s, a, b) for s, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]


def plan_next(
    current: ShardMap | None,
    live: Mapping[str, int],
    *,
    shard_count: int,
    term: int,
    weights: Mapping[str, float] | None = None,
) -> ShardMap | None:
    """The map the leader should write next, or ``None`` when `current` needs no change.

    `live` maps every live node to the last epoch it has applied. The target is
    `assign` (sticky on the current map, hand-off targets included). A shard whose owner
    is dead moves to its target at once. A shard whose owner is alive but no
    longer its target goes into hand-off (owner ``None``) and is given to the target only
    in a later epoch, after the source has applied an epoch where it no longer owns it
    (``live[source] >= current.epoch``) or has died: a planned move always releases
    before it acquires.
    """
    validate_shard_count(shard_count)
    if not live:
        return None
    if current is None:
        return ShardMap(epoch=1, term=term, owners=assign(shard_count, live, weights))
    if current.shard_count != shard_count:
        raise ClusterError(
            f"shard_count: the cluster map has {current.shard_count} shards, this node "
            f"was configured with {shard_count}"
        )
    target = assign(shard_count, live, weights, current=current.intended())
    pending = {m.shard: m for m in current.handoffs}
    owners = list(current.owners)
    handoffs: list[Move] = []
    for s in range(shard_count):
        have, want = owners[s], target[s]
        if have == want:
            continue
        if have is None:
            h = pending.get(s)
            if (
                h is None
                or h.source is None
                or h.source not in live
                or live[h.source] >= current.epoch
            ):
                owners[s] = want
            else:
                handoffs.append(Move(s, h.source, want))
        elif have not in live:
            owners[s] = want
        else:
            owners[s] = None
            handoffs.append(Move(s, have, want))
    if tuple(owners) == current.owners and tuple(handoffs) == current.handoffs:
        return None
    return ShardMap(
        epoch=current.epoch + 1, term=term, owners=tuple(owners), handoffs=tuple(handoffs)
    )


def compact_ranges(shards: Iterable[int]) -> str:
    """``0-3,7,9-12`` for shards {0,1,2,3,7,9,10,11,12}; ``-`` for none."""
    items = sorted(set(shards))
    if not items:
        return "-"
    parts: list[str] = []
    start = prev = items[0]
    for s in items[1:]:
        if s == prev + 1:
            prev = s
            continue
        parts.append(f"{start}-{prev}" if prev > start else str(start))
        start = prev = s
    parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(parts)


def encode_shard_map(m: ShardMap) -> bytes:
    """The JSON form: owners as indexes into a sorted node list (-1: in hand-off).

    ``{"format":1,"epoch":E,"term":T,"shard_count":S,"nodes":[...],"owners":[i,...],
    "handoffs":[[shard,source,target],...]}``
    """
    nodes = sorted(m.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    doc = {
        "format": SHARD_MAP_FORMAT,
        "epoch": m.epoch,
        "term": m.term,
        "shard_count": m.shard_count,
        "nodes": nodes,
        "owners": [-1 if o is None else index[o] for o in m.owners],
        "handoffs": [[h.shard, h.source, h.target] for h in m.handoffs],
    }
    return orjson.dumps(doc)


def decode_shard_map(data: bytes) -> ShardMap:
    """Parse `encode_shard_map` output; raise `ClusterError` if it is malformed."""
    try:
        doc = orjson.loads(data)
        if doc.get("format") != SHARD_MAP_FORMAT:
            raise ClusterError(f"shardmap: unsupported format {doc.get('format')!r}")
        nodes = [validate_node_id(n, "shardmap.nodes") for n in doc["nodes"]]
        owners = tuple(None if i == -1 else nodes[i] for i in doc["owners"])
        if any(isinstance(i, bool) or not isinstance(i, int) or i < -1 for i in doc["owners"]):
            raise ClusterError("shardmap: owners must be node indexes")
        if len(owners) != doc["shard_count"]:
            raise ClusterError("shardmap: owners do not match shard_count")
        handoffs = tuple(Move(int(s), src, dst) for s, src, dst in doc.get("handoffs", []))
        return ShardMap(epoch=doc["epoch"], term=doc["term"], owners=owners, handoffs=handoffs)
    except ClusterError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ClusterError(f"shardmap: malformed ({type(e).__name__}: {e})") from None
