"""The refresh loop of ``--watch``: a rich Live view on a terminal, else a document per
refresh, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.console import RenderableType
from rich.live import Live

from aether_cli.context import out
from aether_cli.signals import stop_on_signals

T = TypeVar("T")


async def refresh_until_stopped(
    read: Callable[[], Awaitable[T]],
    render: Callable[[T], RenderableType],
    show: Callable[[T], None],
    *,
    every: float,
    as_json: bool,
) -> None:
    """Call `read` every `every` seconds; redraw `render(value)` in place on a terminal,
    else `show(value)` (a JSON line or a printed table) each time."""
    live = None if as_json or not out.is_terminal else Live(console=out, auto_refresh=False)
    if live is not None:
        live.start()
    try:
        with stop_on_signals() as stop:
            while not stop.is_set():
                value = await read()
                if live is not None:
                    live.update(render(value), refresh=True)
                else:
                    show(value)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
    finally:
        if live is not None:
            live.stop()
