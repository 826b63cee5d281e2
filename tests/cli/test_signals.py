"""`stop_on_signals`: SIGINT/SIGTERM set the stop event; leaving puts the defaults back."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from aether_cli.signals import stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_sets_the_event_and_the_defaults_come_back(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with stop_on_signals() as stop:
        assert signal.getsignal(sig) is not before
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stop.wait(), 10)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_off_the_main_thread_the_event_is_never_set() -> None:
    outcome: list[object] = []

    async def body() -> None:
        with stop_on_signals() as stop:
            await asyncio.sleep(0)
            outcome.append(stop.is_set())

    thread = threading.Thread(target=lambda: asyncio.run(body()))
    thread.start()
    thread.join(10)
    assert outcome == [False]
