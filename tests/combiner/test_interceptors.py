"""The interceptors' one handler wrapper, on a real grpc.aio server: each of the four kinds of RPC keeps
its kind and runs the hooks in order; a hook that aborts refuses the call before the behaviour runs."""

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import pytest

from scaleout.combiner.interceptors import wrap

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SERVICE = "test.Echo"


async def unary_unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request + b"!"


async def unary_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for part in (b"1", b"2"):
        yield request + part


async def stream_unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    return b"+".join([request async for request in requests])


async def stream_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request + b"!"


HANDLERS = {
    "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary),
    "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream),
    "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
    "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
}


class Recorder:
    """Hooks that record what they saw, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def before(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.seen.append(("before", request))

    async def requests(self, requests: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for request in requests:
            self.seen.append(("request", request))
            yield request.upper()

    def response(self, message: bytes) -> None:
        self.seen.append(("response", message))

    async def responses(
        self, messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for message in messages:
            yield message + b"?"
        self.seen.append(("end", None))


async def serve(hooks: dict[str, Any]) -> tuple[grpc.aio.Server, grpc.aio.Channel]:
    wrapped = {name: wrap(handler, **hooks) for name, handler in HANDLERS.items()}
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, wrapped),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


async def two() -> AsyncIterator[bytes]:
    for request in (b"a", b"b"):
        yield request


async def silent() -> AsyncIterator[bytes]:
    """A request stream that sends nothing until the call ends: a refused call then answers its status,
    where requests written while the server aborts can surface as INTERNAL at the client (a grpc race)."""
    await asyncio.Event().wait()
    yield b""


async def call(channel: grpc.aio.Channel, name: str, requests: Any = two) -> Any:
    """The answer of one RPC: a unary request is b"x", a streamed one ``requests()`` (b"a" then b"b")."""

    method = f"/{SERVICE}/{name}"
    if name == "UnaryUnary":
        return await channel.unary_unary(method)(b"x")
    if name == "UnaryStream":
        return [message async for message in channel.unary_stream(method)(b"x")]
    if name == "StreamUnary":
        return await channel.stream_unary(method)(requests())
    return [message async for message in channel.stream_stream(method)(requests())]


async def test_every_kind_of_rpc_runs_its_behaviour_between_the_hooks() -> None:
    recorder = Recorder()
    hooks = {
        "before": recorder.before,
        "requests": recorder.requests,
        "response": recorder.response,
        "responses": recorder.responses,
    }
    server, channel = await serve(hooks)
    answers, seen = {}, {}
    try:
        for name in HANDLERS:
            recorder.seen.clear()
            answers[name] = await call(channel, name)
            seen[name] = list(recorder.seen)
    finally:
        await channel.close()
        await server.stop(None)
    # requests and responses transform only a streamed side; response sees each message sent.
    assert answers == {
        "UnaryUnary": b"x!",
        "UnaryStream": [b"x1?", b"x2?"],
        "StreamUnary": b"A+B",
        "StreamStream": [b"A!?", b"B!?"],
    }
    assert seen == {
        "UnaryUnary": [("before", b"x"), ("response", b"x!")],
        "UnaryStream": [("before", b"x"), ("response", b"x1?"), ("response", b"x2?"), ("end", None)],
        "StreamUnary": [("before", None), ("request", b"a"), ("request", b"b"), ("response", b"A+B")],
        "StreamStream": [
            ("before", None),
            ("request", b"a"),
            ("response", b"A!?"),
            ("request", b"b"),
            ("response", b"B!?"),
            ("end", None),
        ],
    }


@pytest.mark.parametrize("name", list(HANDLERS))
async def test_a_before_hook_that_aborts_refuses_the_call_before_its_behaviour_runs(name: str) -> None:
    seen: list[str] = []

    def refuse(request: Any, context: grpc.aio.ServicerContext) -> Awaitable[None]:
        return context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")

    server, channel = await serve({"before": refuse, "response": seen.append})
    try:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(channel, name, silent)
    finally:
        await channel.close()
        await server.stop(None)
    assert (error.value.code(), error.value.details()) == (grpc.StatusCode.PERMISSION_DENIED, "not you")
    assert seen == []
