"""Server version parsed in one place."""

from __future__ import annotations

import pytest

from aether._nats.info import parse_version, server_info, server_version, server_version_text, where
from tests.nats_layer.conftest import Connector


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2.12.1", (2, 12, 1)),
        ("2.11.0-beta.2", (2, 11, 0)),
        ("v2.10.4", (2, 10, 4)),
        ("2.9", (2, 9, 0)),
        ("3", (3, 0, 0)),
        ("", (0, 0, 0)),
        (None, (0, 0, 0)),
        ("garbage", (0, 0, 0)),
        ("2.x.1", (0, 0, 0)),
    ],
)
def test_parse_version(text: object, want: tuple[int, int, int]) -> None:
    assert parse_version(text) == want


async def test_the_connected_servers_version(aether_nc: Connector) -> None:
    nc = await aether_nc()
    v = nc.connected_server_version
    assert server_version(nc) == (v.major, v.minor, v.patch)
    text = server_version_text(nc)
    assert text is not None and parse_version(text) == server_version(nc)
    assert server_info(nc)["max_payload"] == nc.max_payload
    assert where(nc).startswith("nats://127.0.0.1:")


def test_an_unconnected_client_has_no_version() -> None:
    from nats.aio.client import Client

    nc = Client()
    assert server_version(nc) == (0, 0, 0)
    assert server_version_text(nc) is None
    assert where(nc) == "the configured NATS server"
