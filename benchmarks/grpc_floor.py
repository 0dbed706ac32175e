"""The floor under a round of N clients on Python's gRPC: what moving the model bytes alone costs.

A bare ``grpc.aio`` server (the combiner's transport options, no application code) serves each
client one cached 1 MB download and receives one 1 MB upload from it, as a combiner's round does;
bare clients (``--processes`` of them, one connection each, as the swarm dials) do exactly that and
nothing else. It prints the wall time and the CPU seconds of the server and of the clients: any Python
gRPC combiner, and any swarm sharing the machine with it, spends at least this much before it checks,
averages or records a single update.

    .venv/bin/python benchmarks/grpc_floor.py --clients 1000 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

# Run as a script, so the repository root is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleout.client.edge import OWN_CONNECTION
from scaleout.combiner.server import SERVER_OPTIONS

MODEL = b"x" * 1_000_000
OPTIONS = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve(port: int) -> None:
    async def upload(chunks: AsyncIterator[bytes], _context: grpc.aio.ServicerContext) -> bytes:
        async for _ in chunks:
            pass
        return b""

    async def download(_request: bytes, _context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield MODEL

    # The combiner's own transport options: gRPC's defaults cancel calls past 1,000 waiting (server.py).
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handlers = {
        "Upload": grpc.stream_unary_rpc_method_handler(upload),
        "Download": grpc.unary_stream_rpc_method_handler(download),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("floor", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()


async def clients(port: int, count: int) -> None:
    """Connect ``count`` clients, then on a line from stdin move one model each way per client."""
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS + OWN_CONNECTION) for _ in range(count)
    ]
    await asyncio.gather(*(channel.channel_ready() for channel in channels))
    print("connected", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def round_trip(channel: grpc.aio.Channel) -> None:
        async for _ in channel.unary_stream("/floor/Download")(b""):
            pass
        await channel.stream_unary("/floor/Upload")(iter([MODEL]))

    await asyncio.gather(*(round_trip(channel) for channel in channels))
    print("done", flush=True)


def measure(count: int, processes: int, port: int) -> tuple[float, float, float]:
    """Wall seconds, server CPU seconds and clients' CPU seconds of one round of ``count`` clients."""
    me = [sys.executable, __file__]
    server = subprocess.Popen([*me, "serve", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    swarm: list[subprocess.Popen[str]] = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "serving"
        per = -(-count // processes)
        for start in range(0, count, per):
            n = str(min(per, count - start))
            args = [*me, "clients", "--port", str(port), "--count", n]
            swarm.append(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for process in swarm:
            assert process.stdout is not None and process.stdout.readline().strip() == "connected"
        server0, swarm0, started = (
            cpu_seconds(server.pid),
            sum(cpu_seconds(p.pid) for p in swarm),
            time.monotonic(),
        )
        for process in swarm:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in swarm:
            assert process.stdout is not None and process.stdout.readline().strip() == "done"
        wall = time.monotonic() - started
        return wall, cpu_seconds(server.pid) - server0, sum(cpu_seconds(p.pid) for p in swarm) - swarm0
    finally:
        for process in [*swarm, server]:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    for name in ("serve", "clients"):
        command = sub.add_parser(name)
        command.add_argument("--port", type=int, required=True)
        if name == "clients":
            command.add_argument("--count", type=int, required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1000])
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--port", type=int, default=50998)
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.port))
    elif args.command == "clients":
        asyncio.run(clients(args.port, args.count))
    else:
        print(f"{'clients':>7} {'wall s':>7} {'server CPU s':>13} {'clients CPU s':>14}")
        for count in args.clients:
            wall, server_cpu, clients_cpu = measure(count, args.processes, args.port)
            print(f"{count:>7} {wall:>7.2f} {server_cpu:>13.2f} {clients_cpu:>14.2f}")
        print(f"1 MB down and 1 MB up per client, bare grpc.aio; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
