"""SIGINT and SIGTERM as an `asyncio.Event`: how long-running commands learn to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that SIGINT or SIGTERM sets, while the block runs on the running loop.

    Leaving the block puts the default handlers back, so a second Ctrl-C then aborts
    whatever shutdown hangs. Where the loop cannot take signals (not the main thread),
    the event is never set and Ctrl-C stays asyncio.run's KeyboardInterrupt.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    try:
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                break
            installed.append(sig)
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
