"""Cluster management on JetStream KV: membership, leader election with fencing, shards.

See `ClusterNode` for the moving parts and `docs/cluster.md` for the protocol, the hash
and its test vectors.
"""

from __future__ import annotations

from aether.cluster._kv import BucketView, ClusterBucket, KvEntry
from aether.cluster.defaults import FAILOVER_BOUND, MEASURED_FAILOVER, REPLICATED_LEASE
from aether.cluster.election import LEADER_KEY, Election, LeaderLease, fenced_put
from aether.cluster.hashing import (
    MAX_SHARDS,
    actor_hash,
    node_score,
    shard_of,
    shard_of_slice,
    slices_of_shard,
    slices_of_shards,
    xxh64,
)
from aether.cluster.membership import Membership, NodeInfo, live_nodes
from aether.cluster.node import ClusterNode, ShardListener
from aether.cluster.shards import (
    Move,
    ShardMap,
    assign,
    compact_ranges,
    decode_shard_map,
    diff_owners,
    encode_shard_map,
    plan_next,
    quotas,
)
from aether.cluster.status import SHARDMAP_KEY, ClusterStatus, NodeStatus, read_status

__all__ = [
    "FAILOVER_BOUND",
    "LEADER_KEY",
    "MAX_SHARDS",
    "MEASURED_FAILOVER",
    "REPLICATED_LEASE",
    "SHARDMAP_KEY",
    "BucketView",
    "ClusterBucket",
    "ClusterNode",
    "ClusterStatus",
    "Election",
    "KvEntry",
    "LeaderLease",
    "Membership",
    "Move",
    "NodeInfo",
    "NodeStatus",
    "ShardListener",
    "ShardMap",
    "actor_hash",
    "assign",
    "compact_ranges",
    "decode_shard_map",
    "diff_owners",
    "encode_shard_map",
    "fenced_put",
    "live_nodes",
    "node_score",
    "plan_next",
    "quotas",
    "read_status",
    "shard_of",
    "shard_of_slice",
    "slices_of_shard",
    "slices_of_shards",
    "xxh64",
]
