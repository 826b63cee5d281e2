"""`aether.state`: load from snapshot + events, execute with retries, snapshots, the cache.

Also the bank example: withdrawals that must not overdraw, 4 concurrent writers (tasks on
memory, SQLite and JetStream; 4 processes on one SQLite file), snapshots every 100 events,
no hand-written retry loop; balances and money conserve.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aether.config import Settings
from aether.errors import (
    InvalidEventError,
    NatsUnavailableError,
    PermissionDeniedError,
    PublishTimeoutError,
    VersionConflictError,
)
from aether.event import Event, Snapshot
from aether.state import Draft, Executed, StateCache, execute, load
from aether.store.base import EventStore
from aether.store.memory import InMemoryEventStore
from tests.servers import NatsServer

_ns = itertools.count()
ROOT = Path(__file__).resolve().parents[1]
RETRIES = 20  # the default (the worst seen in 8,000 contended executes: 6 conflicts)

# --- the bank domain ---------------------------------------------------------------------


class InsufficientFunds(Exception):
    """A domain error: the withdrawal would overdraw the account."""


def bank_fold(state: dict[str, Any], event: Event) -> dict[str, Any]:
    """Deposited adds, Withdrawn subtracts (mutating in place, on purpose)."""
    if event.event_type == "Deposited":
        state["balance"] += event.data["amount"]
    elif event.event_type == "Withdrawn":
        state["balance"] -= event.data["amount"]
    return state


OPEN: dict[str, Any] = {"balance": 0}


def deposit(amount: int) -> Any:
    """A decide function depositing `amount`."""

    async def decide(state: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        await asyncio.sleep(0)  # let other writers interleave between load and append
        return [("Deposited", {"amount": amount})]

    return decide


def withdraw(amount: int) -> Any:
    """A decide function withdrawing `amount`, refusing to overdraw."""

    async def decide(state: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        await asyncio.sleep(0)
        if state["balance"] < amount:
            raise InsufficientFunds(f"balance {state['balance']} < {amount}")
        return [("Withdrawn", {"amount": amount})]

    return decide


async def bank_writer(
    store: EventStore, accounts: list[str], ops: int, seed: int, cache: StateCache | None
) -> dict[str, Any]:
    """`ops` random deposits and withdrawals; what was accepted, per account."""
    rng = random.Random(seed)
    net = dict.fromkeys(accounts, 0)
    refused = 0
    conflicts = 0
    for _ in range(ops):
        account = rng.choice(accounts)
        amount = rng.randint(1, 50)
        decide = deposit(amount) if rng.random() < 0.5 else withdraw(amount)
        try:
            done: Executed[dict[str, Any]] = await execute(
                store,
                account,
                decide,
                bank_fold,
                OPEN,
                snapshot_every=100,
                cache=cache,
                retries=RETRIES,
            )
        except InsufficientFunds:
            refused += 1
            continue
        assert done.snapshot_error is None
        conflicts += done.conflicts
        kind = done.events[0].event_type
        net[account] += amount if kind == "Deposited" else -amount
    return {"net": net, "refused": refused, "conflicts": conflicts}


async def check_bank(store: EventStore, accounts: list[str], results: list[dict[str, Any]]) -> int:
    """Balances equal the accepted net flows, never went negative; snapshots exist."""
    total_events = 0
    for account in accounts:
        expected = sum(r["net"][account] for r in results)
        loaded = await load(store, account, bank_fold, OPEN)
        assert loaded.state["balance"] == expected
        balance = 0
        versions = []
        async for e in store.iter_events(account):
            balance = bank_fold({"balance": balance}, e)["balance"]
            assert balance >= 0, f"{account} overdrawn at version {e.version}"
            versions.append(e.version)
        assert versions == list(range(1, len(versions) + 1))
        assert balance == expected
        total_events += len(versions)
        snap = await store.get_latest_snapshot(account)  # type: ignore[attr-defined]
        if len(versions) >= 100:
            assert snap is not None and snap.version >= 100
            assert len(versions) - snap.version < 100 + 4  # at most one per writer in flight
            full = await load(store, account, bank_fold, OPEN, snapshots=_NoSnapshots())
            assert full.state == loaded.state
            assert loaded.snapshot_version == snap.version
            assert loaded.events_read == len(versions) - snap.version
    balances = [(await load(store, a, bank_fold, OPEN)).state["balance"] for a in accounts]
    assert sum(sum(r["net"].values()) for r in results) == sum(balances)
    return total_events


class _NoSnapshots:
    async def get_latest_snapshot(self, actor_id: str) -> Snapshot | None:
        return None

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        raise AssertionError("not used")


# --- stores ---------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "jetstream"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """Each kind of store, fresh."""
    if request.param == "memory":
        store: Any = InMemoryEventStore()
    elif request.param == "sqlite":
        from aether.store.sqlite import SQLiteEventStore

        store = await SQLiteEventStore.connect(tmp_path / "bank.db", "bank")
    else:
        from aether.store.jetstream import JetStreamEventStore

        server: NatsServer = request.getfixturevalue("nats_server")
        store = await JetStreamEventStore.open(js_settings(server.url))
    try:
        yield store
    finally:
        await store.close()


def js_settings(url: str) -> Settings:
    """Settings for a fresh JetStream namespace on `url`."""
    return Settings.load(
        overrides={"namespace": f"st{next(_ns)}", "store": "jetstream", "nats.servers": [url]},
        search_default_files=False,
    )


# --- load ---------------------------------------------------------------------------------


async def test_load_of_an_actor_without_events_is_the_initial_state() -> None:
    store = InMemoryEventStore()
    loaded = await load(store, "acct-1", bank_fold, OPEN)
    assert (loaded.state, loaded.version, loaded.snapshot_version) == ({"balance": 0}, 0, 0)
    assert OPEN == {"balance": 0}


async def test_load_starts_from_the_latest_snapshot_and_reads_the_events_after_it() -> None:
    store = InMemoryEventStore()
    for v in range(1, 6):
        await store.save_event(Event("Deposited", "a", v, {"amount": 10}))
    # A snapshot that disagrees with the events proves it was used as the base.
    await store.save_snapshot(Snapshot("a", 3, {"balance": 1000}))
    loaded = await load(store, "a", bank_fold, OPEN)
    assert (loaded.state, loaded.version) == ({"balance": 1020}, 5)
    assert (loaded.snapshot_version, loaded.events_read) == (3, 2)
    other = InMemoryEventStore()  # snapshots from another store
    await other.save_event(Event("X", "a", 1))
    plain = await load(store, "a", bank_fold, OPEN, snapshots=_NoSnapshots())
    assert plain.state == {"balance": 50}


# --- execute ------------------------------------------------------------------------------


async def test_execute_appends_the_decided_events_at_the_next_versions() -> None:
    store = InMemoryEventStore()
    first = await execute(store, "a", deposit(70), bank_fold, OPEN)
    assert (first.state, first.version, first.attempts, first.conflicts) == (
        {"balance": 70},
        1,
        1,
        0,
    )
    assert [(e.event_type, e.version, e.position) for e in first.events] == [("Deposited", 1, 1)]

    def two(state: dict[str, Any]) -> list[Any]:
        return [
            Draft("Withdrawn", {"amount": 5}, metadata={"by": "test"}, id="w-1"),
            Event("Withdrawn", "a", 99, {"amount": 5}),
        ]

    second = await execute(store, "a", two, bank_fold, OPEN)
    assert second.state == {"balance": 60} and second.version == 3
    stored = await store.get_events("a")
    assert [e.version for e in stored] == [1, 2, 3]
    assert stored[1].id == "w-1" and stored[1].metadata == {"by": "test"}


async def test_decide_returning_nothing_appends_nothing() -> None:
    store = InMemoryEventStore()
    await execute(store, "a", deposit(5), bank_fold, OPEN)
    nothings: list[object] = [None, [], ()]
    for nothing in nothings:

        def decide(state: dict[str, Any], n: object = nothing) -> object:
            return n

        done = await execute(store, "a", decide, bank_fold, OPEN)
        assert done.events == [] and done.version == 1 and done.state == {"balance": 5}
    assert await store.last_position() == 1


async def test_a_domain_error_is_raised_at_once_and_not_retried() -> None:
    store = InMemoryEventStore()
    calls = 0

    def refuse(state: dict[str, Any]) -> list[Any]:
        nonlocal calls
        calls += 1
        raise InsufficientFunds("no")

    with pytest.raises(InsufficientFunds):
        await execute(store, "a", refuse, bank_fold, OPEN, retries=5)
    assert calls == 1
    assert await store.last_position() == 0


@pytest.mark.parametrize(
    "bad",
    [{"event_type": "X"}, "Deposited", Event("X", "a", 1), [Event("X", "other", 1)], [42]],
)
async def test_decide_must_return_drafts(bad: object) -> None:
    store = InMemoryEventStore()
    with pytest.raises(InvalidEventError) as info:
        await execute(store, "a", lambda s: bad, bank_fold, OPEN)
    assert info.value.field.startswith("decide")
    assert await store.last_position() == 0


async def test_conflicts_are_retried_by_reloading_and_redeciding() -> None:
    store = InMemoryEventStore()
    await execute(store, "a", deposit(100), bank_fold, OPEN)
    # Ten concurrent withdrawals of 30 from 100: exactly three can succeed.
    results = await asyncio.gather(
        *(execute(store, "a", withdraw(30), bank_fold, OPEN, retries=50) for _ in range(10)),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, Executed)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(ok) == 3 and len(refused) == 7
    assert sum(r.conflicts for r in ok) > 0
    assert (await load(store, "a", bank_fold, OPEN)).state == {"balance": 10}


async def test_conflicts_beyond_the_retries_raise_the_conflict() -> None:
    store = InMemoryEventStore()

    async def racing(state: dict[str, Any]) -> list[Any]:
        # Another writer always appends between this load and this append.
        latest = await store.get_latest_version("a")
        await store.save_event(Event("Deposited", "a", latest + 1, {"amount": 1}))
        return [("Deposited", {"amount": 1})]

    with pytest.raises(VersionConflictError):
        await execute(store, "a", racing, bank_fold, OPEN, retries=3, backoff=0)
    assert await store.get_latest_version("a") == 4  # one per attempt: 1 + 3 retries


class FlakyStore:
    """An in-memory store whose saves fail as told (then behave)."""

    def __init__(self, failures: list[Exception], *, store_first: bool = False) -> None:
        self.inner = InMemoryEventStore()
        self.failures = failures
        self.store_first = store_first
        self.saves = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def save_events(self, events: list[Event], **kw: Any) -> list[Event]:
        self.saves += 1
        if self.failures:
            error = self.failures.pop(0)
            if self.store_first:  # stored, but the answer was lost
                await self.inner.save_events(events)
            raise error
        return await self.inner.save_events(events, **kw)


async def test_retriable_errors_are_retried_with_the_identical_events() -> None:
    store = FlakyStore(
        [NatsUnavailableError("down"), PublishTimeoutError("no ack")], store_first=True
    )
    done = await execute(store, "a", deposit(5), bank_fold, OPEN, backoff=0.001)  # type: ignore[arg-type]
    assert store.saves == 3
    assert done.version == 1 and done.state == {"balance": 5}
    assert len(await store.inner.get_events("a")) == 1  # stored once


async def test_final_errors_are_not_retried() -> None:
    store = FlakyStore([PermissionDeniedError("no")])
    with pytest.raises(PermissionDeniedError):
        await execute(store, "a", deposit(5), bank_fold, OPEN)  # type: ignore[arg-type]
    assert store.saves == 1


async def test_retriable_errors_beyond_the_retries_are_raised() -> None:
    store = FlakyStore([NatsUnavailableError(str(i)) for i in range(5)])
    with pytest.raises(NatsUnavailableError, match="2"):
        await execute(store, "a", deposit(5), bank_fold, OPEN, retries=2, backoff=0)  # type: ignore[arg-type]
    assert store.saves == 3


# --- snapshots ----------------------------------------------------------------------------


async def test_snapshot_every_n_events_and_load_uses_it() -> None:
    store = InMemoryEventStore()
    snapshots = []
    for _ in range(250):
        done = await execute(store, "a", deposit(1), bank_fold, OPEN, snapshot_every=100)
        if done.snapshot is not None:
            snapshots.append(done.snapshot.version)
    assert snapshots == [100, 200]
    latest = await store.get_latest_snapshot("a")
    assert latest is not None and latest.state == {"balance": 200}
    loaded = await load(store, "a", bank_fold, OPEN)
    assert (loaded.state, loaded.snapshot_version, loaded.events_read) == (
        {"balance": 250},
        200,
        50,
    )


async def test_a_state_the_codec_cannot_store_does_not_fail_the_append() -> None:
    store = InMemoryEventStore()

    def count(state: int, event: Event) -> int:
        return state + 1

    done = await execute(store, "a", lambda s: [("E", {})], count, 0, snapshot_every=1)
    assert done.version == 1 and done.snapshot is None
    assert isinstance(done.snapshot_error, InvalidEventError)
    assert done.snapshot_error.field == "snapshot.state"


async def test_snapshot_errors_name_the_snapshot() -> None:
    store = InMemoryEventStore()
    await store.save_event(Event("E", "a", 1))
    with pytest.raises(InvalidEventError) as info:
        await store.save_snapshot(Snapshot("a", 1, {"xs": {1, 2}}))
    assert info.value.field == "snapshot.state.xs"
    assert str(info.value).startswith("snapshot.state.xs: set is not a JSON value")
    with pytest.raises(InvalidEventError, match=r"^snapshot\.state: cannot be encoded"):
        await store.save_snapshot(Snapshot("a", 1, {"n": 2**70}))


# --- the cache ----------------------------------------------------------------------------


async def test_the_cache_is_a_base_only_and_stays_correct_under_other_writers() -> None:
    store = InMemoryEventStore()
    cache = StateCache()
    await execute(store, "a", deposit(10), bank_fold, OPEN, cache=cache)
    # Another process (no cache) appends behind the cache's back.
    await store.save_event(Event("Deposited", "a", 2, {"amount": 5}))
    loaded = await load(store, "a", bank_fold, OPEN, cache=cache)
    assert (loaded.state, loaded.version, loaded.events_read) == ({"balance": 15}, 2, 1)
    assert cache.hits == 1
    # A decide on a stale cache entry conflicts, then succeeds from the store's truth.
    cache2 = StateCache()
    await load(store, "a", bank_fold, OPEN, cache=cache2)
    await store.save_event(Event("Withdrawn", "a", 3, {"amount": 15}))
    with pytest.raises(InsufficientFunds):
        await execute(store, "a", withdraw(1), bank_fold, OPEN, cache=cache2)
    # Mutating a returned state does not reach the cache.
    got = await load(store, "a", bank_fold, OPEN, cache=cache)
    got.state["balance"] = 10**6
    assert (await load(store, "a", bank_fold, OPEN, cache=cache)).state == {"balance": 0}


async def test_cache_entries_are_per_store_and_fold_and_bounded() -> None:
    cache = StateCache(max_entries=2)
    one, two = InMemoryEventStore(), InMemoryEventStore()
    await execute(one, "a", deposit(10), bank_fold, OPEN, cache=cache)
    assert (await load(two, "a", bank_fold, OPEN, cache=cache)).state == {"balance": 0}

    def other_fold(state: dict[str, Any], event: Event) -> dict[str, Any]:
        return {"balance": state["balance"] + 1000}

    assert (await load(one, "a", other_fold, OPEN, cache=cache)).state == {"balance": 1000}
    assert len(cache) == 2
    with pytest.raises(InvalidEventError):
        StateCache(0)


async def test_concurrent_writers_with_separate_caches_conserve_money() -> None:
    store = InMemoryEventStore()
    caches = [StateCache() for _ in range(4)]
    results = await asyncio.gather(
        *(bank_writer(store, ["a", "b"], 60, seed, caches[seed]) for seed in range(4))
    )
    await check_bank(store, ["a", "b"], list(results))
    assert sum(c.hits for c in caches) > 0


# --- the bank example on every store ------------------------------------------------------


async def test_bank_with_four_concurrent_writers(any_store: EventStore) -> None:
    accounts = ["acct-0", "acct-1"]
    results = await asyncio.gather(
        *(bank_writer(any_store, accounts, 100, seed, None) for seed in range(4))
    )
    total = await check_bank(any_store, accounts, list(results))
    assert total >= 200  # enough for snapshots on at least one account
    assert sum(r["refused"] for r in results) > 0  # some withdrawals were refused


WORKER = """
import asyncio, json, sys
from aether.store.sqlite import SQLiteEventStore
from aether.state import StateCache
from tests.test_state import bank_writer

async def main(path, seed):
    store = await SQLiteEventStore.connect(path, "bank")
    try:
        result = await bank_writer(store, ["acct-0", "acct-1"], 100, seed, StateCache())
    finally:
        await store.close()
    print(json.dumps(result))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_bank_with_four_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    from aether.store.sqlite import SQLiteEventStore

    path = tmp_path / "bank.db"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(path),
            str(seed),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in range(4)
    ]
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 100)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    store: Any = await SQLiteEventStore.connect(path, "bank")
    try:
        total = await check_bank(store, ["acct-0", "acct-1"], results)
    finally:
        await store.close()
    assert total >= 200


# --- the README section runs as printed ---------------------------------------------------


@pytest.mark.parametrize("title", ["State: load and execute", "Following events", "Snapshots"])
def test_readme_section_runs_as_printed(tmp_path: Path, title: str) -> None:
    from tests.test_readme import blocks, run_python, section

    text = section(title)
    codes = blocks(text, "python")
    outputs = blocks(text, "text")
    assert codes and len(codes) == len(outputs)
    for code, output in zip(codes, outputs, strict=True):
        assert run_python(code, tmp_path) == output


async def test_execute_rides_out_a_jetstream_server_restart(nats_server: NatsServer) -> None:
    from aether.store.jetstream import JetStreamEventStore

    store = await JetStreamEventStore.open(js_settings(nats_server.url))
    try:
        twenty = asyncio.Event()

        async def writer() -> None:
            for i in range(60):
                await execute(store, "acct", deposit(1), bank_fold, OPEN, max_backoff=0.5)
                if i == 19:
                    twenty.set()

        task = asyncio.create_task(writer())
        await asyncio.wait_for(twenty.wait(), 60)
        await asyncio.to_thread(nats_server.restart)
        await asyncio.wait_for(task, 90)
        loaded = await load(store, "acct", bank_fold, OPEN)
        assert loaded.state == {"balance": 60} and loaded.version == 60
    finally:
        await store.close()


@pytest.mark.parametrize(
    "kw",
    [{"retries": -1}, {"backoff": -1}, {"max_backoff": float("nan")}, {"snapshot_every": 0}],
)
async def test_bad_policy_arguments_are_refused(kw: dict[str, Any]) -> None:
    store = InMemoryEventStore()
    with pytest.raises(InvalidEventError):
        await execute(store, "a", deposit(1), bank_fold, OPEN, **kw)
    assert await store.last_position() == 0
