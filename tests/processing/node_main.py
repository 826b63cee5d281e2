"""A cluster node with the test processors in its own process (for SIGSTOP/SIGKILL).

``python -m tests.processing.node_main URL NAMESPACE NODE_ID DB SHARDS`` prints
``ready`` once joined and runs until SIGTERM (graceful stop) or a kill.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aether.cluster import ClusterNode
from aether.processing import RetryPolicy
from aether.store import open_store
from tests.cluster.helpers import cluster_settings
from tests.processing.helpers import LedgerReactor, totals_projection


async def main(url: str, namespace: str, node_id: str, db: str, shards: int) -> None:
    settings = cluster_settings(url, namespace, store="jetstream")
    store = await open_store(settings)
    node = ClusterNode(
        settings,
        node_id,
        shard_count=shards,
        heartbeat=0.2,
        lease=1.0,
        node_ttl=1.0,
        processors=[totals_projection(db), LedgerReactor(store, sparse=True)],
        store=store,
        processor_retry=RetryPolicy(attempts=3, base=0.01, max=0.05),
    )
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    await node.start()
    print("ready", flush=True)
    await done.wait()
    await node.stop()
    await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    u, ns, nid, path, count = sys.argv[1:6]
    asyncio.run(main(u, ns, nid, path, int(count)))
