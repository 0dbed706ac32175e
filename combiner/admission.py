"""Admission of model transfers: at most ``slots`` Downloads and Uploads move bytes at once.

Every open transfer holds its chunk in memory until gRPC has sent it, or the spool has taken it, so
without a bound the combiner's memory grows with the number of clients transferring at once: ~1 MB per
client at 1,000 clients on a 1 MB model. Admitted transfers run at full speed; the others wait their
turn in arrival order, holding nothing but their call. The combiner sends a call's headers when it is
admitted: a client waits up to its max_queue_wait for them and keeps its transfer pace
(min_transfer_rate) from then on, and the edge client sends no upload byte before them
(client/model_transfer.py). An upload first waits for room in the spool's memory budget (spool.py).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TransferAdmission:
    """A first-come, first-served bound on concurrent transfers, with counts for metrics and tests."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"max_transfers must be >= 1, got {slots}")
        self._semaphore = asyncio.Semaphore(slots)
        self.active = 0  # transfers moving bytes now
        self.waiting = 0  # transfers waiting for a slot

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``; waits while every slot is taken."""
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()
