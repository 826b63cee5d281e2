"""What a benchmark run does: `BenchParams`, validated, with each workload's defaults."""

from __future__ import annotations

import dataclasses
import math
import secrets
from dataclasses import dataclass
from typing import Any

from aether.errors import InvalidBenchParameterError

WORKLOADS = ("append", "replay", "bus", "mixed", "conflict")
"""The workloads `run_bench` knows (the names of `aether.bench.workloads.REGISTRY`)."""

DEFAULT_EVENTS = 10_000
"""Events of a run when neither ``events`` nor ``duration`` is given."""


@dataclass(frozen=True)
class BenchParams:
    """What to run. ``None`` means the workload's default (see `resolved`)."""

    workload: str
    events: int | None = None
    duration: float | None = None
    actors: int | None = None
    payload: int = 200
    concurrency: int = 16
    batch: int = 1
    subscribers: int = 1
    writers: int = 8
    warmup: int | None = None
    seed: int | None = None

    def resolved(self) -> BenchParams:
        """Validated, with the workload defaults filled in."""
        if self.workload not in WORKLOADS:
            raise InvalidBenchParameterError(
                "workload", f"must be one of {', '.join(WORKLOADS)}; got {self.workload!r}"
            )
        _check_int(self.events, "events", 1, 1_000_000_000, optional=True)
        if self.duration is not None and (
            isinstance(self.duration, bool)
            or not isinstance(self.duration, int | float)
            or not math.isfinite(self.duration)
            or self.duration <= 0
        ):
            raise InvalidBenchParameterError(
                "duration", f"must be > 0 seconds, got {self.duration!r}"
            )
        _check_int(self.actors, "actors", 1, 1_000_000, optional=True)
        _check_int(self.payload, "payload", 0, 900_000)
        _check_int(self.concurrency, "concurrency", 1, 10_000)
        _check_int(self.batch, "batch", 1, 1000)
        _check_int(self.subscribers, "subscribers", 1, 1000)
        _check_int(self.writers, "writers", 1, 10_000)
        _check_int(self.warmup, "warmup", 0, 1_000_000, optional=True)
        if self.workload not in ("append", "mixed") and self.batch != 1:
            raise InvalidBenchParameterError(
                "batch", f"applies to the append and mixed workloads only, not {self.workload}"
            )
        events = self.events
        if events is None and self.duration is None:
            events = DEFAULT_EVENTS
        if self.workload == "replay" and events is None:
            events = DEFAULT_EVENTS  # replay needs a fixed data set; duration repeats passes
        actors = self.actors
        if actors is None:
            actors = 4 if self.workload == "conflict" else 100
        warmup = self.warmup
        if warmup is None:
            warmup = min(1000, max(10, (events or 20_000) // 20))
        seed = self.seed if self.seed is not None else secrets.randbits(32)
        return dataclasses.replace(self, events=events, actors=actors, warmup=warmup, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _check_int(value: object, name: str, lo: int, hi: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not int or not lo <= value <= hi:
        raise InvalidBenchParameterError(
            name, f"must be an integer between {lo} and {hi}, got {value!r}"
        )
