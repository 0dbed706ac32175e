"""ModelService: clients download the staged global model and upload their updates, in chunks.

Bytes are moved, never parsed: Download streams the one staged file, Upload spools to disk. File I/O
runs in worker threads so a slow disk never stalls the event loop that serves every other client.

Chunks cross the wire framed and parsed by hand (proto/chunks.py): a download sends the staged
model's chunks as serialised FileChunks, read once per model (StagedModels.cached_chunks) or, for a
large model, read and framed per download in a worker thread; an upload's chunks reach the spool as
views of the received messages. No model byte is copied on the event loop but by gRPC itself.

Every open transfer holds its chunk in memory until gRPC has sent or the spool has written it (grpc.aio
awaits each message's send, so no stream queues more than one), so the combiner's memory grows with
the number of clients moving a model at once. Download therefore sends 1 MiB chunks, the low end of
the wire contract. Measured with benchmarks/round_bench.py, 100 MB model, 16 clients: 4 MiB chunks
held ~13 MB per download (~210 MB for 16), 1 MiB chunks ~3 MB, at the same round time. How many
transfers hold buffers at once is bounded by ``TransferAdmission`` (the combiner's max_transfers), in
both directions: a transfer's headers admit it. The edge client sends no upload byte before them;
a client that does not wait (the official one) has its first window of bytes sit in gRPC's buffers
while it waits, as it would without admission.
"""

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from scaleout.combiner.admission import TransferAdmission
from scaleout.combiner.containers import ContainerRejected, is_container, unwrap
from scaleout.combiner.spool import SpooledUpdate, TooManyUploads, UpdateSpool, UploadExists, UploadTooLarge
from scaleout.combiner.staging import StagedModels, read_framed
from scaleout.errors import InvalidId
from scaleout.proto import chunks as wire
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc

log = logging.getLogger(__name__)


def call_metadata(context: grpc.aio.ServicerContext, key: str) -> str:
    """The value of one invocation metadata key, or ""."""
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return item.value if isinstance(item.value, str) else item.value.decode()
    return ""


class ModelServicer(rpc.ModelServiceServicer):
    def __init__(self, staged: StagedModels, spool: UpdateSpool, admission: TransferAdmission) -> None:
        self._staged = staged
        self._spool = spool
        self._admission = admission  # bounds the transfers holding chunks at once

    async def Upload(
        self, request_iterator: AsyncIterator[memoryview], context: grpc.aio.ServicerContext
    ) -> pb.ModelResponse:
        update_id = call_metadata(context, "model-id")
        client_id = call_metadata(context, "client-id")
        if not update_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Upload needs call metadata ('model-id', <new uuid hex>) naming the update",
            )
        async with self._spool.room(), self._admission.slot():
            # The headers admit the upload: the edge client sends no byte before them, so the uploads
            # waiting for room or a slot hold no buffers here (client/model_transfer.py).
            await context.send_initial_metadata(())
            try:
                update = await self._spool.receive(update_id, client_id, request_iterator)
            except InvalidId as error:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"model-id metadata: {error}")
            except UploadExists as error:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(error))
            except (UploadTooLarge, TooManyUploads) as error:
                log.warning("rejected upload from client %s: %s", client_id or "?", error)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        if await _is_container(update):  # the official client's ZIP container
            update = await self._spool.on_disk(update)  # unwrapped in place
            try:
                await asyncio.to_thread(unwrap, update.path, self._spool.max_size)
            except ContainerRejected as error:
                if self._spool.claim(update.update_id, client_id) is not None:
                    self._spool.release(update)
                log.warning("rejected upload from client %s: %s", client_id or "?", error)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        log.debug("spooled update %s from client %s (%d bytes)", update.update_id, client_id, update.size)
        return pb.ModelResponse(status=pb.OK, message=f"update {update.update_id} received")

    async def Download(
        self, request: pb.ModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        path = self._staged.path(request.model_id)
        if path is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"model {request.model_id!r} is not staged at this combiner; only the models of its "
                "current tasks can be downloaded",
            )
        async with self._admission.slot():
            # The headers tell the client it is admitted: its transfer pace runs from here, not from its
            # wait in the queue (client/model_transfer.py).
            await context.send_initial_metadata(())
            try:
                cached = await self._staged.cached_chunks(request.model_id)
                if cached is not None:
                    for chunk in cached:
                        yield chunk
                    return
                stream = await asyncio.to_thread(open, path, "rb")
            except FileNotFoundError:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model_id!r} was evicted")
            try:
                while chunk := await asyncio.to_thread(read_framed, stream):
                    yield chunk
            finally:
                await asyncio.to_thread(stream.close)


async def _is_container(update: SpooledUpdate) -> bool:
    if update.data is not None:  # a ZIP directory in memory: read here, no worker-thread hop
        return is_container(update.source())
    return await asyncio.to_thread(is_container, update.path)


def add_model_service(servicer: ModelServicer, server: grpc.aio.Server) -> None:
    """Register ModelService as the generated ``add_ModelServiceServicer_to_server`` does, but with
    chunks framed and parsed by hand (proto/chunks.py) instead of through FileChunk messages."""
    handlers = {
        "Upload": grpc.stream_unary_rpc_method_handler(
            servicer.Upload,
            request_deserializer=wire.parse,
            response_serializer=pb.ModelResponse.SerializeToString,
        ),
        "Download": grpc.unary_stream_rpc_method_handler(
            servicer.Download,
            request_deserializer=pb.ModelRequest.FromString,
            response_serializer=wire.serialize,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(wire.MODEL_SERVICE, handlers),))
    server.add_registered_method_handlers(wire.MODEL_SERVICE, handlers)
