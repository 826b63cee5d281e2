"""The CLI against JetStream (``--server``): same output and exit codes as with SQLite."""

from __future__ import annotations

import itertools
import re

import pytest

from tests.cli.conftest import Cli
from tests.servers import NatsServer, free_port

_ns = itertools.count()
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

SCENARIO: list[tuple[str, ...]] = [
    ("append", "order-1", "OrderPlaced", "--data", '{"total": 99.99, "items": 3}'),
    ("append", "order-1", "OrderShipped", "--data", '{"carrier": "FastShip"}'),
    ("append", "order-1", "X", "--expect-version", "1"),
    ("append", "order-1", "Y", "--expect-version", "2", "--data", '{"n": 7, "f": 7.0}'),
    ("append", "user@example.com", "X", "--data", "{}"),
    ("append", "a.b", "X", "--data", "{}"),
    ("append", "a*b", "X", "--data", "{}"),
    ("append", "", "X", "--data", "{}"),
    ("append", "a", "X", "--data", "not json"),
    ("append", "a", "X", "--data", '{"x": NaN}'),
    ("replay", "order-1", "--state", "--json"),
    ("replay", "order-1", "--json"),
    ("replay", "order-1"),
    ("replay", "order-1", "--from", "2", "--to", "2", "--json"),
    ("replay", "a.b", "--json"),
    ("replay", "nobody"),
    ("versions", "--json"),
    ("versions",),
    ("versions", "a*b", "missing", "--json"),
]


def _normalize(text: str) -> str:
    text = _TIMESTAMP.sub("<ts>", text)
    return re.sub(r'"id":"[^"]+"', '"id":"<id>"', text)


def _run(cli: Cli, global_args: tuple[str, ...]) -> list[tuple[int, str, str]]:
    return [
        (out.code, _normalize(out.stdout), _normalize(out.stderr))
        for out in (cli(*global_args, *step) for step in SCENARIO)
    ]


def test_same_output_and_exit_codes_as_sqlite(cli: Cli, nats_server: NatsServer) -> None:
    namespace = f"cli{next(_ns)}"
    sqlite = _run(cli, ("--store", "sqlite", "-n", namespace))
    jetstream = _run(cli, ("--server", nats_server.url, "-n", namespace))
    assert [r[0] for r in jetstream] == [0, 0, 3, 0, 0, 0, 0, *[r[0] for r in sqlite[7:]]]
    for step, want, got in zip(SCENARIO, sqlite, jetstream, strict=True):
        assert got == want, step


def test_server_from_the_environment(
    cli: Cli, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AETHER_NATS_URL", nats_server.url)
    namespace = f"cli{next(_ns)}"
    assert cli("-n", namespace, "append", "a", "E", "--data", '{"x": 1}').code == 0
    assert cli("-n", namespace, "versions", "--json").json() == {"a": 1}
    monkeypatch.delenv("AETHER_NATS_URL")
    # without a server the SQLite store is used, which does not exist (and is not created)
    out = cli("-n", namespace, "versions", "--json")
    assert out.code == 4 and "no SQLite store" in out.error_line()


def test_unreachable_server_exits_5_with_one_line_naming_the_url(cli: Cli) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for args in (("versions",), ("append", "a", "E"), ("replay", "a")):
        out = cli("--server", url, *args)
        assert out.code == 5, args
        assert url in out.error_line()
