"""Model updates spooled to the combiner's disk by ModelService.Upload until their ModelUpdate arrives.

An update is written chunk by chunk to a temporary file (never held in memory) and becomes claimable
under its model_update_id only once complete. The file goes when the update is folded or rejected,
or when the round ends unclaimed (a client that crashed after uploading).
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from scaleout.store import validate_id


class UploadTooLarge(Exception):
    """An upload passed the size bound; str() names the bound."""


class UploadExists(Exception):
    """An upload reused a model_update_id that is already spooled."""


@dataclass(frozen=True)
class SpooledUpdate:
    update_id: str
    client_id: str
    path: Path
    size: int


class UpdateSpool:
    """Complete uploads by model_update_id; files under ``directory``."""

    def __init__(self, directory: Path, max_size: int) -> None:
        self._directory = directory
        self._updates: dict[str, SpooledUpdate] = {}
        self.max_size = max_size
        self._receiving: set[str] = set()
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():  # uploads of a combiner killed mid-round: no round takes them
            discard(leftover)

    async def receive(
        self, update_id: str, client_id: str, chunks: AsyncIterator[bytes | memoryview]
    ) -> SpooledUpdate:
        """Write the chunks to a file; InvalidId, UploadExists or UploadTooLarge leave nothing behind."""
        validate_id(update_id)
        if update_id in self._updates or update_id in self._receiving:
            raise UploadExists(f"an update with model-id {update_id!r} was already uploaded; use a new id")
        self._receiving.add(update_id)
        partial = self._directory / f"{update_id}.part"
        path = self._directory / f"{update_id}.npz"
        size = 0
        stream: BinaryIO | None = None
        try:
            # Two worker-thread hops for an update of one chunk (open with the first write, then close),
            # not one per file operation: at 1,000 clients a round, each hop costs the event loop time.
            async for data in chunks:
                size += len(data)
                if size > self.max_size:
                    raise UploadTooLarge(
                        f"update {update_id} is larger than the combiner's --max-model-size of "
                        f"{self.max_size} bytes"
                    )
                if stream is None:
                    stream = await asyncio.to_thread(_create, partial, data)
                else:
                    await asyncio.to_thread(stream.write, data)
            if stream is None:  # an empty upload
                stream = await asyncio.to_thread(_create, partial, b"")
            await asyncio.to_thread(stream.close)
            os.replace(partial, path)
        except BaseException:
            if stream is not None:
                stream.close()  # a no-op once closed
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        finally:
            self._receiving.discard(update_id)
        update = self._updates[update_id] = SpooledUpdate(update_id, client_id, path, size)
        return update

    def claim(self, update_id: str, client_id: str) -> SpooledUpdate | None:
        """Take the update out of the spool (the caller deletes its file); None if there is no such
        upload from this client. Another client's upload stays, so naming its id cannot destroy it; an
        upload without a client-id (open mode) is anyone's."""
        update = self._updates.get(update_id)
        if update is None or (update.client_id and update.client_id != client_id):
            return None
        return self._updates.pop(update_id)

    def discard_client(self, client_id: str) -> int:
        """Delete the unclaimed uploads of one client (its task ended: they can no longer be averaged in)."""
        gone = [u for u in self._updates.values() if u.client_id == client_id]
        for update in gone:
            del self._updates[update.update_id]
            discard(update.path)
        return len(gone)

    def discard_all(self) -> int:
        """Delete every unclaimed upload (a round ended; they can no longer be averaged in)."""
        updates, self._updates = self._updates, {}
        for update in updates.values():
            discard(update.path)
        return len(updates)


def _create(partial: Path, data: memoryview | bytes) -> BinaryIO:
    """Open the spool file and write the first chunk: one worker-thread hop. Blocking."""
    stream = open(partial, "wb")  # noqa: SIM115 - closed by receive
    try:
        stream.write(data)
    except BaseException:
        stream.close()
        raise
    return stream


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
