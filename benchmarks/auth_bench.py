"""What roles cost a combiner per call: sequential heartbeats on loopback, open vs with a client credential.

With a credential each call is checked by the interceptor (a cached token lookup, the access table, the
client's token bucket, its client id). Run: ``.venv/bin/python benchmarks/auth_bench.py [--calls N]``.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

# Run as a script, so the repository root (for tests.combiner) is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleout.credentials import issue_client_credential
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.auth import token_interceptors
from tests.combiner.driver import address, running_combiner

WARMUP = 200


async def seconds_per_call(root: Path, calls: int, **settings: Any) -> float:
    async with running_combiner(root, **settings) as combiner:
        token = None
        if settings:
            credential, token = issue_client_credential("bench", "bench")
            combiner.statestore.credentials.add(credential)
        async with grpc.aio.insecure_channel(address(combiner), interceptors=token_interceptors(token)) as ch:
            stub, beat = rpc.CombinerClientStub(ch), pb.Heartbeat(client_id="bench")
            for _ in range(WARMUP):
                await stub.SendHeartbeat(beat)
            started = time.perf_counter()
            for _ in range(calls):
                await stub.SendHeartbeat(beat)
            return (time.perf_counter() - started) / calls


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        open_mode = await seconds_per_call(root / "open", calls)
        # A rate limit no heartbeat loop reaches, so the bucket is paid for but never refuses.
        secured = await seconds_per_call(root / "auth", calls, token="admin", client_rate_limit=1e9)
    print(f"open combiner:            {open_mode * 1e6:7.0f} us per heartbeat")
    print(
        f"with a client credential: {secured * 1e6:7.0f} us per heartbeat "
        f"({(secured - open_mode) * 1e6:+.0f} us)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    asyncio.run(main(parser.parse_args().calls))
