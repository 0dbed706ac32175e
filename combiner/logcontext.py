"""Session, round and client ids on every log record of a combiner RPC (scaleout/logs.py).

An interceptor reads them from the request message before the servicer runs: a round's records (and
those of the tasks it creates, which inherit the context) carry its session and round ids, a
client's calls carry its client id, and an update its round too. Upload names its client in metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from scaleout.combiner.interceptors import wrap
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
            if not client_id:
                return handler  # no id to set

            def from_metadata(_requests: None, _context: grpc.aio.ServicerContext) -> None:
                set_log_ids(client_id=client_id)

            return wrap(handler, before=from_metadata)
        return wrap(handler, before=_from_request)


def _from_request(request: Any, _context: grpc.aio.ServicerContext) -> None:
    """Sets the ids in the call's own context (gRPC runs each call in a task), so they end with it."""
    set_log_ids(**_ids_of(request))
