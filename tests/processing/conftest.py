"""Fixtures of the processing tests: each store kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aether.store.base import EventStore
from tests.processing.helpers import open_kind


@pytest.fixture(params=["memory", "sqlite", "jetstream"])
def kind(request: pytest.FixtureRequest) -> str:
    """The store kind under test."""
    return str(request.param)


@pytest.fixture
async def store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[EventStore]:
    """A fresh store of each kind (JetStream on its own server)."""
    urls: list[str] = []
    if kind == "jetstream":
        urls = [request.getfixturevalue("nats_server").url]
    s = await open_kind(kind, tmp_path, urls)
    try:
        yield s
    finally:
        await s.close()
