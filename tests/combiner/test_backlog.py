"""Calls that arrive while the combiner's event loop is busy wait for it; none is cancelled by gRPC."""

import asyncio
import threading
import time
from collections import Counter

import grpc
import pytest

from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from tests.combiner.driver import WAIT, address, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

# More calls than gRPC's own backlog bound (1,000 waiting, all refused past 3,000) would let wait for a
# busy loop: as many as 2,000 clients' task streams and heartbeats at once.
CALLS = 2_500
CONNECTIONS = 25  # clients each have their own; 100 calls on each
BUSY = 2.0  # seconds the combiner's loop stays busy after the calls were sent


async def heartbeats(target: str, sent: threading.Event) -> Counter[str]:
    """Send CALLS heartbeats at once over CONNECTIONS connections; count their outcomes."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(CONNECTIONS)]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), WAIT)
        stubs = [rpc.CombinerClientStub(channel) for channel in channels]

        async def beat(index: int) -> str:
            message = pb.Heartbeat(client_id=f"c{index}", heartbeat_interval_ms=30_000)
            try:
                await stubs[index % CONNECTIONS].SendHeartbeat(message, timeout=120)
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"
            return "OK"

        calls = [asyncio.ensure_future(beat(index)) for index in range(CALLS)]
        await asyncio.sleep(0.5)  # let gRPC put every call on the wire
        sent.set()
        return Counter(await asyncio.gather(*calls))
    finally:
        for channel in channels:
            await channel.close()


async def test_calls_that_arrive_while_the_loop_is_busy_are_all_answered(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        outcomes: Counter[str] = Counter()
        sent = threading.Event()
        sender = threading.Thread(
            target=lambda: outcomes.update(asyncio.run(heartbeats(address(combiner), sent)))
        )
        sender.start()
        # The combiner's loop (this one) is busy: it picks up no call until the sleep ends.
        assert sent.wait(60), "the heartbeats were not sent"
        time.sleep(BUSY)
        await asyncio.to_thread(sender.join, 120)

    assert outcomes == Counter({"OK": CALLS})
