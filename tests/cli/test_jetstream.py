"""The store commands against a real nats-server (the JetStream store), and exit code 5."""

from __future__ import annotations

import socket

from tests.cli.conftest import Cli
from tests.servers import NatsServer


def test_append_replay_versions_on_jetstream(cli: Cli, nats_server: NatsServer) -> None:
    s = ["-s", nats_server.url, "-n", "clijs"]
    assert (
        cli(*s, "append", "order-1", "OrderPlaced", "-d", '{"total": 99.99, "items": 3}').code == 0
    )
    shipped = cli(*s, "append", "order-1", "OrderShipped", "-d", '{"carrier": "FastShip"}')
    assert shipped.code == 0, shipped.stderr
    assert "at version 2" in shipped.stdout
    assert cli(*s, "replay", "order-1", "--state", "--json").json() == {
        "total": 99.99,
        "items": 3,
        "carrier": "FastShip",
    }
    conflict = cli(*s, "append", "order-1", "X", "--expect-version", "1")
    assert conflict.code == 3
    assert "expected latest version 1" in conflict.error_line() and "store has 2" in conflict.stderr
    for actor in ("user@example.com", "a.b", "a*b"):
        assert cli(*s, "append", actor, "X", "-d", "{}").code == 0
    assert cli(*s, "versions", "--json").json() == {
        "a*b": 1,
        "a.b": 1,
        "order-1": 2,
        "user@example.com": 1,
    }
    for actor in ("user@example.com", "a.b", "a*b"):
        events = cli(*s, "replay", actor, "--json").json_lines()
        assert [e["actor_id"] for e in events] == [actor]  # type: ignore[index]
    bulk = "".join(
        f'{{"actor_id": "b{i % 2}", "event_type": "E", "data": {{"i": {i}}}}}\n' for i in range(6)
    )
    out = cli(*s, "append", "--file", "-", "--json", input=bulk)
    assert out.code == 0, out.stderr
    assert out.json() == {"appended": 6, "batches": 6, "actors": {"b0": 3, "b1": 3}}
    missing = cli(*s, "replay", "nobody")
    assert missing.code == 4 and "'clijs'" in missing.error_line()


def test_unreachable_nats_exits_5(cli: Cli) -> None:
    with socket.socket() as sock:  # a free loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = cli("-s", f"nats://127.0.0.1:{port}", "versions")
    assert out.code == 5
    assert "cannot reach NATS" in out.error_line()
