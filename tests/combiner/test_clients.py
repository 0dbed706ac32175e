"""The client registry: online while the task stream is open, offline after the heartbeat timeout."""

import asyncio
from collections import Counter
from typing import Any

import grpc
import pytest

from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.settings import CombinerSettings
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.store import open_statestore
from scaleout.store.entities import EventLevel, NodeStatus
from tests.combiner.driver import WAIT, TestClient, address, clients, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_client_without_stream_goes_offline_after_heartbeat_timeout(tmp_path):
    async with running_combiner(tmp_path, heartbeat_timeout=0.2) as combiner:
        registry = combiner.registry
        client = TestClient(address(combiner), "hb")
        try:
            assert await client.heartbeat() == "heartbeat received"
            assert registry.is_online("hb")
            await registry.wait_for(lambda: not registry.is_online("hb"), WAIT)
        finally:
            await client.close()
        assert "hb" not in registry.streaming()


async def test_heartbeats_keep_a_client_online_until_they_stop(tmp_path):
    async with running_combiner(tmp_path, heartbeat_timeout=0.5) as combiner:
        registry = combiner.registry
        client = TestClient(address(combiner), "hb")
        try:
            await client.heartbeat()
            went_offline = asyncio.ensure_future(
                registry.wait_for(lambda: not registry.is_online("hb"), WAIT)
            )
            for _ in range(3):  # each heartbeat restarts the timeout
                await client.heartbeat()
                assert registry.is_online("hb") and not went_offline.done()
            await went_offline
        finally:
            await client.close()


async def test_a_waiter_wakes_when_a_heartbeating_client_opens_its_task_stream(tmp_path):
    # Online by its heartbeat first, so opening the stream changes no online status: the registry must
    # still wake waiters, or a wait for "reachable by tasks" would sleep until its bound.
    async with running_combiner(tmp_path) as combiner:
        registry = combiner.registry
        client = TestClient(address(combiner), "hb")
        try:
            await client.heartbeat()
            assert registry.is_online("hb") and "hb" not in registry.streaming()
            await client.connect(combiner)  # waits on the registry until the stream is seen
            assert registry.streaming() == ["hb"]
        finally:
            await client.close()


async def test_closing_the_task_stream_marks_the_client_offline(tmp_path):
    async with running_combiner(tmp_path) as combiner, clients(combiner, "a", "b") as (a, _b):
        registry = combiner.registry
        info = await rpc.ControlStub(a.channel).Info(pb.CombinerInfoRequest(), timeout=WAIT)
        assert info.name == "combiner-test"
        assert sorted((c.client_id, c.name) for c in info.clients) == [("a", "a"), ("b", "b")]
        a.stream.cancel()
        await registry.wait_for(lambda: not registry.is_online("a"), WAIT)
        assert registry.is_online("b") and registry.streaming() == ["b"]


async def test_records_say_who_connected_and_that_all_are_offline_after_shutdown(tmp_path):
    async with running_combiner(tmp_path, name="c7") as combiner, clients(combiner, "a", "b"):
        port = combiner.port
        combiner_record = combiner.statestore.combiners.get("c7")  # registered at start
        assert (combiner_record.status, combiner_record.address, combiner_record.port) == (
            NodeStatus.ONLINE,
            "127.0.0.1",
            port,
        )
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")  # stop() flushed every write
    try:
        records = statestore.clients.list(sort_key="id").items
        assert [(c.id, c.name, c.combiner_id, c.status) for c in records] == [
            ("a", "a", "c7", NodeStatus.OFFLINE),
            ("b", "b", "c7", NodeStatus.OFFLINE),
        ]
        assert statestore.combiners.get("c7").status == NodeStatus.OFFLINE
    finally:
        statestore.close()


async def test_reconnect_ends_the_superseded_task_stream(tmp_path):
    async with running_combiner(tmp_path) as combiner, clients(combiner, "a") as (first,):
        second = TestClient(address(combiner), "a")
        try:
            old_queue = combiner.registry._clients["a"].queue
            await second.connect(combiner)
            assert await asyncio.wait_for(first.stream.read(), WAIT) is grpc.aio.EOF  # ended by the reconnect
            assert combiner.registry._clients["a"].queue is not old_queue
            assert combiner.registry.is_online("a")  # the old stream ending does not mark it offline
        finally:
            await second.close()


async def test_connects_and_disconnects_are_stored_as_events_with_the_client_id(tmp_path):
    async with running_combiner(tmp_path, name="c7") as combiner, clients(combiner, "a") as (a,):
        a.stream.cancel()
        await combiner.registry.wait_for(lambda: not combiner.registry.is_online("a"), WAIT)
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")  # stop() flushed every write
    try:
        events = statestore.events.list(sort_key="timestamp").items
        assert [(e.type, e.level, e.client_id, e.combiner_id, e.message) for e in events] == [
            ("client_connected", EventLevel.INFO, "a", "c7", "client a connected to c7"),
            ("client_disconnected", EventLevel.WARNING, "a", "c7", "client a disconnected from c7"),
        ]
    finally:
        statestore.close()


class CountedClientWrites:
    """The statestore's client records, counting the writes made to each (every call goes through; an
    update of a missing record writes nothing)."""

    def __init__(self, records: Any) -> None:
        self._records = records
        self.writes: Counter[str] = Counter()

    def update(self, id: str, changes: Any) -> Any:
        updated = self._records.update(id, changes)
        self.writes[id] += 1
        return updated

    def upsert(self, item: Any) -> Any:
        self.writes[item.id] += 1
        return self._records.upsert(item)


async def test_an_idle_connected_client_costs_one_statestore_write_per_five_minutes(tmp_path):
    """10 minutes of heartbeats every 10 s from 50 connected clients: each client record is written once
    at connect and once every five minutes after, whatever the heartbeats."""
    statestore = open_statestore(f"sqlite:///{tmp_path}/s.db")
    records = statestore.clients
    counted = statestore.clients = CountedClientWrites(records)
    now = [0.0]
    settings = CombinerSettings()
    registry = ClientRegistry(
        statestore, "c", settings.heartbeat_timeout, settings.client_write_interval, clock=lambda: now[0]
    )
    registry.start()
    ids = [f"client-{i}" for i in range(50)]
    for client_id in ids:
        registry.connect(client_id, client_id)
    await registry.flush()
    for _ in range(60):
        now[0] += 10.0
        for client_id in ids:
            registry.heartbeat(client_id)
        await registry.flush()

    assert counted.writes == {client_id: 1 + 2 for client_id in ids}
    assert records.count({"status": NodeStatus.ONLINE.value}) == 50
    await registry.close()
    assert records.count({"status": NodeStatus.OFFLINE.value}) == 50
    statestore.close()


async def test_a_client_with_infrequent_heartbeats_stays_online_for_three_of_its_intervals(tmp_path):
    """Without a stream, a heartbeat keeps a client online for heartbeat_timeout or three of the intervals
    it declares, whichever is longer: a client beating every 30 s must not flap offline after 30 s."""
    statestore = open_statestore(f"sqlite:///{tmp_path}/s.db")
    registry = ClientRegistry(statestore, "c", heartbeat_timeout=0.05)
    registry.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    registry.heartbeat("slow", interval=1.0)
    registry.heartbeat("default", interval=0.0)

    await registry.wait_for(lambda: not registry.is_online("default"), WAIT)
    assert registry.is_online("slow")
    await registry.wait_for(lambda: not registry.is_online("slow"), WAIT)

    assert loop.time() - started >= 3 * 1.0  # a lower bound: a loaded machine can only make it later
    await registry.close()
    statestore.close()
