"""aether's own stores against the shipped contract (`aether.testing.stores`).

Memory, SQLite and JetStream (one server) run the whole contract; the unit-of-work and
slice parts run once more on a three-server cluster with R3 streams.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aether.config import Settings
from aether.store import InMemoryEventStore, open_store
from aether.store.base import Store
from aether.testing.stores import SliceContract, StoreContract, StoreFactory, UnitOfWorkContract

_ns = itertools.count()


def _settings(**overrides: Any) -> Settings:
    return Settings.load(
        overrides={"namespace": f"contract{next(_ns)}", **overrides}, search_default_files=False
    )


async def _factory(settings: Settings) -> AsyncIterator[StoreFactory]:
    opened: list[Store] = []

    async def factory() -> Store:
        store = await open_store(settings)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


class TestMemory(StoreContract):
    """The in-memory store: one shared instance plays every "other connection"."""

    @pytest.fixture
    async def store_factory(self) -> AsyncIterator[StoreFactory]:
        shared = InMemoryEventStore()

        async def factory() -> Store:
            return shared

        yield factory
        await shared.close()


class TestSQLite(StoreContract):
    """The SQLite store: each factory call opens another store on the same file."""

    @pytest.fixture
    async def store_factory(self, tmp_path: Path) -> AsyncIterator[StoreFactory]:
        settings = _settings(store="sqlite", **{"sqlite.path": str(tmp_path / "events.db")})
        async for factory in _factory(settings):
            yield factory


class TestJetStream(StoreContract):
    """The JetStream store on one server: each factory call is another NATS connection."""

    @pytest.fixture
    async def store_factory(self, nats_server: Any) -> AsyncIterator[StoreFactory]:
        settings = _settings(store="jetstream", **{"nats.servers": [nats_server.url]})
        async for factory in _factory(settings):
            yield factory


class TestJetStreamR3(UnitOfWorkContract, SliceContract):
    """Units of work and slices on a three-server cluster with R3 streams."""

    @pytest.fixture
    async def store_factory(self, nats_cluster: Any) -> AsyncIterator[StoreFactory]:
        settings = _settings(
            store="jetstream", **{"nats.servers": nats_cluster.urls, "jetstream.replicas": 3}
        )
        async for factory in _factory(settings):
            yield factory
