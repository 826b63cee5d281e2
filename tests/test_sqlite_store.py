"""SQLite-specific behaviour: other processes, group commit, durability settings, paging."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from aether.config import Settings
from aether.errors import (
    AetherError,
    ConfigError,
    CorruptEventError,
    UnitTooLargeError,
    VersionConflictError,
)
from aether.event import Event
from aether.store import Tracking, open_store
from aether.store.sqlite import PAGE_SIZE, SQLiteEventStore
from aether.subjects import slice_of

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


async def test_one_statement_appends_where_some_actors_are_not_at_the_version(
    store: SQLiteEventStore,
) -> None:
    """The first append of each actor goes in with one statement even when some of them
    are refused: the others get the positions their rows were stored at."""
    for i in range(8):
        await store.save_event(ev(f"b{i}", 1))
    bulk = store.stats.bulk_appends
    refused = {1, 4, 6}
    calls = [store.save_event(ev(f"b{i}", 5 if i in refused else 2)) for i in range(8)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert store.stats.bulk_appends - bulk == 8 - len(refused)
    stored = {e.actor_id: e.position async for e in store.read_all() if e.version == 2}
    for i, r in enumerate(results):
        if i in refused:
            assert isinstance(r, VersionConflictError)
            assert (r.expected, r.actual) == (4, 1)
        else:
            assert isinstance(r, Event)
            assert r.position == stored[f"b{i}"]
    assert sorted(stored) == [f"b{i}" for i in range(8) if i not in refused]


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


# --- units of work, tracking, slices (SQLite specifics; the rules are in aether.testing) ---


async def test_units_share_a_commit_and_a_failing_unit_fails_alone(
    store: SQLiteEventStore,
) -> None:
    await store.save_event(ev("x", 1))
    commits = store.stats.commits
    results = await asyncio.gather(
        store.save_event(ev("y", 1)),
        store.save_events([ev("x", 2), ev("y", 2)]),  # after the append before it
        store.save_events([ev("x", 2), ev("z", 1)]),  # x is at 2 by now: conflict
        store.save_events([ev("z", 1), ev("w", 1)], tracking=Tracking("t", 1, 0)),
        store.save_events([], tracking=Tracking("t", 2, 0)),  # stale: fenced
        store.save_event(ev("w", 2)),
        return_exceptions=True,
    )
    assert store.stats.commits == commits + 1
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "Event",
        "list",
        "VersionConflictError",
        "list",
        "TrackingConflictError",
        "Event",
    ]
    assert await store.list_actors() == {"x": 2, "y": 2, "z": 1, "w": 2}
    record = await store.get_tracking("t")
    assert record is not None and (record.position, record.revision) == (1, 1)


async def test_racing_units_across_two_connections(tmp_path: Path) -> None:
    one = await SQLiteEventStore.connect(tmp_path / "events.db", "test")
    two = await SQLiteEventStore.connect(tmp_path / "events.db", "test")
    try:

        async def racer(store: SQLiteEventStore, i: int) -> None:
            a, b = f"r{i % 4}", f"r{(i + 1) % 4}"
            while True:
                va, vb = await store.get_latest_version(a), await store.get_latest_version(b)
                try:
                    await store.save_events([ev(a, va + 1, u=i), ev(b, vb + 1, u=i)])
                    return
                except VersionConflictError:
                    await asyncio.sleep(0)

        await asyncio.gather(*(racer((one, two)[i % 2], i) for i in range(24)))
        for actor, version in (await one.list_actors()).items():
            assert [e.version for e in await two.get_events(actor)] == list(range(1, version + 1))
        units = [e.data["u"] for e in await _all(two)]
        assert sorted(units) == sorted(list(range(24)) * 2)
        for k in range(0, len(units), 2):  # each unit's rows are adjacent
            assert units[k] == units[k + 1]
    finally:
        await one.close()
        await two.close()


async def test_max_batch_option(tmp_path: Path) -> None:
    async with await SQLiteEventStore.connect(tmp_path / "e.db", "t", max_batch=5) as store:
        assert store.max_batch == 5
        await store.save_events([ev("a", v) for v in range(1, 6)])
        with pytest.raises(UnitTooLargeError):
            await store.save_events([ev("b", v) for v in range(1, 7)])
    with pytest.raises(ConfigError):
        SQLiteEventStore(tmp_path / "e.db", "t", max_batch=0)


async def test_tracking_survives_reopening_and_is_per_namespace(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await SQLiteEventStore.connect(path, "one") as store:
        await store.save_events([ev("a", 1)], tracking=Tracking("p.0", 7, 0, {"o": "n1"}))
    async with await SQLiteEventStore.connect(path, "one") as store:
        record = await store.get_tracking("p.0")
        assert record is not None and (record.position, record.revision) == (7, 1)
        assert record.data == {"o": "n1"}
    async with await SQLiteEventStore.connect(path, "two") as other:
        assert await other.get_tracking("p.0") is None
        await other.save_events([], tracking=Tracking("p.0", 1, 0))


async def _all(store: SQLiteEventStore, **kw: Any) -> list[Event]:
    return [e async for e in store.read_all(**kw)]


async def test_slice_reads_page_through_windows_and_namespaces(tmp_path: Path) -> None:
    """More events of the slices than a page, interleaved with another namespace's."""
    path = tmp_path / "events.db"
    async with (
        await SQLiteEventStore.connect(path, "mine") as mine,
        await SQLiteEventStore.connect(path, "theirs") as theirs,
    ):
        actors = [f"acct-{i}" for i in range(60)]
        for round_ in range(1, 61):
            unit = [ev(a, round_) for a in actors]
            await mine.save_events(unit)
            await theirs.save_events(unit[:20])
        everything = await _all(mine)
        assert len(everything) == 3600
        for wanted in (range(0, 128), {slice_of("acct-7")}, range(0, 1024), range(512, 1024)):
            got = await _all(mine, slices=wanted)
            expect = [e for e in everything if slice_of(e.actor_id) in wanted]
            assert [(e.id, e.position) for e in got] == [(e.id, e.position) for e in expect]
            middle = everything[1800].position
            assert middle is not None
            got = await _all(mine, from_position=middle, slices=wanted)
            assert [e.id for e in got] == [e.id for e in expect if e.position >= middle]  # type: ignore[operator]
        # watch of the slices replays the same, then follows
        wanted = range(0, 128)
        expect = [e.id for e in everything if slice_of(e.actor_id) in wanted]
        it = mine.watch(0, slices=wanted)
        try:
            replay = [(await asyncio.wait_for(anext(it), WAIT)).id for _ in expect]
            assert replay == expect
            inside = next(a for a in actors if slice_of(a) in wanted)
            fresh = next(f"x{i}" for i in range(1000) if slice_of(f"x{i}") in wanted)
            await theirs.save_event(ev(fresh, 1))  # another namespace: not seen
            new = await mine.save_event(ev(inside, 61))
            assert (await asyncio.wait_for(anext(it), WAIT)).id == new.id
        finally:
            await it.aclose()  # type: ignore[attr-defined]


def test_slice_reads_use_the_slice_index(tmp_path: Path) -> None:
    from aether.store.sqlite import _slice_page

    SQLiteEventStore(tmp_path / "events.db", "t")  # creates the schema
    conn = sqlite3.connect(tmp_path / "events.db")
    try:
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN {_slice_page(3)}", ("t", 1, 2, 3, 1, 100, 1000)
        ).fetchall()
        assert "aether_events_by_slice" in " ".join(str(r) for r in plan)
        assert conn.execute("SELECT slice FROM aether_events").fetchall() == []
    finally:
        conn.close()


# --- a 0.1 file (no slice column) -------------------------------------------------------

_OLD_SCHEMA = (
    """CREATE TABLE aether_events (
        position INTEGER PRIMARY KEY, namespace TEXT NOT NULL, actor_id TEXT NOT NULL,
        version INTEGER NOT NULL, payload BLOB NOT NULL, UNIQUE (namespace, actor_id, version))""",
    "CREATE INDEX aether_events_by_namespace ON aether_events (namespace, position)",
    """CREATE TABLE aether_actors (namespace TEXT NOT NULL, actor_id TEXT NOT NULL,
        version INTEGER NOT NULL, PRIMARY KEY (namespace, actor_id)) WITHOUT ROWID""",
    """CREATE TABLE aether_snapshots (namespace TEXT NOT NULL, actor_id TEXT NOT NULL,
        version INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (namespace, actor_id))
        WITHOUT ROWID""",
    """CREATE TRIGGER aether_events_advance_actor AFTER INSERT ON aether_events BEGIN
        INSERT INTO aether_actors (namespace, actor_id, version)
        VALUES (NEW.namespace, NEW.actor_id, NEW.version)
        ON CONFLICT (namespace, actor_id) DO UPDATE SET version = excluded.version; END""",
)
_OLD_APPEND = (
    "INSERT INTO aether_events (namespace, actor_id, version, payload) VALUES (?, ?, ?, ?)"
)


def _old_file(path: Path, events: list[Event]) -> None:
    from aether.event import encode_event

    conn = sqlite3.connect(path)
    try:
        for statement in _OLD_SCHEMA:
            conn.execute(statement)
        conn.executemany(
            _OLD_APPEND, [("old", e.actor_id, e.version, encode_event(e)) for e in events]
        )
        conn.commit()
    finally:
        conn.close()


async def test_a_0_1_file_is_migrated_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    old = [ev(f"acct-{i}", v) for v in (1, 2) for i in range(30)]
    _old_file(path, old)
    with caplog.at_level("WARNING", logger="aether.store"):
        store = await SQLiteEventStore.connect(path, "old")
    assert any("migrated" in r.getMessage() for r in caplog.records)
    try:
        assert await store.list_actors() == {f"acct-{i}": 2 for i in range(30)}
        wanted = range(0, 256)
        got = await _all(store, slices=wanted)
        assert [e.id for e in got] == [e.id for e in old if slice_of(e.actor_id) in wanted]
        assert 0 < len(got) < len(old)
        await store.save_events([ev("acct-0", 3), ev("new", 1)])
        assert await store.last_position() == 62
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT actor_id, slice FROM aether_events").fetchall()
        assert all(s == slice_of(a) for a, s in rows)
        with pytest.raises(sqlite3.IntegrityError, match="older than the slice layout"):
            conn.execute(_OLD_APPEND, ("old", "acct-1", 3, b"{}"))  # an old writer
    finally:
        conn.close()
    caplog.clear()
    with caplog.at_level("WARNING", logger="aether.store"):
        again = await SQLiteEventStore.connect(path, "old")  # already migrated: no-op
    await again.close()
    assert not any("migrated" in r.getMessage() for r in caplog.records)


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    from aether.store.sqlite import migrate_schema

    path = tmp_path / "old.db"
    _old_file(path, [ev("a", 1)])
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE aether_tracking (x)")  # clashes with the new schema
        conn.execute("CREATE INDEX aether_tracking_x ON aether_tracking (x)")
        conn.execute("CREATE TABLE aether_events_by_slice (x)")  # the index name is taken
        with pytest.raises(sqlite3.Error):
            migrate_schema(conn)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(aether_events)")]
        assert "slice" not in columns
    finally:
        conn.close()


# --- foreign and corrupt rows ---------------------------------------------------------


async def test_corrupt_rows_raise_on_actor_reads_and_are_skipped_by_scans(
    store: SQLiteEventStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aether.event import encode_event

    await store.save_event(ev("a", 1))
    conn = sqlite3.connect(tmp_path / "events.db")
    try:
        insert = (
            "INSERT INTO aether_events (namespace, actor_id, version, payload, slice) "
            "VALUES ('test', ?, ?, ?, ?)"
        )
        conn.execute(insert, ("a", 2, b"not json", slice_of("a")))
        conn.execute(insert, ("b", 1, encode_event(ev("c", 1)), slice_of("b")))  # wrong actor
        conn.commit()
    finally:
        conn.close()
    good = await store.save_event(ev("d", 1))
    with pytest.raises(CorruptEventError) as info:
        await store.get_events("a")
    assert info.value.position == 2
    with pytest.raises(CorruptEventError) as info:
        await store.get_events("b")
    assert info.value.position == 3 and "'c'" in info.value.reason
    with caplog.at_level("WARNING", logger="aether.store"):
        scanned = await _all(store)
        assert [e.actor_id for e in scanned] == ["a", "d"]
        assert store.corrupt_skipped == 2
        it = store.watch(0)
        try:
            got = [(await asyncio.wait_for(anext(it), WAIT)).actor_id for _ in range(2)]
        finally:
            await it.aclose()  # type: ignore[attr-defined]
        assert got == ["a", "d"] and store.corrupt_skipped == 4
        sliced = await _all(store, slices={slice_of("d"), slice_of("b")})
        assert [e.id for e in sliced] == [good.id]
    assert sum("skipped row" in r.getMessage() for r in caplog.records) >= 4


# --- inline commits (an idle writer commits on the loop's thread) ----------------------


async def test_a_locked_file_never_blocks_the_loop(store: SQLiteEventStore, tmp_path: Path) -> None:
    """Another connection holds the write lock: the save waits in the writer thread."""
    await store.save_event(ev("a", 1))
    other = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.ensure_future(ticker())
        save = asyncio.ensure_future(store.save_event(ev("a", 2)))
        await asyncio.sleep(0.3)
        assert not save.done()
        assert ticks >= 1  # the loop kept running while the save waited for the lock
        other.execute("COMMIT")
        assert (await asyncio.wait_for(save, WAIT)).version == 2
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
    finally:
        other.close()
    assert await store.get_latest_version("a") == 2


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "thread"])
async def test_both_commit_paths_keep_every_rule(tmp_path: Path, inline: bool) -> None:
    async with await SQLiteEventStore.connect(tmp_path / "e.db", "t") as store:
        store._writer.inline = inline
        await store.save_event(ev("a", 1))
        results = await asyncio.gather(
            *(store.save_event(ev(f"c{i}", 1)) for i in range(10)),
            store.save_events([ev("a", 2), ev("b", 1)], tracking=Tracking("k", 1, 0)),
            store.save_event(ev("a", 2)),  # conflict with the unit before it
            return_exceptions=True,
        )
        assert isinstance(results[-1], VersionConflictError)
        assert await store.list_actors() == {"a": 2, "b": 1, **{f"c{i}": 1 for i in range(10)}}
        w = store.watch()
        saved = await store.save_event(ev("a", 3))
        assert (await asyncio.wait_for(anext(w), WAIT)).id == saved.id
        await w.aclose()  # type: ignore[attr-defined]


async def test_the_wal_is_checkpointed_by_the_writer(tmp_path: Path) -> None:
    """Automatic checkpoints are off on the writer; the thread's keep the WAL small."""
    path = tmp_path / "e.db"
    async with await SQLiteEventStore.connect(path, "t") as store:
        for v in range(1, 2001):  # about 5 frames a commit: 10,000 frames, 40 MB
            await store.save_event(ev("seq", v))
        wal = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
    assert wal < 2000 * 4096  # without checkpoints: 2000 commits x about 5 pages
