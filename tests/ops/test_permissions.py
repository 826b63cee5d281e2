"""Namespace isolation enforced by NATS with the `aether config permissions` template.

A server where user ``alice`` has exactly the permissions of namespace ``a`` (the
template), ``bob`` those of namespace ``a_SNAPSHOTS`` (whose names once collided with
``a``'s) and ``admin`` has everything. Everything aether does in ``a`` works for alice,
and every subject the workload publishes is one the template allows (recorded by an
admin connection subscribed to ``>``): the template is derived from real traffic, not
guessed. Replies go to the namespace's own inbox prefix. Namespace ``b`` fails at once
with `PermissionDeniedError` / exit 1 and one line; bob reaches nothing of ``a``: not its
snapshots (raw direct get), its streams (create), nor its replies (subscribe).
"""

from __future__ import annotations

import asyncio
import re

import nats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether._nats.raw import flush
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
BOB_PW = "bob-secret-pw"
ADMIN_PW = "admin-secret-pw"
BOB_NS = "a_SNAPSHOTS"
PASSWORDS = {"alice": ALICE_PW, "bob": BOB_PW, "admin": ADMIN_PW}


def _config() -> str:
    return "\n".join(
        [
            "authorization {",
            "  users: [",
            "    {",
            "      user: alice",
            f'      password: "{ALICE_PW}"',
            render_permissions("a"),
            "    }",
            "    {",
            "      user: bob",
            f'      password: "{BOB_PW}"',
            render_permissions(BOB_NS),
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
            "nats.password": PASSWORDS[user],
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
    bus = await NatsEventBus.open(settings)
    try:
        sub = await bus.subscribe(settings.namespace)
        await bus.publish(
            settings.namespace, Event(event_type="Live", actor_id="o-1", version=4, data={})
        )
        got = await asyncio.wait_for(sub.__anext__(), 10)
        assert got.event_type == "Live"
        await sub.close()
    finally:
        await bus.close()


async def test_template_allows_everything_aether_publishes(server: NatsServer) -> None:
    spy = await nats.connect(server.url, user="admin", password=ADMIN_PW)
    seen: set[str] = set()

    async def record(msg: nats.aio.msg.Msg) -> None:
        seen.add(msg.subject)

    await spy.subscribe(">", cb=record)
    await flush(spy, 5)
    try:
        await _workload(_settings(server, "a"))
        await spy.flush()
        await asyncio.sleep(0.2)
    finally:
        await spy.close()
    perms = namespace_permissions("a")
    client_subjects = {s for s in seen if not s.startswith("$JS.EVENT.")}
    assert any(s.startswith("$JS.API.STREAM.CREATE.AETHER_a") for s in client_subjects)
    assert any(s.startswith("$JS.API.STREAM.CREATE.AETHERSNAP_a") for s in client_subjects)
    assert any(s.startswith("$KV.aethercluster_a.") for s in client_subjects)
    assert any(s.startswith("aether.a.bus.") for s in client_subjects)
    assert sorted(s for s in client_subjects if not allowed(perms, s)) == []
    # replies only ever on the namespace's own inbox prefix
    assert any(s.startswith("_INBOX_aether.a.") for s in client_subjects)
    assert not [s for s in client_subjects if s.startswith("_INBOX.")]
    # and nothing of another namespace or a destructive API
    for s in client_subjects:
        assert not re.search(r"\.(DELETE|PURGE)\.(AETHER|AETHERSNAP|KV_aethercluster)_a$", s), s


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
    tail = cli(*auth, "-n", "a", "tail", "--from-start", "--count", "1", "--json", env=env)
    assert tail.code == 0 and '"Placed"' in tail.stdout, tail.stderr

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
        assert re.search(r"AETHER_b|aethercluster_b|aether\.b\.", line), line
        assert ALICE_PW not in denied.stdout + denied.stderr
    check = cli(*auth, "-n", "b", "config", "check", env=env)
    assert check.code == 1 and "permission denied" in check.stdout, check.stdout
    # namespace b's reply inbox is not alice's: nothing can be answered, said at once
    assert "reply inbox" in check.stdout and "jetstream" in check.error_line()
    assert cli(*auth, "-n", "a", "config", "check", env=env).code == 0


def test_permissions_command_prints_the_template(cli: Cli) -> None:
    text = cli("config", "permissions", "orders")
    assert text.code == 0, text.stderr
    assert '"aether.orders.>"' in text.stdout
    assert '"$KV.aethercluster_orders.>"' in text.stdout
    assert '"$JS.API.DIRECT.GET.AETHER_orders.>"' in text.stdout
    assert '"$JS.API.DIRECT.GET.AETHERSNAP_orders.>"' in text.stdout
    assert '"$JS.API.CONSUMER.CREATE.AETHER_orders.>"' in text.stdout
    assert '"_INBOX_aether.orders.>"' in text.stdout
    assert '"_INBOX.>"' not in text.stdout
    doc = cli("config", "permissions", "orders", "--json", "--inbox-prefix", "_I_orders").json()
    assert isinstance(doc, dict)
    assert "_I_orders.>" in doc["subscribe"]["allow"]
    assert "aether.orders.>" in doc["publish"]["allow"]
    bad = cli("config", "permissions", "bad.ns")
    assert bad.code == 2 and "NAMESPACE" in bad.error_line()


SHARED = {"$JS.API.INFO"}  # the account's JetStream usage: no namespace's resource


def _grants_nothing_of(ns: str, other: str) -> None:
    mine = namespace_permissions(ns)
    theirs = namespace_permissions(other)
    for subject in theirs.publish + theirs.subscribe:
        if subject in SHARED:
            continue
        concrete = subject.replace(".>", ".x").replace(".*", ".x")
        assert not allowed(mine, concrete), (ns, other, subject)
        assert not allowed(mine, concrete, op="subscribe"), (ns, other, subject)
    for subject in mine.publish + mine.subscribe:
        assert "_INBOX.>" not in subject and not subject.startswith(("*", ">")), subject


def test_no_template_grants_anything_of_another_namespace() -> None:
    names = ["a", "a_SNAPSHOTS", "a_", "a-b", "a_b", "SNAP_a", "KV_a", "aether", "_", "-", "A"]
    for ns in names:
        for other in names:
            if other != ns:
                _grants_nothing_of(ns, other)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
)
def test_templates_of_any_two_namespaces_are_disjoint(ns: str, other: str) -> None:
    if ns != other:
        _grants_nothing_of(ns, other)


async def _raw(server: NatsServer, user: str) -> tuple[nats.NATS, list[str]]:
    """A plain nats-py connection as `user` (inbox prefix of the user's namespace),
    collecting the permission violations the server reports."""
    violations: list[str] = []

    async def on_error(e: Exception) -> None:
        violations.append(str(e).lower())

    ns = {"alice": "a", "bob": BOB_NS}[user]
    nc = await nats.connect(
        server.url,
        user=user,
        password=PASSWORDS[user],
        inbox_prefix=f"_INBOX_aether.{ns}",
        error_cb=on_error,
        max_reconnect_attempts=0,
    )
    return nc, violations


async def _denied_request(
    nc: nats.NATS, violations: list[str], subject: str, payload: bytes = b""
) -> None:
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request(subject, payload, timeout=1.0)
    await nc.flush()
    assert any(subject.lower() in v and "publish" in v for v in violations), (subject, violations)


async def test_a_user_of_namespace_a_snapshots_reaches_nothing_of_namespace_a(
    server: NatsServer,
) -> None:
    # alice writes an event and a snapshot in namespace a
    store = await open_store(_settings(server, "a"))
    try:
        await store.save_event(Event(event_type="Placed", actor_id="o-1", version=1, data={}))
        await store.save_snapshot(Snapshot(actor_id="o-1", version=1, state={"secret": 42}))
    finally:
        await store.close()
    # bob's own namespace works (same account, names that look alike)
    bob_store = await open_store(_settings(server, BOB_NS, user="bob"))
    try:
        await bob_store.save_event(Event(event_type="X", actor_id="o-1", version=1, data={}))
        await bob_store.save_snapshot(Snapshot(actor_id="o-1", version=1, state={"mine": 1}))
        assert [e.event_type for e in await bob_store.get_events("o-1")] == ["X"]
        snap = await bob_store.get_latest_snapshot("o-1")
        assert snap is not None and snap.state == {"mine": 1}
    finally:
        await bob_store.close()

    nc, violations = await _raw(server, "bob")
    try:
        # a raw direct get of a's snapshot and a's events: denied (no reply, a violation)
        get = b'{"last_by_subj": "aether.a.snapshots.o-1"}'
        await _denied_request(nc, violations, "$JS.API.DIRECT.GET.AETHERSNAP_a", get)
        await _denied_request(nc, violations, "$JS.API.STREAM.MSG.GET.AETHERSNAP_a", get)
        await _denied_request(
            nc, violations, "$JS.API.DIRECT.GET.AETHERSNAP_a.aether.a.snapshots.o-1"
        )
        await _denied_request(nc, violations, "$JS.API.STREAM.MSG.GET.AETHER_a", b'{"seq": 1}')
        await _denied_request(nc, violations, "$JS.API.STREAM.INFO.AETHER_a")
        # creating a's streams first (to squat them) is denied
        for name, subject in (("AETHER_a", "aether.a.events.*.*"), ("AETHERSNAP_a", "x.y")):
            body = f'{{"name": "{name}", "subjects": ["{subject}"]}}'.encode()
            await _denied_request(nc, violations, f"$JS.API.STREAM.CREATE.{name}", body)
        await _denied_request(nc, violations, "$KV.aethercluster_a.leader", b"bob")
        # the control: the same request on bob's own snapshot stream is answered
        own = await nc.request(
            f"$JS.API.DIRECT.GET.AETHERSNAP_{BOB_NS}",
            f'{{"last_by_subj": "aether.{BOB_NS}.snapshots.o-1"}}'.encode(),
            timeout=5,
        )
        assert b"mine" in own.data
        # a's replies and everyone's default inbox: subscribing is denied
        for subject in ("_INBOX_aether.a.>", "_INBOX.>", "aether.a.>", "aether.*.bus.*.*"):
            await nc.subscribe(subject)
            await nc.flush()
            await asyncio.sleep(0.1)
            assert any(subject.lower() in v and "subscription" in v for v in violations), (
                subject,
                violations,
            )
    finally:
        await nc.close()


async def test_replies_are_private_to_the_namespace(server: NatsServer) -> None:
    # bob listens on everything he may: he sees none of alice's replies
    bob, violations = await _raw(server, "bob")
    seen: list[str] = []

    async def record(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.subject)

    await bob.subscribe(f"_INBOX_aether.{BOB_NS}.>", cb=record)
    await bob.subscribe(f"aether.{BOB_NS}.>", cb=record)
    await flush(bob, 5)
    try:
        await _workload(_settings(server, "a"))
        await bob.flush()
        await asyncio.sleep(0.2)
    finally:
        await bob.close()
    assert seen == []
    assert violations == []
