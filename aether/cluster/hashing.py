"""Stable, language-neutral 64-bit hashing: XXH64 in pure Python.

`shard_of(actor_id, shard_count)` is ``XXH64(utf8(actor_id), seed=0) mod shard_count``
and the rendezvous score of a node for a shard is ``XXH64(utf8(node_id), seed=shard)``.
XXH64 is specified at https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md and
has implementations in every mainstream language, so another client can place actors on
the same shards. Python's built-in ``hash()`` is salted per process and never used.
Test vectors are in ``docs/cluster.md`` and ``tests/cluster/test_hashing.py``.
"""

from __future__ import annotations

from functools import lru_cache

from aether._xxh64 import xxh64
from aether.errors import ValidationError
from aether.subjects import validate_actor_id

MAX_SHARDS = 65536
"""The largest supported shard count."""


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


def shard_of(actor_id: str, shard_count: int) -> int:
    """The shard (``0 .. shard_count-1``) that owns `actor_id`.

    Defined as ``XXH64(utf8(actor_id), seed=0) mod shard_count``: stable across processes,
    machines, Python versions and languages.
    """
    validate_shard_count(shard_count)
    return _actor_hash(validate_actor_id(actor_id)) % shard_count


def node_score(node_id: str, shard: int) -> int:
    """The rendezvous score of `node_id` for `shard`: ``XXH64(utf8(node_id), seed=shard)``."""
    return xxh64(node_id.encode("utf-8"), shard)
