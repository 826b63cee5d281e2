"""SQLite-specific behaviour: other processes, group commit, durability settings, paging."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from aether.config import Settings
from aether.errors import AetherError, ConfigError, VersionConflictError
from aether.event import Event
from aether.store import open_store
from aether.store.sqlite import PAGE_SIZE, SQLiteEventStore

WAIT = 30.0

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from aether.errors import VersionConflictError
    from aether.event import Event
    from aether.store.sqlite import SQLiteEventStore

    async def main(path, namespace, mode, actor, count):
        store = await SQLiteEventStore.connect(path, namespace)
        try:
            if mode == "append-once":  # one append at the next version, no retry
                latest = await store.get_latest_version(actor)
                await store.save_event(Event("FromChild", actor, latest + 1))
            elif mode == "retry":  # the retry pattern, `count` times
                for i in range(count):
                    while True:
                        latest = await store.get_latest_version(actor)
                        try:
                            await store.save_event(Event("FromChild", actor, latest + 1, {"i": i}))
                            break
                        except VersionConflictError:
                            pass
            elif mode == "sequence":  # `count` events on `actor`, then done
                for v in range(1, count + 1):
                    await store.save_event(Event("FromChild", actor, v, {"v": v}))
        finally:
            await store.close()
        print("done", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    """
)


def _child(
    path: Path, namespace: str, mode: str, actor: str, count: int = 0
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), namespace, mode, actor, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _wait_child(proc: subprocess.Popen[str]) -> None:
    out, err = await asyncio.to_thread(proc.communicate, timeout=WAIT)
    assert proc.returncode == 0, err
    assert out.strip() == "done"


@pytest.fixture
async def store(tmp_path: Path) -> SQLiteEventStore:
    s = await SQLiteEventStore.connect(tmp_path / "events.db", "test")
    yield s  # type: ignore[misc]
    await s.close()


def ev(actor: str, version: int, **data: object) -> Event:
    return Event("Happened", actor, version, dict(data))


# --- other processes ---------------------------------------------------------------------


async def test_conflict_with_a_writer_in_another_process(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    await store.save_event(ev("acct", 1))
    assert await store.get_latest_version("acct") == 1
    await _wait_child(_child(tmp_path / "events.db", "test", "append-once", "acct"))
    with pytest.raises(VersionConflictError) as info:
        await store.save_event(ev("acct", 2))
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert [e.event_type for e in await store.get_events("acct")] == ["Happened", "FromChild"]


async def test_racing_writers_in_two_processes_leave_no_gaps(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    per_side = 40
    proc = _child(tmp_path / "events.db", "test", "retry", "shared", per_side)
    conflicts = 0
    for i in range(per_side):
        while True:
            latest = await store.get_latest_version("shared")
            try:
                await store.save_event(Event("FromParent", "shared", latest + 1, {"i": i}))
                break
            except VersionConflictError as e:
                conflicts += 1
                assert e.actual > latest
    await _wait_child(proc)
    events = await store.get_events("shared")
    assert [e.version for e in events] == list(range(1, 2 * per_side + 1))
    by_type = {
        t: [e.data["i"] for e in events if e.event_type == t] for t in ("FromParent", "FromChild")
    }
    assert by_type == {"FromParent": list(range(per_side)), "FromChild": list(range(per_side))}
    assert await store.list_actors() == {"shared": 2 * per_side}


async def test_watch_follows_rows_written_by_another_process(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    await store.save_event(ev("before", 1))
    it = store.watch()
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.2)
    proc = _child(tmp_path / "events.db", "test", "sequence", "remote", 25)
    try:
        got = [await asyncio.wait_for(first, WAIT)]
        got += [await asyncio.wait_for(anext(it), WAIT) for _ in range(24)]
        assert [(e.actor_id, e.version) for e in got] == [("remote", v) for v in range(1, 26)]
        positions = [e.position for e in got]
        assert positions == sorted(set(positions))  # type: ignore[type-var]
        await _wait_child(proc)
        mine = await store.save_event(ev("after", 1))
        assert (await asyncio.wait_for(anext(it), WAIT)).id == mine.id
    finally:
        await it.aclose()


# --- group commit ------------------------------------------------------------------------


async def test_concurrent_appends_share_commits(store: SQLiteEventStore, tmp_path: Path) -> None:
    before = store.stats.commits
    n = 200
    saved = await asyncio.gather(*(store.save_event(ev(f"a{i}", 1, i=i)) for i in range(n)))
    commits = store.stats.commits - before
    assert 1 <= commits < n
    assert store.stats.max_batch >= n  # one turn of the loop: one batch
    assert len({e.position for e in saved}) == n
    await store.close()
    reopened = await SQLiteEventStore.connect(tmp_path / "events.db", "test")
    try:
        assert len(await reopened.list_actors()) == n
    finally:
        await reopened.close()


async def test_one_conflict_fails_only_its_own_append(store: SQLiteEventStore) -> None:
    await store.save_event(ev("x", 1))
    commits = store.stats.commits
    results = await asyncio.gather(
        store.save_event(ev("y", 1)),
        store.save_event(ev("x", 1)),  # conflict
        store.save_events([ev("x", 2), ev("x", 3)]),
        store.save_event(ev("x", 3)),  # conflict with the batch before it
        store.save_events([ev("z", 2), ev("z", 3)]),  # conflict: z is new
        store.save_event(ev("z", 1)),
        return_exceptions=True,
    )
    assert store.stats.commits == commits + 1
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "Event",
        "VersionConflictError",
        "list",
        "VersionConflictError",
        "VersionConflictError",
        "Event",
    ]
    assert [(r.expected, r.actual) for r in results if isinstance(r, VersionConflictError)] == [
        (0, 1),
        (2, 3),
        (1, 0),
    ]
    assert await store.list_actors() == {"x": 3, "y": 1, "z": 1}


async def test_big_mixed_batch_checks_every_append_on_its_own(store: SQLiteEventStore) -> None:
    """Many actors in one transaction: next versions, follow-ups, stale and gapped appends."""
    for i in range(12):
        await store.save_event(ev(f"a{i}", 1))
    commits, bulk = store.stats.commits, store.stats.bulk_appends
    calls = []
    expected: list[object] = []
    for i in range(12):
        calls.append(store.save_event(ev(f"a{i}", 2)))  # the next version: lands
        expected.append(2)
        if i % 2 == 0:
            calls.append(store.save_event(ev(f"a{i}", 3)))  # follows the one before
            expected.append(3)
        if i % 3 == 0:
            calls.append(store.save_event(ev(f"a{i}", 2)))  # stale by now: conflict
            expected.append(("conflict", 1, 3 if i % 2 == 0 else 2))
        if i % 4 == 1:
            calls.append(store.save_event(ev(f"a{i}", 9)))  # a gap: conflict
            expected.append(("conflict", 8, 2))
    for i in range(8):
        calls.append(store.save_event(ev(f"new{i}", 1)))
        expected.append(1)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert store.stats.commits == commits + 1
    assert store.stats.bulk_appends - bulk == 12 + 8  # the first of each actor: one statement
    got = [
        ("conflict", r.expected, r.actual) if isinstance(r, VersionConflictError) else r.version
        for r in results
    ]
    assert got == expected
    versions = {f"a{i}": 3 if i % 2 == 0 else 2 for i in range(12)}
    versions.update({f"new{i}": 1 for i in range(8)})
    assert await store.list_actors() == versions
    positions = [e.position async for e in store.read_all()]
    assert len(positions) == sum(versions.values())
    assert positions == sorted(set(positions))  # type: ignore[type-var]


@pytest.mark.parametrize("json_statements", [True, False], ids=["json", "no-json"])
async def test_stored_bytes_are_the_wire_format(tmp_path: Path, json_statements: bool) -> None:
    """Both write paths (one JSON statement, or row by row) store `encode_event`'s bytes."""
    from aether.event import encode_event

    store = await SQLiteEventStore.connect(tmp_path / "w.db", "ns")
    store._writer._use_bulk = json_statements  # as on an SQLite without JSON functions
    try:
        data = {"text": 'ünï "q" \\ \u2028 🙂', "f": 1.5, "i": 3, "n": None, "l": [1.0, 2]}
        batch = [ev("a", v, **data) for v in (1, 2, 3)]
        singles = [ev(f"s{i}", 1, **data) for i in range(6)]
        results = await asyncio.gather(
            store.save_events(batch), *(store.save_event(e) for e in singles)
        )
        with pytest.raises(VersionConflictError):
            await store.save_events([ev("a", 3), ev("a", 4)])
        assert await store.get_latest_version("a") == 3
        assert [e.version for e in results[0]] == [1, 2, 3]
        conn = sqlite3.connect(tmp_path / "w.db")
        try:
            stored = dict(conn.execute("SELECT position, payload FROM aether_events").fetchall())
        finally:
            conn.close()
        for saved, original in zip([*results[0], *results[1:]], [*batch, *singles], strict=True):
            assert stored[saved.position] == encode_event(original)
        assert [e.data for e in await store.get_events("a")] == [data] * 3
    finally:
        await store.close()


async def test_appends_from_two_event_loops(store: SQLiteEventStore) -> None:
    """A second thread with its own event loop shares the store's writer."""
    errors: list[BaseException] = []

    def other_loop() -> None:
        async def work() -> None:
            for v in range(1, 21):
                await store.save_event(ev("other-loop", v))

        try:
            asyncio.run(work())
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=other_loop)
    thread.start()
    for v in range(1, 21):
        await store.save_event(ev("main-loop", v))
    await asyncio.to_thread(thread.join, WAIT)
    assert errors == []
    assert await store.list_actors() == {"other-loop": 20, "main-loop": 20}


# --- settings and durability -------------------------------------------------------------


async def test_full_durability_and_wal_by_default(store: SQLiteEventStore, tmp_path: Path) -> None:
    pragmas = await store.pragmas()
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 10000}
    conn = sqlite3.connect(tmp_path / "events.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize(("mode", "value"), [("normal", 1), ("FULL", 2), ("extra", 3), ("off", 0)])
async def test_synchronous_from_settings(tmp_path: Path, mode: str, value: int) -> None:
    settings = Settings.load(
        overrides={
            "store": "sqlite",
            "namespace": "ns",
            "sqlite.path": str(tmp_path / "deep" / "dir" / "events.db"),
            "sqlite.synchronous": mode,
        },
        search_default_files=False,
    )
    store = await open_store(settings)
    try:
        assert isinstance(store, SQLiteEventStore)
        assert (await store.pragmas())["synchronous"] == value
        assert store.namespace == "ns"
        await store.save_event(ev("a", 1))
    finally:
        await store.close()
    assert (tmp_path / "deep" / "dir" / "events.db").is_file()


async def test_max_event_bytes_from_settings(tmp_path: Path) -> None:
    settings = Settings.load(
        overrides={
            "store": "sqlite",
            "sqlite.path": str(tmp_path / "e.db"),
            "max_event_bytes": 400,
        },
        search_default_files=False,
    )
    store = await open_store(settings)
    try:
        await store.save_event(ev("a", 1, s="x" * 100))
        from aether.errors import EventTooLargeError

        with pytest.raises(EventTooLargeError):
            await store.save_event(ev("a", 2, s="x" * 400))
        assert await store.get_latest_version("a") == 1
    finally:
        await store.close()


@pytest.mark.parametrize("path", [":memory:", ""])
def test_memory_paths_are_refused(path: str) -> None:
    with pytest.raises(ConfigError):
        SQLiteEventStore(path)


def test_unusable_files_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(ConfigError, match=r"sqlite\.path"):
        SQLiteEventStore(tmp_path / "a-directory")
    (tmp_path / "not-a-db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(ConfigError, match=r"sqlite\.path"):
        SQLiteEventStore(tmp_path / "not-a-db")


def test_bad_synchronous_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SQLiteEventStore(tmp_path / "x.db", synchronous="sometimes")
    assert not (tmp_path / "x.db").exists()


async def test_events_survive_reopening(tmp_path: Path) -> None:
    first = await SQLiteEventStore.connect(tmp_path / "e.db", "ns")
    saved = await first.save_events([ev("a", v, v=v) for v in range(1, 6)])
    await first.close()
    second = await SQLiteEventStore.connect(tmp_path / "e.db", "ns")
    try:
        assert await second.get_latest_version("a") == 5
        assert [e.id for e in await second.get_events("a")] == [e.id for e in saved]
        with pytest.raises(VersionConflictError):
            await second.save_event(ev("a", 5))
    finally:
        await second.close()


# --- namespaces share a file -------------------------------------------------------------


async def test_namespaces_in_one_file_are_isolated(tmp_path: Path) -> None:
    a = await SQLiteEventStore.connect(tmp_path / "shared.db", "alpha")
    b = await SQLiteEventStore.connect(tmp_path / "shared.db", "beta")
    try:
        watch_b = b.watch()
        first_b = asyncio.ensure_future(anext(watch_b))
        await asyncio.sleep(0.1)
        await a.save_events([ev("same-id", 1), ev("same-id", 2)])
        in_b = await b.save_event(ev("same-id", 1))
        assert await a.get_latest_version("same-id") == 2
        assert await b.get_latest_version("same-id") == 1
        assert await a.list_actors() == {"same-id": 2}
        assert await b.list_actors() == {"same-id": 1}
        assert [e.id async for e in b.read_all()] == [in_b.id]
        assert len([e async for e in a.read_all()]) == 2
        assert (await asyncio.wait_for(first_b, WAIT)).id == in_b.id
        await watch_b.aclose()
    finally:
        await a.close()
        await b.close()


# --- paging, closing ---------------------------------------------------------------------


async def test_reads_page_through_long_histories(store: SQLiteEventStore) -> None:
    total = 2 * PAGE_SIZE + 37
    for start in range(1, total + 1, 500):
        end = min(start + 500, total + 1)
        await store.save_events([ev("long", v, v=v) for v in range(start, end)])
    await store.save_event(ev("other", 1))
    assert [e.version async for e in store.iter_events("long")] == list(range(1, total + 1))
    lo, hi = PAGE_SIZE - 3, 2 * PAGE_SIZE + 5
    assert [e.version async for e in store.iter_events("long", lo, hi)] == list(range(lo, hi + 1))
    positions = [e.position async for e in store.read_all()]
    assert len(positions) == total + 1 and positions == sorted(set(positions))  # type: ignore[type-var]
    it = store.watch(0)
    try:
        seen = [await asyncio.wait_for(anext(it), WAIT) for _ in range(total + 1)]
        assert [e.position for e in seen] == positions
    finally:
        await it.aclose()


async def test_close_stops_the_writer_and_ends_watches(tmp_path: Path) -> None:
    store = await SQLiteEventStore.connect(tmp_path / "c.db", "ns")
    await store.save_event(ev("a", 1))
    it = store.watch()
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.05)
    writers_before = {t.name for t in threading.enumerate() if t.name.startswith("aether-sqlite")}
    assert any("writer" in name for name in writers_before)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, WAIT)
    assert not [t for t in threading.enumerate() if t.name == "aether-sqlite-writer-ns"]
    with pytest.raises(AetherError):
        await store.save_event(ev("a", 2))
    with pytest.raises(AetherError):
        await store.get_latest_version("a")
    await store.close()  # idempotent


async def test_resave_after_uncertain_outcome_across_instances(tmp_path: Path) -> None:
    one = await SQLiteEventStore.connect(tmp_path / "r.db", "ns")
    two = await SQLiteEventStore.connect(tmp_path / "r.db", "ns")
    try:
        event = ev("a", 1)
        stored = await one.save_event(event)
        again = await two.save_event(event)
        assert again.position == stored.position
        assert len([e async for e in two.read_all()]) == 1
    finally:
        await one.close()
        await two.close()
