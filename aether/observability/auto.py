"""`instrument_factories`: make aether's own store and bus openers return instrumented
ones, for code that opens its store inside (``aether bench``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aether.observability.bus import instrument_bus
from aether.observability.store import instrument_store

if TYPE_CHECKING:
    from aether.store import Store

_undo: list[Callable[[], None]] = []


def instrument_factories() -> Callable[[], None]:
    """Wrap ``aether.store.open_store`` and ``aether.bench.open_bus`` so what they open
    is instrumented; returns a function undoing it. Idempotent."""
    import aether.bench
    import aether.store

    if not _undo:
        open_store = aether.store.open_store
        open_bus = aether.bench.open_bus

        async def instrumented_open_store(settings: object, *, create: bool = True) -> Store:
            return cast("Store", instrument_store(await open_store(settings, create=create)))

        async def instrumented_open_bus(settings: Any) -> tuple[Any, str]:
            bus, kind = await open_bus(settings)
            return instrument_bus(bus, kind=kind), kind

        instrumented_open_store.__doc__ = open_store.__doc__
        aether.store.open_store = instrumented_open_store
        aether.bench.open_bus = instrumented_open_bus

        def undo() -> None:
            aether.store.open_store = open_store
            aether.bench.open_bus = open_bus
            _undo.clear()

        _undo.append(undo)
    return _undo[0]
