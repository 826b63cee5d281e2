"""Verification after a run: the store holds exactly what was acknowledged, and every
subscriber or tail got each event once, in order."""

from __future__ import annotations

from aether.bench._run import Ledger, Run
from aether.bench.results import Verification
from aether.store.base import EventStore


async def verify_store(run: Run, store: EventStore, ledger: Ledger) -> None:
    """Every actor holds exactly the acknowledged events: versions 1..n, ids, no extra."""
    v = run.result.verification
    run.begin("verify", len(ledger.ids))
    for actor, ids in ledger.ids.items():
        v.actors += 1
        v.expected += len(ids)
        seen_versions: set[int] = set()
        seen_ids: set[str] = set()
        stored = 0
        async for e in store.iter_events(actor):
            stored += 1
            if e.version in seen_versions or e.id in seen_ids:
                v.duplicates += 1
                v.problem(f"actor {actor!r}: version {e.version} (id {e.id}) stored twice")
                continue
            seen_versions.add(e.version)
            seen_ids.add(e.id)
            if e.version != stored:
                v.out_of_order += 1
                v.problem(f"actor {actor!r}: read version {e.version} at place {stored}")
            if e.version > len(ids):
                v.unexpected += 1
                v.problem(f"actor {actor!r}: version {e.version} was never acknowledged")
            elif ids[e.version - 1] != e.id:
                v.unexpected += 1
                v.problem(f"actor {actor!r}: version {e.version} holds id {e.id}, not ours")
        v.found += len(seen_versions)
        missing = sum(1 for i in range(1, len(ids) + 1) if i not in seen_versions)
        if missing:
            v.missing += missing
            v.problem(f"actor {actor!r}: {missing} acknowledged events missing")
        latest = await store.get_latest_version(actor)
        if latest != len(ids):
            v.problem(f"actor {actor!r}: latest version {latest}, expected {len(ids)}")
        run.done += 1


def check_deliveries(v: Verification, counts: list[int], published: int, dropped: int) -> None:
    """Note what each subscriber missed of `published` events, and what the bus dropped."""
    v.expected = published * len(counts)
    v.found = sum(counts)
    for i, c in enumerate(counts):
        if c < published:
            v.missing += published - c
            v.problem(f"subscriber {i}: received {c} of {published} events")
    v.dropped = dropped
    if dropped:
        v.problem(f"the bus dropped {dropped} events")
