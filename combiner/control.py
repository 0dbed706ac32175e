"""Control: the RPCs the controller calls to run rounds, async sessions and validations, and to ask who is
connected."""

from collections.abc import AsyncIterator

import grpc

from scaleout.combiner.asyncrun import AsyncRunError
from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.rounds import RoundHandler
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc


class ControlServicer(rpc.ControlServicer):
    def __init__(self, name: str, registry: ClientRegistry, rounds: RoundHandler) -> None:
        self._name = name
        self._registry = registry
        self._rounds = rounds

    async def StartRound(
        self, request: pb.RoundConfig, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RoundEvent]:
        if error := self._rounds.round_config_error(request):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        async for event in self._rounds.start_round(request):
            yield event

    async def RunAsync(
        self, request_iterator: AsyncIterator[pb.AsyncCommand], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AsyncEvent]:
        """Asynchronous (FedBuff) training until the controller ends its stream (combiner/fedbuff.py)."""
        try:
            async for event in self._rounds.fedbuff.run(request_iterator):
                yield event
        except AsyncRunError as error:
            await context.abort(error.code, str(error))

    async def StartValidation(
        self, request: pb.ValidationConfig, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RoundEvent]:
        if error := self._rounds.validation_config_error(request):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        async for event in self._rounds.start_validation(request):
            yield event

    async def Info(
        self, request: pb.CombinerInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.CombinerInfo:
        """Who is online; also the combiner's health check (`scaleout combiner health`)."""
        clients = [
            pb.ConnectedClient(client_id=state.client_id, name=state.name, last_seen=state.last_seen)
            for state in self._registry.online()
        ]
        return pb.CombinerInfo(name=self._name, clients=clients)
