"""Processors: the user's code run durably over a namespace's events.

A processor is any object with a ``name``, an optional ``event_types`` and
``async handle(event, ctx)`` (`Processor`; `processor(name, fn)` wraps a function). A
projection updates a read model; a reactor appends events with ``ctx.append``.

Running
-------
`ProcessorRunner` runs one processor over one store and one slice range (a *segment*:
``"all"``, or one cluster shard), from a durable checkpoint, in position order, so each
actor's events come in version order. Delivery is at-least-once (``ctx.position`` is
stable: use it to be idempotent); the checkpoint is committed in batches (every
``batch_events`` events or ``batch_interval`` seconds). Events appended through
``ctx.append`` are committed in ONE unit of work with the checkpoint at the input's
position, so each input's outputs exist exactly once, whatever crashes. A projection into
the user's SQLite database gets the same with `SQLiteProjection` (its checkpoint is kept
in the user's transaction). `ProcessorHost` runs processors over all slices, or, given a
`ClusterNode` (``ClusterNode(processors=[...])`` makes one), on the shards the node
owns: one segment per shard, started on ``on_acquired``, stopped gracefully (the event in
flight finishes, the checkpoint is persisted) on ``on_released``; a rebalance touches only
the moved shards.

Failures: a failing ``handle`` is retried (`RetryPolicy`: attempts, exponential backoff),
then the policy applies: ``"stop"`` (default) waits at the event, shown in status as
``stopped`` with ``stopped_at`` and the error; ``"park"`` records it in the segment's
parked list and goes on; the actor's later events are parked behind it (attempts 0) so
its version order holds. `list_parked`, `retry_parked` (in position order; the
checkpoint never moves back, no later event is re-applied) and `skip_parked` operate
them; `retry_parked`/`skip_parked` also resume a stopped segment.

Durable state
-------------
Everything lives in the store's tracking records (`aether.store.Tracking`; memory: in
memory, SQLite: table ``aether_tracking`` of the same file, JetStream: the last message
on ``aether.<ns>.track.<key>`` of the namespace's stream, never among the event
subjects):

- ``proc.<name>.<segment>``: the segment's checkpoint (the record's ``position``: every
  event of the segment at or before it was handled, parked or skipped) and JSON data:
  ``claim`` (a random id per runner start: the fencing identity), ``owner`` (node id),
  ``epoch`` (the shard map's), ``state``, ``seen`` and ``keepalive`` (liveness),
  ``commits``, ``slices``, ``parked`` (the parked list, at most ``max_parked``
  entries), ``stopped_at``/``error``, and the requests ``retry_stopped``/``skip_stopped``.
- ``proc.<name>``: the segments of a processor and its shard count;
  ``proc-index``: the processor names (so status needs no scan).

Fencing: every commit expects the record's revision the runner holds. Starting a runner
commits a new claim, which moves the revision: a previous owner (paused, partitioned,
slow to hear of the hand-over) is refused by the store on its next commit
(`TrackingConflictError`), writes nothing (its outputs were in the refused unit) and
stops. Admin calls change the record by compare-and-set too, keeping the claim: a runner
that finds the record changed under the same claim adopts the change and commits again.
A live runner commits at least every ``keepalive`` seconds; a claim older than three
keepalives shows as ``paused`` (its owner is frozen or gone).

Read-your-writes: `wait_for(store_or_node, name, position, timeout=...)` returns once the
processor processed through `position` (on the actor's shard, or on all).
"""

from __future__ import annotations

from ._admin import list_parked, processor_status, reset, retry_parked, skip_parked, wait_for
from ._host import ProcessorHost
from ._runner import ProcessorRunner
from ._sqlite import SQLiteProjection
from ._types import (
    Context,
    ParkedEvent,
    Policy,
    Processor,
    RetryPolicy,
    SegmentStatus,
    State,
    processor,
    validate_processor_name,
)

__all__ = [
    "Context",
    "ParkedEvent",
    "Policy",
    "Processor",
    "ProcessorHost",
    "ProcessorRunner",
    "RetryPolicy",
    "SQLiteProjection",
    "SegmentStatus",
    "State",
    "list_parked",
    "processor",
    "processor_status",
    "reset",
    "retry_parked",
    "skip_parked",
    "validate_processor_name",
    "wait_for",
]
