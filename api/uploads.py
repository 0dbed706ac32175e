"""Uploads: a bound on request bodies, and hashing an uploaded file without holding it in memory.

Starlette spools each multipart file part to a temporary file (in memory only below 1 MiB), so an
upload reaches the endpoints as a file on disk; the bound below keeps that spool from filling the disk.
"""

import hashlib
from typing import BinaryIO

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scaleout.store.repository import CHUNK_SIZE

# Room for the multipart boundaries and the small form fields around the file.
FORM_OVERHEAD = 1024 * 1024


def too_large(max_bytes: int) -> str:
    return (
        f"upload larger than the limit of {max_bytes} bytes; "
        "start the API with a larger --max-upload-bytes (SCALEOUT_API_MAX_UPLOAD_BYTES) if it is meant to be"
    )


class BodyLimitMiddleware:
    """Refuse request bodies above the upload bound with 413: at once when Content-Length says so,
    else as soon as the streamed body passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await JSONResponse({"detail": too_large(self.max_bytes)}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI re-raises HTTPExceptions from body parsing, so this becomes the 413 answer.
                    raise HTTPException(413, too_large(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)


def sha256_and_size(stream: BinaryIO) -> tuple[str, int]:
    """Hash a seekable stream in chunks from its start and rewind it for the next reader."""
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size
