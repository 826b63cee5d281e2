"""``aether snapshot ACTOR``: the latest snapshot, human and --json; exit 4 when none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aether.config import Settings
from aether.event import Event, Snapshot
from aether.store import open_store
from tests.cli.conftest import Cli
from tests.servers import NatsServer

WHEN = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def _seed(*servers: str) -> None:
    """acct-1 with 5 events and a snapshot at version 3; acct-2 with events only."""

    async def go() -> None:
        settings = Settings.load(
            overrides={"namespace": "bank", "nats.servers": list(servers) or None},
            search_default_files=False,
        )
        store = await open_store(settings)
        try:
            for v in range(1, 6):
                await store.save_event(Event("Deposited", "acct-1", v, {"amount": 10}))
            await store.save_event(Event("Deposited", "acct-2", 1, {"amount": 1}))
            await store.save_snapshot(  # type: ignore[attr-defined]
                Snapshot("acct-1", 3, {"balance": 30, "owners": ["al"]}, WHEN)
            )
        finally:
            await store.close()

    asyncio.run(go())


def _check(cli: Cli, *global_args: str) -> None:
    out = cli(*global_args, "-n", "bank", "snapshot", "acct-1", "--json")
    assert out.code == 0, out.stderr
    assert out.json() == {
        "actor_id": "acct-1",
        "version": 3,
        "timestamp": "2026-01-02T03:04:05.000006Z",
        "state": {"balance": 30, "owners": ["al"]},
        "latest_version": 5,
    }
    human = cli(*global_args, "-n", "bank", "snapshot", "acct-1")
    assert human.code == 0
    assert (
        "Snapshot of 'acct-1' at version 3, taken 2026-01-02T03:04:05.000006Z; "
        "the actor is at version 5 (2 events after it):"
    ) in human.stdout
    assert '"balance": 30' in human.stdout
    for actor, words in (("acct-2", "(it is at version 1)"), ("nobody", "(nor any events)")):
        none = cli(*global_args, "-n", "bank", "snapshot", actor)
        assert none.code == 4 and none.stdout == ""
        line = none.error_line()
        assert f"actor {actor!r} has no snapshot in namespace 'bank'" in line and words in line


def test_snapshot_on_sqlite(cli: Cli) -> None:
    _seed()
    _check(cli)


def test_snapshot_on_jetstream(cli: Cli, nats_server: NatsServer) -> None:
    _seed(nats_server.url)
    _check(cli, "-s", nats_server.url)


def test_bad_actor_is_a_usage_error(cli: Cli) -> None:
    out = cli("snapshot", "")
    assert out.code == 2 and "ACTOR" in out.error_line()


def test_boolean_flags_show_no_metavar_in_help(cli: Cli) -> None:
    commands = [
        (),
        ("snapshot",),
        ("replay",),
        ("versions",),
        ("tail",),
        ("append",),
        ("cluster", "status"),
    ]
    for args in commands:
        out = cli(*args, "--help")
        assert out.code == 0, (args, out.stderr)
        assert "<bool>" not in out.stdout, args
        assert "--json" in out.stdout or args == ("cluster", "status")
    replay = cli("replay", "--help").stdout
    assert "MODULE:FUNC" in replay and "<int range>" in replay  # value options keep theirs
