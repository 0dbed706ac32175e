"""A combiner started with a token refuses every RPC without `authorization: Bearer <token>`.

A real combiner on loopback with the interceptor installed; calls go through plain grpc.aio channels,
with the token attached the way the client and the controller attach it (scaleout.proto.auth).
"""

import grpc
import pytest

from scaleout.combiner.auth import TOKEN_HELP
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.auth import token_interceptors
from tests.combiner.driver import WAIT, address, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOKEN = "federation-secret"


def channel(combiner, token: str | None) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address(combiner), interceptors=token_interceptors(token))


async def test_info_without_a_token_is_unauthenticated_and_names_the_fix(tmp_path):
    async with running_combiner(tmp_path, token=TOKEN) as combiner, channel(combiner, None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == TOKEN_HELP
    assert "--token / SCALEOUT_API_TOKEN" in TOKEN_HELP


async def test_info_with_a_wrong_token_is_unauthenticated(tmp_path):
    async with running_combiner(tmp_path, token=TOKEN) as combiner, channel(combiner, "guess") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == TOKEN_HELP


async def test_info_with_the_token_answers(tmp_path):
    async with running_combiner(tmp_path, token=TOKEN) as combiner, channel(combiner, TOKEN) as ch:
        info = await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert info.name == "combiner-test"


async def test_a_task_stream_without_the_token_is_refused_and_the_client_never_registers(tmp_path):
    async with running_combiner(tmp_path, token=TOKEN) as combiner, channel(combiner, None) as ch:
        call = rpc.CombinerClientStub(ch).TaskStream(pb.ClientAvailableMessage(client_id="intruder"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == TOKEN_HELP
        assert "intruder" not in combiner.registry.streaming()


async def test_an_upload_without_the_token_is_refused(tmp_path):
    async def chunks():
        yield pb.FileChunk(data=b"x" * 1024)

    async with running_combiner(tmp_path, token=TOKEN) as combiner, channel(combiner, "guess") as ch:
        metadata = (("model-id", "m1"), ("client-id", "intruder"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc.ModelServiceStub(ch).Upload(chunks(), metadata=metadata, timeout=WAIT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_task_stream_with_the_token_registers_the_client(tmp_path):
    async with running_combiner(tmp_path, token=TOKEN) as combiner, channel(combiner, TOKEN) as ch:
        registry = combiner.registry
        call = rpc.CombinerClientStub(ch).TaskStream(pb.ClientAvailableMessage(client_id="member"))
        try:
            await registry.wait_for(lambda: "member" in registry.streaming(), WAIT)
        finally:
            call.cancel()


async def test_a_combiner_without_a_token_takes_calls_without_one(tmp_path):
    async with running_combiner(tmp_path) as combiner, channel(combiner, None) as ch:
        info = await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert info.name == "combiner-test"
