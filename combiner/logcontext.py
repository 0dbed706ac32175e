"""Session, round and client ids on every log record of a combiner RPC (scaleout/logs.py).

An interceptor reads them from the request message before the servicer runs: a round's records (and
those of the tasks it creates, which inherit the context) carry its session and round ids, a
client's calls carry its client id, and an update its round too. Upload names its client in metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from scaleout.combiner.interceptors import wrap
from scaleout.logs import set_log_ids

_FIELDS = ("session_id", "round_id", "client_id")
SERVICE_PREFIX = "/scaleout."


def _ids_of(request: Message) -> dict[str, str]:
    """The ids a request message names (StartRound's RoundConfig its session and round); set_log_ids
    skips the empty ones."""
    return {name: getattr(request, name) for name in _id_fields(request.DESCRIPTOR)}


@cache
def _id_fields(descriptor: Descriptor) -> tuple[str, ...]:
    """The id fields a message type has: asking the type once is much cheaper than asking each request
    (a getattr of a field a message lacks raises, which cost ~1.5 us per field and call)."""
    fields = descriptor.fields_by_name
    return tuple(
        name for name in _FIELDS if name in fields and fields[name].type == FieldDescriptor.TYPE_STRING
    )


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
