"""The test ground's nats-server: JetStream on loopback, file storage survives a restart."""

from __future__ import annotations

import nats

from nats_support import NatsServer


async def test_jetstream_store_survives_restart(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="T", subjects=["t.>"])
    ack = await js.publish("t.x", b"kept")
    assert ack.seq == 1
    await nc.close()

    nats_server.restart(kill=True)

    nc = await nats.connect(nats_server.url)
    msg = await nc.jetstream().get_msg("T", 1)
    assert msg.data == b"kept"
    await nc.close()
