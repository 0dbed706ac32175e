"""The shared token on gRPC calls: ``authorization: Bearer <token>`` metadata, as on the REST API.

The combiner checks it (``scaleout.combiner.auth``); the client and the controller attach it to every
call with ``token_interceptors`` on their channels, so no call site has to remember it.
"""

from __future__ import annotations

from typing import Any

import grpc

AUTHORIZATION = "authorization"  # gRPC metadata keys are lower case


def bearer_value(token: str) -> str:
    return f"Bearer {token}"


class _WithToken:
    def __init__(self, token: str) -> None:
        self._entry = (AUTHORIZATION, bearer_value(token))

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._entry)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# One class per kind of call: a grpc.aio channel files each interceptor under the first kind it is an
# instance of (an if/elif chain), so one class implementing all four would only see unary-unary calls.
class _UnaryUnary(_WithToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _UnaryStream(_WithToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _StreamUnary(_WithToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._with_token(details), request_iterator)


class _StreamStream(_WithToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._with_token(details), request_iterator)


def token_interceptors(token: str | None) -> list[grpc.aio.ClientInterceptor] | None:
    """The ``interceptors=`` of a grpc.aio channel: the token on every call, or none without a token."""
    if not token:
        return None
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
