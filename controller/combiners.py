"""Talking to combiners over Control: which are online with clients, and one streamed call each.

The controller reaches combiners only through gRPC; their addresses come from the Combiner records
they keep fresh in the statestore.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import grpc

from scaleout.controller.settings import ControllerSettings
from scaleout.errors import RoundFailed
from scaleout.proto import scaleout_pb2, scaleout_pb2_grpc
from scaleout.proto.channels import certificate_refusal, open_channel
from scaleout.store.entities import Combiner, NodeStatus, utcnow
from scaleout.store.statestore import Statestore
from scaleout.tls import ClientTLS

log = logging.getLogger(__name__)

NO_COMBINER = "no combiner with connected clients"
ProgressHandler = Callable[[str, scaleout_pb2.RoundProgress], None]
# A combiner bound to every interface registers a wildcard address; reach it on loopback.
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def combiner_target(combiner: Combiner) -> str:
    """host:port of a combiner record."""
    host = "127.0.0.1" if combiner.address in _WILDCARDS else combiner.address
    return f"{host}:{combiner.port}"


class CombinerChannels:
    """One grpc.aio channel per combiner address, reused across rounds (HTTP/2 reconnects by itself)."""

    def __init__(self, max_message_size: int, token: str | None = None, tls: ClientTLS | None = None) -> None:
        self._token = token
        self._tls = tls or ClientTLS()
        self._options = [
            ("grpc.max_send_message_length", max_message_size),
            ("grpc.max_receive_message_length", max_message_size),
        ]
        self._channels: dict[tuple[str, bool], grpc.aio.Channel] = {}

    def stub(self, combiner: Combiner) -> scaleout_pb2_grpc.ControlStub:
        """A Control stub for the combiner; must be called on the controller's event loop."""
        # Keyed by TLS too: a combiner restarted with TLS at the same address needs a new channel.
        key = (combiner_target(combiner), combiner.tls)
        channel = self._channels.get(key)
        if channel is None:
            channel = open_channel(key[0], self._tls if combiner.tls else None, self._token, self._options)
            self._channels[key] = channel
        return scaleout_pb2_grpc.ControlStub(channel)

    def refusal(self, combiner: Combiner, error: grpc.RpcError) -> str | None:
        """Why the combiner's certificate was refused, naming the CA file and the fix; None otherwise."""
        return certificate_refusal(error, combiner_target(combiner), self._tls if combiner.tls else None)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


@dataclass(frozen=True)
class Participant:
    """A combiner taking part in a round and how many clients it had connected when asked."""

    combiner: Combiner
    client_count: int
    stub: scaleout_pb2_grpc.ControlStub

    @property
    def id(self) -> str:
        return self.combiner.id


@dataclass(frozen=True)
class CombinerOutcome:
    """What one combiner's StartRound or StartValidation call ended with."""

    combiner_id: str
    result: scaleout_pb2.RoundResult | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


async def choose_combiners(
    statestore: Statestore, channels: CombinerChannels, settings: ControllerSettings
) -> list[Participant]:
    """Combiners seen within the online window that answer Info with at least one client.

    Raises RoundFailed naming each combiner's reason when none qualifies.
    """
    window = settings.combiner_online_window
    since = utcnow() - timedelta(seconds=window)
    records = await asyncio.to_thread(
        statestore.combiners.seen_since, since, {"status": NodeStatus.ONLINE.value}
    )
    if not records:
        raise RoundFailed(
            f"{NO_COMBINER}: no combiner was seen online in the last {window:g} s; "
            "start one with `scaleout combiner start`"
        )
    answers = await asyncio.gather(*(_client_count(channels, c, settings.info_deadline) for c in records))
    chosen: list[Participant] = []
    reasons: list[str] = []
    for combiner, (count, reason) in zip(records, answers, strict=True):
        if count > 0:
            chosen.append(Participant(combiner, count, channels.stub(combiner)))
        else:
            reasons.append(f"{combiner.id}: {reason}")
    if not chosen:
        raise RoundFailed(f"{NO_COMBINER} ({'; '.join(reasons)}); start clients with `scaleout client start`")
    return sorted(chosen, key=lambda p: p.id)


async def _client_count(channels: CombinerChannels, combiner: Combiner, deadline: float) -> tuple[int, str]:
    """The combiner's connected clients per Info, or 0 and why."""
    try:
        info = await channels.stub(combiner).Info(scaleout_pb2.CombinerInfoRequest(), timeout=deadline)
    except grpc.aio.AioRpcError as err:
        log.warning("combiner %s at %s: Info failed: %s", combiner.id, combiner_target(combiner), err.code())
        return 0, channels.refusal(combiner, err) or _rpc_error(combiner.id, err, deadline, "Info")
    if not info.clients:
        return 0, "0 connected clients"
    return len(info.clients), ""


async def stream_round(
    participant: Participant,
    request: scaleout_pb2.RoundConfig | scaleout_pb2.ValidationConfig,
    deadline: float,
    on_progress: ProgressHandler,
) -> CombinerOutcome:
    """Run StartRound (or StartValidation, by request type) on one combiner, feeding progress
    events to on_progress, bounded by deadline; a gRPC error is this combiner's failure."""
    started = time.monotonic()
    cid = participant.id
    is_round = isinstance(request, scaleout_pb2.RoundConfig)
    method = participant.stub.StartRound if is_round else participant.stub.StartValidation
    name = "StartRound" if is_round else "StartValidation"
    result: scaleout_pb2.RoundResult | None = None
    call = method(request, timeout=deadline)
    try:
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "progress":
                on_progress(cid, event.progress)
            elif kind == "result":
                result = event.result
    except grpc.aio.AioRpcError as err:
        return CombinerOutcome(cid, None, _rpc_error(cid, err, deadline, name), time.monotonic() - started)
    finally:
        # A stop cancels the task reading the stream, not the call: cancel the call so the
        # combiner hears of it and ends its round instead of training for nobody.
        call.cancel()
    seconds = time.monotonic() - started
    if result is None:
        return CombinerOutcome(cid, None, f"combiner {cid}: {name} ended without a result", seconds)
    if is_round and result.ok and not result.model_id:
        return CombinerOutcome(cid, result, f"combiner {cid}: {name} reported ok without a model_id", seconds)
    if not result.ok:
        return CombinerOutcome(
            cid, result, f"combiner {cid}: {result.error or 'failed, no reason given'}", seconds
        )
    return CombinerOutcome(cid, result, None, seconds)


def _rpc_error(combiner_id: str, err: grpc.aio.AioRpcError, deadline: float, method: str) -> str:
    if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"combiner {combiner_id}: no answer to {method} within {deadline:g} s; "
            "check that the combiner is running and reachable"
        )
    return f"combiner {combiner_id}: {method} failed: {err.code().name}: {err.details()}"
