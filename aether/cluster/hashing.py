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

from aether.errors import ValidationError
from aether.subjects import validate_actor_id

_M = 0xFFFFFFFFFFFFFFFF
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5

MAX_SHARDS = 65536
"""The largest supported shard count."""


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M
    return (_rotl(acc, 31) * _P1) & _M


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    """The XXH64 hash of `data` with `seed` (0 ≤ seed < 2**64), as an unsigned int."""
    seed &= _M
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed
        v4 = (seed - _P1) & _M
        limit = n - 32
        frm = int.from_bytes
        while i <= limit:
            v1 = _round(v1, frm(data[i : i + 8], "little"))
            v2 = _round(v2, frm(data[i + 8 : i + 16], "little"))
            v3 = _round(v3, frm(data[i + 16 : i + 24], "little"))
            v4 = _round(v4, frm(data[i + 24 : i + 32], "little"))
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i : i + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i : i + 4], "little") * _P1) & _M
        h = (_rotl(h, 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M
        h = (_rotl(h, 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


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
