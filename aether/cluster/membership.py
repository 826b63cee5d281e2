"""Membership: each node keeps ``nodes.<id>`` alive in the cluster bucket.

A node writes its `NodeInfo` every heartbeat with a per-key TTL of ``node_ttl``
(``Nats-TTL``), compare-and-set on its own last revision. When the writes stop, the
*server* removes the entry after the TTL and places an expiry marker that every watcher
sees: a node is dead for everyone at the same moment, judged by the server's clock, not
by anyone's local view. The entry's age shown by `aether cluster status` is computed from
the server's timestamp of the last heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata

import orjson

from aether._nats.errors import CasConflictError
from aether.cluster._kv import ClusterBucket, KvEntry
from aether.errors import ClusterError
from aether.subjects import validate_node_id

log = logging.getLogger("aether.cluster")

NODE_PREFIX = "nodes."
"""Key prefix of node entries in the cluster bucket."""


def aether_version() -> str:
    """The installed aether version (``unknown`` when not installed)."""
    try:
        return metadata.version("aether")
    except metadata.PackageNotFoundError:
        return "unknown"


def node_key(node_id: str) -> str:
    """The bucket key of a node's entry."""
    return NODE_PREFIX + validate_node_id(node_id)


def default_node_id() -> str:
    """``<host>-<pid>`` made of the characters a node id allows."""
    host = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in socket.gethostname()
    )
    return f"{host[:40] or 'node'}-{os.getpid()}"


@dataclass(frozen=True)
class NodeInfo:
    """What a node publishes about itself every heartbeat."""

    node_id: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime
    shards: int
    version: str
    epoch: int
    instance: str
    weight: float = 1.0

    def to_json(self) -> bytes:
        """The JSON form stored under ``nodes.<id>``."""
        doc = asdict(self)
        doc["started"] = self.started.isoformat()
        doc["heartbeat"] = self.heartbeat.isoformat()
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, data: bytes) -> NodeInfo:
        """Parse `to_json` output; raise `ClusterError` if malformed."""
        try:
            doc = orjson.loads(data)
            return cls(
                node_id=validate_node_id(doc["node_id"]),
                host=str(doc["host"]),
                pid=int(doc["pid"]),
                started=datetime.fromisoformat(doc["started"]),
                heartbeat=datetime.fromisoformat(doc["heartbeat"]),
                shards=int(doc["shards"]),
                version=str(doc["version"]),
                epoch=int(doc["epoch"]),
                instance=str(doc["instance"]),
                weight=float(doc.get("weight", 1.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ClusterError(f"node entry malformed ({type(e).__name__}: {e})") from None


def live_nodes(entries: Mapping[str, KvEntry]) -> dict[str, tuple[NodeInfo, KvEntry]]:
    """The node entries present (not deleted or expired) in a bucket view, by node id."""
    out: dict[str, tuple[NodeInfo, KvEntry]] = {}
    for key, entry in entries.items():
        if not key.startswith(NODE_PREFIX) or entry.deleted:
            continue
        try:
            info = NodeInfo.from_json(entry.value)
        except ClusterError:
            log.warning("ignoring malformed node entry %s", key)
            continue
        out[info.node_id] = (info, entry)
    return out


class Membership:
    """Registers, heartbeats and deregisters one node.

    `last_ok` is the monotonic time at which the last acknowledged heartbeat was *sent*;
    the server keeps the entry at least `ttl` after that, so `lost` (``last_ok + ttl -
    margin`` has passed) means the rest of the cluster may soon, or already, count this
    node dead: the node must release its shards.
    """

    def __init__(
        self, bucket: ClusterBucket, info: NodeInfo, *, heartbeat: float, ttl: float
    ) -> None:
        self.bucket = bucket
        self.info = info
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.margin = min(heartbeat, ttl / 4)
        self.revision: int | None = None
        self.last_ok = float("-inf")
        self.reregistered = 0
        """How often the entry had expired and was created again by `beat`."""

    @property
    def key(self) -> str:
        """This node's key."""
        return node_key(self.info.node_id)

    def lost(self, now: float | None = None) -> bool:
        """True once the entry may have expired for the others (see the class doc)."""
        now = time.monotonic() if now is None else now
        return now >= self.last_ok + self.ttl - self.margin

    async def register(self, wait: float) -> None:
        """Create the entry; if another live process holds this node id, wait up to `wait`."""
        deadline = time.monotonic() + wait
        while True:
            sent = time.monotonic()
            try:
                self.revision = await self.bucket.create(self.key, self._payload(), ttl=self.ttl)
                self.last_ok = sent
                return
            except CasConflictError:
                entry = await self.bucket.get(self.key)
                holder = None
                if entry is not None and not entry.deleted:
                    try:
                        holder = NodeInfo.from_json(entry.value)
                    except ClusterError:
                        holder = None
                if (
                    entry is not None
                    and holder is not None
                    and holder.instance == self.info.instance
                ):
                    self.revision = entry.revision  # our own earlier write; its ack was lost
                    self.last_ok = sent
                    return
                if time.monotonic() >= deadline:
                    who = f" by pid {holder.pid} on {holder.host}" if holder else ""
                    raise ClusterError(
                        f"node_id: {self.info.node_id!r} is in use{who}; choose another id "
                        "or wait for the old entry to expire"
                    ) from None
                await asyncio.sleep(min(self.heartbeat, 0.5))

    def _payload(self) -> bytes:
        self.info = replace(self.info, heartbeat=datetime.now(UTC))
        return self.info.to_json()

    async def beat(self, *, shards: int, epoch: int) -> None:
        """Write the entry (CAS on our revision); re-create it if it expired meanwhile."""
        self.info = replace(self.info, shards=shards, epoch=epoch)
        sent = time.monotonic()
        try:
            self.revision = await self.bucket.put(
                self.key, self._payload(), last=self.revision, ttl=self.ttl
            )
        except CasConflictError:
            entry = await self.bucket.get(self.key)
            if entry is not None and not entry.deleted:
                other = NodeInfo.from_json(entry.value)
                if other.instance != self.info.instance:
                    raise ClusterError(
                        f"node_id: {self.info.node_id!r} was taken over by pid {other.pid} "
                        f"on {other.host}"
                    ) from None
                self.revision = entry.revision
                return await self.beat(shards=shards, epoch=epoch)
            self.revision = await self.bucket.create(self.key, self._payload(), ttl=self.ttl)
            self.reregistered += 1
            log.info("node %s re-registered after its entry expired", self.info.node_id)
        self.last_ok = sent

    async def deregister(self) -> None:
        """Delete the entry (only if it is still ours)."""
        if self.revision is None:
            return
        try:
            await self.bucket.delete(self.key, last=self.revision)
        except CasConflictError:
            # A heartbeat cancelled in flight may have landed: delete it if it is ours.
            entry = await self.bucket.get(self.key)
            if entry is not None and not entry.deleted:
                with contextlib.suppress(ClusterError):
                    if NodeInfo.from_json(entry.value).instance == self.info.instance:
                        await self.bucket.delete(self.key, last=entry.revision)
        self.revision = None
