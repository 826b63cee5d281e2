"""Test kits shipped with aether: run aether's own contract suites against your code.

`aether.testing.stores` holds the store contract (the tests every aether store passes:
conditional appends, units of work, slices, watch, tracking records, snapshots, close...);
`aether.testing.bus` the bus contract (namespace isolation, ``*`` patterns, filters,
ordering per subscriber, every overflow policy, counters, close). Importing them needs
``pytest`` and ``pytest-asyncio`` (aether's ``dev`` extra); aether itself never imports
this package.

To check your own store, subclass `StoreContract` (or some of its parts, such as
`UnitOfWorkContract`) in a test module and give it a ``store_factory`` fixture. Each call
of the factory returns a store on the same storage and namespace (a second connection,
or the same instance for an in-process store), empty when the test starts::

    import pytest_asyncio
    from aether.testing.stores import StoreContract

    class TestMyStore(StoreContract):
        @pytest_asyncio.fixture
        async def store_factory(self, tmp_path):
            opened = []
            async def factory():
                store = await MyStore.connect(tmp_path / "events.db")
                opened.append(store)
                return store
            yield factory
            for store in opened:
                await store.close()

Then ``pytest -q test_my_store.py`` runs the whole contract (``-k Slice`` picks the
slice tests; each part is also a class of its own, e.g. ``UnitOfWorkContract``). The
``store_factory`` fixture may also live in a ``conftest.py``. The suite works in either
pytest-asyncio mode (its classes mark their tests); ``@pytest_asyncio.fixture`` makes
your async fixture work in both.

A bus is checked the same way: subclass `BusContract` (from `aether.testing.bus`) and
give it a ``bus_factory`` fixture whose calls return buses on the same medium (the same
instance for an in-process bus, another connection for a networked one)::

    from aether.testing.bus import BusContract

    class TestMyBus(BusContract):
        @pytest_asyncio.fixture
        async def bus_factory(self):
            opened = []
            async def factory():
                bus = await MyBus.connect("mybus://localhost")
                opened.append(bus)
                return bus
            yield factory
            for bus in opened:
                await bus.close()

The names are importable from here too (``from aether.testing import BusContract,
StoreContract``); that import needs pytest as well. For pytest's detailed assertion
messages in these suites, add ``pytest.register_assert_rewrite("aether.testing")`` at the
top of your ``conftest.py`` (before anything imports them), as aether's own tests do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aether.testing.bus import BusContract, BusFactory
    from aether.testing.stores import StoreContract, StoreFactory

_LAZY = {
    "BusContract": "aether.testing.bus",
    "BusFactory": "aether.testing.bus",
    "StoreContract": "aether.testing.stores",
    "StoreFactory": "aether.testing.stores",
}


def __getattr__(name: str) -> Any:
    # Lazy, so importing `aether.testing` alone (or a kit) pulls in only what is used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aether.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["BusContract", "BusFactory", "StoreContract", "StoreFactory"]
