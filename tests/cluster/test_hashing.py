"""The shard hash is XXH64 and matches the published test vectors (docs/cluster.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aether.cluster.hashing import (
    actor_hash,
    node_score,
    shard_of,
    shard_of_slice,
    slices_of_shard,
    slices_of_shards,
    xxh64,
)
from aether.errors import InvalidIdentifierError, ValidationError
from aether.subjects import slice_of

# Reference values of XXH64 (xxhash 0.8 / python-xxhash), also listed in docs/cluster.md.
XXH64_VECTORS = [
    (b"", 0, 0xEF46DB3751D8E999),
    (b"a", 0, 0xD24EC4F1A98C6E5B),
    (b"abc", 0, 0x44BC2CF5AD770999),
    (b"a" * 100, 2**64 - 1, 0x871FB2A3D888A10E),
    (b"n1", 0, 0x51CE9F3EF4B004A7),
    (b"n1", 1, 0x8752254313888712),
    (b"n2", 0, 0x5A8019B377F9DA47),
    (b"node-a", 63, 0x7707F585EF34E9FF),
]

ROOT = str(Path(__file__).resolve().parents[2])  # this checkout's aether, not an installed one

SHARD_VECTORS = [
    # actor id, XXH64(utf8), slice (mod 1024), shard of 64, shard of 1000
    ("a", 0xD24EC4F1A98C6E5B, 603, 37, 588),
    ("user-1", 0xA173746B114C6BE8, 1000, 62, 976),
    ("user@example.com", 0xE92A4A9E39FE3D60, 352, 22, 343),
    ("a.b", 0x0091B6393AE8ED56, 342, 21, 333),
    ("ünïcødé", 0x4D5ABE0629525939, 313, 19, 305),
    ("订单-42", 0x90D553D574A141E8, 488, 30, 476),
]


@pytest.mark.parametrize(("data", "seed", "expected"), XXH64_VECTORS)
def test_xxh64_matches_the_reference(data: bytes, seed: int, expected: int) -> None:
    assert xxh64(data, seed) == expected


@pytest.mark.parametrize(("actor", "h", "sl", "s64", "s1000"), SHARD_VECTORS)
def test_shard_of_vectors(actor: str, h: int, sl: int, s64: int, s1000: int) -> None:
    assert actor_hash(actor) == h
    assert slice_of(actor) == sl == h % 1024
    assert shard_of(actor, 64) == s64 == sl * 64 // 1024
    assert shard_of(actor, 1000) == s1000 == sl * 1000 // 1024
    assert shard_of(actor, 1024) == sl
    assert sl in slices_of_shard(s64, 64) and sl in slices_of_shard(s1000, 1000)


@pytest.mark.parametrize("count", [1, 3, 7, 64, 100, 1000, 1023, 1024])
def test_shards_are_contiguous_slice_ranges(count: int) -> None:
    covered: list[int] = []
    for k in range(count):
        r = slices_of_shard(k, count)
        assert r.step == 1 and len(r) >= 1
        assert all(shard_of_slice(x, count) == k for x in r)
        covered += list(r)
    assert covered == list(range(1024))
    assert slices_of_shards([0, count - 1], count) == frozenset(
        [*slices_of_shard(0, count), *slices_of_shard(count - 1, count)]
    )
    assert slices_of_shard(0, 64) == range(0, 16) and slices_of_shard(63, 64) == range(1008, 1024)


def test_node_score_is_seeded_xxh64() -> None:
    assert node_score("node-a", 63) == 0x7707F585EF34E9FF


def test_every_length_path_of_xxh64_is_exercised_and_distinct() -> None:
    # lengths 0..70 cover the <32, 32-byte stripe, 8/4/1-byte tail paths
    seen = {xxh64(bytes(range(n))) for n in range(71)}
    assert len(seen) == 71


def test_shard_of_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; ours must not be.
    code = "from aether.cluster.hashing import shard_of; print(shard_of('user-1', 64))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": "", "PYTHONPATH": ROOT},
        ).stdout.strip()
        for seed in (1, 2)
    }
    assert outs == {"62"}


@pytest.mark.parametrize("count", [0, -1, 1025, 65536, True, 1.5, "64"])
def test_bad_shard_count_is_rejected(count: object) -> None:
    with pytest.raises(ValidationError) as e:
        shard_of("a", count)  # type: ignore[arg-type]
    assert e.value.field == "shard_count"


@pytest.mark.parametrize("actor", ["", "a\x00b", 5])
def test_bad_actor_is_rejected(actor: object) -> None:
    with pytest.raises(InvalidIdentifierError) as e:
        shard_of(actor, 64)  # type: ignore[arg-type]
    assert e.value.field == "actor_id"


def test_documented_assignment_vector() -> None:
    from aether.cluster.shards import assign

    assert assign(8, ["n1", "n2", "n3"]) == ("n3", "n3", "n2", "n2", "n2", "n3", "n1", "n1")
