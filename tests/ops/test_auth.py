"""Every authentication method against a real nats-server configured for it.

User/password, token, NKey (``nkeys``), credentials with real operator/account/user JWTs
(operator mode with a memory resolver, keys and JWTs generated here), TLS with a test CA
and mutual TLS (``trustme``). The right secret works through the CLI and the library;
a wrong one gives exit 5 and one clear line that does not contain the secret.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import nkeys

from aether.config import Settings
from aether.event import Event
from aether.store import open_store
from tests.ops.auth_setup import new_keypair, operator_setup, tls_config, tls_files
from tests.ops.conftest import Cli, Outcome, ServerFactory

APPEND = ("append", "order-1", "OrderPlaced", "--data", '{"total": 99.99}')


def _appended(cli: Cli, *auth: str, url: str, env: dict[str, str] | None = None) -> None:
    first = cli("-s", url, *auth, *APPEND, env=env)
    assert first.code == 0, first.stderr
    versions = cli("-s", url, *auth, "--json", "versions", "order-1", env=env)
    assert versions.code == 0, versions.stderr
    assert versions.json() == {"order-1": 1}


def _refused(outcome: Outcome, *secret_values: str, why: str = "authorization failed") -> None:
    assert outcome.code == 5, (outcome.code, outcome.stdout, outcome.stderr)
    line = outcome.error_line()
    assert why in line, line
    for value in secret_values:
        assert value not in outcome.stdout + outcome.stderr


def test_user_and_password(make_server: ServerFactory, cli: Cli, secrets_dir: Path) -> None:
    password = "pw-" + secrets.token_hex(12)
    server = make_server(f'authorization {{ user: app, password: "{password}" }}')
    pw_file = secrets_dir / "password"
    pw_file.write_text(password + "\n")
    _appended(cli, "--user", "app", "--password-file", str(pw_file), url=server.url)
    # from the environment, and inside the URL
    env = {"AETHER_NATS_PASSWORD": password}
    ok = cli("-s", server.url, "--user", "app", "--json", "versions", env=env)
    assert ok.code == 0 and ok.json() == {"order-1": 1}, ok.stderr
    in_url = server.url.replace("nats://", f"nats://app:{password}@")
    ok = cli("-s", in_url, "--json", "versions")
    assert ok.code == 0 and ok.json() == {"order-1": 1}, ok.stderr

    wrong = "wrong-" + secrets.token_hex(12)
    _refused(
        cli("-s", server.url, "--user", "app", "versions", env={"AETHER_NATS_PASSWORD": wrong}),
        wrong,
        password,
    )
    _refused(cli("-s", server.url.replace("nats://", f"nats://app:{wrong}@"), "versions"), wrong)
    _refused(cli("-s", server.url, "versions"))  # no credentials at all


def test_token(make_server: ServerFactory, cli: Cli, secrets_dir: Path) -> None:
    token = "tok-" + secrets.token_hex(16)
    server = make_server(f'authorization {{ token: "{token}" }}')
    token_file = secrets_dir / "token"
    token_file.write_text(token)
    _appended(cli, "--token-file", str(token_file), url=server.url)
    ok = cli("-s", server.url, "--json", "versions", env={"AETHER_NATS_TOKEN": token})
    assert ok.code == 0 and ok.json() == {"order-1": 1}, ok.stderr

    wrong = "tok-" + secrets.token_hex(16)
    token_file.write_text(wrong)
    _refused(cli("-s", server.url, "--token-file", str(token_file), "versions"), wrong, token)


def test_nkey(make_server: ServerFactory, cli: Cli, secrets_dir: Path) -> None:
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    server = make_server(f"authorization {{ users: [ {{ nkey: {user.public} }} ] }}")
    seed_file = secrets_dir / "user.nk"
    seed_file.write_bytes(user.seed)
    _appended(cli, "--nkey", str(seed_file), url=server.url)

    other = new_keypair(nkeys.PREFIX_BYTE_USER)
    seed_file.write_bytes(other.seed)
    _refused(
        cli("-s", server.url, "--nkey", str(seed_file), "versions"),
        other.seed.decode(),
        user.seed.decode(),
    )


def test_credentials_with_jwts(
    make_server: ServerFactory, cli: Cli, secrets_dir: Path, tmp_path: Path
) -> None:
    setup = operator_setup(tmp_path)
    server = make_server(setup.server_config)
    creds = secrets_dir / "app.creds"
    creds.write_text(setup.creds)
    _appended(cli, "--creds", str(creds), url=server.url)

    # a user of another operator's account: the server does not know that account
    stranger_dir = tmp_path / "stranger"
    stranger_dir.mkdir()
    stranger = operator_setup(stranger_dir)
    creds.write_text(stranger.creds)
    _refused(cli("-s", server.url, "--creds", str(creds), "versions"), stranger.user_seed.decode())
    _refused(cli("-s", server.url, "versions"))


def test_tls_with_a_test_ca(make_server: ServerFactory, cli: Cli, tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    server = make_server(tls_config(files, verify=False))
    url = f"tls://127.0.0.1:{server.port}"
    _appended(cli, "--tls-ca", str(files.ca), url=url)
    # a CA that did not sign the server's certificate
    _refused(cli("-s", url, "--tls-ca", str(files.other_ca), "versions"), why="not trusted")


def test_mutual_tls(make_server: ServerFactory, cli: Cli, tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    server = make_server(tls_config(files, verify=True))
    url = f"tls://127.0.0.1:{server.port}"
    client = ("--tls-ca", str(files.ca), "--tls-cert", str(files.client_cert))
    _appended(cli, *client, "--tls-key", str(files.client_key), url=url)
    # no client certificate
    _refused(cli("-s", url, "--tls-ca", str(files.ca), "versions"), why="TLS handshake failed")
    # a certificate without its key is a usage error, not a connection attempt
    half = cli("-s", url, *client, "versions")
    assert half.code == 2 and "tls_key_file" in half.error_line()


def test_tls_server_name_when_the_certificate_names_a_host(
    make_server: ServerFactory, cli: Cli, tmp_path: Path
) -> None:
    files = tls_files(tmp_path, server_names=("nats.aether.test",))
    server = make_server(tls_config(files, verify=False))
    url = f"tls://127.0.0.1:{server.port}"
    _refused(cli("-s", url, "--tls-ca", str(files.ca), "versions"), why="not trusted")
    env = {"AETHER_NATS_TLS_SERVER_NAME": "nats.aether.test"}
    _appended(cli, "--tls-ca", str(files.ca), url=url, env=env)


async def test_library_connects_with_credentials_and_mtls(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    setup = operator_setup(tmp_path)
    files = tls_files(tmp_path)
    server = make_server(setup.server_config + "\n" + tls_config(files, verify=True))
    creds = tmp_path / "app.creds"
    creds.write_text(setup.creds)
    settings = Settings.load(
        overrides={
            "nats.servers": f"tls://127.0.0.1:{server.port}",
            "nats.creds_file": str(creds),
            "nats.tls_ca_file": str(files.ca),
            "nats.tls_cert_file": str(files.client_cert),
            "nats.tls_key_file": str(files.client_key),
            "nats.name": "aether-ops-test",
        },
        env={},
        search_default_files=False,
    )
    store = await open_store(settings)
    try:
        saved = await store.save_event(
            Event(event_type="X", actor_id="a@b.c", version=1, data={"n": 1})
        )
        assert saved.position == 1
        assert [e.data for e in await store.get_events("a@b.c")] == [{"n": 1}]
    finally:
        await store.close()
