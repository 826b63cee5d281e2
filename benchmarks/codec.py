"""The event codec and the actor hash, per call, against their baselines in one run.

Codec (ns per event, lower is better): aether's `encode_event` (every wire rule checked,
then orjson) and `decode_event` (msgspec into the wire struct, then an `Event`) against
stdlib ``json`` and ``orjson`` moving the same dict without any checks, and against the
previous codec (orjson both ways, ``orjson.loads`` + the `Event` slots) for the record.
Three event shapes: small (2 scalar keys), typical (6 keys with a list, metadata) and
nested (a few levels of dicts and lists).

XXH64 (ns per call): `slice_of` and `shard_of` with the ``xxhash`` package (C) and with
the pure-Python fallback (`aether._xxh64.xxh64_pure`), warm (their LRU caches hit) and
cold (every call a new actor id: validation, cache miss and the hash).

``python -m benchmarks.codec --quick`` (``--full`` for longer rounds); ``run(quick=True)``
returns the figures for `benchmarks.suite`. Figures are medians of several rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import timeit
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from aether import _xxh64
from aether._model import build_event
from aether.cluster import hashing
from aether.event import Event, decode_event, encode_event, parse_timestamp
from aether.subjects import _slice_of, slice_of

SIZES = {
    True: {"calls": 20_000, "rounds": 5, "hash_calls": 5_000},
    False: {"calls": 200_000, "rounds": 9, "hash_calls": 50_000},
}

GOAL_NS = 1000.0
"""Issue 12: decode + `Event` construction <= 1.0 us an event, encode <= 1.0 us."""

TS = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def shapes() -> dict[str, Event]:
    """The events measured, by name."""
    return {
        "small": Event("Ping", "a-1", 1, {"n": 1, "ok": True}, id="e-1", timestamp=TS),
        "typical": Event(
            "OrderPlaced",
            "order-1",
            3,
            {"total": 99.99, "items": 3, "sku": "abc-123", "tags": ["a", "b"], "paid": False},
            id="9b2f2f1e-58a3-4c5e-9d2b-0a4f5c7b8e91",
            timestamp=TS,
            metadata={"correlation_id": "c-1", "causation_id": "c-0"},
        ),
        "nested": Event(
            "CartUpdated",
            "cart-42",
            12,
            {
                "lines": [{"sku": f"s{i}", "qty": i, "price": 1.5 * i} for i in range(4)],
                "address": {"city": "Lyon", "geo": {"lat": 45.76, "lon": 4.84}},
                "flags": [1, 2, [3, 4]],
            },
            id="e-3",
            timestamp=TS,
            metadata={"correlation_id": "c-9"},
        ),
    }


def _wire_dict(e: Event, ts: object) -> dict[str, object]:
    return {
        "id": e.id,
        "event_type": e.event_type,
        "actor_id": e.actor_id,
        "version": e.version,
        "data": e.data,
        "timestamp": ts,
        "metadata": e.metadata,
    }


def _ns(stmt: str, calls: int, rounds: int, **names: object) -> float:
    """Median over `rounds` of the ns per call of `stmt` (timeit, `names` as globals)."""
    timer = timeit.Timer(stmt, globals=names)
    return statistics.median(t / calls * 1e9 for t in timer.repeat(rounds, calls))


def _old_decode(payload: bytes, position: int | None = None) -> Event:
    d = orjson.loads(payload)
    return build_event(
        d["id"],
        d["event_type"],
        d["actor_id"],
        d["version"],
        d["data"],
        parse_timestamp(d["timestamp"]),
        d["metadata"],
        position,
    )


def codec_rows(calls: int, rounds: int) -> list[dict[str, Any]]:
    """Encode and decode of every shape: aether and each baseline."""
    rows = []
    enc = msgspec.json.Encoder()
    for name, event in shapes().items():
        payload = encode_event(event)
        d_iso = _wire_dict(event, "2026-01-02T03:04:05.123456Z")
        d_dt = _wire_dict(event, event.timestamp)
        figures = {
            "encode": {
                "aether": _ns("f(e)", calls, rounds, f=encode_event, e=event),
                "stdlib json.dumps (no checks)": _ns(
                    "f(d, separators=(',', ':')).encode()", calls, rounds, f=json.dumps, d=d_iso
                ),
                "orjson.dumps (no checks)": _ns(
                    "f(d, option=o)", calls, rounds, f=orjson.dumps, d=d_dt, o=orjson.OPT_UTC_Z
                ),
                "msgspec encode (no checks)": _ns("f(d)", calls, rounds, f=enc.encode, d=d_dt),
            },
            "decode": {
                "aether": _ns("f(p, 7)", calls, rounds, f=decode_event, p=payload),
                "stdlib json.loads (dict only)": _ns(
                    "f(p)", calls, rounds, f=json.loads, p=payload
                ),
                "orjson.loads (dict only)": _ns("f(p)", calls, rounds, f=orjson.loads, p=payload),
                "previous: orjson.loads + Event": _ns(
                    "f(p, 7)", calls, rounds, f=_old_decode, p=payload
                ),
            },
        }
        for op, fig in figures.items():
            ours = fig.pop("aether")
            for baseline_name, base in fig.items():
                rows.append(
                    {
                        "case": f"{op} {name} vs {baseline_name}",
                        "aether": round(ours),
                        "baseline": round(base),
                        "baseline_name": baseline_name,
                        "ratio": round(base / ours, 2) if ours else None,
                        "unit": "ns/event (ratio: baseline/aether, >1 is faster)",
                        "bytes": len(payload),
                    }
                )
    return rows


def hash_rows(calls: int, rounds: int) -> list[dict[str, Any]]:
    """`slice_of` / `shard_of` per call, xxhash package vs the pure-Python fallback."""
    c_hash = _xxh64.xxh64
    pure = _xxh64.xxh64_pure
    figures: dict[str, dict[str, float]] = {}
    for label, fn in (("xxhash", c_hash), ("pure", pure)):
        subjects_mod = sys.modules["aether.subjects"]
        saved = (subjects_mod.xxh64, hashing.xxh64)  # type: ignore[attr-defined]
        subjects_mod.xxh64 = fn  # type: ignore[attr-defined]
        hashing.xxh64 = fn
        try:
            _slice_of.cache_clear()
            hashing._actor_hash.cache_clear()
            slice_of("order-1")
            hashing.shard_of("order-1", 16)
            warm_slice = _ns("f('order-1')", calls, rounds, f=slice_of)
            warm_shard = _ns("f('order-1', 16)", calls, rounds, f=hashing.shard_of)
            cold_slice, cold_shard = [], []
            for r in range(rounds):
                ids = [f"actor-{r}-{i}" for i in range(calls)]
                _slice_of.cache_clear()
                hashing._actor_hash.cache_clear()
                start = time.perf_counter_ns()
                for a in ids:
                    slice_of(a)
                cold_slice.append((time.perf_counter_ns() - start) / calls)
                start = time.perf_counter_ns()
                for a in ids:
                    hashing.shard_of(a, 16)
                cold_shard.append((time.perf_counter_ns() - start) / calls)
            raw = _ns("f(b'order-1', 0)", calls, rounds, f=fn)
        finally:
            subjects_mod.xxh64, hashing.xxh64 = saved  # type: ignore[attr-defined]
            _slice_of.cache_clear()
            hashing._actor_hash.cache_clear()
        figures[label] = {
            "xxh64(b'order-1')": raw,
            "slice_of warm": warm_slice,
            "shard_of warm": warm_shard,
            "slice_of cold": statistics.median(cold_slice),
            "shard_of cold": statistics.median(cold_shard),
        }
    return [
        {
            "case": f"{case} (xxhash vs pure)",
            "aether": round(figures["xxhash"][case]),
            "baseline": round(figures["pure"][case]),
            "baseline_name": "pure-Python xxh64",
            "ratio": round(figures["pure"][case] / figures["xxhash"][case], 2)
            if figures["xxhash"][case]
            else None,
            "unit": "ns/call (ratio: pure/xxhash)",
        }
        for case in figures["xxhash"]
    ]


def run(quick: bool = True) -> dict[str, Any]:
    """Measure everything; return the rows and the goal checks."""
    sizes = SIZES[quick]
    rows = codec_rows(sizes["calls"], sizes["rounds"])
    rows += hash_rows(sizes["hash_calls"], sizes["rounds"])
    goals = {}
    for row in rows:
        case = row["case"]
        if case.startswith(("encode typical vs orjson", "decode typical vs orjson")):
            goals[case.split(" vs ")[0]] = {
                "target": f"aether <= {GOAL_NS:g} ns",
                "value": row["aether"],
                "met": row["aether"] <= GOAL_NS,
            }
    return {
        "benchmark": "codec",
        "mode": "quick" if quick else "full",
        "sizes": sizes,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "goals": goals,
    }


def _print(result: dict[str, Any]) -> None:
    print(f"codec benchmark ({result['mode']}), load after: {result['load_average_after']}")
    print(f"{'case':62s} {'aether':>8s} {'baseline':>9s} {'ratio':>6s}  unit")
    for row in result["rows"]:
        print(
            f"{row['case']:62s} {row['aether']:8d} {row['baseline']:9d} "
            f"{row['ratio']!s:>6s}  {row['unit'].split(' ')[0]}"
        )
    for case, goal in result["goals"].items():
        verdict = "met" if goal["met"] else "MISSED"
        print(f"goal {case}: {goal['value']} ns, target {goal['target']}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--quick`` (default) or ``--full``; ``--json`` for the raw figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True)
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(quick=not args.full)
    _print(result)
    print(json.dumps(result) if args.json else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
