"""Namespace isolation enforced by NATS with the `aether config permissions` template.

A server where user ``alice`` has exactly the permissions of namespace ``a`` (the
template) and ``admin`` has everything. Everything aether does in ``a`` works for alice,
and every subject the workload publishes is one the template allows (recorded by an
admin connection subscribed to ``>``): the template is derived from real traffic, not
guessed. Namespace ``b`` fails at once with `PermissionDeniedError` / exit 1 and one line.
"""

from __future__ import annotations

import asyncio
import re

import nats
import pytest

from aether.bus.nats import NatsEventBus
from aether.cluster.node import ClusterNode
from aether.config import Settings
from aether.errors import PermissionDeniedError
from aether.event import Event, Snapshot
from aether.permissions import allowed, namespace_permissions, render_permissions
from aether.store import open_store
from tests.ops.conftest import Cli, ServerFactory
from tests.servers import NatsServer

ALICE_PW = "alice-secret-pw"
ADMIN_PW = "admin-secret-pw"


def _config() -> str:
    block = render_permissions("a")
    return "\n".join(
        [
            "authorization {",
            "  users: [",
            "    {",
            "      user: alice",
            f'      password: "{ALICE_PW}"',
            block,
            "    }",
            f'    {{ user: admin, password: "{ADMIN_PW}" }}',
            "  ]",
            "}",
        ]
    )


@pytest.fixture
def server(make_server: ServerFactory) -> NatsServer:
    """A server where alice may only use namespace ``a``."""
    return make_server(_config())


def _settings(server: NatsServer, namespace: str, user: str = "alice") -> Settings:
    return Settings.load(
        overrides={
            "nats.servers": server.url,
            "nats.user": user,
            "nats.password": ALICE_PW if user == "alice" else ADMIN_PW,
            "namespace": namespace,
            "cluster.heartbeat": 0.2,
            "cluster.lease": 1.0,
            "cluster.node_ttl": 1.0,
        },
        env={},
        search_default_files=False,
    )


async def _workload(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        await store.save_event(Event(event_type="Placed", actor_id="o-1", version=1, data={}))
        batch = [Event(event_type="Paid", actor_id="o-1", version=v, data={}) for v in (2, 3)]
        await store.save_events(batch)
        assert [e.version for e in await store.get_events("o-1")] == [1, 2, 3]
        assert [e.version async for e in store.iter_events("o-1", 2, 3)] == [2, 3]
        assert await store.get_latest_version("o-1") == 3
        assert await store.list_actors() == {"o-1": 3}
        assert len([e async for e in store.read_all()]) == 3

        async def follow() -> int:
            async for e in store.watch(from_position=1):
                if e.version == 3:
                    return e.version
            return 0

        assert await asyncio.wait_for(follow(), 10) == 3
        await store.save_snapshot(Snapshot(actor_id="o-1", version=3, state={"paid": True}))
        snap = await store.get_latest_snapshot("o-1")
        assert snap is not None and snap.version == 3
    finally:
        await store.close()
    async with ClusterNode(settings, node_id="n1") as node:
        for _ in range(100):
            if node.is_leader and node.shards:
                break
            await asyncio.sleep(0.05)
        assert node.is_leader


async def test_template_allows_everything_aether_publishes(server: NatsServer) -> None:
    spy = await nats.connect(server.url, user="admin", password=ADMIN_PW)
    seen: set[str] = set()

    async def record(msg: nats.aio.msg.Msg) -> None:
        seen.add(msg.subject)

    await spy.subscribe(">", cb=record)
    await spy.flush()
    try:
        await _workload(_settings(server, "a"))
        await spy.flush()
        await asyncio.sleep(0.2)
    finally:
        await spy.close()
    perms = namespace_permissions("a")
    client_subjects = {s for s in seen if not s.startswith("$JS.EVENT.")}
    assert any(s.startswith("$JS.API.STREAM.CREATE.AETHER_a") for s in client_subjects)
    assert any(s.startswith("$KV.aether_a_cluster.") for s in client_subjects)
    assert sorted(s for s in client_subjects if not allowed(perms, s)) == []
    # and nothing of another namespace or a destructive API
    for s in client_subjects:
        assert not re.search(r"\.(DELETE|PURGE)\.(AETHER_a|KV_aether_a_cluster)$", s), s


async def test_library_is_confined_to_its_namespace(server: NatsServer) -> None:
    # the admin creates namespace b's streams: alice still may not read or write them
    admin_b = await open_store(_settings(server, "b", user="admin"))
    try:
        await admin_b.save_event(Event(event_type="X", actor_id="o-1", version=1, data={}))
    finally:
        await admin_b.close()
    with pytest.raises(PermissionDeniedError, match="permission denied"):
        await asyncio.wait_for(open_store(_settings(server, "b")), 10)
    with pytest.raises(PermissionDeniedError):
        async with ClusterNode(_settings(server, "b"), node_id="n1"):
            pass
    bus = await NatsEventBus.open(_settings(server, "b"))
    try:
        with pytest.raises(PermissionDeniedError, match=r"aether\.b\.bus"):
            await bus.subscribe("b")
        sub = await bus.subscribe("a")
        await sub.close()
    finally:
        await bus.close()
    # namespace a works for alice
    store = await open_store(_settings(server, "a"))
    try:
        await store.save_event(Event(event_type="X", actor_id="o-1", version=1, data={}))
        assert await store.get_latest_version("o-1") == 1
    finally:
        await store.close()


def test_cli_is_confined_to_its_namespace(server: NatsServer, cli: Cli) -> None:
    auth = ("-s", server.url, "--user", "alice")
    env = {"AETHER_NATS_PASSWORD": ALICE_PW}
    ok = cli(*auth, "-n", "a", "append", "o-1", "Placed", "--data", '{"n": 1}', env=env)
    assert ok.code == 0, ok.stderr
    replay = cli(*auth, "-n", "a", "--json", "replay", "o-1", env=env)
    assert replay.code == 0 and '"Placed"' in replay.stdout, replay.stderr
    versions = cli(*auth, "-n", "a", "--json", "versions", env=env)
    assert versions.code == 0 and versions.json() == {"o-1": 1}, versions.stderr

    for args in (
        ("append", "o-1", "Placed", "--data", "{}"),
        ("replay", "o-1"),
        ("versions",),
        ("versions", "o-1"),
        ("tail", "--count", "1"),
        ("tail", "--bus", "--count", "1"),
        ("cluster", "status"),
        ("node", "run", "--node-id", "n1"),
    ):
        denied = cli(*auth, "-n", "b", *args, env=env)
        assert denied.code == 1, (args, denied.stdout, denied.stderr)
        line = denied.error_line()
        assert "permission denied" in line, line
        assert re.search(r"AETHER_b|aether_b_cluster|aether\.b\.", line), line
        assert ALICE_PW not in denied.stdout + denied.stderr
    check = cli(*auth, "-n", "b", "config", "check", env=env)
    assert check.code == 1 and "permission denied" in check.stdout, check.stdout
    assert "events stream" in check.error_line()
    assert cli(*auth, "-n", "a", "config", "check", env=env).code == 0


def test_permissions_command_prints_the_template(cli: Cli) -> None:
    text = cli("config", "permissions", "orders")
    assert text.code == 0, text.stderr
    assert '"aether.orders.>"' in text.stdout
    assert '"$KV.aether_orders_cluster.>"' in text.stdout
    assert '"$JS.API.DIRECT.GET.AETHER_orders.>"' in text.stdout
    assert '"$JS.API.CONSUMER.CREATE.AETHER_orders.>"' in text.stdout
    assert '"_INBOX.>"' in text.stdout
    doc = cli("config", "permissions", "orders", "--json", "--inbox-prefix", "_I_orders").json()
    assert isinstance(doc, dict)
    assert "_I_orders.>" in doc["subscribe"]["allow"]
    assert "aether.orders.>" in doc["publish"]["allow"]
    bad = cli("config", "permissions", "bad.ns")
    assert bad.code == 2 and "NAMESPACE" in bad.error_line()
