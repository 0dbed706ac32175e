"""A small stand-in for the combiner team's Control service, on a real loopback grpc.aio server.

Its StartRound "trains" by writing the global model + `increment` to the model repository under a
new id and reports known per-client num_examples, so the controller's reduce and commit can be
checked exactly. It is built from the generated servicer, so the wire contract is the real one.
"""

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from scaleout.proto import scaleout_pb2, scaleout_pb2_grpc
from scaleout.store.entities import Combiner, new_id
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore
from scaleoututil.helpers.helpers import get_helper

helper = get_helper("numpyhelper")


@dataclass
class ControlDouble(scaleout_pb2_grpc.ControlServicer):
    """One combiner: its name, its connected clients with their num_examples, and its behaviour."""

    name: str
    repository: ModelRepository
    clients: dict[str, int] = field(default_factory=lambda: {"client-a": 3, "client-b": 7})
    increment: float = 1.0
    fail_with: str | None = None  # answer ok=False with this error
    fail_times: int | None = None  # with fail_with: fail only the first this many rounds
    hang: bool = False  # never answer StartRound
    gate: asyncio.Event | None = None  # if set, train only once the test sets it
    validation_error: str | None = None  # fail StartValidation with this error
    round_configs: list[scaleout_pb2.RoundConfig] = field(default_factory=list)
    validation_configs: list[scaleout_pb2.ValidationConfig] = field(default_factory=list)
    model_ids: list[str] = field(default_factory=list)
    round_started: asyncio.Event = field(default_factory=asyncio.Event)
    round_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def Info(self, request, context) -> scaleout_pb2.CombinerInfo:
        return scaleout_pb2.CombinerInfo(
            name=self.name,
            clients=[
                scaleout_pb2.ConnectedClient(client_id=c, name=c, last_seen=time.time()) for c in self.clients
            ],
        )

    async def StartRound(self, request, context) -> AsyncIterator[scaleout_pb2.RoundEvent]:
        self.round_configs.append(request)
        yield _progress(request.round_id, "published", len(self.clients))
        # Set only now: a cancellation that arrives during the yield above would miss the hang's handler.
        self.round_started.set()
        if self.hang:
            try:
                await asyncio.Event().wait()  # only the controller's deadline or a stop ends this
            except asyncio.CancelledError:
                self.round_cancelled.set()
                raise
        if self.gate is not None:
            await self.gate.wait()
        failing = self.fail_times is None or len(self.round_configs) <= self.fail_times
        clients = [
            scaleout_pb2.ClientResult(client_id=c, num_examples=n, meta=json.dumps({"num_examples": n}))
            for c, n in self.clients.items()
        ]
        if self.fail_with is not None and failing:
            # As a real combiner does, a failed round still lists the updates it had accepted.
            failed = scaleout_pb2.RoundResult(
                round_id=request.round_id, ok=False, error=self.fail_with, clients=clients
            )
            yield _result(failed)
            return
        model_id = await asyncio.to_thread(self._train, request.model_id)
        self.model_ids.append(model_id)
        result = scaleout_pb2.RoundResult(
            round_id=request.round_id,
            ok=True,
            model_id=model_id,
            num_examples=sum(self.clients.values()),
            clients=clients,
            rejected=[scaleout_pb2.RejectedUpdate(client_id="late-client", reason="stale update")],
            seconds=0.01,
        )
        yield _result(result)

    async def StartValidation(self, request, context) -> AsyncIterator[scaleout_pb2.RoundEvent]:
        self.validation_configs.append(request)
        if self.validation_error is not None:
            await context.abort(grpc.StatusCode.INTERNAL, self.validation_error)
        yield _result(
            scaleout_pb2.RoundResult(round_id=request.round_id, ok=True, validations=len(self.clients))
        )

    def _train(self, model_id: str) -> str:
        """global + increment, written under a new id: what a combiner's aggregate would be."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "global.npz")
            self.repository.get_model_to_file(model_id, path)
            weights = [w + np.asarray(self.increment, dtype=w.dtype) for w in helper.load(path)]
            out = helper.save(weights, os.path.join(tmp, "update.npz"))
            update_id = new_id()
            self.repository.put_model(update_id, out)
        return update_id


def _progress(round_id: str, stage: str, selected: int) -> scaleout_pb2.RoundEvent:
    return scaleout_pb2.RoundEvent(
        progress=scaleout_pb2.RoundProgress(round_id=round_id, stage=stage, clients_selected=selected)
    )


def _result(result: scaleout_pb2.RoundResult) -> scaleout_pb2.RoundEvent:
    return scaleout_pb2.RoundEvent(result=result)


@contextlib.asynccontextmanager
async def serving(statestore: Statestore, doubles: Sequence[ControlDouble]) -> AsyncIterator[None]:
    """Serve each double on its own loopback port and register it as an online Combiner record."""
    servers = []
    try:
        for double in doubles:
            server = grpc.aio.server()
            scaleout_pb2_grpc.add_ControlServicer_to_server(double, server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            servers.append(server)
            record = Combiner(
                id=double.name,
                name=double.name,
                address="127.0.0.1",
                port=port,
                client_count=len(double.clients),
            )
            await asyncio.to_thread(statestore.combiners.upsert, record)
        yield
    finally:
        for server in servers:
            await server.stop(grace=None)
