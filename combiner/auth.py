"""Optional shared-token auth for the combiner's gRPC services (CombinerClient, ModelService, Control).

The token is the API's (``SCALEOUT_API_TOKEN``), so one setting secures the whole federation. It is
checked in a server interceptor, before any servicer runs: a refused TaskStream never registers a
client, a refused Upload never spools a byte.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from scaleout.proto.auth import AUTHORIZATION, bearer_value

TOKEN_HELP = (
    "missing or wrong token: start the client with --token / SCALEOUT_API_TOKEN equal to the combiner's"
)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse every RPC whose metadata lacks ``authorization: Bearer <token>`` with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._expected = bearer_value(token).encode()
        self._refuse = _refusals()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        given = next((v for k, v in details.invocation_metadata or () if k == AUTHORIZATION), "")
        given_bytes = given.encode() if isinstance(given, str) else given
        # An unknown method (handler None) is left to gRPC's UNIMPLEMENTED: it reveals nothing.
        if handler is None or hmac.compare_digest(given_bytes, self._expected):
            return handler
        return self._refuse[(handler.request_streaming, handler.response_streaming)](handler)


async def _abort(context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, TOKEN_HELP)


def _refusals() -> dict[tuple[bool, bool], Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]]:
    """A handler of the same kind (unary/stream in and out) as the one refused, that only aborts."""

    async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _abort(context)

    async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _abort(context)
        yield  # pragma: no cover - makes this an async generator, as a streaming handler must be

    async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await _abort(context)

    async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await _abort(context)
        yield  # pragma: no cover

    def kind(
        make: Callable[..., grpc.RpcMethodHandler], behaviour: Callable[..., Any]
    ) -> Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]:
        return lambda h: make(
            behaviour,
            request_deserializer=h.request_deserializer,
            response_serializer=h.response_serializer,
        )

    return {
        (False, False): kind(grpc.unary_unary_rpc_method_handler, unary_unary),
        (False, True): kind(grpc.unary_stream_rpc_method_handler, unary_stream),
        (True, False): kind(grpc.stream_unary_rpc_method_handler, stream_unary),
        (True, True): kind(grpc.stream_stream_rpc_method_handler, stream_stream),
    }
