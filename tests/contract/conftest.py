"""Store factories for the contract suite: every test in this folder runs against each.

`store` is a fresh, empty store bound to a fresh namespace. `store_factory()` opens
another store instance on the same backing storage (another SQLite connection, another
NATS connection), for tests of writers in separate processes or connections.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from aether.config import Settings
from aether.store import InMemoryEventStore, open_store
from aether.store.base import EventStore

STORE_KINDS = ["memory", "sqlite", "jetstream"]

StoreFactory = Callable[[], Awaitable[EventStore]]
_ns_counter = itertools.count()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The kind of store under test."""
    return str(request.param)


@pytest.fixture
def store_settings(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Settings | None:
    """Settings that open the store under test (None for memory: one shared instance)."""
    namespace = f"contract{next(_ns_counter)}"
    if store_kind == "memory":
        return None
    if store_kind == "sqlite":
        return Settings.load(
            overrides={
                "namespace": namespace,
                "store": "sqlite",
                "sqlite.path": str(tmp_path / "events.db"),
            },
            search_default_files=False,
        )
    server = request.getfixturevalue("nats_server")
    return Settings.load(
        overrides={"namespace": namespace, "store": "jetstream", "nats.servers": [server.url]},
        search_default_files=False,
    )


@pytest.fixture
async def store_factory(store_settings: Settings | None) -> AsyncIterator[StoreFactory]:
    """Opens store instances on the same backing storage; closes them all afterwards."""
    opened: list[EventStore] = []
    shared = InMemoryEventStore() if store_settings is None else None

    async def factory() -> EventStore:
        if shared is not None:
            return shared
        s = await open_store(store_settings)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        await s.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> EventStore:
    """A fresh, empty store of the kind under test."""
    return await store_factory()
