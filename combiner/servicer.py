"""CombinerClient: the RPCs edge clients call. Other RPCs of the service answer UNIMPLEMENTED."""

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import grpc

from scaleout.combiner.clients import ClientRegistry, client_name
from scaleout.combiner.rounds import RoundHandler
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc

log = logging.getLogger(__name__)

UNIMPLEMENTED = (
    "SendModelMetric",
    "SendAttributeMessage",
    "SendTelemetryMessage",
    "StreamTelemetryRecord",
    "StreamAttributeRecord",
    "StreamInferenceResult",
    "Announce",
    "SendBacklogReport",
    "PollAndReportAsync",
)


def _unimplemented(method: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """An async handler answering UNIMPLEMENTED (the generated default would run in a worker thread)."""

    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, f"CombinerClient.{method} is not implemented by this combiner"
        )

    handler.__name__ = method
    return handler


class CombinerClientServicer(rpc.CombinerClientServicer):
    def __init__(self, registry: ClientRegistry, rounds: RoundHandler) -> None:
        self._registry = registry
        self._rounds = rounds

    async def TaskStream(
        self, request: pb.ClientAvailableMessage, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TaskRequest]:
        """Open while the client is online; yields the tasks published to it, skipping stale ones."""
        if not request.client_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "TaskStream needs a client_id")
        queue = self._registry.connect(request.client_id, client_name(request.data))
        log.info("client %s connected", request.client_id)
        try:
            while True:
                task = await queue.get()  # unbounded by design: the stream lives as long as the client
                if task is None:  # superseded by a newer stream of this client, or the combiner stops
                    return
                if self._rounds.is_active(task.correlation_id):
                    yield task
        finally:
            self._registry.disconnect(request.client_id, queue)
            log.info("client %s task stream closed", request.client_id)

    async def SendHeartbeat(self, request: pb.Heartbeat, context: grpc.aio.ServicerContext) -> pb.Response:
        if not request.client_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Heartbeat.client_id is required")
        self._registry.heartbeat(request.client_id, request.heartbeat_interval_ms / 1000)
        return pb.Response(response="heartbeat received")

    async def SendModelUpdate(
        self, request: pb.ModelUpdate, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return pb.Response(response=await self._rounds.receive_update(request))

    async def SendModelValidation(
        self, request: pb.ModelValidation, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return pb.Response(response=await self._rounds.receive_validation(request))

    async def SendStatus(self, request: pb.Status, context: grpc.aio.ServicerContext) -> pb.Response:
        return pb.Response(response=await self._rounds.receive_status(request))


for _method in UNIMPLEMENTED:
    setattr(CombinerClientServicer, _method, _unimplemented(_method))
