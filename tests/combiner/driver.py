"""A running combiner on loopback and a test driver that plays edge clients and the controller over gRPC.

Nothing of the combiner is mocked: the driver speaks scaleout.proto through grpc.aio channels, and
the combiner uses the SQLite statestore and the file model repository.
"""

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from scaleout.client.model_transfer import ModelStreams
from scaleout.combiner.server import Combiner
from scaleout.combiner.settings import CombinerSettings
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.auth import token_interceptors
from scaleout.store import open_model_repository, open_statestore
from scaleout.store.entities import new_id

WAIT = 10.0  # bound on every wait in these tests; a healthy combiner answers in milliseconds
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]


@asynccontextmanager
async def running_combiner(tmp_path: Path, **overrides: Any) -> AsyncIterator[Combiner]:
    """A combiner on a free loopback port with SQLite + file stores under tmp_path; stopped on exit."""
    settings = replace(
        CombinerSettings(
            host="127.0.0.1",
            port=0,
            name="combiner-test",
            work_dir=tmp_path / "work",
            registry_interval=60.0,
            client_write_interval=0.0,
        ),
        **overrides,
    )
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")
    repository = open_model_repository(f"file://{tmp_path / 'models'}")
    combiner = Combiner(settings, statestore, repository)
    await combiner.start()
    try:
        yield combiner
    finally:
        await combiner.stop()
        statestore.close()


def address(combiner: Combiner) -> str:
    return f"127.0.0.1:{combiner.port}"


def npz_bytes(arrays: Sequence[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{str(i): a for i, a in enumerate(arrays)})
    return buffer.getvalue()


def put_seed(combiner: Combiner, arrays: Sequence[np.ndarray]) -> str:
    """Store a global model in the combiner's model repository; returns its id."""
    model_id = new_id()
    combiner.repository.put_model(model_id, io.BytesIO(npz_bytes(arrays)))
    return model_id


def load_model(combiner: Combiner, model_id: str, tmp_path: Path) -> list[np.ndarray]:
    path = tmp_path / f"fetched-{model_id}.npz"
    combiner.repository.get_model_to_file(model_id, path)
    with np.load(path) as npz:
        return [npz[str(i)] for i in range(len(npz.files))]


@dataclass
class TestClient:
    """An edge client speaking the real proto: task stream, upload, update, status, validation."""

    __test__ = False  # not a pytest class

    target: str
    client_id: str
    token: str | None = None  # sent on every call, as the edge client does
    channel: grpc.aio.Channel = field(init=False)
    stream: Any = None

    def __post_init__(self) -> None:
        self.channel = grpc.aio.insecure_channel(
            self.target, options=CHANNEL_OPTIONS, interceptors=token_interceptors(self.token)
        )
        self.client = rpc.CombinerClientStub(self.channel)
        self.models = rpc.ModelServiceStub(self.channel)
        self.streams = ModelStreams(self.channel)  # the edge client's own transfers

    async def connect(self, combiner: Combiner) -> None:
        """Open the task stream and wait (on the registry's change event) until the combiner sees it."""
        message = pb.ClientAvailableMessage(
            client_id=self.client_id, data=json.dumps({"name": self.client_id})
        )
        self.stream = self.client.TaskStream(message)
        await combiner.registry.wait_for(lambda: self.client_id in combiner.registry.streaming(), WAIT)

    async def next_task(self) -> pb.TaskRequest:
        task = await asyncio.wait_for(self.stream.read(), WAIT)
        assert task is not grpc.aio.EOF, f"task stream of {self.client_id} ended"
        return task

    async def upload(self, data: bytes, update_id: str | None = None, chunk: int = 1 << 20) -> str:
        update_id = update_id or uuid.uuid4().hex
        chunks = [pb.FileChunk(data=data[i : i + chunk]) for i in range(0, len(data), chunk)]
        metadata = (("model-id", update_id), ("client-id", self.client_id))
        response = await self.models.Upload(iter(chunks), metadata=metadata, timeout=WAIT)
        assert response.status == pb.OK
        return update_id

    async def download(self, model_id: str) -> bytes:
        call = self.models.Download(pb.ModelRequest(model_id=model_id), timeout=WAIT)
        return b"".join([chunk.data async for chunk in call])

    async def send_update(self, task: pb.TaskRequest, update_id: str, meta: dict | str, **fields: str) -> str:
        update = pb.ModelUpdate(
            client_id=self.client_id,
            model_id=task.model_id,
            model_update_id=update_id,
            correlation_id=task.correlation_id,
            round_id=task.round_id,
            session_id=task.session_id,
            meta=meta if isinstance(meta, str) else json.dumps(meta),
            config=task.data,
        )
        for name, value in fields.items():
            setattr(update, name, value)
        response = await self.client.SendModelUpdate(update, timeout=WAIT)
        return response.response

    async def train(self, task: pb.TaskRequest, arrays: Sequence[np.ndarray], num_examples: Any) -> str:
        """Download the task's model (as a client does), upload arrays, send the update."""
        await self.download(task.model_id)
        update_id = await self.upload(npz_bytes(arrays))
        return await self.send_update(task, update_id, {"num_examples": num_examples})

    async def fail(self, task: pb.TaskRequest, error: str) -> str:
        status = {
            "correlation_id": task.correlation_id,
            "session_id": task.session_id,
            "round_id": task.round_id,
            "error": error,
        }
        message = pb.Status(
            client_id=self.client_id, status=json.dumps(status), log_level=pb.ERROR, type=task.type
        )
        return (await self.client.SendStatus(message, timeout=WAIT)).response

    async def validate(self, task: pb.TaskRequest, metrics: dict | str) -> str:
        message = pb.ModelValidation(
            client_id=self.client_id,
            model_id=task.model_id,
            data=metrics if isinstance(metrics, str) else json.dumps(metrics),
            correlation_id=task.correlation_id,
            session_id=task.session_id,
        )
        return (await self.client.SendModelValidation(message, timeout=WAIT)).response

    async def heartbeat(self) -> str:
        return (
            await self.client.SendHeartbeat(pb.Heartbeat(client_id=self.client_id), timeout=WAIT)
        ).response

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.cancel()
        await self.channel.close()


@asynccontextmanager
async def clients(combiner: Combiner, *client_ids: str) -> AsyncIterator[list[TestClient]]:
    """Connected test clients, closed on exit."""
    connected = [TestClient(address(combiner), client_id) for client_id in client_ids]
    try:
        for client in connected:
            await client.connect(combiner)
        yield connected
    finally:
        for client in connected:
            await client.close()


class Controller:
    """Plays the controller: runs StartRound / StartValidation and collects the events."""

    def __init__(self, combiner: Combiner, token: str | None = None) -> None:
        self.channel = grpc.aio.insecure_channel(
            address(combiner), options=CHANNEL_OPTIONS, interceptors=token_interceptors(token)
        )
        self.control = rpc.ControlStub(self.channel)
        self.progress: list[pb.RoundProgress] = []

    async def _run(self, call: Any) -> pb.RoundResult:
        result = None
        async for event in call:
            assert result is None, "an event arrived after the result"
            if event.WhichOneof("event") == "progress":
                self.progress.append(event.progress)
            else:
                result = event.result
        assert result is not None, "the event stream ended without a result"
        return result

    def start_round(self, **config: Any) -> "asyncio.Task[pb.RoundResult]":
        defaults = {
            "session_id": "s1",
            "round_id": "r1",
            "round_index": 0,
            "round_timeout": 3600.0,
            "min_clients": 1,
            "aggregator": "fedavg",
            "helper": "numpyhelper",
        }
        call = self.control.StartRound(pb.RoundConfig(**{**defaults, **config}), timeout=60)
        return asyncio.ensure_future(self._run(call))

    def start_validation(self, **config: Any) -> "asyncio.Task[pb.RoundResult]":
        defaults = {"session_id": "s1", "round_id": "r1", "timeout": 3600.0}
        call = self.control.StartValidation(pb.ValidationConfig(**{**defaults, **config}), timeout=60)
        return asyncio.ensure_future(self._run(call))

    def stages(self) -> list[str]:
        return [p.stage for p in self.progress]

    async def close(self) -> None:
        await self.channel.close()


@asynccontextmanager
async def controller(combiner: Combiner, token: str | None = None) -> AsyncIterator[Controller]:
    driver = Controller(combiner, token)
    try:
        yield driver
    finally:
        await driver.close()
