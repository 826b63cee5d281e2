"""The hook dispatcher: one per connection, listeners added and removed, nothing chained."""

from __future__ import annotations

import asyncio

import nats
from nats.errors import SlowConsumerError

from aether._nats.hooks import hooks_of
from aether.bus import NatsEventBus
from aether.connect import connect
from tests.nats_layer.conftest import Connector, settings_for
from tests.servers import NatsServer


async def test_three_closed_buses_leave_no_listener(aether_nc: Connector) -> None:
    nc = await aether_nc()
    hooks = hooks_of(nc)
    before = hooks.listener_count()
    dispatcher = nc._error_cb
    buses = [NatsEventBus(nc) for _ in range(3)]
    assert hooks.listener_count() == before + 6  # error + reconnect listener each
    for bus in buses:
        await bus.subscribe("demo")
        await bus.close()
    assert hooks.listener_count() == before
    assert nc._error_cb is dispatcher  # nothing was chained on nats-py's callback
    assert hooks_of(nc) is hooks


async def test_connect_gives_nats_py_the_dispatcher_as_its_callbacks(
    aether_nc: Connector,
) -> None:
    nc = await aether_nc()
    hooks = hooks_of(nc)
    assert hooks.installed
    for attr in ("_error_cb", "_disconnected_cb", "_reconnected_cb"):
        assert getattr(getattr(nc, attr), "__self__", None) is hooks


async def test_listeners_run_in_order_and_a_handled_error_stops(aether_nc: Connector) -> None:
    seen: list[str] = []
    nc = await aether_nc()
    hooks = hooks_of(nc)

    def broken(e: Exception) -> None:
        seen.append("broken")
        raise RuntimeError("a listener's bug")

    async def handles(e: Exception) -> bool:
        seen.append("handles")
        return isinstance(e, SlowConsumerError)

    def late(e: Exception) -> None:
        seen.append("late")

    removers = [hooks.on_error(broken), hooks.on_error(handles), hooks.on_error(late)]
    await nc._error_cb(SlowConsumerError("s", "", 1, None))  # what nats-py's reader calls
    assert seen == ["broken", "handles"]
    seen.clear()
    await nc._error_cb(ValueError("other"))
    assert seen == ["broken", "handles", "late"]
    for remove in removers:
        remove()
        remove()  # twice is harmless
    seen.clear()
    await nc._error_cb(ValueError("other"))
    assert seen == []


async def test_the_users_callbacks_still_run_after_the_listeners(nats_server: NatsServer) -> None:
    calls: list[str] = []

    async def user_error(e: Exception) -> None:
        calls.append("user-error")

    async def user_reconnected() -> None:
        calls.append("user-reconnected")

    nc = await connect(
        settings_for(nats_server), error_cb=user_error, reconnected_cb=user_reconnected
    )
    try:
        reconnected = asyncio.Event()
        hooks_of(nc).on_reconnected(lambda: (calls.append("listener"), reconnected.set())[0])
        await nc._error_cb(ValueError("x"))
        assert calls == ["user-error"]
        calls.clear()
        nats_server.restart()
        await asyncio.wait_for(reconnected.wait(), 20)
        for _ in range(50):
            if "user-reconnected" in calls:
                break
            await asyncio.sleep(0.05)
        # (the restart also reports errors: the connection's EOF, to the user's error_cb)
        assert [c for c in calls if c != "user-error"] == ["listener", "user-reconnected"]
    finally:
        await nc.close()


async def test_a_removed_reconnect_listener_is_not_called(nats_server: NatsServer) -> None:
    nc = await connect(settings_for(nats_server))
    try:
        hooks = hooks_of(nc)
        calls: list[str] = []
        remove = hooks.on_reconnected(lambda: calls.append("removed"))
        kept = asyncio.Event()
        hooks.on_reconnected(kept.set)
        remove()
        nats_server.restart()
        await asyncio.wait_for(kept.wait(), 20)
        assert calls == []
    finally:
        await nc.close()


async def test_a_plain_connection_gets_hooks_through_the_seam(
    plain_nc: Connector, seams: str
) -> None:
    nc = await plain_nc()
    original = nc._error_cb
    hooks = hooks_of(nc)
    assert hooks.installed == (seams == "on")
    if seams == "on":
        assert nc._error_cb.__self__ is hooks  # type: ignore[attr-defined]
        got: list[Exception] = []
        hooks.on_error(got.append)
        err = ValueError("x")
        await nc._error_cb(err)
        assert got == [err]
    else:
        assert nc._error_cb is original  # untouched


async def test_a_bus_counts_real_slow_consumer_drops_through_the_hooks(
    aether_nc: Connector,
) -> None:
    nc = await aether_nc()
    baseline = hooks_of(nc).listener_count()
    bus = NatsEventBus(nc, pending_msgs_limit=5)
    sub = await bus.subscribe("demo", buffer=1)  # BLOCK: the callback stalls
    pub = await nats.connect(nc.connected_url.geturl())  # type: ignore[union-attr]
    try:
        from aether.event import Event, encode_event

        subject = "aether.demo.bus.T.a"
        for i in range(200):
            await pub.publish(subject, encode_event(Event("T", "a", i + 1)))
        await pub.flush()
        for _ in range(100):
            if sub.dropped:
                break
            await asyncio.sleep(0.05)
        assert sub.dropped > 0
    finally:
        await pub.close()
        await bus.close()
    assert hooks_of(nc).listener_count() == baseline
