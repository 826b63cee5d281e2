"""Fixtures for the bench tests: settings for each store kind (memory, SQLite, JetStream)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from aether.config import Settings

STORE_KINDS = ["memory", "sqlite", "jetstream"]
_ns = itertools.count()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store under test."""
    return str(request.param)


@pytest.fixture
def bench_settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings selecting the store under test (JetStream: a fresh real nats-server)."""
    overrides: dict[str, object] = {"store": store_kind, "namespace": f"benchtest{next(_ns)}"}
    if store_kind == "sqlite":
        overrides["sqlite.path"] = str(tmp_path / "events.db")
    if store_kind == "jetstream":
        overrides["nats.servers"] = [request.getfixturevalue("nats_server").url]
    return Settings.load(overrides=overrides, search_default_files=False)


@pytest.fixture
def cli_store_args(store_kind: str, request: pytest.FixtureRequest) -> list[str]:
    """Global CLI options selecting the store under test."""
    if store_kind == "jetstream":
        return ["--store", "jetstream", "--server", request.getfixturevalue("nats_server").url]
    return ["--store", store_kind]
