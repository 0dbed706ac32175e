"""A test driver that plays the controller over Control.RunAsync: sends commands, collects events."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from scaleout.combiner.server import Combiner
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from tests.combiner.driver import CHANNEL_OPTIONS, WAIT, address

DEFAULTS: dict[str, Any] = {
    "session_id": "s1",
    "version": 0,
    "max_concurrency": 0,
    "staleness": "polynomial",
    "staleness_exponent": 0.5,
    "max_staleness": -1,
    "task_timeout": 3600.0,
    "helper": "numpyhelper",
}


class AsyncController:
    """One RunAsync call: ``send`` commands, wait on the events it collected."""

    def __init__(self, combiner: Combiner) -> None:
        self.channel = grpc.aio.insecure_channel(address(combiner), options=CHANNEL_OPTIONS)
        self.call = rpc.ControlStub(self.channel).RunAsync(timeout=120)
        self.folded: list[pb.FoldedUpdate] = []
        self.rejected: list[pb.RejectedUpdate] = []
        self.flushed: list[pb.BufferFlushed] = []
        self.progress: list[pb.RoundProgress] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while (event := await self.call.read()) is not grpc.aio.EOF:
                kind = event.WhichOneof("event")
                getattr(self, kind).append(getattr(event, kind))
                async with self._changed:
                    self._changed.notify_all()
        except grpc.aio.AioRpcError as error:
            self.error = error
        async with self._changed:
            self._changed.notify_all()

    async def send(self, **command: Any) -> None:
        await self.call.write(pb.AsyncCommand(**command))

    async def start(self, model_id: str, **config: Any) -> None:
        await self.send(start=pb.AsyncConfig(**{**DEFAULTS, "model_id": model_id, **config}))

    async def new_version(self, version: int, model_id: str) -> None:
        """Send the version and wait until the combiner says new tasks train on it."""
        staged = self.stages().count("version")
        await self.send(version=pb.NewVersion(version=version, model_id=model_id))
        await self.until(lambda: self.stages().count("version") > staged)

    def stages(self) -> list[str]:
        return [p.stage for p in self.progress]

    async def flush(self, version: int) -> pb.BufferFlushed:
        """Flush and wait for the answer."""
        answered = len(self.flushed)
        await self.send(flush=pb.FlushBuffer(version=version))
        await self.until(lambda: len(self.flushed) > answered)
        return self.flushed[answered]

    async def until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait (on each event) until predicate() holds; fails if the call ends first or after timeout."""
        async with asyncio.timeout(timeout), self._changed:
            while not predicate():
                assert not self._reader.done(), f"RunAsync ended: {self.error}"
                await self._changed.wait()

    async def end(self) -> grpc.aio.AioRpcError | None:
        """End the command stream, as a controller stopping the session does; the call's error, if any."""
        await self.call.done_writing()
        await asyncio.wait_for(self._reader, WAIT)
        return self.error

    async def failure(self) -> grpc.aio.AioRpcError:
        """The error status the combiner ended the call with."""
        await asyncio.wait_for(self._reader, WAIT)
        assert self.error is not None, "RunAsync ended without an error"
        return self.error

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


@asynccontextmanager
async def async_controller(combiner: Combiner) -> AsyncIterator[AsyncController]:
    driver = AsyncController(combiner)
    try:
        yield driver
    finally:
        await driver.close()
