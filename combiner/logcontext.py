"""Session, round and client ids on every log record of a combiner RPC (scaleout/logs.py).

An interceptor reads them from the request message before the servicer runs: a round's records (and
those of the tasks it creates, which inherit the context) carry its session and round ids, a
client's calls carry its client id, and an update its round too. Upload names its client in metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from scaleout.logs import set_log_ids

_FIELDS = ("session_id", "round_id", "client_id")
SERVICE_PREFIX = "/scaleout."


def _ids_of(request: Any) -> dict[str, str]:
    """The ids a request message names: its own fields, or its config's (RoundConfig in StartRound)."""
    ids = {}
    for message in (request, getattr(request, "config", None)):
        for name in _FIELDS:
            value = getattr(message, name, "") if message is not None else ""
            if isinstance(value, str) and value:
                ids.setdefault(name, value)
    return ids


def _client_id_metadata(details: grpc.HandlerCallDetails) -> str:
    for item in details.invocation_metadata or ():
        if item.key == "client-id":
            return item.value if isinstance(item.value, str) else item.value.decode()
    return ""


class LogContextInterceptor(grpc.aio.ServerInterceptor):
    """Sets the log ids of each call from its request (or, for streamed requests, its metadata)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        # Our services only: their stream handlers are async generators (health's Watch is not).
        if handler is None or not details.method.startswith(SERVICE_PREFIX):
            return handler
        if handler.request_streaming:
            client_id = _client_id_metadata(details)
            return _with_ids(handler, lambda _request: {"client_id": client_id})
        return _with_ids(handler, _ids_of)


def _with_ids(handler: grpc.RpcMethodHandler, ids: Callable[[Any], dict[str, str]]) -> grpc.RpcMethodHandler:
    """The handler, setting the ids first in the call's own context (gRPC runs each call in a task)."""
    if handler.request_streaming and not handler.response_streaming:
        inner_stream_unary = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            set_log_ids(**ids(None))
            return await inner_stream_unary(requests, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer
        )
    if handler.response_streaming and not handler.request_streaming:
        inner_unary_stream = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            set_log_ids(**ids(request))
            async for response in inner_unary_stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer
        )
    if not handler.request_streaming:
        inner_unary_unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            set_log_ids(**ids(request))
            return await inner_unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    return handler  # no bidirectional RPC is served
