"""One transfer's rate, run where the clients are (inside the namespace): prints one line, MB/s.

``throughput.py tcp HOST:PORT BYTES`` sends BYTES over raw TCP and waits for the server's one-byte
answer (the link's own rate); ``throughput.py upload HOST:PORT BYTES`` uploads a file of BYTES to the
combiner's ModelService with the edge client's own transfer code (client/model_transfer.py).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from scaleout.client.edge import CHANNEL_OPTIONS
from scaleout.client.model_transfer import ModelStreams, Pace, upload_model

MIB = 1024 * 1024


def tcp(host: str, port: int, size: int) -> float:
    chunk = b"x" * MIB
    with socket.create_connection((host, port)) as conn:
        started = time.monotonic()
        sent = 0
        while sent < size:
            conn.sendall(chunk[: size - sent])
            sent += min(MIB, size - sent)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
        return size / (time.monotonic() - started)


async def upload(target: str, size: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "update.npz"
        with open(path, "wb") as handle:
            for offset in range(0, size, MIB):
                handle.write(b"\0" * min(MIB, size - offset))
        async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            streams, started = ModelStreams(channel), time.monotonic()
            await upload_model(streams, path, uuid.uuid4().hex, "wan-bench", MIB, Pace(600, 1, 600))
            return size / (time.monotonic() - started)


def main() -> None:
    kind, address, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = address.rsplit(":", 1)
    rate = tcp(host, int(port), size) if kind == "tcp" else asyncio.run(upload(address, size))
    print(f"{rate / 1e6:.1f} MB/s ({size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
