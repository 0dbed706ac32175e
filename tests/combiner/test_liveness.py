"""A client that is gone leaves its round at once, a hung one is noticed by keepalive; no files left."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

from scaleout.combiner.server import Combiner
from scaleout.combiner.settings import CombinerSettings
from scaleout.store import open_model_repository, open_statestore
from scaleout.store.filesystem import FileModelRepository
from tests.combiner.driver import WAIT, address, clients, controller, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SEED = [np.arange(6, dtype=np.float32)]
HOUR = 3600.0  # round_timeout of these rounds: only a client leaving can end them within the test
LEFT = (
    "client {0} left round r1 before reporting: its task stream closed (the client stopped, lost its "
    "connection or did not answer keepalive pings)"
)

# A client in its own process: opens its task stream, says so, then does nothing (the test stops it).
HUNG_CLIENT = """
import asyncio, sys, grpc
from scaleout.proto import scaleout_pb2 as pb, scaleout_pb2_grpc as rpc

async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        stream = rpc.CombinerClientStub(channel).TaskStream(pb.ClientAvailableMessage(client_id="hung"))
        print("connected", flush=True)
        async for _ in stream:
            pass

asyncio.run(main())
"""


def model_files(tmp_path) -> list[str]:
    return sorted(p.stem for p in (tmp_path / "models").rglob("*") if p.is_file())


async def test_a_client_whose_stream_closes_leaves_the_round_which_ends_at_once(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), round_timeout=HOUR, min_clients=1)
        task_a = await a.next_task()
        await b.next_task()
        assert await a.train(task_a, [SEED[0] + 2], 4) == "accepted"
        await b.close()  # a killed client: its kernel closes the connection
        result = await asyncio.wait_for(round_task, WAIT)

        assert result.ok, result.error
        assert [c.client_id for c in result.clients] == ["a"]
        assert [(r.client_id, r.reason) for r in result.rejected] == [("b", LEFT.format("b"))]
        assert ctl.stages() == ["published", "update", "rejected"]


async def test_a_round_left_below_min_clients_fails_naming_the_gone_clients(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c") as (a, b, c),
        controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        round_task = ctl.start_round(model_id=seed_id, round_timeout=HOUR, min_clients=3)
        task_a = await a.next_task()
        assert await a.train(task_a, [SEED[0] + 1], 1) == "accepted"
        await c.close()
        await b.close()
        result = await asyncio.wait_for(round_task, WAIT)

    assert not result.ok and result.model_id == ""
    gone = sorted(r.client_id for r in result.rejected)
    assert gone == ["b", "c"]
    assert result.error == (
        "round r1: 1 update(s) accepted, min_clients is 3; selected client(s) gone before reporting: "
        + ", ".join(r.client_id for r in result.rejected)
    )
    assert model_files(tmp_path) == [seed_id]


async def test_a_hung_client_is_dropped_from_its_round_by_keepalive(tmp_path):
    # SIGSTOP: the process keeps its connection open but answers nothing, as a hung machine does.
    async with (
        running_combiner(tmp_path, keepalive_time=1, keepalive_timeout=2) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as ctl,
    ):
        hung = subprocess.Popen(
            [sys.executable, "-c", HUNG_CLIENT, address(combiner)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert await asyncio.to_thread(hung.stdout.readline) == "connected\n"
            await combiner.registry.wait_for(lambda: "hung" in combiner.registry.streaming(), WAIT)
            round_task = ctl.start_round(model_id=put_seed(combiner, SEED), round_timeout=HOUR)
            task_a = await a.next_task()
            os.kill(hung.pid, signal.SIGSTOP)
            assert await a.train(task_a, [SEED[0] + 1], 1) == "accepted"
            result = await asyncio.wait_for(round_task, 6 * WAIT)
        finally:
            hung.kill()
            hung.wait()

    assert result.ok, result.error
    assert [(r.client_id, r.reason) for r in result.rejected] == [("hung", LEFT.format("hung"))]


class PausedRepository(FileModelRepository):
    """The file repository, with each model write held until the test releases it."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.writing = threading.Event()
        self.release = threading.Event()
        self.deleted: list[str] = []

    def put(self, kind, object_id, source):
        if kind == "models" and isinstance(source, Path):  # the aggregate (seeds come as streams)
            self.writing.set()
            self.release.wait(WAIT)
        return super().put(kind, object_id, source)

    def delete(self, kind, object_id):
        super().delete(kind, object_id)
        self.deleted.append(object_id)


async def test_an_aggregate_written_for_a_controller_that_went_away_is_deleted(tmp_path):
    repository = PausedRepository(tmp_path / "models")
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")
    settings = CombinerSettings(host="127.0.0.1", port=0, name="c", work_dir=tmp_path / "work")
    combiner = Combiner(settings, statestore, repository)
    await combiner.start()
    try:
        async with clients(combiner, "a") as (a,), controller(combiner) as ctl:
            seed_id = put_seed(combiner, SEED)
            round_task = ctl.start_round(model_id=seed_id, round_timeout=HOUR)
            task = await a.next_task()
            assert await a.train(task, [SEED[0] + 1], 1) == "accepted"
            assert await asyncio.to_thread(repository.writing.wait, WAIT)
            round_task.cancel()  # the controller goes away while the aggregate is being written
            with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)):
                await round_task
            repository.release.set()  # the write ends; nobody will get a result naming its model
            async with asyncio.timeout(WAIT):
                while not repository.deleted:  # the deletion runs in a worker thread: no event to await
                    await asyncio.sleep(0.05)
            assert model_files(tmp_path) == [seed_id]
    finally:
        repository.release.set()
        await combiner.stop()
        statestore.close()
    assert not any((tmp_path / "work" / "aggregates").iterdir())


def test_leftover_uploads_and_aggregates_of_a_killed_combiner_are_deleted_at_start(tmp_path):
    work = tmp_path / "work"
    for folder, name in (("updates", "u1.part"), ("updates", "u2.npz"), ("aggregates", "m1.npz")):
        (work / folder).mkdir(parents=True, exist_ok=True)
        (work / folder / name).write_bytes(b"left by a killed combiner")
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")
    repository = open_model_repository(f"file://{tmp_path / 'models'}")
    try:
        Combiner(CombinerSettings(work_dir=work), statestore, repository)
    finally:
        statestore.close()
    assert list((work / "updates").iterdir()) == [] and list((work / "aggregates").iterdir()) == []


async def test_a_client_whose_stream_closes_leaves_a_validation_which_ends_at_once(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        validation = ctl.start_validation(model_id=put_seed(combiner, SEED), timeout=HOUR)
        task_a = await a.next_task()
        await b.next_task()
        assert await a.validate(task_a, {"accuracy": 0.5}) == "accepted"
        await b.close()
        result = await asyncio.wait_for(validation, WAIT)

    assert result.ok and result.validations == 1
    assert [(r.client_id, r.reason) for r in result.rejected] == [
        ("b", "client b left before validating: its task stream closed")
    ]
