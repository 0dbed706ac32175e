"""What the combiner's three interceptors (auth, metrics, log context) cost per call, without the network.

Each call runs their intercept_service, as grpc.aio does per call, and the wrapped behaviour, for a client
credential: a heartbeat (unary), a Download and an Upload of 100 chunks (streamed). CPU time, best of
several runs, so that other work on the machine weighs less than in a loopback benchmark (auth_bench.py).
Run: ``.venv/bin/python benchmarks/interceptor_bench.py [--repeats N]``.
"""

import argparse
import asyncio
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from scaleout.combiner.auth import AuthInterceptor
from scaleout.combiner.logcontext import LogContextInterceptor
from scaleout.combiner.metrics import MetricsInterceptor
from scaleout.combiner.ratelimit import RateLimiter
from scaleout.credentials import Authenticator, issue_client_credential
from scaleout.proto import scaleout_pb2 as pb
from scaleout.store import open_statestore

CHUNK = pb.FileChunk(data=b"x" * 1024)
CHUNKS = 100
# grpc.aio's metadata items: pairs with .key and .value.
Metadatum = namedtuple("Metadatum", ["key", "value"])
Continuation = Callable[[Any], Awaitable[grpc.RpcMethodHandler | None]]


class Details:
    def __init__(self, method: str, metadata: tuple[Metadatum, ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


async def heartbeat(request: Any, context: Any) -> pb.Response:
    return pb.Response(response="ok")


async def download(request: Any, context: Any) -> AsyncIterator[pb.FileChunk]:
    for _ in range(CHUNKS):
        yield CHUNK


async def upload(requests: AsyncIterator[pb.FileChunk], context: Any) -> pb.ModelResponse:
    async for _ in requests:
        pass
    return pb.ModelResponse()


async def chunks() -> AsyncIterator[pb.FileChunk]:
    for _ in range(CHUNKS):
        yield CHUNK


HANDLERS = {
    "/scaleout.CombinerClient/SendHeartbeat": grpc.unary_unary_rpc_method_handler(heartbeat),
    "/scaleout.ModelService/Download": grpc.unary_stream_rpc_method_handler(download),
    "/scaleout.ModelService/Upload": grpc.stream_unary_rpc_method_handler(upload),
}


def chain(interceptors: list[grpc.aio.ServerInterceptor]) -> Continuation:
    """What grpc.aio runs per call: each interceptor around the next, the servicer's handler last."""

    async def servicer(details: Any) -> grpc.RpcMethodHandler | None:
        return HANDLERS[details.method]

    continuation: Continuation = servicer
    for interceptor in reversed(interceptors):

        async def intercepted(details: Any, interceptor=interceptor, inner=continuation) -> Any:
            return await interceptor.intercept_service(inner, details)

        continuation = intercepted
    return continuation


async def one_call(intercept: Continuation, method: str, metadata: tuple[Metadatum, ...]) -> None:
    handler = await intercept(Details(method, metadata))
    if method.endswith("SendHeartbeat"):
        await handler.unary_unary(pb.Heartbeat(client_id="bench"), None)
    elif method.endswith("Download"):
        async for _ in handler.unary_stream(pb.ModelRequest(), None):
            pass
    else:
        await handler.stream_unary(chunks(), None)


async def main(repeats: int) -> None:
    statestore = open_statestore("sqlite:///:memory:")
    credential, token = issue_client_credential("bench", "bench")
    statestore.credentials.add(credential)
    # Cached for the whole run, and a rate limit no loop reaches: the bucket is paid for, never refuses.
    auth = Authenticator(statestore, None, None, cache_seconds=1e9)
    interceptors = [
        AuthInterceptor(auth, RateLimiter(1e9, 10**9)),
        MetricsInterceptor(),
        LogContextInterceptor(),
    ]
    intercept = chain(interceptors)
    metadata = (Metadatum("authorization", f"Bearer {token}"), Metadatum("client-id", "bench"))
    for method, calls in (
        ("CombinerClient/SendHeartbeat", 5000),
        ("ModelService/Download", 500),
        ("ModelService/Upload", 500),
    ):
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            for _ in range(calls):
                await one_call(intercept, f"/scaleout.{method}", metadata)
            best = min(best, (time.process_time() - started) / calls)
        print(f"{method:30s} {best * 1e6:7.2f} us CPU per call")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    asyncio.run(main(parser.parse_args().repeats))
