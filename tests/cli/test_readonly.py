"""Read-only commands never create a store or namespace: a missing one is exit 4, one line.

`replay`, `versions`, `tail`, `snapshot` and `cluster status`, on SQLite (missing file,
a file that is not an aether store, a namespace without events) and on JetStream (a
namespace without streams); afterwards nothing was created.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import nats
import pytest

from tests.cli.conftest import Cli
from tests.servers import NatsServer

READERS: list[tuple[str, ...]] = [
    ("replay", "acct-00"),
    ("replay", "acct-00", "--state", "--json"),
    ("versions",),
    ("versions", "acct-00", "--json"),
    ("versions", "--prefix", "acct-"),
    ("tail", "--count", "1"),
    ("snapshot", "acct-00"),
    ("snapshot", "acct-00", "--json"),
]


def _missing(cli: Cli, args: tuple[str, ...], *global_args: str) -> str:
    out = cli(*global_args, *args)
    assert out.code == 4, (args, out.code, out.stdout, out.stderr)
    assert out.stdout == ""
    return out.error_line()


def test_a_missing_sqlite_file_is_exit_4_and_is_not_created(cli: Cli, tmp_path: Path) -> None:
    for args in READERS:
        line = _missing(cli, args)
        assert str(tmp_path / ".aether" / "events.db") in line, line
        assert "does not exist" in line
    assert not (tmp_path / ".aether").exists()


def test_a_mistyped_sqlite_path_is_named(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("append", "acct-00", "Opened").code == 0
    monkeypatch.setenv("AETHER_SQLITE_PATH", "data/evnets.db")
    for args in READERS:
        assert str(tmp_path / "data" / "evnets.db") in _missing(cli, args)
    assert not (tmp_path / "data").exists()
    config = tmp_path / "aether.yaml"
    config.write_text("sqlite:\n  path: elsewhere/x.db\n")
    monkeypatch.delenv("AETHER_SQLITE_PATH")
    assert "elsewhere/x.db" in _missing(cli, ("versions",), "--config", str(config))
    assert not (tmp_path / "elsewhere").exists()


def test_a_file_that_is_not_an_aether_store_is_left_alone(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    for path in (other, text):
        monkeypatch.setenv("AETHER_SQLITE_PATH", str(path))
        before = path.read_bytes()
        for args in (("versions",), ("replay", "a"), ("snapshot", "a")):
            line = _missing(cli, args)
            assert str(path) in line and "not an aether" in line, line
        assert path.read_bytes() == before
    conn = sqlite3.connect(other)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    conn.close()
    assert tables == ["t"]


def test_a_namespace_without_events_in_an_existing_file_is_exit_4(cli: Cli) -> None:
    assert cli("-n", "bank", "append", "acct-00", "Opened").code == 0
    for args in READERS:
        line = _missing(cli, args, "-n", "bnak")
        assert "'bnak'" in line and "has no events" in line, line
    # The right namespace answers.
    ok = cli("-n", "bank", "versions", "--json")
    assert ok.code == 0 and ok.json() == {"acct-00": 1}


def test_the_memory_store_is_still_usable(cli: Cli) -> None:
    out = cli("--store", "memory", "versions", "--json")
    assert out.code == 0 and out.json() == {}


async def _stream_names(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        return sorted(s.config.name or "" for s in await nc.jetstream().streams_info())
    finally:
        await nc.close()


def test_a_missing_jetstream_namespace_is_exit_4_and_is_not_created(
    cli: Cli, nats_server: NatsServer
) -> None:
    url = nats_server.url
    assert cli("-s", url, "-n", "bank", "append", "acct-00", "Opened").code == 0
    before = asyncio.run(_stream_names(url))
    assert "AETHER_bank" in before and not [n for n in before if "bnak" in n]
    for args in [*READERS, ("cluster", "status")]:
        line = _missing(cli, args, "-s", url, "-n", "bnak")
        assert "'bnak'" in line, line
    assert asyncio.run(_stream_names(url)) == before
    ok = cli("-s", url, "-n", "bank", "versions", "--json")
    assert ok.code == 0 and ok.json() == {"acct-00": 1}


async def test_open_store_create_false_in_the_library(tmp_path: Path) -> None:
    from aether.config import Settings
    from aether.errors import NotFoundError
    from aether.event import Event
    from aether.store import open_store

    settings = Settings.load(
        overrides={"sqlite.path": str(tmp_path / "x.db"), "namespace": "ns"},
        search_default_files=False,
    )
    with pytest.raises(NotFoundError, match=r"x\.db: the file does not exist"):
        await open_store(settings, create=False)
    assert not (tmp_path / "x.db").exists()
    store = await open_store(settings)
    await store.save_event(Event("E", "a", 1))
    await store.close()
    store = await open_store(settings, create=False)
    try:
        assert await store.get_latest_version("a") == 1
    finally:
        await store.close()
    with pytest.raises(NotFoundError, match="namespace 'other' has no events"):
        await open_store(settings.replace(namespace="other"), create=False)
