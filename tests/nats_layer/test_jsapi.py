"""The typed JetStream API against a real server."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from aether._nats.errors import ERR_STREAM_NOT_FOUND, JsApiError
from aether._nats.jsapi import JsApi, parse_time
from aether.errors import NatsUnavailableError
from tests.nats_layer.conftest import Connector

STREAM = {
    "name": "T_API",
    "subjects": ["t.api.>"],
    "storage": "memory",
    "num_replicas": 1,
    "allow_direct": True,
}


async def test_streams_create_info_names_delete(aether_nc: Connector, seams: str) -> None:
    api = JsApi(await aether_nc(), 5)
    await api.check_jetstream()
    assert (await api.account_info())["limits"] is not None
    assert await api.stream_info("T_API") is None
    created = await api.stream_create(STREAM)
    assert created["config"]["name"] == "T_API"
    assert (await api.stream_info("T_API")) is not None
    assert "T_API" in await api.stream_names()
    assert await api.stream_names("t.api.x") == ["T_API"]
    assert await api.stream_delete("T_API") is True
    assert await api.stream_delete("T_API") is False
    with pytest.raises(JsApiError) as info:
        await api.request("$JS.API.STREAM.INFO.T_API", None, "stream info")
    assert info.value.err_code == ERR_STREAM_NOT_FOUND


async def test_publish_get_and_conflicts(aether_nc: Connector, seams: str) -> None:
    api = JsApi(await aether_nc(), 5)
    await api.stream_create(STREAM)
    ack = await api.publish("t.api.a", b"one", {"Nats-Expected-Last-Subject-Sequence": "0"})
    assert ack["stream"] == "T_API" and ack["seq"] == 1
    with pytest.raises(JsApiError) as info:
        await api.publish("t.api.a", b"two", {"Nats-Expected-Last-Subject-Sequence": "0"})
    assert info.value.conflict
    await api.publish("t.api.b", b"three", {"X-Tag": "b"})
    leader = await api.msg_get("T_API", {"last_by_subj": "t.api.b"})
    assert leader is not None
    assert (leader.subject, leader.seq, leader.data) == ("t.api.b", 2, b"three")
    assert leader.header("X-Tag") == "b"
    assert abs(leader.stored_at() - datetime.now(UTC)) < timedelta(minutes=1)
    direct = await api.direct_get("T_API", {"last_by_subj": "t.api.a"})
    assert direct is not None and (direct.subject, direct.seq, direct.data) == (
        "t.api.a",
        1,
        b"one",
    )
    assert await api.msg_get("T_API", {"last_by_subj": "t.api.none"}) is None
    assert await api.direct_get("T_API", {"last_by_subj": "t.api.none"}) is None
    with pytest.raises(NatsUnavailableError):  # no stream listens: no responders
        await api.publish("nobody.listens", b"x")


async def test_consumers(aether_nc: Connector) -> None:
    api = JsApi(await aether_nc(), 5)
    await api.stream_create(STREAM)
    for i in range(3):
        await api.publish(f"t.api.{i}", b"x")
    info = await api.consumer_create(
        "T_API", {"deliver_policy": "all", "ack_policy": "none", "mem_storage": True}
    )
    assert info["num_pending"] == 3
    await api.consumer_delete("T_API", info["name"])
    await api.consumer_delete("T_API", info["name"])  # quiet when already gone


async def test_kv_bucket(aether_nc: Connector) -> None:
    api = JsApi(await aether_nc(), 5)
    created = await api.kv_create("tb", history=1, marker_ttl=60)
    config = created["config"]
    assert config["name"] == "KV_tb" and config["allow_msg_ttl"]
    assert config["subject_delete_marker_ttl"] == 60 * 1_000_000_000
    await api.publish("$KV.tb.k", b"v1")
    await api.publish("$KV.tb.k", b"", {"KV-Operation": "DEL"})
    last = await api.kv_last("tb", "k")
    assert last is not None and last.header("KV-Operation") == "DEL" and last.seq == 2
    assert await api.kv_last("tb", "other") is None


def test_parse_time() -> None:
    got = parse_time("2026-12-02T10:11:12.123456789Z")
    assert got == datetime(2026, 12, 2, 10, 11, 12, 123456, tzinfo=UTC)
    assert parse_time("") is None and parse_time("nonsense") is None
    assert base64  # (msg_get decodes base64 payloads and headers)
