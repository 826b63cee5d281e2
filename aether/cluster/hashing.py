"""Stable, language-neutral placement: actors → slices → shards, and node scores.

An actor's slice is ``XXH64(utf8(actor_id), seed=0) mod 1024`` (`aether.subjects.slice_of`,
part of the event subject). Shards are **contiguous slice ranges**:
``shard_of(actor_id, shard_count) = slice_of(actor_id) * shard_count // 1024``, so shard
``k`` holds exactly the slices `slices_of_shard` (k, shard_count) and a node or processor
can have the server select its shard's events (``store.read_all(slices=...)``).
The rendezvous score of a node for a shard is ``XXH64(utf8(node_id), seed=shard)``.
XXH64 is specified at https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md and
has implementations in every mainstream language, so another client can place actors on
the same shards. Python's built-in ``hash()`` is salted per process and never used.
Test vectors are in ``docs/cluster.md`` and ``tests/cluster/test_hashing.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from aether._xxh64 import xxh64

__all__ = [
    "MAX_SHARDS",
    "actor_hash",
    "node_score",
    "shard_of",
    "shard_of_slice",
    "slices_of_shard",
    "slices_of_shards",
    "validate_shard_count",
    "xxh64",
]
from aether.errors import ValidationError
from aether.subjects import SLICE_COUNT, validate_actor_id

MAX_SHARDS = SLICE_COUNT
"""The largest supported shard count (one slice per shard)."""


def validate_shard_count(shard_count: object, field: str = "shard_count") -> int:
    """Return `shard_count` if it is an int between 1 and `MAX_SHARDS`, else raise."""
    if isinstance(shard_count, bool) or not isinstance(shard_count, int):
        raise ValidationError(field, "must be an integer")
    if not 1 <= shard_count <= MAX_SHARDS:
        raise ValidationError(field, f"must be between 1 and {MAX_SHARDS}, got {shard_count}")
    return shard_count


@lru_cache(maxsize=65536)
def _actor_hash(actor_id: str) -> int:
    return xxh64(actor_id.encode("utf-8"))


def actor_hash(actor_id: str) -> int:
    """``XXH64(utf8(actor_id), seed=0)``: the 64-bit hash an actor is placed by."""
    return _actor_hash(validate_actor_id(actor_id))


def shard_of_slice(slice_: int, shard_count: int) -> int:
    """The shard holding slice `slice_` (0-1023): ``slice * shard_count // 1024``."""
    validate_shard_count(shard_count)
    if isinstance(slice_, bool) or not isinstance(slice_, int) or not 0 <= slice_ < SLICE_COUNT:
        raise ValidationError("slice", f"must be an integer 0-{SLICE_COUNT - 1}")
    return slice_ * shard_count // SLICE_COUNT


def shard_of(actor_id: str, shard_count: int) -> int:
    """The shard (``0 .. shard_count-1``) that owns `actor_id`.

    Defined as ``slice_of(actor_id) * shard_count // 1024`` with ``slice_of(actor_id) =
    XXH64(utf8(actor_id), seed=0) mod 1024``: stable across processes, machines, Python
    versions and languages, and a shard is a contiguous range of slices.
    """
    validate_shard_count(shard_count)
    return (_actor_hash(validate_actor_id(actor_id)) % SLICE_COUNT) * shard_count // SLICE_COUNT


def slices_of_shard(shard: int, shard_count: int) -> range:
    """The slices of `shard`: ``range(ceil(shard*1024/S), ceil((shard+1)*1024/S))``.

    Exactly the slices ``x`` with ``x * shard_count // 1024 == shard``; the ranges of all
    shards are contiguous, disjoint and cover 0-1023. Pass them to
    ``store.read_all(slices=...)`` or ``store.watch(slices=...)``.
    """
    validate_shard_count(shard_count)
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shard_count:
        raise ValidationError("shard", f"must be an integer 0-{shard_count - 1}")
    return range(
        -(-shard * SLICE_COUNT // shard_count), -(-(shard + 1) * SLICE_COUNT // shard_count)
    )


def slices_of_shards(shards: Iterable[int], shard_count: int) -> frozenset[int]:
    """The union of `slices_of_shard` over `shards` (shard numbers)."""
    out: set[int] = set()
    for s in shards:
        out.update(slices_of_shard(s, shard_count))
    return frozenset(out)


def node_score(node_id: str, shard: int) -> int:
    """The rendezvous score of `node_id` for `shard`: ``XXH64(utf8(node_id), seed=shard)``."""
    return xxh64(node_id.encode("utf-8"), shard)
