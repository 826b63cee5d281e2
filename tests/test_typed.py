"""`aether.typed`: dataclasses to events and back, schema versions, upcasters, snapshots."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from aether.errors import InvalidEventError, ValidationError
from aether.event import Event, decode_event, encode_event
from aether.state import execute, load
from aether.store.memory import InMemoryEventStore
from aether.typed import SCHEMA_KEY, Registry


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"


@dataclass
class Money:
    amount: int
    currency: Currency = Currency.EUR


@dataclass
class DepositMade:
    money: Money
    note: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Withdrawn:
    amount: int


@dataclass
class Account:
    balance: int = 0
    owners: set[str] = field(default_factory=set)
    history: tuple[int, ...] = ()


def registry() -> Registry:
    r = Registry()
    r.register(DepositMade, version=2, upcasters={1: lambda d: {"money": {"amount": d["amount"]}}})
    r.register(Withdrawn, type="MoneyWithdrawn")
    r.register(Account)
    return r


def test_round_trip_keeps_data_json_and_carries_the_schema_version() -> None:
    r = registry()
    obj = DepositMade(Money(5, Currency.USD), note="hi", tags=["a"])
    event = r.to_event(obj, "acct-1", 3, metadata={"by": "me"}, id="d-1")
    assert (event.event_type, event.actor_id, event.version, event.id) == (
        "DepositMade",
        "acct-1",
        3,
        "d-1",
    )
    assert event.metadata == {"by": "me", SCHEMA_KEY: "2"}
    wire = orjson.loads(encode_event(event))
    assert wire["data"] == {"money": {"amount": 5, "currency": "USD"}, "note": "hi", "tags": ["a"]}
    assert r.from_event(decode_event(encode_event(event))) == obj
    assert r.type_name(Withdrawn) == "MoneyWithdrawn"
    assert r.from_event(r.to_event(Withdrawn(7), "a", 1)) == Withdrawn(7)


def test_old_versions_are_upcast_on_read() -> None:
    r = registry()
    v1 = Event("DepositMade", "a", 1, {"amount": 9}, metadata={SCHEMA_KEY: "1"})
    unversioned = Event("DepositMade", "a", 2, {"amount": 4})  # written before typing
    assert r.from_event(v1) == DepositMade(Money(9))
    assert r.from_event(unversioned) == DepositMade(Money(4))


def test_upcaster_chains_and_skips() -> None:
    r = Registry()
    seen: list[int] = []

    def step(n: int) -> Any:
        def up(d: dict[str, Any]) -> dict[str, Any]:
            seen.append(n)
            return {**d, "amount": d["amount"] * 10}

        return up

    r.register(Withdrawn, version=4, upcasters={1: step(1), 2: (4, step(2)), 3: step(3)})
    assert r.from_event(Event("Withdrawn", "a", 1, {"amount": 1})) == Withdrawn(100)
    assert seen == [1, 2]
    seen.clear()
    assert r.from_event(
        Event("Withdrawn", "a", 1, {"amount": 1}, metadata={SCHEMA_KEY: "3"})
    ) == Withdrawn(10)
    assert seen == [3]


@pytest.mark.parametrize(
    ("upcasters", "words"),
    [
        ({1: lambda d: d}, "gap"),  # version 3 needs 1 and 2
        ({1: lambda d: d, 2: (2, lambda d: d)}, "cycle"),
        ({1: (1, lambda d: d), 2: lambda d: d}, "cycle"),
        ({1: (5, lambda d: d), 2: lambda d: d}, "beyond"),
        ({0: lambda d: d, 1: lambda d: d, 2: lambda d: d}, "between 1 and 2"),
        ({1: lambda d: d, 2: lambda d: d, 3: lambda d: d}, "between 1 and 2"),
        ({1: "nope", 2: lambda d: d}, "function"),
    ],
)
def test_upcasters_are_validated_at_registration(upcasters: Any, words: str) -> None:
    r = Registry()
    with pytest.raises(ValidationError, match=words):
        r.register(Withdrawn, version=3, upcasters=upcasters)
    r.register(Withdrawn, version=3, upcasters={1: lambda d: d, 2: lambda d: d})  # not half-done


def test_duplicates_and_non_dataclasses_are_refused() -> None:
    r = registry()
    with pytest.raises(ValidationError, match="registered already"):
        r.register(Withdrawn, type="Other")
    with pytest.raises(ValidationError, match="registered already"):
        r.register(Money, type="MoneyWithdrawn")
    with pytest.raises(ValidationError, match="dataclass"):
        r.register(int)
    with pytest.raises(ValidationError, match="version"):
        r.register(Money, version=0)
    with pytest.raises(ValidationError, match="not registered"):
        r.to_event(Money(1), "a", 1)


def test_unknown_types_stay_plain_events_and_newer_schemas_are_refused() -> None:
    r = registry()
    other = Event("SomethingElse", "a", 1, {"x": 1})
    assert r.from_event(other) is other
    future = Event("MoneyWithdrawn", "a", 1, {"amount": 1}, metadata={SCHEMA_KEY: "7"})
    with pytest.raises(InvalidEventError, match="newer than the registered 1"):
        r.from_event(future)
    bad = Event("MoneyWithdrawn", "a", 1, {"amount": 1}, metadata={SCHEMA_KEY: "two"})
    with pytest.raises(InvalidEventError, match="not an integer"):
        r.from_event(bad)
    missing = Event("MoneyWithdrawn", "a", 1, {})
    with pytest.raises(InvalidEventError) as info:
        r.from_event(missing)
    assert info.value.field == "data.amount"


def test_non_json_fields_are_named() -> None:
    r = Registry()

    @dataclass
    class Odd:
        when: object

    r.register(Odd)
    with pytest.raises(InvalidEventError) as info:
        r.to_event(Odd(object()), "a", 1)
    assert info.value.field == "data.when"


def test_snapshots_of_typed_state_round_trip_with_upcasting() -> None:
    r = registry()
    state = Account(30, {"bo", "al"}, (1, 2))
    snap = r.to_snapshot(state, "a", 4)
    assert snap.state == {
        "aether.type": "Account",
        SCHEMA_KEY: 1,
        "data": {"balance": 30, "owners": ["al", "bo"], "history": [1, 2]},
    }
    assert r.from_snapshot(snap) == state
    r2 = Registry()

    @dataclass
    class Account2:
        cents: int

    r2.register(
        Account2, type="Account", version=2, upcasters={1: lambda d: {"cents": 100 * d["balance"]}}
    )
    assert r2.from_snapshot(snap) == Account2(3000)
    assert Registry().from_snapshot(snap) == snap.state  # unknown type: the raw state


async def test_execute_and_load_with_typed_events_and_typed_state() -> None:
    r = registry()
    store = InMemoryEventStore()

    def fold(state: Account, event: object) -> Account:
        if isinstance(event, DepositMade):
            return Account(state.balance + event.money.amount, state.owners, (*state.history, 1))
        if isinstance(event, Withdrawn):
            return Account(state.balance - event.amount, state.owners, (*state.history, -1))
        return state  # an unknown type stays an Event: ignored

    codec = r.state_codec(Account)
    kw: dict[str, Any] = {"registry": r, "codec": codec, "snapshot_every": 2}
    await store.save_event(Event("Opened", "a", 1, {}))
    first = await execute(store, "a", lambda s: [DepositMade(Money(10))], fold, Account(), **kw)
    assert first.snapshot is not None and first.snapshot.version == 2  # 2 events since none
    done = await execute(store, "a", lambda s: [Withdrawn(3)], fold, Account(), **kw)
    assert done.state == Account(7, set(), (1, -1)) and done.snapshot is None
    stored = await store.get_events("a")
    assert stored[1].metadata == {SCHEMA_KEY: "2"} and stored[1].data == {
        "money": {"amount": 10, "currency": "EUR"},
        "note": None,
        "tags": [],
    }
    loaded = await load(store, "a", fold, Account(), registry=r, codec=codec)
    assert loaded.state == Account(7, set(), (1, -1)) and loaded.snapshot_version == 2
    with pytest.raises(InvalidEventError, match="not 'MoneyWithdrawn'"):
        r.state_codec(Withdrawn).decode(first.snapshot.state)


def test_readme_typed_section_runs_as_printed(tmp_path: Any) -> None:
    from tests.test_readme import blocks, run_python, section

    text = section("Typed events")
    codes = blocks(text, "python")
    outputs = blocks(text, "text")
    assert codes and len(codes) == len(outputs)
    for code, output in zip(codes, outputs, strict=True):
        assert run_python(code, tmp_path) == output
