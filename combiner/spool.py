"""Model updates spooled by ModelService.Upload until their ModelUpdate arrives.

An update of one chunk (a model up to 1-4 MiB) is kept in memory while the spool's ``memory_budget``
has room: at 1,000 clients a round, creating, writing, reading and deleting a file per update cost
the combiner ~10 % of its CPU (ext4 inode allocation, and a worker-thread hop per step). Larger
updates, and small ones past the budget, are written chunk by chunk to a temporary file, never held
whole. Either becomes claimable under its model_update_id only once complete, and goes (``release``)
when it is folded or rejected, or when the round ends unclaimed (a client that crashed after uploading).

An upload first waits for ``room`` in that budget, before it is admitted: under load, uploads finish
faster than their ModelUpdates reach the event loop, each held update waits for its own, and without
the wait the budget filled early in a 1,000-client round and most updates spilled to disk anyway
(``_create`` was then a fifth of the combiner's samples). A waiting upload holds no memory, as the
client sends nothing before it is admitted (client/model_transfer.py); the wait is bounded, so updates
nobody names (a client that uploads and goes) delay the others by ``ROOM_WAIT`` at most, then spill.
"""

import asyncio
import contextlib
import dataclasses
import io
import os
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from scaleout.store import validate_id


class UploadTooLarge(Exception):
    """An upload passed the size bound; str() names the bound."""


class UploadExists(Exception):
    """An upload reused a model_update_id that is already spooled."""


class TooManyUploads(Exception):
    """A client has MAX_UNCLAIMED uploads not yet named by a ModelUpdate; str() says what to do."""


# Bytes of updates the spool holds in memory at most (the rest go to disk): 64 1 MB updates.
MEMORY_BUDGET = 64 * 1024 * 1024
# What an upload reserves of it before its first is held: the largest chunk a client sends.
FIRST_RESERVATION = 4 * 1024 * 1024
ROOM_WAIT = 30.0  # seconds an upload waits for room in the budget before it is admitted to spill
# Uploads one client may have spooled and not yet named by a ModelUpdate: a client uploads one update
# per task (a retry after a lost answer makes two), and without a bound one client could fill the
# combiner's disk with --max-model-size uploads it never sends on. Uploads without a client id (open
# mode, no identity to bound) are not counted.
MAX_UNCLAIMED = 4


@dataclass(frozen=True)
class SpooledUpdate:
    update_id: str
    client_id: str
    path: Path  # its file: where it is, or where ``UpdateSpool.on_disk`` writes it when held in memory
    size: int
    data: bytes | memoryview | None = None  # the update itself when held in memory

    def source(self) -> Path | IO[bytes]:
        """Something to read the update from: its bytes or its file."""
        return self.path if self.data is None else io.BytesIO(self.data)


class UpdateSpool:
    """Complete uploads by model_update_id; files under ``directory``."""

    def __init__(self, directory: Path, max_size: int, memory_budget: int = MEMORY_BUDGET) -> None:
        self._directory = directory
        self._updates: dict[str, SpooledUpdate] = {}
        self.max_size = max_size
        self._receiving: set[str] = set()
        self._per_client: Counter[str] = Counter()  # uploads receiving or unclaimed, by client id
        self._memory_budget = memory_budget
        self.held_bytes = 0  # of the updates held in memory, until released
        self.reserved_bytes = 0  # of the budget, by uploads admitted and not complete yet
        # What the next upload reserves: the last one's size if it could be held, else 0.
        self._reservation = min(FIRST_RESERVATION, memory_budget)
        self._room_waiters: deque[asyncio.Future[int]] = deque()  # first come, first served
        self.waiting_for_room = 0  # uploads in _reserve's wait (a count the metrics thread can read)
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():  # uploads of a combiner killed mid-round: no round takes them
            discard(leftover)

    @contextlib.asynccontextmanager
    async def room(self, bound: float = ROOM_WAIT) -> AsyncIterator[None]:
        """Reserve room in the memory budget for one upload for the body of the ``async with``: as much
        as the last upload held, none if it was spilled. Waits in arrival order while the budget is full,
        up to ``bound`` s; then goes on without a reservation, and the update spills if it must."""
        reserved = await self._reserve(bound)
        try:
            yield
        finally:
            self.reserved_bytes -= reserved
            self._wake()

    async def _reserve(self, bound: float) -> int:
        """The bytes reserved for one upload: now if there is room and nobody waits, else when ``_wake``
        hands them over; 0 after ``bound`` s."""
        if not self._room_waiters and self._fits(self._reservation):
            self.reserved_bytes += self._reservation
            return self._reservation
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._room_waiters.append(waiter)
        self.waiting_for_room += 1
        try:
            async with asyncio.timeout(bound):
                return await waiter
        except TimeoutError:
            return waiter.result() if _handed(waiter) else 0  # maybe handed over just as the bound came
        except asyncio.CancelledError:  # the call ended: give back what was handed over meanwhile
            if _handed(waiter):
                self.reserved_bytes -= waiter.result()
                self._wake()
            raise
        finally:
            self.waiting_for_room -= 1
            waiter.cancel()  # a no-op once handed over; else _wake skips it

    def _fits(self, size: int) -> bool:
        return self.held_bytes + self.reserved_bytes + size <= self._memory_budget

    def _wake(self) -> None:
        """Hand freed room to the uploads waiting for it, in arrival order."""
        waiters = self._room_waiters
        while waiters and (waiters[0].done() or self._fits(self._reservation)):
            waiter = waiters.popleft()
            if not waiter.done():
                self.reserved_bytes += self._reservation
                waiter.set_result(self._reservation)

    async def receive(
        self, update_id: str, client_id: str, chunks: AsyncIterator[bytes | memoryview]
    ) -> SpooledUpdate:
        """Spool the chunks; InvalidId, UploadExists, TooManyUploads, UploadTooLarge leave nothing behind."""
        validate_id(update_id)
        if update_id in self._updates or update_id in self._receiving:
            raise UploadExists(f"an update with model-id {update_id!r} was already uploaded; use a new id")
        if client_id and self._per_client[client_id] >= MAX_UNCLAIMED:
            raise TooManyUploads(
                f"client {client_id} already has {MAX_UNCLAIMED} uploads no ModelUpdate has named yet; "
                "send SendModelUpdate for an upload before the next (unnamed ones go when their task ends)"
            )
        self._receiving.add(update_id)
        self._per_client[client_id] += 1
        partial = self._directory / f"{update_id}.part"
        path = self._directory / f"{update_id}.npz"
        size = 0
        first: bytes | memoryview | None = None  # the first chunk, until a second says it is not the last
        stream: BinaryIO | None = None
        try:
            async for data in chunks:
                size += len(data)
                if size > self.max_size:
                    raise UploadTooLarge(
                        f"update {update_id} is larger than the combiner's --max-model-size of "
                        f"{self.max_size} bytes"
                    )
                if first is None and stream is None:
                    first = data
                    continue
                if stream is None:
                    stream = await asyncio.to_thread(_create, partial, first)
                    first = None
                await asyncio.to_thread(stream.write, data)
            if stream is None:  # one chunk, or none
                first = b"" if first is None else first
                self._reservation = size if size <= self._memory_budget else 0
                if self.held_bytes + size <= self._memory_budget:
                    self.held_bytes += size
                    update = self._updates[update_id] = SpooledUpdate(update_id, client_id, path, size, first)
                    return update
                stream = await asyncio.to_thread(_create, partial, first)
            else:
                self._reservation = 0  # a streamed update is never held
            await asyncio.to_thread(stream.close)
            os.replace(partial, path)
        except BaseException:
            self._uncount(client_id)
            if stream is not None:
                stream.close()  # a no-op once closed
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        finally:
            self._receiving.discard(update_id)
        update = self._updates[update_id] = SpooledUpdate(update_id, client_id, path, size)
        return update

    def __len__(self) -> int:
        """Complete uploads not claimed yet."""
        return len(self._updates)

    def claim(self, update_id: str, client_id: str) -> SpooledUpdate | None:
        """Take the update out of the spool (the caller deletes its file); None if there is no such
        upload from this client. Another client's upload stays, so naming its id cannot destroy it; an
        upload without a client-id (open mode) is anyone's."""
        update = self._updates.get(update_id)
        if update is None or (update.client_id and update.client_id != client_id):
            return None
        self._uncount(update.client_id)
        return self._updates.pop(update_id)

    def release(self, update: SpooledUpdate) -> None:
        """The update is done with (folded or rejected): delete its file, or free its memory."""
        discard(update.path)
        if update.data is not None:
            self.held_bytes -= update.size
            self._wake()

    async def on_disk(self, update: SpooledUpdate) -> SpooledUpdate:
        """The update as a file (for the steps that read or rewrite one): written now, and its memory
        freed, if it was held in memory. Release the returned update, not the one given."""
        if update.data is None:
            return update
        await asyncio.to_thread(update.path.write_bytes, update.data)
        self.held_bytes -= update.size
        self._wake()
        on_disk = dataclasses.replace(update, data=None)
        if self._updates.get(update.update_id) is update:  # not claimed yet
            self._updates[update.update_id] = on_disk
        return on_disk

    def discard_client(self, client_id: str) -> int:
        """Delete the unclaimed uploads of one client (its task ended: they can no longer be averaged in)."""
        gone = [u for u in self._updates.values() if u.client_id == client_id]
        for update in gone:
            del self._updates[update.update_id]
            self._uncount(client_id)
            self.release(update)
        return len(gone)

    def discard_all(self) -> int:
        """Delete every unclaimed upload (a round ended; they can no longer be averaged in)."""
        updates, self._updates = self._updates, {}
        for update in updates.values():
            self._uncount(update.client_id)
            self.release(update)
        return len(updates)

    def _uncount(self, client_id: str) -> None:
        self._per_client[client_id] -= 1
        if self._per_client[client_id] <= 0:
            del self._per_client[client_id]


def _handed(waiter: asyncio.Future[int]) -> bool:
    return waiter.done() and not waiter.cancelled()


def _create(partial: Path, data: bytes | memoryview) -> BinaryIO:
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
