"""Small stand-ins for the other teams' components, so the edge client is tested on real sockets.

``CombinerDouble`` implements the generated CombinerClient and ModelService servicers over real
loopback gRPC and records what the client sends in asyncio queues the tests await (no sleeps).
``ApiDouble`` is an http.server answering ``/clients/add`` from a script and serving a package.
Neither replaces any code of the client itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import tarfile
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np

from scaleout.client.edge import EdgeClient
from scaleout.client.settings import ClientSettings
from scaleout.proto import scaleout_pb2, scaleout_pb2_grpc
from scaleoututil.helpers.helpers import get_helper

T = TypeVar("T")
WAIT = 30.0  # bound of every wait in these tests; reaching it is a failure, not a flake to retry
CHUNK = 1024 * 1024
NUM_EXAMPLES = 7  # what the test package's train reports

helper = get_helper("numpyhelper")


# --------------------------------------------------------------------------------------------
# Combiner double
# --------------------------------------------------------------------------------------------


@dataclass
class CombinerDouble(scaleout_pb2_grpc.CombinerClientServicer, scaleout_pb2_grpc.ModelServiceServicer):
    """Serves tasks pushed by the test and records the client's calls, each in its own queue."""

    models: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    streams_opened: asyncio.Queue[scaleout_pb2.ClientAvailableMessage] = field(default_factory=asyncio.Queue)
    streams_closed: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    heartbeats: asyncio.Queue[scaleout_pb2.Heartbeat] = field(default_factory=asyncio.Queue)
    updates: asyncio.Queue[scaleout_pb2.ModelUpdate] = field(default_factory=asyncio.Queue)
    validations: asyncio.Queue[scaleout_pb2.ModelValidation] = field(default_factory=asyncio.Queue)
    statuses: asyncio.Queue[scaleout_pb2.Status] = field(default_factory=asyncio.Queue)
    _tasks: dict[str, asyncio.Queue[scaleout_pb2.TaskRequest]] = field(default_factory=dict)

    def push(self, client_id: str, task: scaleout_pb2.TaskRequest) -> None:
        """Publish a task on the client's open task stream."""
        self._tasks[client_id].put_nowait(task)

    async def TaskStream(
        self, request: scaleout_pb2.ClientAvailableMessage, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scaleout_pb2.TaskRequest]:
        queue: asyncio.Queue[scaleout_pb2.TaskRequest] = asyncio.Queue()
        self._tasks[request.client_id] = queue
        self.streams_opened.put_nowait(request)
        try:
            while True:
                yield await queue.get()
        finally:
            self.streams_closed.put_nowait(request.client_id)

    async def SendHeartbeat(self, request: scaleout_pb2.Heartbeat, context: Any) -> scaleout_pb2.Response:
        self.heartbeats.put_nowait(request)
        return scaleout_pb2.Response(response="ok")

    async def SendModelUpdate(self, request: scaleout_pb2.ModelUpdate, context: Any) -> scaleout_pb2.Response:
        self.updates.put_nowait(request)
        return scaleout_pb2.Response(response="accepted")

    async def SendModelValidation(
        self, request: scaleout_pb2.ModelValidation, context: Any
    ) -> scaleout_pb2.Response:
        self.validations.put_nowait(request)
        return scaleout_pb2.Response(response="accepted")

    async def SendStatus(self, request: scaleout_pb2.Status, context: Any) -> scaleout_pb2.Response:
        self.statuses.put_nowait(request)
        return scaleout_pb2.Response(response="recorded")

    async def Upload(
        self, request_iterator: AsyncIterator[scaleout_pb2.FileChunk], context: grpc.aio.ServicerContext
    ) -> scaleout_pb2.ModelResponse:
        metadata = {key: value for key, value in context.invocation_metadata()}
        await context.send_initial_metadata(())  # admitted at once, as the combiner's headers say
        data = b"".join([chunk.data async for chunk in request_iterator])
        self.uploads[metadata["model-id"]] = (data, metadata)
        return scaleout_pb2.ModelResponse(status=scaleout_pb2.ModelStatus.OK)

    async def Download(
        self, request: scaleout_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scaleout_pb2.FileChunk]:
        if request.model_id not in self.models:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model_id} is not staged")
        data = self.models[request.model_id]
        for start in range(0, len(data), CHUNK):
            yield scaleout_pb2.FileChunk(data=data[start : start + CHUNK])


async def start_combiner(double: CombinerDouble, port: int = 0) -> tuple[grpc.aio.Server, int]:
    """A real grpc.aio server for ``double`` on loopback (a free port unless one is given)."""
    server = grpc.aio.server()
    scaleout_pb2_grpc.add_CombinerClientServicer_to_server(double, server)
    scaleout_pb2_grpc.add_ModelServiceServicer_to_server(double, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


def train_task(client_id: str, model_id: str, round_id: str = "r1", correlation_id: str = "c1") -> Any:
    data = json.dumps({"round_index": 3, "helper": "numpyhelper", "client_settings": {}})
    return scaleout_pb2.TaskRequest(
        type="Scaleout_ModelUpdate",
        client_id=client_id,
        model_id=model_id,
        session_id="s1",
        round_id=round_id,
        correlation_id=correlation_id,
        data=data,
    )


def validate_task(client_id: str, model_id: str, correlation_id: str = "v1") -> Any:
    return scaleout_pb2.TaskRequest(
        type="Scaleout_Validation",
        client_id=client_id,
        model_id=model_id,
        session_id="s1",
        round_id="r1",
        correlation_id=correlation_id,
        data=json.dumps({"round_index": 3, "helper": "numpyhelper"}),
    )


# --------------------------------------------------------------------------------------------
# API double
# --------------------------------------------------------------------------------------------


def assigned(port: int, name: str = "combiner", package: str = "local") -> tuple[int, dict[str, Any]]:
    """A 200 answer of /clients/add naming the combiner on ``port``."""
    combiner = {"host": "127.0.0.1", "port": port, "name": name}
    return 200, {"client_id": "", "combiner": combiner, "package": package, "helper_type": "numpyhelper"}


class ApiDouble:
    """Answers /clients/add with the scripted answers in turn (the last one repeats) and serves a package."""

    def __init__(
        self,
        answers: Sequence[tuple[int, dict[str, Any]]],
        package: bytes | None = None,
        checksum: str | None = None,
    ) -> None:
        self.answers = list(answers)
        self.package = package
        self.checksum = checksum or (hashlib.sha256(package).hexdigest() if package is not None else None)
        self.add_calls: list[tuple[dict[str, Any], dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ApiDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer_add(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.add_calls.append((body, headers))
        status, answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if status == 200:
            answer = {**answer, "client_id": body["client_id"]}
        return status, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/api/v1/clients/add":
                    return self._send(404, b'{"detail": "not found"}')
                status, answer = api._answer_add(body, dict(self.headers))
                self._send(status, json.dumps(answer).encode())

            def do_GET(self) -> None:
                if api.package is None:
                    return self._send(404, b'{"detail": "no active package"}')
                if self.path == "/api/v1/packages/checksum":
                    return self._send(200, json.dumps({"checksum": api.checksum}).encode())
                if self.path == "/api/v1/packages/download":
                    return self._send(200, api.package, "application/octet-stream")
                self._send(404, b'{"detail": "not found"}')

            def _send(self, status: int, payload: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --------------------------------------------------------------------------------------------
# The compute package and the client under test
# --------------------------------------------------------------------------------------------

TRAIN_PY = f"""
import json, os, sys
from pathlib import Path
from scaleoututil.helpers.helpers import get_helper, save_metadata

here = Path(__file__).parent
if (here / "crash").exists():
    (here / "crash").unlink()
    print("loading the data", file=sys.stderr)
    print("boom: the local data is gone", file=sys.stderr)
    sys.exit(3)
if (here / "gate").exists():  # a fifo: blocks until the test writes to it
    (here / "train.pid").write_text(str(os.getpid()))
    (here / "gate").read_text()
helper = get_helper("numpyhelper")
settings = json.loads(Path(sys.argv[1] + "-metadata").read_text())
helper.save([w + 1 for w in helper.load(sys.argv[1])], sys.argv[2])
save_metadata({{"num_examples": {NUM_EXAMPLES}, "round_index": settings["round_index"]}}, sys.argv[2])
"""

VALIDATE_PY = """
import sys
from scaleoututil.helpers.helpers import get_helper, save_metrics

weights = get_helper("numpyhelper").load(sys.argv[1])
save_metrics({"weight_sum": float(sum(w.sum() for w in weights)), "arrays": len(weights)}, sys.argv[2])
"""

STARTUP_PY = """
with open("startup.log", "a") as log:
    log.write("started\\n")
"""

SCALEOUT_YAML = """
entry_points:
  startup:
    command: python startup.py
  train:
    command: python train.py
  validate:
    command: python validate.py
"""


def make_package(folder: Path) -> Path:
    """The test compute package: train writes ``input + 1`` with NUM_EXAMPLES; no python_env."""
    folder.mkdir(parents=True)
    for name, text in {
        "scaleout.yaml": SCALEOUT_YAML,
        "train.py": TRAIN_PY,
        "validate.py": VALIDATE_PY,
        "startup.py": STARTUP_PY,
    }.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder


def model_bytes(weights: list[np.ndarray], tmp: Path) -> bytes:
    """The npz bytes numpyhelper writes for ``weights``."""
    path = helper.save(weights, str(tmp / "model.npz"))
    return Path(path).read_bytes()


def load_npz(data: bytes) -> list[np.ndarray]:
    return helper.load(io.BytesIO(data))


def tarball(members: dict[str, bytes]) -> bytes:
    """A gzip tarball holding ``members`` under exactly the given names (``../evil`` included)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def next_item(queue: asyncio.Queue[T], client_task: asyncio.Task[None], what: str) -> T:
    """The next item of ``queue``; fails at once if the client dies first, or after WAIT seconds."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, client_task}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if client_task in done:
        raise AssertionError(
            f"the client ended while the test waited for {what}"
        ) from client_task.exception()
    raise AssertionError(f"no {what} within {WAIT} s")


@contextlib.asynccontextmanager
async def serving(client: EdgeClient) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``client`` for the body of the block, then stop it and check that it ended cleanly."""
    task = asyncio.create_task(client.run(handle_signals=False))
    try:
        yield task
    finally:
        client.stop()
        await asyncio.wait_for(task, WAIT)


@contextlib.asynccontextmanager
async def connected(
    double: CombinerDouble, settings: Callable[[str], ClientSettings]
) -> AsyncIterator[asyncio.Task[None]]:
    """A running EdgeClient with its task stream to ``double`` open: an API double assigns it to the
    combiner double, served on a free port. ``settings`` makes the client's settings from the API URL.
    The client, the API double and the combiner stop at the end of the block."""
    server, port = await start_combiner(double)
    try:
        with ApiDouble([assigned(port)]) as api:
            async with serving(EdgeClient(settings(api.url))) as client:
                await next_item(double.streams_opened, client, "the task stream")
                yield client
    finally:
        await server.stop(None)
