"""Test kits shipped with aether: run aether's own contract suites against your code.

`aether.testing.stores` holds the store contract (the tests every aether store passes:
conditional appends, units of work, slices, watch, tracking records, snapshots, close...).
Importing it needs ``pytest`` and ``pytest-asyncio`` (aether's ``dev`` extra); aether
itself never imports this package.

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
your async fixture work in both. Other kits (a bus contract) sit next to `stores`.
"""

from __future__ import annotations

__all__: list[str] = []
