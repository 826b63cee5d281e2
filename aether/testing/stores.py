"""The store contract suite: every aether store passes it, and so can yours.

Each ``...Contract`` class holds the tests of one part of the `aether.store.Store`
protocol; `StoreContract` combines them all. Subclass one in a pytest module (name the
subclass ``Test...`` so pytest collects it) and provide a ``store_factory`` fixture: an
async callable that opens a store on the same storage and namespace each time it is
called, empty when the test starts; close what it opened when the test ends. See
`aether.testing` for a complete example.
"""

from __future__ import annotations

from aether.testing._store.append import AppendContract
from aether.testing._store.concurrency import ConcurrencyContract
from aether.testing._store.data import DataContract
from aether.testing._store.helpers import WAIT, ContractBase, StoreFactory
from aether.testing._store.ids import EventIdContract
from aether.testing._store.lifecycle import CloseContract, LastPositionContract, WatchStartContract
from aether.testing._store.reads import ReadContract
from aether.testing._store.slices import SliceContract
from aether.testing._store.snapshots import SnapshotContract
from aether.testing._store.tracking import TrackingContract
from aether.testing._store.units import UnitOfWorkContract
from aether.testing._store.watch import WatchContract


class StoreContract(
    AppendContract,
    UnitOfWorkContract,
    ConcurrencyContract,
    DataContract,
    EventIdContract,
    ReadContract,
    SliceContract,
    WatchContract,
    WatchStartContract,
    LastPositionContract,
    SnapshotContract,
    TrackingContract,
    CloseContract,
):
    """The whole store contract: subclass it as ``Test<YourStore>`` with a ``store_factory``."""


__all__ = [
    "WAIT",
    "AppendContract",
    "CloseContract",
    "ConcurrencyContract",
    "ContractBase",
    "DataContract",
    "EventIdContract",
    "LastPositionContract",
    "ReadContract",
    "SliceContract",
    "SnapshotContract",
    "StoreContract",
    "StoreFactory",
    "TrackingContract",
    "UnitOfWorkContract",
    "WatchContract",
    "WatchStartContract",
]
