"""CombinerClient: the RPCs edge clients call.

Ours stream tasks (TaskStream); the official Scaleout Edge client polls (PollAndReportAsync, Announce:
combiner/polling.py) and sends telemetry and metrics (combiner/telemetry.py).
"""

import logging
from collections.abc import AsyncIterator

import grpc

from scaleout.combiner.clients import ClientRegistry, client_name
from scaleout.combiner.modelservice import call_metadata
from scaleout.combiner.polling import Pollers
from scaleout.combiner.rounds import RoundHandler
from scaleout.combiner.telemetry import Telemetry
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc

log = logging.getLogger(__name__)


class CombinerClientServicer(rpc.CombinerClientServicer):
    def __init__(
        self, registry: ClientRegistry, rounds: RoundHandler, pollers: Pollers, telemetry: Telemetry
    ) -> None:
        self._registry = registry
        self._rounds = rounds
        self._pollers = pollers
        self._telemetry = telemetry

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

    # -- the official client: polling, announcements, telemetry -----------------------------------

    async def PollAndReportAsync(
        self, request: pb.ClientReport, context: grpc.aio.ServicerContext
    ) -> pb.CombinerDirective:
        if not request.client_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ClientReport.client_id is required")
        return await self._pollers.poll(request, call_metadata(context, "name"))

    async def Announce(
        self, request: pb.ClientAnnounceRequest, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        if not request.client_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "ClientAnnounceRequest.client_id is required"
            )
        try:
            return await self._pollers.announce(request, call_metadata(context, "name"))
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    async def SendModelMetric(
        self, request: pb.ModelMetric, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return pb.Response(response=await self._telemetry.metric(request))

    async def SendAttributeMessage(
        self, request: pb.AttributeMessage, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return pb.Response(response=self._telemetry.acknowledge(request))

    async def SendTelemetryMessage(
        self, request: pb.TelemetryMessage, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return pb.Response(response=self._telemetry.acknowledge(request))

    async def SendBacklogReport(
        self, request: pb.BacklogReport, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return pb.Response(response=self._telemetry.acknowledge(request))

    async def StreamTelemetryRecord(
        self, request_iterator: AsyncIterator[pb.TelemetryRecord], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RecordAck]:
        async for ack in self._telemetry.acknowledge_stream(request_iterator, "telemetry_id"):
            yield ack

    async def StreamAttributeRecord(
        self, request_iterator: AsyncIterator[pb.AttributeRecord], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RecordAck]:
        async for ack in self._telemetry.acknowledge_stream(request_iterator, "attribute_id"):
            yield ack

    async def StreamInferenceResult(
        self, request_iterator: AsyncIterator[pb.InferenceResult], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RecordAck]:
        async for ack in self._telemetry.acknowledge_stream(request_iterator, "inference_result_id"):
            yield ack
