"""The shard hash is XXH64 and matches the published test vectors (docs/cluster.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aether.cluster.hashing import actor_hash, node_score, shard_of, xxh64
from aether.errors import InvalidIdentifierError, ValidationError

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

SHARD_VECTORS = [
    # actor id, XXH64(utf8), shard of 64, shard of 1000
    ("a", 0xD24EC4F1A98C6E5B, 27, 955),
    ("user-1", 0xA173746B114C6BE8, 40, 856),
    ("user@example.com", 0xE92A4A9E39FE3D60, 32, 0),
    ("a.b", 0x0091B6393AE8ED56, 22, 862),
    ("ünïcødé", 0x4D5ABE0629525939, 57, 977),
    ("订单-42", 0x90D553D574A141E8, 40, 192),
]


@pytest.mark.parametrize(("data", "seed", "expected"), XXH64_VECTORS)
def test_xxh64_matches_the_reference(data: bytes, seed: int, expected: int) -> None:
    assert xxh64(data, seed) == expected


@pytest.mark.parametrize(("actor", "h", "s64", "s1000"), SHARD_VECTORS)
def test_shard_of_vectors(actor: str, h: int, s64: int, s1000: int) -> None:
    assert actor_hash(actor) == h
    assert shard_of(actor, 64) == s64 == h % 64
    assert shard_of(actor, 1000) == s1000 == h % 1000


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
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout.strip()
        for seed in (1, 2)
    }
    assert outs == {"40"}


@pytest.mark.parametrize("count", [0, -1, 65537, True, 1.5, "64"])
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

    assert assign(8, ["n1", "n2", "n3"]) == ("n3", "n3", "n3", "n2", "n2", "n3", "n1", "n1")
