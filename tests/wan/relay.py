"""A delaying TCP relay: what netem would do for latency, on a kernel without netem.

Listens on ``listen``; every connection is forwarded to ``target``, and every byte is delivered ``delay``
seconds after it arrived, in each direction, so a round trip through the relay takes ``2 * delay`` more.
Bandwidth is not limited here (``tc`` does that on the veth links); bytes in flight are bounded by
``max_in_flight`` per direction, beyond which the relay stops reading, as a full link would.

Run as a process: ``python -m tests.wan.relay LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque

READ_SIZE = 256 * 1024
MAX_IN_FLIGHT = 256 * 1024 * 1024  # bytes per direction: far above any bandwidth-delay product here


class _Pipe:
    """One direction of one connection: read, hold each piece for ``delay``, write in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        self._reader = reader
        self._writer = writer
        self._delay = delay
        self._pieces: deque[tuple[float, bytes]] = deque()
        self._held = 0
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._ended = False

    async def run(self) -> None:
        await asyncio.gather(self._read(), self._deliver())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await self._reader.read(READ_SIZE):
                while self._held > MAX_IN_FLIGHT:
                    self._drained.clear()
                    await self._drained.wait()
                self._pieces.append((loop.time() + self._delay, data))
                self._held += len(data)
                self._arrived.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self._ended = True
            self._arrived.set()

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self._pieces:
                    if self._ended:
                        return
                    self._arrived.clear()
                    await self._arrived.wait()
                due, data = self._pieces.popleft()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self._writer.write(data)
                await self._writer.drain()
                self._held -= len(data)
                self._drained.set()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                if self._writer.can_write_eof():
                    self._writer.write_eof()


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    delay: float,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _Pipe(client_reader, server_writer, delay).run(), _Pipe(server_reader, client_writer, delay).run()
        )
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> asyncio.Server:
    """Start the relay; close the returned server to stop taking connections."""
    return await asyncio.start_server(lambda r, w: _relay(r, w, target, delay), *listen)


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def _main(listen: str, target: str, delay: str) -> None:
    server = await serve(_address(listen), _address(target), float(delay))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(*sys.argv[1:4]))
