"""The fixtures start real servers that restart on the same port and keep their data."""

from __future__ import annotations

import nats

from tests.servers import NatsCluster, NatsServer, wait_jetstream_ready


async def test_single_server_restarts_with_its_data(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="SMOKE", subjects=["smoke.>"])
    await js.publish("smoke.a", b"1")
    await nc.close()
    nats_server.restart()
    wait_jetstream_ready([nats_server.url])
    nc = await nats.connect(nats_server.url)
    info = await nc.jetstream().stream_info("SMOKE")
    assert info.state.messages == 1
    await nc.close()


async def test_cluster_serves_r3_streams(nats_cluster: NatsCluster) -> None:
    nc = await nats.connect(nats_cluster.urls)
    js = nc.jetstream()
    info = await js.add_stream(name="R3", subjects=["r3.>"], num_replicas=3)
    assert info.config.num_replicas == 3
    ack = await js.publish("r3.x", b"x")
    assert ack.seq == 1
    await nc.close()
