"""TLS is never downgraded, and no password or token goes out in plain text.

A configured TLS (``tls://`` URL, CA, client certificate, ``nats.tls_required``) against
a server that does not offer TLS fails with `TlsRequiredError` (CLI exit 5, one line
naming the server) before any credential is sent: a recording listener that speaks a
fake NATS INFO receives no ``CONNECT``. A password or token to a non-loopback server
over plain text is refused unless ``nats.allow_plaintext_auth`` is set. A server with
optional TLS (``allow_non_tls``) is upgraded. Both with nats-py's connect-sequence seams
and with the probe that replaces them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import aether.connect as connect_mod
from aether.config import Settings
from aether.connect import connect, is_loopback
from aether.errors import TlsRequiredError
from aether.event import Event
from aether.store import open_store
from tests.ops.auth_setup import tls_config, tls_files
from tests.ops.conftest import Cli, ServerFactory
from tests.ops.fake_nats import FakeNats

SECRET = "pw-never-on-the-wire"


@pytest.fixture(params=[True, False], ids=["seams", "probe"])
def seams(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Run a test with nats-py's connect-sequence seams, and with the fallback probe."""
    monkeypatch.setattr(connect_mod, "USE_SEAMS", request.param)
    yield request.param


@pytest.fixture
def fake() -> Iterator[FakeNats]:
    """A plain listener asking for authentication, offering no TLS."""
    with FakeNats({"auth_required": True}) as f:
        yield f


def _settings(**overrides: object) -> Settings:
    return Settings.load(overrides=overrides, env={}, search_default_files=False)


def _nothing_sent(fake: FakeNats) -> None:
    assert b"CONNECT" not in fake.received
    assert SECRET.encode() not in fake.received


@pytest.mark.parametrize(
    "tls",
    [
        {"tls_url": True},
        {"nats.tls_required": True},
        {"nats.tls_ca_file": "CA"},
        {"nats.tls_cert_file": "CERT", "nats.tls_key_file": "KEY"},
    ],
    ids=["tls-url", "tls_required", "ca", "client-cert"],
)
async def test_configured_tls_against_a_plain_server_sends_nothing(
    fake: FakeNats, seams: bool, tmp_path: Path, tls: dict[str, object]
) -> None:
    files = tls_files(tmp_path)
    paths = {"CA": str(files.ca), "CERT": str(files.client_cert), "KEY": str(files.client_key)}
    overrides: dict[str, object] = {
        k: paths.get(str(v), v) for k, v in tls.items() if k != "tls_url"
    }
    url = fake.url.replace("nats://", "tls://") if tls.get("tls_url") else fake.url
    settings = _settings(
        **overrides, **{"nats.servers": url, "nats.user": "alice", "nats.password": SECRET}
    )
    with pytest.raises(TlsRequiredError, match=r"127\.0\.0\.1:\d+.*does not offer TLS") as e:
        await connect(settings)
    assert SECRET not in str(e.value)
    _nothing_sent(fake)


def test_cli_exits_5_with_one_line(fake: FakeNats, cli: Cli, tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    url = fake.url.replace("nats://", "tls://")
    args = ("--tls-ca", str(files.ca), "--user", "alice", "--password-file", str(pw))
    out = cli("-s", url, *args, "versions")
    assert out.code == 5, (out.stdout, out.stderr)
    line = out.error_line()
    assert f"127.0.0.1:{fake.port}" in line and "does not offer TLS" in line, line
    assert SECRET not in out.stdout + out.stderr
    _nothing_sent(fake)
    # also with a nats:// URL and only the CA, and with nats.tls_required from the env
    assert cli("-s", fake.url, *args, "versions").code == 5
    env = {"AETHER_NATS_TLS_REQUIRED": "true", "AETHER_NATS_PASSWORD": SECRET}
    assert cli("-s", fake.url, "--user", "alice", "versions", env=env).code == 5
    _nothing_sent(fake)


def test_cli_against_a_real_plain_server(
    make_server: ServerFactory, cli: Cli, tmp_path: Path
) -> None:
    server = make_server(f'authorization {{ user: alice, password: "{SECRET}" }}')
    files = tls_files(tmp_path)
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    auth = ("--user", "alice", "--password-file", str(pw))
    url = f"tls://127.0.0.1:{server.port}"
    out = cli("-s", url, "--tls-ca", str(files.ca), *auth, "append", "o-1", "X")
    assert out.code == 5, (out.stdout, out.stderr)
    assert "does not offer TLS" in out.error_line()
    # nothing was written: the same server in plain text (loopback) has not even the stream
    ok = cli("-s", server.url, *auth, "--json", "versions")
    assert ok.code == 4, (ok.stdout, ok.stderr)
    assert "does not exist" in ok.error_line()


@pytest.mark.parametrize("secret", ["password", "token", "url"])
async def test_no_plaintext_secret_to_a_remote_server(
    fake: FakeNats, seams: bool, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setattr(connect_mod, "is_loopback", lambda host: False)  # pretend it is remote
    auth: dict[str, object] = {
        "password": {"nats.user": "alice", "nats.password": SECRET},
        "token": {"nats.token": SECRET},
        "url": {},
    }[secret]
    url = fake.url.replace("nats://", f"nats://alice:{SECRET}@") if secret == "url" else fake.url
    with pytest.raises(TlsRequiredError, match="plain text") as e:
        await connect(_settings(**auth, **{"nats.servers": url}))
    assert SECRET not in str(e.value)
    _nothing_sent(fake)
    # explicitly allowed: it connects (and the secret goes out, as asked)
    nc = await connect(
        _settings(**auth, **{"nats.servers": url, "nats.allow_plaintext_auth": True})
    )
    await nc.close()
    assert b"CONNECT" in fake.received


async def test_plaintext_to_loopback_and_without_secrets_is_fine(fake: FakeNats) -> None:
    nc = await connect(_settings(**{"nats.servers": fake.url, "nats.token": SECRET}))
    await nc.close()
    assert b"CONNECT" in fake.received


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.9.9.9", "localhost", "LOCALHOST.", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("10.0.0.1", "example.com", "0.0.0.0", "", None, "localhost.example.com"):
        assert not is_loopback(host), host


async def test_optional_tls_is_upgraded(make_server: ServerFactory, tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    block = tls_config(files, verify=False) + "\nallow_non_tls: true"
    server = make_server(block)
    settings = _settings(
        **{"nats.servers": server.url, "nats.tls_ca_file": str(files.ca), "namespace": "t"}
    )
    plain = await connect(_settings(**{"nats.servers": server.url}))
    try:  # the control: not asked for, the server does not impose it
        assert not plain._server_info.get("tls_required")
        assert plain._transport._io_writer.get_extra_info("ssl_object") is None  # type: ignore[union-attr]
    finally:
        await plain.close()
    nc = await connect(settings)
    try:
        writer = nc._transport._io_writer  # type: ignore[union-attr]
        assert writer.get_extra_info("ssl_object") is not None
    finally:
        await nc.close()
    store = await open_store(settings)
    try:
        await store.save_event(Event(event_type="X", actor_id="o-1", version=1, data={}))
    finally:
        await store.close()


def test_config_check_reports_plaintext_auth(make_server: ServerFactory, cli: Cli) -> None:
    server = make_server(f'authorization {{ user: alice, password: "{SECRET}" }}')
    env = {"AETHER_NATS_PASSWORD": SECRET}
    out = cli("-s", server.url, "--user", "alice", "--json", "config", "check", env=env)
    doc = out.json()
    assert isinstance(doc, dict)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["transport"]["status"] == "warning", checks["transport"]
    assert "plain text" in checks["transport"]["detail"]


async def test_a_reconnect_to_a_plain_impostor_sends_nothing(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    import asyncio

    files = tls_files(tmp_path)
    server = make_server(
        tls_config(files, verify=False) + f'\nauthorization {{ user: alice, password: "{SECRET}" }}'
    )
    settings = _settings(
        **{
            "nats.servers": f"tls://127.0.0.1:{server.port}",
            "nats.tls_ca_file": str(files.ca),
            "nats.user": "alice",
            "nats.password": SECRET,
            "nats.reconnect_wait": 0.05,
        }
    )
    refused: list[str] = []

    async def on_error(e: Exception) -> None:
        refused.append(str(e))

    nc = await connect(settings, error_cb=on_error)
    try:
        server.stop()
        with FakeNats({"auth_required": True}, port=server.port) as impostor:
            for _ in range(200):
                if any("does not offer TLS" in r for r in refused):
                    break
                await asyncio.sleep(0.05)
            assert any("does not offer TLS" in r for r in refused), refused
            assert impostor.connections >= 1
            assert b"CONNECT" not in impostor.received
            assert SECRET.encode() not in impostor.received
            assert not nc.is_connected
    finally:
        await nc.close()


async def test_tls_handshake_first(make_server: ServerFactory, tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    block = tls_config(files, verify=False).replace("tls {", "tls {\n  handshake_first: true")
    server = make_server(block)
    settings = _settings(
        **{
            "nats.servers": f"nats://127.0.0.1:{server.port}",
            "nats.tls_ca_file": str(files.ca),
            "nats.tls_handshake_first": True,
            "namespace": "hf",
        }
    )
    store = await open_store(settings)
    try:
        await store.save_event(Event(event_type="X", actor_id="o-1", version=1, data={}))
        assert await store.get_latest_version("o-1") == 1
    finally:
        await store.close()
