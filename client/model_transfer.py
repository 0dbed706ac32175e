"""Move model bytes between a file and the combiner's ModelService, in 1-4 MiB chunks.

Models never sit whole in memory on the client: a download is written chunk by chunk as it
arrives, and an upload reads the file chunk by chunk as gRPC asks for the next message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from scaleout.errors import ScaleoutError
from scaleout.proto import scaleout_pb2, scaleout_pb2_grpc


class TransferError(ScaleoutError):
    """The combiner did not accept an uploaded model."""


async def download_model(stub: scaleout_pb2_grpc.ModelServiceStub, model_id: str, path: Path) -> int:
    """Write model ``model_id`` from the combiner to ``path``; return its size in bytes."""
    size = 0
    with open(path, "wb") as handle:
        async for chunk in stub.Download(scaleout_pb2.ModelRequest(model_id=model_id)):
            handle.write(chunk.data)
            size += len(chunk.data)
    return size


async def upload_model(
    stub: scaleout_pb2_grpc.ModelServiceStub,
    path: Path,
    model_update_id: str,
    client_id: str,
    chunk_size: int,
) -> int:
    """Stream the file at ``path`` to the combiner under ``model_update_id``; return its size."""
    size = path.stat().st_size
    metadata = (("model-id", model_update_id), ("client-id", client_id))
    response = await stub.Upload(_chunks(path, chunk_size), metadata=metadata)
    if response.status != scaleout_pb2.ModelStatus.OK:
        status = scaleout_pb2.ModelStatus.Name(response.status)
        raise TransferError(
            f"the combiner did not accept update {model_update_id}: {status} {response.message}"
        )
    return size


async def _chunks(path: Path, chunk_size: int) -> AsyncIterator[scaleout_pb2.FileChunk]:
    with open(path, "rb") as handle:
        while data := handle.read(chunk_size):
            yield scaleout_pb2.FileChunk(data=data)
