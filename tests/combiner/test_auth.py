"""Roles on the combiner's gRPC services: every RPC with every role against scaleout.roles.RPC_RULES,
the controller alone runs rounds, a client acts only under its own id, rate limits, and revocation.

A real combiner on loopback with its interceptor; calls go through plain grpc.aio channels carrying
tokens the way the client and the controller attach them (scaleout.proto.auth).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from scaleout.combiner.auth import REVOKED, TOKEN_HELP
from scaleout.combiner.server import Combiner
from scaleout.credentials import controller_token, issue_client_credential
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.auth import token_interceptors
from scaleout.roles import RPC_RULES, Role
from scaleout.store.entities import Credential, utcnow
from tests.combiner.driver import WAIT, TestClient, address, controller, npz_bytes, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ADMIN = "federation-secret"
CONTROLLER = controller_token(ADMIN, None)
SEED = [np.zeros((2, 3), dtype=np.float32)]
REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
# Every method of every service the combiner serves (ours and grpc.health.v1), as gRPC names them.
SERVED = (pb, health_pb2)
METHODS = [
    (f"/{service.full_name}/{method.name}", method)
    for module in SERVED
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
MESSAGES = {
    message.full_name: getattr(module, name)
    for module in SERVED
    for name, message in module.DESCRIPTOR.message_types_by_name.items()
}


def issue(combiner: Combiner, client_id: str) -> tuple[str, Credential]:
    """A client credential for client_id, stored in the combiner's statestore as the API stores it."""
    credential, token = issue_client_credential(f"site-{client_id}", client_id)
    combiner.statestore.credentials.add(credential)
    return token, credential


def channel(combiner: Combiner, token: str | None) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address(combiner), interceptors=token_interceptors(token))


@asynccontextmanager
async def connected(combiner: Combiner, client_id: str, token: str) -> AsyncIterator[TestClient]:
    client = TestClient(address(combiner), client_id, token)
    try:
        await client.connect(combiner)
        yield client
    finally:
        await client.close()


async def call_code(ch: grpc.aio.Channel, path: str, method: Any, client_id: str) -> grpc.StatusCode:
    """Call one method with an empty request naming client_id; the status it ends with (OK if none).

    Streams that are let through stay open until the short deadline: DEADLINE_EXCEEDED means allowed.
    """
    request_type = MESSAGES[method.input_type.full_name]
    response_type = MESSAGES[method.output_type.full_name]
    request = request_type()
    if "client_id" in request_type.DESCRIPTOR.fields_by_name:
        request.client_id = client_id
    kinds = {
        (False, False): ch.unary_unary,
        (False, True): ch.unary_stream,
        (True, False): ch.stream_unary,
        (True, True): ch.stream_stream,
    }
    multicallable = kinds[(method.client_streaming, method.server_streaming)](
        path,
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    argument = iter(()) if method.client_streaming else request
    try:
        call = multicallable(argument, timeout=3.0, metadata=(("client-id", client_id),))
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_every_rpc_with_every_role_follows_the_access_table(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN) as combiner:
        client_token, _ = issue(combiner, "a")
        tokens = {None: None, Role.ADMIN: ADMIN, Role.CONTROLLER: CONTROLLER, Role.CLIENT: client_token}
        found: dict[tuple[str, str], str] = {}
        expected: dict[tuple[str, str], str] = {}
        for role, token in tokens.items():
            async with channel(combiner, token) as ch:
                codes = await asyncio.gather(*(call_code(ch, path, method, "a") for path, method in METHODS))
            for (path, _), code in zip(METHODS, codes, strict=True):
                rule = RPC_RULES.get(path)
                if rule is not None and rule.public:
                    want = "allowed"
                elif role is None:
                    want = "UNAUTHENTICATED"
                else:
                    want = "allowed" if rule is not None and role in rule.roles else "PERMISSION_DENIED"
                expected[str(role), path] = want
                found[str(role), path] = code.name if code in REFUSED else "allowed"
    assert found == expected
    assert set(RPC_RULES) <= {path for path, _ in METHODS}, "the table names RPCs the combiner does not serve"


async def test_a_call_without_a_token_is_unauthenticated_and_names_the_fix(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN) as combiner, channel(combiner, "guess") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == TOKEN_HELP
    assert "scaleout client token create" in TOKEN_HELP and "SCALEOUT_API_TOKEN" in TOKEN_HELP


async def test_a_forged_round_from_a_client_credential_is_refused_and_nothing_starts(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN) as combiner:
        token, _ = issue(combiner, "a")
        seed = put_seed(combiner, SEED)
        async with connected(combiner, "a", token) as client, channel(combiner, token) as ch:
            forged = pb.RoundConfig(
                session_id="x",
                round_id="evil",
                model_id=seed,
                round_timeout=60,
                min_clients=1,
                aggregator="fedavg",
                helper="numpyhelper",
            )
            control = rpc.ControlStub(ch)
            for call in (
                control.StartRound(forged, timeout=WAIT),
                control.StartValidation(pb.ValidationConfig(session_id="x", model_id=seed, timeout=60)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _ in call:
                        pass
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert refused.value.details().startswith(
                    "a client credential may not call /scaleout.Control/"
                )
                assert refused.value.details().endswith("; only controller may")
            assert combiner.rounds.current_round is None
            # The controller's round is the first task the client ever gets: no forged task was queued.
            async with controller(combiner, CONTROLLER) as ctl:
                round_task = ctl.start_round(model_id=seed)
                task = await client.next_task()
                assert (task.session_id, task.round_id) == ("s1", "r1")
                round_task.cancel()
        assert combiner.statestore.validations.count() == 0


def report_as(client_id: str) -> dict[str, Any]:
    """A call of each client service naming client_id."""
    return {
        "TaskStream": pb.ClientAvailableMessage(client_id=client_id),
        "SendHeartbeat": pb.Heartbeat(client_id=client_id),
        "SendStatus": pb.Status(client_id=client_id, status="{}"),
        "SendModelUpdate": pb.ModelUpdate(client_id=client_id, model_update_id="u1"),
        "SendModelValidation": pb.ModelValidation(client_id=client_id, correlation_id="c1"),
    }


@pytest.mark.parametrize("method", list(report_as("b")))
async def test_a_client_credential_cannot_act_as_another_client(tmp_path, method):
    async with running_combiner(tmp_path, token=ADMIN) as combiner:
        token, _ = issue(combiner, "a")
        async with channel(combiner, token) as ch:
            call = getattr(rpc.CombinerClientStub(ch), method)(report_as("b")[method], timeout=WAIT)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                if method == "TaskStream":
                    async for _ in call:
                        pass
                else:
                    await call
        assert "b" not in combiner.registry.streaming() and not combiner.registry.is_online("b")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        refused.value.details()
        == "this client credential belongs to client 'a'; it may not act as client 'b'"
    )


async def test_an_upload_under_another_client_id_is_refused_before_a_byte_is_spooled(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN) as combiner:
        token, _ = issue(combiner, "a")
        async with channel(combiner, token) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await rpc.ModelServiceStub(ch).Upload(
                    iter([pb.FileChunk(data=npz_bytes(SEED))]),
                    metadata=(("model-id", "f" * 32), ("client-id", "b")),
                    timeout=WAIT,
                )
        assert combiner.spool.claim("f" * 32, "a") is None
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        refused.value.details()
        == "this client credential belongs to client 'a'; it may not act as client 'b'"
    )


async def test_an_update_uploaded_by_one_client_cannot_be_claimed_by_another(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN) as combiner:
        (token_a, _), (token_b, _) = issue(combiner, "a"), issue(combiner, "b")
        async with (
            connected(combiner, "a", token_a) as a,
            connected(combiner, "b", token_b) as b,
            controller(combiner, CONTROLLER) as ctl,
        ):
            round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
            task_a, task_b = await a.next_task(), await b.next_task()
            update_of_a = await a.upload(npz_bytes(SEED))
            answer = await b.send_update(task_b, update_of_a, {"num_examples": 5})
            assert answer == (
                f"rejected: model_update_id {update_of_a!r} is unknown: no upload with that id from client b "
                "(Upload the update with call metadata model-id and client-id first)"
            )
            # Still a's: b naming it neither took it nor deleted it.
            assert await a.send_update(task_a, update_of_a, {"num_examples": 3}) == "accepted"
            result = await asyncio.wait_for(round_task, WAIT)
    assert [(c.client_id, c.num_examples) for c in result.clients] == [("a", 3)]


async def test_a_client_past_its_rate_limit_gets_resource_exhausted_and_admins_are_not_limited(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN, client_rate_limit=0.001, client_burst=3) as combiner:
        token, _ = issue(combiner, "a")
        async with channel(combiner, token) as ch, channel(combiner, ADMIN) as admin:
            beat = pb.Heartbeat(client_id="a")
            for _ in range(3):
                await rpc.CombinerClientStub(ch).SendHeartbeat(beat, timeout=WAIT)
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await rpc.CombinerClientStub(ch).SendHeartbeat(beat, timeout=WAIT)
            for _ in range(10):
                await rpc.CombinerClientStub(admin).SendHeartbeat(beat, timeout=WAIT)
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert limited.value.details() == (
        "client a exceeded the combiner's rate limit of 0.001 calls/s (burst 3); slow down, "
        "or raise --client-rate-limit on the combiner"
    )


async def test_a_revoked_client_is_disconnected_and_refused_from_then_on(tmp_path):
    async with running_combiner(tmp_path, token=ADMIN, credential_refresh=0.2) as combiner:
        token, credential = issue(combiner, "a")
        async with connected(combiner, "a", token) as client:
            assert await client.heartbeat() == "heartbeat received"
            combiner.statestore.credentials.update(credential.id, {"revoked_at": utcnow()})
            with pytest.raises(grpc.aio.AioRpcError) as dropped:
                await asyncio.wait_for(client.stream.read(), WAIT)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.heartbeat()
            await combiner.registry.wait_for(lambda: not combiner.registry.is_online("a"), WAIT)
    assert (dropped.value.code(), dropped.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, REVOKED)
    assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, REVOKED)


async def test_a_combiner_given_only_the_controller_token_takes_the_controller_and_not_the_admin(tmp_path):
    async with running_combiner(tmp_path, controller_token="controller-only") as combiner:
        async with channel(combiner, "controller-only") as ch:
            info = await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
        async with channel(combiner, ADMIN) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert info.name == "combiner-test"
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_combiner_without_tokens_takes_calls_without_one(tmp_path):
    async with running_combiner(tmp_path) as combiner, channel(combiner, None) as ch:
        info = await rpc.ControlStub(ch).Info(pb.CombinerInfoRequest(), timeout=WAIT)
    assert info.name == "combiner-test"
