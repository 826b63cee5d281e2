"""The figures of a run: latency percentiles, verification, `BenchResult`, progress."""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aether.bench.params import BenchParams

PRIMARY_LATENCY = {
    "append": "append",
    "replay": "replay",
    "bus": "e2e",
    "mixed": "e2e",
    "conflict": "append",
}
"""Which latency each workload's ``--fail-above-p99`` threshold applies to."""

_PROBLEMS_KEPT = 20


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of one kind of latency, in milliseconds (nearest-rank)."""

    count: int
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float
    mean: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready: ``count, p50, p90, p99, p99_9, max, mean`` (ms)."""
        return dataclasses.asdict(self)


class LatencyRecorder:
    """Collects latencies (nanoseconds) compactly and summarises them."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples = array("q")

    def record(self, nanoseconds: int) -> None:
        """Add one sample."""
        self._samples.append(nanoseconds)

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self) -> LatencySummary:
        """p50, p90, p99, p99.9, max and mean in milliseconds (zeros when empty)."""
        data = sorted(self._samples)
        n = len(data)
        if n == 0:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

        def pct(p: float) -> float:
            rank = max(1, math.ceil(round(p * n / 100.0, 6)))
            return round(data[rank - 1] / 1e6, 4)

        return LatencySummary(
            count=n,
            p50=pct(50),
            p90=pct(90),
            p99=pct(99),
            p99_9=pct(99.9),
            max=round(data[-1] / 1e6, 4),
            mean=round(sum(data) / n / 1e6, 4),
        )


@dataclass
class Verification:
    """What the check after the run found."""

    actors: int = 0
    expected: int = 0
    found: int = 0
    missing: int = 0
    duplicates: int = 0
    unexpected: int = 0
    out_of_order: int = 0
    dropped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, unexpected, reordered or dropped."""
        return not (
            self.missing
            or self.duplicates
            or self.unexpected
            or self.out_of_order
            or self.dropped
            or self.problems
        )

    def problem(self, text: str) -> None:
        """Note a problem (the first few are kept verbatim)."""
        if len(self.problems) < _PROBLEMS_KEPT:
            self.problems.append(text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``ok``."""
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


@dataclass
class BenchResult:
    """Every figure of one run. Warm-up and set-up are excluded from all of them."""

    workload: str
    params: BenchParams
    events: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    latency: dict[str, LatencySummary] = field(default_factory=dict)
    conflicts: int = 0
    retries: int = 0
    errors: int = 0
    verification: Verification = field(default_factory=Verification)
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Measured events per second."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Measured megabytes (10^6 bytes of encoded events) per second."""
        return self.bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def verified(self) -> bool:
        """Nothing lost or duplicated, no error."""
        return self.verification.ok and self.errors == 0

    @property
    def primary_latency(self) -> LatencySummary | None:
        """The latency the p99 threshold applies to (see `PRIMARY_LATENCY`)."""
        return self.latency.get(PRIMARY_LATENCY[self.workload])

    def to_dict(self) -> dict[str, Any]:
        """The figures as documented for ``aether bench --json``."""
        return {
            "workload": self.workload,
            "parameters": self.params.to_dict(),
            "events": self.events,
            "bytes": self.bytes,
            "elapsed_s": round(self.elapsed_s, 6),
            "events_per_s": round(self.events_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 3),
            "latency_ms": {k: v.to_dict() for k, v in self.latency.items()},
            "primary_latency": PRIMARY_LATENCY[self.workload],
            "conflicts": self.conflicts,
            "retries": self.retries,
            "errors": self.errors,
            "verified": self.verified,
            "verification": self.verification.to_dict(),
            "interrupted": self.interrupted,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class BenchProgress:
    """A progress report: `phase` is warmup, setup, run, drain, verify or done."""

    phase: str
    done: int
    total: int | None
    elapsed: float
    duration: float | None


ProgressCallback = Callable[[BenchProgress], None]


def threshold_failures(
    result: BenchResult,
    *,
    fail_below: float | None = None,
    fail_above_p99: float | None = None,
) -> list[str]:
    """Why `result` misses the CI thresholds (empty when it meets them).

    `fail_below` is a minimum in events/s; `fail_above_p99` a maximum p99 in milliseconds
    of the workload's primary latency (`PRIMARY_LATENCY`).
    """
    failures = []
    if fail_below is not None and result.events_per_s < fail_below:
        rate = result.events_per_s
        failures.append(f"throughput {rate:,.0f} events/s is below {fail_below:,.0f}")
    if fail_above_p99 is not None:
        lat = result.primary_latency
        name = PRIMARY_LATENCY[result.workload]
        if lat is None or lat.count == 0:
            failures.append(f"no {name} latency was measured (p99 limit {fail_above_p99} ms)")
        elif lat.p99 > fail_above_p99:
            failures.append(f"{name} p99 {lat.p99:.3f} ms is above {fail_above_p99} ms")
    return failures
