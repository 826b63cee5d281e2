"""``aether config show`` and ``aether config check``; connection settings' validation."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import nats
import pytest

from aether.config import Settings
from aether.connect import connect, connect_options
from aether.errors import ConfigError, NatsUnavailableError
from tests.ops.conftest import Cli
from tests.servers import NatsServer, free_port, nats_server_binary, wait_for_port

FILE_SECRET = "file-secret-3141"
ENV_SECRET = "env-secret-2718"


def test_show_names_the_source_of_every_value_and_masks_secrets(cli: Cli) -> None:
    Path("aether.yaml").write_text(
        "namespace: shop\n"
        "nats:\n"
        f"  servers: [nats://bob:{FILE_SECRET}@127.0.0.1:4222, 127.0.0.1:4223]\n"
        "  connect_timeout: 3s\n"
    )
    env = {"AETHER_NATS_PASSWORD": ENV_SECRET, "AETHER_JETSTREAM_REPLICAS": "3"}
    res = cli("--user", "bob", "config", "show", "--json", env=env)
    assert res.code == 0, res.stderr
    doc = res.json()
    assert isinstance(doc, dict)
    assert doc["namespace"] == {"value": "shop", "source": "file aether.yaml"}
    assert doc["nats.user"] == {"value": "bob", "source": "flag"}
    assert doc["nats.password"] == {"value": "******", "source": "env AETHER_NATS_PASSWORD"}
    assert doc["jetstream.replicas"] == {"value": 3, "source": "env AETHER_JETSTREAM_REPLICAS"}
    assert doc["nats.connect_timeout"]["value"] == 3.0
    assert doc["store"] == {"value": "auto", "source": "default"}
    assert doc["nats.servers"]["value"] == ["nats://***@127.0.0.1:4222", "nats://127.0.0.1:4223"]
    human = cli("--user", "bob", "config", "show", env=env)
    assert human.code == 0
    for text in (res.stdout, human.stdout, res.stderr, human.stderr):
        assert FILE_SECRET not in text and ENV_SECRET not in text
    assert "env AETHER_NATS_PASSWORD" in human.stdout and "file aether.yaml" in human.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("nats: [unclosed\n", "not valid YAML"),
        ("nats:\n  colour: blue\n", "nats.colour: unknown setting"),
        ("- a\n- b\n", "must be a mapping"),
        (f"nats:\n  servers: 'bad://bob:{FILE_SECRET}@h'\n", "must use nats://"),
    ],
)
def test_show_rejects_a_bad_config_file(cli: Cli, content: str, expected: str) -> None:
    Path("aether.yaml").write_text(content)
    res = cli("config", "show")
    assert res.code == 2
    line = res.error_line()
    assert expected in line and FILE_SECRET not in line


def test_check_reports_a_ready_server(cli: Cli, nats_server: NatsServer) -> None:
    res = cli("-s", nats_server.url, "config", "check", "--json")
    assert res.code == 0, res.stderr
    doc = res.json()
    assert isinstance(doc, dict) and doc["ok"] is True
    status = {c["name"]: c["status"] for c in doc["checks"]}
    assert status["connection"] == status["jetstream"] == "ok"
    assert status["atomic batch publish"] == status["per-message TTL"] == "ok"
    assert status["events stream"] == "info"  # not created yet: fine
    assert cli("-s", nats_server.url, "append", "a", "X", "--data", "{}").code == 0
    again = cli("-s", nats_server.url, "config", "check")
    assert again.code == 0 and "configuration as expected" in again.stdout


def test_check_names_a_stream_that_differs(cli: Cli, nats_server: NatsServer) -> None:
    async def create() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(
                name="AETHER_default", subjects=["aether.default.events.*"]
            )
        finally:
            await nc.close()

    asyncio.run(create())
    res = cli("-s", nats_server.url, "config", "check")
    assert res.code == 1
    assert "deny_delete" in res.stdout and "AETHER_default" in res.stdout
    assert "events stream" in res.error_line()


def test_check_without_jetstream(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        res = cli("-s", f"nats://127.0.0.1:{port}", "config", "check")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert res.code == 1
    assert "jetstream" in res.error_line()
    assert "JetStream" in res.stdout


def test_check_unreachable_and_unconfigured(cli: Cli) -> None:
    port = free_port()
    res = cli("-s", f"nats://bob:{FILE_SECRET}@127.0.0.1:{port}", "config", "check")
    assert res.code == 5
    line = res.error_line()
    assert f"127.0.0.1:{port}" in line and FILE_SECRET not in line
    res = cli("config", "check")
    assert res.code == 2 and "no NATS server configured" in res.error_line()


def _settings(**values: object) -> Settings:
    values.setdefault("nats.servers", "nats://127.0.0.1:4222")
    return Settings.load(overrides=values, env={}, search_default_files=False)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"nats.password": FILE_SECRET}, "nats.password: needs nats.user"),
        ({"nats.user": "a", "nats.token": FILE_SECRET}, "choose one authentication method"),
        ({"nats.nkey_seed_file": "/nonexistent/seed.nk"}, "nats.nkey_seed_file"),
        ({"nats.creds_file": "/nonexistent/a.creds"}, "nats.creds_file"),
        ({"nats.tls_ca_file": "/nonexistent/ca.pem"}, "nats.tls_ca_file"),
        ({"nats.tls_cert_file": "/nonexistent/c.pem"}, "give both or neither"),
        ({"nats.token_file": "/nonexistent/token"}, "nats.token_file"),
        ({"nats.token": FILE_SECRET, "nats.token_file": "/x"}, "nats.token or nats.token_file"),
    ],
)
def test_bad_connection_settings_name_the_setting_not_the_secret(
    values: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        connect_options(_settings(**values))
    assert expected in str(info.value)
    assert FILE_SECRET not in str(info.value)


def test_secret_files_are_read_and_empty_ones_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(f"  {FILE_SECRET}\n")
    assert connect_options(_settings(**{"nats.token_file": str(token)}))["token"] == FILE_SECRET
    token.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        connect_options(_settings(**{"nats.token_file": str(token)}))


async def test_unreachable_server_fails_fast_without_credentials_in_the_message() -> None:
    port = free_port()
    url = f"nats://bob:{FILE_SECRET}@127.0.0.1:{port}"
    with pytest.raises(NatsUnavailableError) as info:
        await connect(_settings(**{"nats.servers": url, "nats.reconnect_attempts": 60}))
    assert f"127.0.0.1:{port}" in str(info.value) and FILE_SECRET not in str(info.value)
