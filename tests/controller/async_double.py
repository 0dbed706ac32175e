"""A stand-in for a combiner's Control.RunAsync, on the real generated servicer over loopback gRPC.

Each of its clients trains on the version it was last told, lagging `lags[client]` versions behind
(its base version), and adds `increments[client]` to every weight: its delta is exactly that
increment, so a flushed buffer is arrays filled with sum(n s k) / sum(n) and the controller's
versions can be checked exactly. After the start and after every NewVersion it folds one update per
client (staleness = its lag, s from the AsyncConfig), then answers flushes with its buffer.
"""

import asyncio
import math
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from scaleout.proto import scaleout_pb2 as pb
from scaleout.store.entities import new_id
from tests.controller.control_double import ControlDouble, helper


def staleness_weight(config: pb.AsyncConfig, tau: int) -> float:
    """s(tau) of the session: 1, or (1 + tau) ** -exponent."""
    return 1.0 if config.staleness == "constant" else (1 + tau) ** -config.staleness_exponent


@dataclass
class AsyncDouble(ControlDouble):
    increments: dict[str, float] = field(default_factory=dict)  # k per client; 1 when absent
    lags: dict[str, int] = field(default_factory=dict)  # versions behind; 0 when absent
    rejections: list[tuple[str, str]] = field(default_factory=list)  # sent once, with the first folds
    abort_after_folds: int | None = None  # fail the stream (UNAVAILABLE) after folding this many
    ignore_flushes: bool = False  # never answer a flush
    fold: bool = True  # False: its clients never finish (nothing is folded)
    in_flight: int = 2  # clients_selected of its progress events
    partial_shapes: list[tuple[int, ...]] | None = None  # write partials of these shapes instead
    partials: list[str] = field(default_factory=list)  # model ids of the partials it wrote
    commands: list[pb.AsyncCommand] = field(default_factory=list)
    async_calls: int = 0
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def RunAsync(self, request_iterator, context) -> AsyncIterator[pb.AsyncEvent]:
        self.async_calls += 1
        commands = aiter(request_iterator)
        first = await anext(commands)
        self.commands.append(first)
        config = first.start
        specs = await asyncio.to_thread(self._specs, config.model_id)
        version, folded, buffer = config.version, 0, []
        yield pb.AsyncEvent(progress=pb.RoundProgress(stage="training", clients_selected=self.in_flight))
        for client, reason in self.rejections:
            yield pb.AsyncEvent(rejected=pb.RejectedUpdate(client_id=client, reason=reason))
        try:
            while True:  # until the controller closes the stream
                if self.fold:
                    for client, n in self.clients.items():
                        if self.abort_after_folds is not None and folded >= self.abort_after_folds:
                            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} went away")
                        update = self._folded(config, client, n, version)
                        buffer.append(update)
                        folded += 1
                        yield pb.AsyncEvent(folded=update)
                command = await anext(commands, None)
                if command is None:
                    return
                self.commands.append(command)
                while command.WhichOneof("command") == "flush":
                    if not self.ignore_flushes:
                        flushed = await asyncio.to_thread(self._flush, specs, command.flush.version, buffer)
                        buffer = []
                        yield pb.AsyncEvent(flushed=flushed)
                    command = await anext(commands, None)
                    if command is None:
                        return
                    self.commands.append(command)
                version = command.version.version
        finally:  # the controller closed or cancelled the stream
            self.stream_ended.set()

    def _folded(self, config: pb.AsyncConfig, client: str, n: int, version: int) -> pb.FoldedUpdate:
        base = max(version - self.lags.get(client, 0), 0)
        tau = version - base
        return pb.FoldedUpdate(
            client=pb.ClientResult(client_id=client, num_examples=n, meta=f'{{"num_examples": {n}}}'),
            base_version=base,
            staleness=tau,
            staleness_weight=staleness_weight(config, tau),
        )

    def _specs(self, model_id: str) -> list[tuple[tuple[int, ...], np.dtype]]:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.npz")
            self.repository.get_model_to_file(model_id, path)
            return [(w.shape, w.dtype) for w in helper.load(path)]

    def _flush(self, specs, version: int, buffer: list[pb.FoldedUpdate]) -> pb.BufferFlushed:
        """The buffer as a partial model: arrays of sum(n s k) / sum(n), in float64."""
        if not buffer:
            return pb.BufferFlushed(version=version)
        total = sum(u.client.num_examples for u in buffer)
        value = math.fsum(
            u.client.num_examples * u.staleness_weight * self.increments.get(u.client.client_id, 1.0)
            for u in buffer
        )
        with tempfile.TemporaryDirectory() as tmp:
            shapes = self.partial_shapes or [shape for shape, _ in specs]
            weights = [np.full(shape, value / total, dtype=np.float64) for shape in shapes]
            path = helper.save(weights, os.path.join(tmp, "partial.npz"))
            model_id = new_id()
            self.repository.put_model(model_id, path)
        self.partials.append(model_id)
        return pb.BufferFlushed(version=version, model_id=model_id, num_examples=total, updates=buffer)
