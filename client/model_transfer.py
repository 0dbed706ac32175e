"""Move model bytes between a file and the combiner's ModelService, in 1-4 MiB chunks.

Models never sit whole in memory on the client: a download is written chunk by chunk as it
arrives, and an upload reads the file chunk by chunk as gRPC asks for the next message.

Every transfer has a deadline scaled by its size (``Pace``), so a stalled transfer fails instead of
holding the client's task forever. A transfer first waits its turn for one of the combiner's transfer
slots (combiner/admission.py), which the combiner marks by sending the call's headers: that wait is
bounded on its own (``Pace.queue``), and the pace is measured from the headers on, since a queued
transfer is not a stalled one. An upload sends no byte before its headers, so an upload waiting for a
slot holds no buffer at the combiner: a thousand clients finishing a round at once are taken a few
at a time instead of all landing in the combiner's memory together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import grpc

from scaleout.errors import ScaleoutError
from scaleout.proto import chunks, scaleout_pb2

MAX_CHUNK = 4 * 1024 * 1024  # the wire contract's largest chunk


class TransferError(ScaleoutError):
    """The combiner did not accept an uploaded model, or a transfer was too slow."""


class ModelStreams:
    """ModelService's Download and Upload on ``channel``, their FileChunks parsed and framed by hand
    (proto/chunks.py): a download's chunks arrive as views of the received bytes, and an upload sends
    framed bytes, where protobuf would copy each chunk twice and take ~1.8 ms to serialise 1 MB."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.download = channel.unary_stream(
            f"/{chunks.MODEL_SERVICE}/Download",
            request_serializer=scaleout_pb2.ModelRequest.SerializeToString,
            response_deserializer=chunks.parse,
        )
        self.upload = channel.stream_unary(
            f"/{chunks.MODEL_SERVICE}/Upload", response_deserializer=scaleout_pb2.ModelResponse.FromString
        )


@dataclass(frozen=True)
class Pace:
    """The slowest transfer allowed: ``floor`` seconds of slack plus ``rate`` bytes a second, after up to
    ``queue`` seconds waiting for the combiner to admit a download."""

    floor: float
    rate: float
    queue: float

    def seconds(self, size: int) -> float:
        """How long moving ``size`` bytes may take."""
        return self.floor + size / self.rate


async def download_model(streams: ModelStreams, model_id: str, path: Path, pace: Pace) -> int:
    """Write model ``model_id`` from the combiner to ``path``; return its size in bytes.

    The size is not known up front, so the pace is checked as bytes arrive, from the combiner's
    admission on: each next chunk must arrive before the time the bytes so far plus one largest chunk
    may take.
    """
    call = streams.download(scaleout_pb2.ModelRequest(model_id=model_id))
    try:
        await _admitted(call, f"download of model {model_id}", pace.queue)
        return await _receive(call, model_id, path, pace)
    finally:
        call.cancel()  # a no-op once the call ended; frees the combiner of one abandoned (a task cancelled)


async def _admitted(call: grpc.aio.Call, transfer: str, queue: float) -> None:
    """Wait up to ``queue`` s for the combiner to admit the transfer: its headers.

    They come at admission, with the first chunk from a combiner that does not queue, or with the status
    of a call that fails (then reading the call raises its error).
    """
    try:
        async with asyncio.timeout(queue):
            await call.initial_metadata()
    except TimeoutError:
        raise TransferError(
            f"{transfer} was not admitted within {queue:g} s: every transfer slot of the combiner "
            "stayed busy (client setting max_queue_wait, combiner setting max_transfers)"
        ) from None


async def _receive(call: grpc.aio.UnaryStreamCall, model_id: str, path: Path, pace: Pace) -> int:
    """Write the admitted download's chunks to ``path`` at ``pace``; return its size in bytes."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    size = 0
    try:
        with open(path, "wb") as handle:
            async with asyncio.timeout_at(started + pace.seconds(MAX_CHUNK)) as bound:
                async for data in call:
                    handle.write(data)
                    size += data.nbytes
                    bound.reschedule(started + pace.seconds(size + MAX_CHUNK))
    except TimeoutError:
        raise TransferError(
            f"download of model {model_id} stalled: {size} bytes in {loop.time() - started:.1f} s, slower "
            f"than {pace.rate:g} bytes/s after {pace.floor:g} s (client settings min_transfer_rate, "
            "rpc_deadline)"
        ) from None
    return size


async def upload_model(
    streams: ModelStreams,
    path: Path,
    model_update_id: str,
    client_id: str,
    chunk_size: int,
    pace: Pace,
) -> int:
    """Stream the file at ``path`` to the combiner under ``model_update_id`` once it admits the upload;
    return its size."""
    size = path.stat().st_size
    metadata = (("model-id", model_update_id), ("client-id", client_id))
    call = streams.upload(metadata=metadata)
    transfer = f"upload of update {model_update_id}"
    try:
        await _admitted(call, transfer, pace.queue)
        response = await _send(call, path, chunk_size, transfer, pace.seconds(size))
    finally:
        call.cancel()  # a no-op once the call ended; else the combiner drops the upload at once
    if response.status != scaleout_pb2.ModelStatus.OK:
        status = scaleout_pb2.ModelStatus.Name(response.status)
        raise TransferError(
            f"the combiner did not accept update {model_update_id}: {status} {response.message}"
        )
    return size


async def _send(
    call: grpc.aio.StreamUnaryCall, path: Path, chunk_size: int, transfer: str, seconds: float
) -> scaleout_pb2.ModelResponse:
    """Write the admitted upload's chunks within ``seconds``; the combiner's answer."""
    try:
        async with asyncio.timeout(seconds):
            with open(path, "rb") as handle:
                while data := handle.read(chunk_size):
                    await call.write(chunks.frame(data))
            await call.done_writing()
            return await call
    except TimeoutError:
        raise TransferError(
            f"{transfer} stalled: not done within {seconds:.1f} s of its admission (client settings "
            "min_transfer_rate, rpc_deadline)"
        ) from None
