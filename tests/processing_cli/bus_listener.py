"""A `NatsEventBus` subscriber in a process of its own (for the relay tests).

``python -m tests.processing_cli.bus_listener URL NAMESPACE OUTFILE`` subscribes to the
namespace, prints ``ready`` once the server knows the subscription, then appends one
line per event received to OUTFILE (``<id> <actor_id> <version>``, flushed), until
SIGTERM; it exits 1 if the bus dropped anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from aether.bus.nats import NatsEventBus
from aether.config import Settings


async def main(url: str, namespace: str, outfile: str) -> int:
    settings = Settings.load(overrides={"nats.servers": [url]}, env={}, search_default_files=False)
    bus = await NatsEventBus.open(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sub = await bus.subscribe(namespace)
    print("ready", flush=True)
    with open(outfile, "a", encoding="utf-8") as out:  # noqa: ASYNC230  (before any event)

        async def consume() -> None:
            async for e in sub:
                out.write(f"{e.id} {e.actor_id} {e.version}\n")
                out.flush()

        task = asyncio.create_task(consume())
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    dropped = sub.dropped
    await bus.close()
    return 1 if dropped else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
