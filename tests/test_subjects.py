"""`aether.subjects`: identifier rules and the reversible actor-id token encoding."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether.errors import InvalidIdentifierError, ValidationError
from aether.subjects import (
    ACTOR_ID_MAX_BYTES,
    SLICE_COUNT,
    actor_from_events_subject,
    bus_filter,
    bus_subject,
    cluster_bucket,
    decode_token,
    encode_token,
    events_subject,
    events_wildcard,
    inbox_prefix,
    legacy_snapshot_stream_name,
    normalize_slices,
    parse_slices,
    processor_bucket,
    processor_stream_name,
    slice_from_events_subject,
    slice_of,
    slice_ranges,
    snapshot_stream_name,
    stream_name,
    validate_actor_id,
    validate_event_type,
    validate_namespace,
    validate_namespace_pattern,
    validate_node_id,
)


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0 or c in "\u2028\u2029"


# Any text without control characters or lone surrogates, within the byte limit.
actor_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60
).filter(lambda s: not any(_is_control(c) for c in s))

SAFE_TOKEN = re.compile(r"[A-Za-z0-9_=-]+")


@settings(max_examples=300)
@given(actor_ids)
def test_encode_decode_round_trip(actor_id: str) -> None:
    assert validate_actor_id(actor_id) == actor_id
    assert decode_token(encode_token(actor_id)) == actor_id


@settings(max_examples=300)
@given(actor_ids)
def test_tokens_are_safe_subject_tokens(actor_id: str) -> None:
    token = encode_token(actor_id)
    assert token
    assert SAFE_TOKEN.fullmatch(token), token
    assert not any(c in token for c in ".*>$")
    assert not any(c.isspace() for c in token)
    assert token.isascii()
    assert not token.startswith("$")


@settings(max_examples=300)
@given(actor_ids, actor_ids)
def test_distinct_ids_get_distinct_tokens(a: str, b: str) -> None:
    if a != b:
        assert encode_token(a) != encode_token(b)


@given(st.lists(actor_ids, min_size=2, max_size=30, unique=True))
def test_tokens_are_injective_over_a_set(ids: list[str]) -> None:
    assert len({encode_token(i) for i in ids}) == len(ids)


@given(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True))
def test_plain_ids_are_their_own_token(actor_id: str) -> None:
    assert encode_token(actor_id) == actor_id


@pytest.mark.parametrize(
    ("actor_id", "token"),
    [
        ("order-1", "order-1"),
        ("user@example.com", "=dXNlckBleGFtcGxlLmNvbQ"),
        ("a.b", "=YS5i"),
        ("a*b", "=YSpi"),
        ("café", "=Y2Fmw6k"),
    ],
)
def test_documented_tokens(actor_id: str, token: str) -> None:
    """The README's table of examples."""
    assert encode_token(actor_id) == token


def test_special_ids_are_distinct_and_cannot_reach_each_other() -> None:
    ids = ["a.b", "a*b", "a>b", "a b", "$a", "a", "b", "=YS5i", "a.>", "*", ">"]
    subjects = [events_subject("ns", i) for i in ids]
    assert len(set(subjects)) == len(ids)
    for subject, actor_id in zip(subjects, ids, strict=True):
        assert subject.count(".") == 4  # aether.ns.events.<slice>.<one token>
        assert actor_from_events_subject(subject) == actor_id


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a b", "=!!", "=gA", "*", "$x", "=", "=YS5i=", "=YQ", "=YR", "=b3JkZXItMQ"],
)
def test_decode_rejects_tokens_encode_cannot_produce(token: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        decode_token(token)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a\x00b",
        "a\nb",
        "\x7f",
        "a\u2028b",
        "x" * (ACTOR_ID_MAX_BYTES + 1),
        "é" * 513,
        "\ud800",
        5,
        None,
    ],
)
def test_invalid_actor_ids(bad: object) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_actor_id(bad)
    assert info.value.field == "actor_id"


def test_actor_id_byte_limit_is_inclusive() -> None:
    assert validate_actor_id("x" * ACTOR_ID_MAX_BYTES)
    assert validate_actor_id("é" * (ACTOR_ID_MAX_BYTES // 2))


@pytest.mark.parametrize("good", ["a", "default", "Orders_2026-eu", "x" * 64])
def test_valid_namespaces(good: str) -> None:
    assert validate_namespace(good) == good


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "*", ">", "x" * 65, "café", "a/b", 3])
def test_invalid_namespaces(bad: object) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_namespace(bad)
    assert info.value.field == "namespace"


def test_namespace_pattern_allows_star_only() -> None:
    assert validate_namespace_pattern("*") == "*"
    assert validate_namespace_pattern("ns") == "ns"
    with pytest.raises(InvalidIdentifierError):
        validate_namespace_pattern(">")


@pytest.mark.parametrize("good", ["OrderPlaced", "order.placed", "v2:Thing@x", "x" * 256, "é"])
def test_valid_event_types(good: str) -> None:
    assert validate_event_type(good) == good


@pytest.mark.parametrize("bad", ["", "a b", "a\tb", "a*", ">", "x" * 257, "a\x00", 1])
def test_invalid_event_types(bad: object) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_event_type(bad)
    assert info.value.field == "event_type"


def test_node_ids() -> None:
    assert validate_node_id("node-1") == "node-1"
    for bad in ("", "a.b", "x" * 65, "n*"):
        with pytest.raises(InvalidIdentifierError):
            validate_node_id(bad)


def test_subject_layout() -> None:
    assert stream_name("ns") == "AETHER_ns"
    assert snapshot_stream_name("ns") == "AETHERSNAP_ns"
    assert events_subject("ns", "order-1") == "aether.ns.events.173.order-1"
    assert events_wildcard("ns") == "aether.ns.events.*.*"
    assert bus_subject("ns", "Order.Placed", "a.b") == "aether.ns.bus.=T3JkZXIuUGxhY2Vk.=YS5i"
    assert bus_filter("*") == "aether.*.bus.*.*"
    assert bus_filter("ns", "T", "a") == "aether.ns.bus.T.a"
    assert cluster_bucket("ns") == "aethercluster_ns"


# -- slices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor_id", "expected"),
    [("order-1", 173), ("user@example.com", 352), ("a.b", 342), ("acct-00", 362), ("ü", 317)],
)
def test_slice_vectors(actor_id: str, expected: int) -> None:
    """The README's slice test vectors: XXH64(utf8(actor_id), seed 0) mod 1024."""
    from aether._xxh64 import xxh64_pure

    assert slice_of(actor_id) == expected
    assert xxh64_pure(actor_id.encode()) % SLICE_COUNT == expected


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.isprintable()))
@settings(max_examples=300)
def test_slice_in_subject_matches_slice_of(actor_id: str) -> None:
    try:
        validate_actor_id(actor_id)
    except InvalidIdentifierError:
        return
    subject = events_subject("ns", actor_id)
    assert slice_from_events_subject(subject) == slice_of(actor_id)
    assert actor_from_events_subject(subject) == actor_id


def test_a_subject_with_the_wrong_slice_is_foreign() -> None:
    with pytest.raises(InvalidIdentifierError):
        actor_from_events_subject("aether.ns.events.0.order-1")  # order-1 is in slice 173
    with pytest.raises(InvalidIdentifierError):
        actor_from_events_subject("aether.ns.events.order-1")  # the old layout


def test_parse_slices() -> None:
    assert parse_slices("0-3,7") == frozenset({0, 1, 2, 3, 7})
    assert slice_ranges(parse_slices("0-3,7,9-10")) == [(0, 3), (7, 7), (9, 10)]
    for bad in ("", "a", "5-2", "0-1024", "-1", "1,,2", "0-"):
        with pytest.raises(ValidationError):
            parse_slices(bad)
    assert normalize_slices(range(0, 128)) == frozenset(range(128))
    for bad_sel in (range(0), [1024], ["1"], "0-3", [True]):
        with pytest.raises(ValidationError):
            normalize_slices(bad_sel)


# -- no namespace reaches another's names ----------------------------------------------

_NS = st.text(
    alphabet="abcAZ09_-SNAPHOTRCLUESabpc", min_size=1, max_size=24
)  # the alphabet, biased to the letters the fixed prefixes and suffixes use


def _names(ns: str) -> dict[str, str]:
    return {
        "events": stream_name(ns),
        "snapshots": snapshot_stream_name(ns),
        "cluster-kv": "KV_" + cluster_bucket(ns),
        "processors": processor_stream_name(ns),
        "processor-kv": "KV_" + processor_bucket(ns),
    }


@given(_NS, _NS)
@settings(max_examples=3000)
def test_no_two_namespaces_produce_one_name(a: str, b: str) -> None:
    if a == b:
        return
    names_a, names_b = _names(a), _names(b)
    assert not set(names_a.values()) & set(names_b.values()), (a, b)


@given(_NS)
def test_names_of_one_namespace_are_distinct(ns: str) -> None:
    assert len(set(_names(ns).values())) == len(_names(ns))


@given(_NS, _NS)
@settings(max_examples=1000)
def test_subjects_of_one_namespace_never_match_anothers(a: str, b: str) -> None:
    if a == b:
        return
    for subject in (events_subject(a, "x"), bus_subject(a, "T", "x"), inbox_prefix(a) + ".x"):
        assert not subject.startswith(f"aether.{b}.")
        assert not subject.startswith(inbox_prefix(b) + ".")


def test_the_old_snapshot_name_collided() -> None:
    """Why names changed: 0.1 named a's snapshots like namespace a_SNAPSHOTS's events."""
    assert legacy_snapshot_stream_name("a") == stream_name("a_SNAPSHOTS")
    assert snapshot_stream_name("a") != stream_name("a_SNAPSHOTS")
