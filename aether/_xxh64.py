"""XXH64 (seed-able, 64-bit): the one hash aether places actors and shards by.

Specified at https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md, with
implementations in every mainstream language, so another client computes the same
slices. The `xxhash` package (C) is used when it is installed (about 40x faster per
call); the pure-Python version below gives the same answers and is the fallback.
"""

from __future__ import annotations

from collections.abc import Callable

_M = 0xFFFFFFFFFFFFFFFF
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


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


def _fast() -> Callable[[bytes, int], int] | None:
    try:
        import xxhash
    except ImportError:  # pragma: no cover - the package is a dependency
        return None
    fn = xxhash.xxh64_intdigest
    if fn(b"", 0) != 0xEF46DB3751D8E999:  # the spec's empty-input vector
        return None  # pragma: no cover

    def fast(data: bytes, seed: int = 0) -> int:
        return int(fn(data, seed & _M))

    return fast


xxh64_pure = xxh64
_c = _fast()
if _c is not None:
    xxh64 = _c  # type: ignore[assignment]

__all__ = ["xxh64", "xxh64_pure"]
