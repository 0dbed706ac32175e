"""The log-context interceptor on a real grpc.aio server: the ids each kind of request names are on the
records its servicer logs."""

import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from scaleout.combiner.logcontext import LogContextInterceptor
from scaleout.logs import JsonFormatter
from scaleout.proto import scaleout_pb2 as pb

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

IDS = ("session_id", "round_id", "client_id")


def logged_ids() -> bytes:
    """The ids on a record logged now, as the JSON formatter writes them."""
    record = logging.LogRecord("combiner", logging.INFO, __file__, 1, "call", None, None)
    entry = json.loads(JsonFormatter().format(record))
    return json.dumps({name: entry[name] for name in IDS if name in entry}).encode()


async def unary(request: object, context: grpc.aio.ServicerContext) -> bytes:
    return logged_ids()


async def unary_stream(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield logged_ids()


async def upload(requests: AsyncIterator[pb.FileChunk], context: grpc.aio.ServicerContext) -> bytes:
    async for _ in requests:
        pass
    return logged_ids()


def handlers(service: str, methods: dict[str, grpc.RpcMethodHandler]) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(f"scaleout.{service}", methods)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[LogContextInterceptor()])
    server.add_generic_rpc_handlers(
        (
            handlers(
                "CombinerClient",
                {
                    "SendModelUpdate": grpc.unary_unary_rpc_method_handler(unary, pb.ModelUpdate.FromString),
                    "SendHeartbeat": grpc.unary_unary_rpc_method_handler(unary, pb.Heartbeat.FromString),
                },
            ),
            handlers(
                "Control",
                {"StartRound": grpc.unary_stream_rpc_method_handler(unary_stream, pb.RoundConfig.FromString)},
            ),
            handlers(
                "ModelService",
                {"Upload": grpc.stream_unary_rpc_method_handler(upload, pb.FileChunk.FromString)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


async def test_an_update_names_its_session_round_and_client(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/scaleout.CombinerClient/SendModelUpdate", pb.ModelUpdate.SerializeToString)
    update = pb.ModelUpdate(session_id="s1", round_id="r1", client_id="c1")
    assert json.loads(await call(update)) == {"session_id": "s1", "round_id": "r1", "client_id": "c1"}


async def test_a_heartbeat_names_its_client_only(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/scaleout.CombinerClient/SendHeartbeat", pb.Heartbeat.SerializeToString)
    assert json.loads(await call(pb.Heartbeat(client_id="c1"))) == {"client_id": "c1"}


async def test_a_round_names_its_session_and_round(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream("/scaleout.Control/StartRound", pb.RoundConfig.SerializeToString)
    (answer,) = [message async for message in call(pb.RoundConfig(session_id="s1", round_id="r1"))]
    assert json.loads(answer) == {"session_id": "s1", "round_id": "r1"}


async def test_an_upload_names_the_client_of_its_metadata(channel: grpc.aio.Channel) -> None:
    call = channel.stream_unary("/scaleout.ModelService/Upload", pb.FileChunk.SerializeToString)

    async def chunks() -> AsyncIterator[pb.FileChunk]:
        yield pb.FileChunk(data=b"x")

    assert json.loads(await call(chunks(), metadata=(("client-id", "c1"),))) == {"client_id": "c1"}
    assert json.loads(await call(chunks())) == {}
