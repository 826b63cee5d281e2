"""Cluster management on JetStream KV: membership, leader election with fencing, shards.

See `ClusterNode` for the moving parts and `docs/cluster.md` for the protocol, the hash
and its test vectors. This package exports what a user of a cluster needs; the parts
(the bucket, the election, the planner, the hash) are in their modules:
`aether.cluster.node`, `.election`, `.membership`, `.shards`, `.hashing`, `.status`,
`.defaults` and `.kv`.
"""

from __future__ import annotations

from aether.cluster.election import fenced_put
from aether.cluster.hashing import shard_of, shard_of_slice, slices_of_shard, slices_of_shards
from aether.cluster.membership import NodeInfo
from aether.cluster.node import ClusterNode, ShardListener
from aether.cluster.shards import ShardMap, compact_ranges
from aether.cluster.status import ClusterStatus, NodeStatus, read_status

__all__ = [
    "ClusterNode",
    "ClusterStatus",
    "NodeInfo",
    "NodeStatus",
    "ShardListener",
    "ShardMap",
    "compact_ranges",
    "fenced_put",
    "read_status",
    "shard_of",
    "shard_of_slice",
    "slices_of_shard",
    "slices_of_shards",
]
