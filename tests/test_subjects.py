"""`aether.subjects`: identifier rules and the reversible actor-id token encoding."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether.errors import InvalidIdentifierError
from aether.subjects import (
    ACTOR_ID_MAX_BYTES,
    actor_from_events_subject,
    bus_filter,
    bus_subject,
    cluster_bucket,
    decode_token,
    encode_token,
    events_subject,
    events_wildcard,
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
        assert subject.count(".") == 3  # aether.ns.events.<one token>
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
    assert snapshot_stream_name("ns") == "AETHER_ns_SNAPSHOTS"
    assert events_subject("ns", "order-1") == "aether.ns.events.order-1"
    assert events_wildcard("ns") == "aether.ns.events.*"
    assert bus_subject("ns", "Order.Placed", "a.b") == "aether.ns.bus.=T3JkZXIuUGxhY2Vk.=YS5i"
    assert bus_filter("*") == "aether.*.bus.*.*"
    assert bus_filter("ns", "T", "a") == "aether.ns.bus.T.a"
    assert cluster_bucket("ns") == "aether_ns_cluster"
