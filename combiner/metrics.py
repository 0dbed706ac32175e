"""The combiner's Prometheus metrics, read where the RPCs pass: no servicer or round code changes.

An interceptor observes the RPCs after the auth check (refused calls are not counted): rounds and their
duration from Control.StartRound's result, updates accepted or rejected (by a bounded reason) from
SendModelUpdate's answer, model bytes from Upload and Download chunks. Connected clients and queued
tasks are read from the client registry when Prometheus scrapes. Served over HTTP on
``--metrics-port`` (off by default), apart from the gRPC port, as Prometheus scrapes plain HTTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import Any

import grpc
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scaleout.combiner.admission import TransferAdmission
from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.interceptors import wrap
from scaleout.combiner.spool import UpdateSpool
from scaleout.combiner.updates import ACCEPTED
from scaleout.proto import chunks as wire
from scaleout.proto import scaleout_pb2 as pb
from scaleout.rejections import rejection_kind

ROUNDS = Counter("scaleout_combiner_rounds", "Training rounds run by this combiner, by result.", ["result"])
ROUND_SECONDS = Histogram(
    "scaleout_combiner_round_seconds",
    "Duration of training rounds, from StartRound to its result.",
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
UPDATES_ACCEPTED = Counter("scaleout_combiner_updates_accepted", "Model updates folded into a round.")
UPDATES_REJECTED = Counter(  # reason: the label of the rejection's kind (scaleout.rejections)
    "scaleout_combiner_updates_rejected", "Model updates rejected, by reason.", ["reason"]
)
RECEIVED_BYTES = Counter("scaleout_combiner_received_bytes", "Model update bytes received (Upload).")
SENT_BYTES = Counter("scaleout_combiner_sent_bytes", "Model bytes sent to clients (Download).")

SERVICE_PREFIX = "/scaleout."
log = logging.getLogger(__name__)


def data_size(chunk: pb.FileChunk | bytes | memoryview) -> int:
    """len(chunk.data) without reading it (upb copies the bytes on every read): from the message's
    serialized size, which is one tag byte, the varint length and the data."""
    if isinstance(chunk, bytes | memoryview):  # ModelService's chunks on the wire (proto/chunks.py)
        return wire.data_size(chunk)
    size = chunk.ByteSize()
    for varint in range(1, 6):
        length = size - 1 - varint
        if length >= 0 and (max(length.bit_length(), 1) + 6) // 7 == varint:
            return length
    return 0  # an empty chunk serializes to nothing


class RegistryCollector(Collector):
    """Connected clients and queued tasks, read from the registry at each scrape."""

    def __init__(self, registry: ClientRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = self._registry.online()
        yield GaugeMetricFamily(
            "scaleout_combiner_clients_connected",
            "Clients with an open task stream.",
            value=sum(1 for state in states if state.queue is not None),
        )
        yield GaugeMetricFamily(
            "scaleout_combiner_task_queue_depth",
            "Tasks published to clients' task streams and not yet sent.",
            value=sum(state.queue.qsize() for state in states if state.queue is not None),
        )


class TransferCollector(Collector):
    """Backpressure on model transfers: slots in use, transfers waiting for one, uploads waiting for room
    in the spool's memory budget, and what the spool holds in memory; read at each scrape."""

    def __init__(self, admission: TransferAdmission, spool: UpdateSpool) -> None:
        self._admission = admission
        self._spool = spool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = (
            (
                "transfers_active",
                "Model downloads and uploads moving bytes (at most --max-transfers).",
                self._admission.active,
            ),
            ("transfers_waiting", "Model transfers waiting for a transfer slot.", self._admission.waiting),
            (
                "uploads_waiting_for_memory",
                "Uploads waiting for room in the spool's memory budget.",
                self._spool.waiting_for_room,
            ),
            ("spool_held_bytes", "Bytes of updates the spool holds in memory.", self._spool.held_bytes),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(f"scaleout_combiner_{name}", documentation, value=value)


class MetricsServer:
    """The HTTP metrics endpoint of one combiner and its collectors; stop() undoes both."""

    def __init__(self, collectors: Sequence[Collector], host: str, port: int) -> None:
        try:
            self._server, self._thread = start_http_server(port, host)
        except OSError as error:
            raise OSError(
                f"combiner metrics cannot listen on {host}:{port}: {error}; is the port in use? "
                "(--metrics-port)"
            ) from error
        self._collectors = collectors
        for collector in collectors:
            REGISTRY.register(collector)
        self.port: int = self._server.server_port
        log.info("Prometheus metrics on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        for collector in self._collectors:
            REGISTRY.unregister(collector)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts what passes through the combiner's own services (health and unknown methods aside)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        observe = _OBSERVED.get(details.method)
        if handler is None or observe is None:
            return handler
        return observe(handler)


async def _timed_round(events: AsyncIterator[Any], _context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    started = time.monotonic()
    async for event in events:
        if event.WhichOneof("event") == "result":
            ROUNDS.labels("ok" if event.result.ok else "failed").inc()
            ROUND_SECONDS.observe(time.monotonic() - started)
        yield event


def _update_answered(response: pb.Response) -> None:
    if response.response == ACCEPTED:
        UPDATES_ACCEPTED.inc()
    else:
        kind = rejection_kind(response.response.removeprefix("rejected: "))
        UPDATES_REJECTED.labels(kind.label).inc()


async def _counted(chunks: AsyncIterator[pb.FileChunk]) -> AsyncIterator[pb.FileChunk]:
    async for chunk in chunks:
        RECEIVED_BYTES.inc(data_size(chunk))
        held = [chunk]
        del chunk  # so that this frame holds no chunk the servicer has dropped (modelservice._data)
        yield held.pop()


def _chunk_sent(chunk: pb.FileChunk) -> None:
    SENT_BYTES.inc(data_size(chunk))


_OBSERVED: dict[str, Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]] = {
    f"{SERVICE_PREFIX}Control/StartRound": partial(wrap, responses=_timed_round),
    f"{SERVICE_PREFIX}CombinerClient/SendModelUpdate": partial(wrap, response=_update_answered),
    f"{SERVICE_PREFIX}ModelService/Upload": partial(wrap, requests=_counted),
    f"{SERVICE_PREFIX}ModelService/Download": partial(wrap, response=_chunk_sent),
}
