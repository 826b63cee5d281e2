"""The load-test engine behind ``aether bench``, usable from code.

Workloads (`WORKLOADS`):

- ``append``: N events over A actors, payload B bytes, C concurrent writers, one event per
  save (``batch=1``) or atomic batches of K. Latency is per save call (the acknowledgement).
- ``replay``: writes N events over A actors (not measured), then reads every actor back
  with C concurrent readers (``actors=1``: one actor). Latency is per actor read.
- ``bus``: one publisher, S subscribers on the namespace; latency is end to end, from the
  publish call to each delivery.
- ``mixed``: C writers appending while a store ``watch`` tails the namespace; latency is
  end to end, from the save call to the tail's delivery, plus the append acknowledgement.
- ``conflict``: W writers racing on the same A actors with optimistic concurrency: each
  writer remembers the versions it saw, a `VersionConflictError` reloads and retries.

A run is bounded by ``events`` and/or ``duration`` and always stops by itself; setting the
``stop`` event (Ctrl-C in the CLI) ends it early: writers finish the operation in flight,
nothing is abandoned half-way, and the result holds what was measured so far
(``interrupted=True``). A warm-up (``warmup`` events, on actors of their own) runs before
the clock starts and is excluded from every figure. Every workload verifies what it did:
the stored events per actor (count, versions 1..n, the acknowledged ids, no duplicate),
the deliveries per subscriber or tail (each once, in order). ``verified`` is False as soon
as anything was lost or duplicated.

`run_bench` runs a workload against a store and/or bus you opened; `bench` does it all
from `Settings`: a throw-away namespace, the store, the bus, machine information and the
clean-up afterwards.

The package: `params` (what to run), `results` (the figures), `workloads` (one module
each, in `workloads.REGISTRY`), `verify` (the checks after a run), `engine` (`run_bench`),
`namespace` (the throw-away namespace), `machine` (where it ran) and `runner` (`bench`).
"""

from aether.bench._run import DRAIN_STALL
from aether.bench.engine import run_bench
from aether.bench.machine import Machine, machine_info, nats_server_version
from aether.bench.namespace import bench_target, delete_namespace_streams
from aether.bench.params import DEFAULT_EVENTS, WORKLOADS, BenchParams
from aether.bench.results import (
    PRIMARY_LATENCY,
    BenchProgress,
    BenchResult,
    LatencyRecorder,
    LatencySummary,
    ProgressCallback,
    Verification,
    threshold_failures,
)
from aether.bench.runner import BenchReport, bench, open_bus
from aether.errors import InvalidBenchParameterError

__all__ = [
    "DEFAULT_EVENTS",
    "DRAIN_STALL",
    "PRIMARY_LATENCY",
    "WORKLOADS",
    "BenchParams",
    "BenchProgress",
    "BenchReport",
    "BenchResult",
    "InvalidBenchParameterError",
    "LatencyRecorder",
    "LatencySummary",
    "Machine",
    "ProgressCallback",
    "Verification",
    "bench",
    "bench_target",
    "delete_namespace_streams",
    "machine_info",
    "nats_server_version",
    "open_bus",
    "run_bench",
    "threshold_failures",
]
