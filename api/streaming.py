"""Streaming an object from the model repository to an HTTP client in chunks."""

from collections.abc import Iterator
from typing import BinaryIO

from fastapi.responses import StreamingResponse

from scaleout.store.repository import CHUNK_SIZE


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    # A sync iterator: Starlette reads it in its threadpool, so a slow disk or S3 never blocks the loop.
    try:
        while chunk := stream.read(CHUNK_SIZE):
            yield chunk
    finally:
        stream.close()


def stream_object(stream: BinaryIO, size: int, filename: str) -> StreamingResponse:
    """A download of `size` bytes from an open repository stream, which is closed when done."""
    headers = {"Content-Length": str(size), "Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(_chunks(stream), media_type="application/octet-stream", headers=headers)
