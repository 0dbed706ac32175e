"""The official client's telemetry and metric RPCs: metrics stored, the rest acknowledged and dropped.

The official Scaleout Edge client queues what its compute package logs and retries every few seconds
what the combiner refuses, so these RPCs must answer. ``SendModelMetric`` (``edge_client.log_metric``)
becomes a Validation record of the client, so the metrics show in the dashboard next to the
validations; it is bounded in size and, per client, in rate (a token bucket: ``rate`` records per
second, bursts of ``burst``), and a metric over either bound is acknowledged but not stored, so the
client does not resend it. Telemetry, attributes, inference results and backlog reports are
acknowledged and dropped: nothing of them is kept but counters. A record stream is paced (its own
bucket: ``STREAM_RATE`` records per second, bursts of ``STREAM_BURST``) by acknowledging late, which
the client's cap on unacknowledged records (256) turns into backpressure.
"""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf.message import Message

from scaleout.proto import scaleout_pb2 as pb
from scaleout.store.entities import Validation
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 64 * 1024  # one telemetry record, attribute, inference result or metric message
MAX_METRICS = 100  # keys of one ModelMetric
MAX_ID_CHARS = 200  # model, round and session ids of a ModelMetric
MAX_KEY_CHARS = 100
MAX_TRACKED_CLIENTS = 100_000  # token buckets kept; beyond, they start afresh (memory stays bounded)
STREAM_RATE = 100.0  # records per second one telemetry, attribute or inference stream is acked at
STREAM_BURST = 256  # the official client's cap on unacknowledged records


@dataclass
class _Bucket:
    tokens: float
    at: float  # monotonic time tokens was computed

    def take(self, rate: float, burst: int) -> float:
        """Take one token; the seconds until it is there (0 when it was)."""
        now = time.monotonic()
        self.tokens = min(float(burst), self.tokens + (now - self.at) * rate) - 1.0
        self.at = now
        return 0.0 if self.tokens >= 0 else -self.tokens / rate


class MetricLimiter:
    """Per-client token buckets: ``rate`` metric records per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, client_id: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_CLIENTS:
                self._buckets.clear()
            bucket = self._buckets[client_id] = _Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True


class Telemetry:
    """What the combiner does with the official client's metric and telemetry messages."""

    def __init__(
        self,
        statestore: Statestore,
        rate: float = 1.0,
        burst: int = 50,
        stream_rate: float = STREAM_RATE,
        stream_burst: int = STREAM_BURST,
    ) -> None:
        self._statestore = statestore
        self._limiter = MetricLimiter(rate, burst)
        self._stream_rate = stream_rate
        self._stream_burst = stream_burst
        self.acknowledged = 0  # telemetry-like records acknowledged and dropped
        self.refused = 0  # messages over a bound, acknowledged but neither stored nor counted above
        self.paced = 0  # stream records acknowledged late, to hold a stream to its rate

    async def metric(self, metric: pb.ModelMetric) -> str:
        """Store the metrics as a Validation record of the client; or say why they were not."""
        if why := metric_error(metric):
            self.refused += 1
            log.warning("metric from client %s not stored: %s", metric.client_id, why)
            return f"not stored: {why}"
        if not self._limiter.allow(metric.client_id):
            self.refused += 1
            return "not stored: this client sends metrics faster than the combiner stores them"
        values: dict[str, float | int] = {elem.key: elem.value for elem in metric.metrics}
        if metric.HasField("step"):
            values["step"] = metric.step.value
        record = Validation(
            model_id=metric.model_id,
            client_id=metric.client_id,
            session_id=metric.session_id or None,
            round_id=metric.round_id or None,
            metrics=values,
        )
        await asyncio.to_thread(self._statestore.validations.add, record)
        return "stored"

    def acknowledge(self, message: Message) -> str:
        if message.ByteSize() > MAX_RECORD_BYTES:
            self.refused += 1
            return f"dropped: larger than {MAX_RECORD_BYTES} bytes"
        self.acknowledged += 1
        return "acknowledged"

    async def acknowledge_stream(
        self, records: AsyncIterator[Message], id_field: str
    ) -> AsyncIterator[pb.RecordAck]:
        """Ack each record by its id (the client resends what is not acked), at most at the stream rate."""
        bucket = _Bucket(float(self._stream_burst), time.monotonic())
        async for record in records:
            if (wait := bucket.take(self._stream_rate, self._stream_burst)) > 0:
                self.paced += 1
                await asyncio.sleep(wait)  # pacing, not waiting for a condition: there is none
            self.acknowledge(record)
            yield pb.RecordAck(record_ids=[getattr(record, id_field)[:MAX_ID_CHARS]])


def metric_error(metric: pb.ModelMetric) -> str | None:
    """Why a ModelMetric may not be stored, or None."""
    if metric.ByteSize() > MAX_RECORD_BYTES:
        return f"the message is larger than {MAX_RECORD_BYTES} bytes"
    if len(metric.metrics) > MAX_METRICS:
        return f"{len(metric.metrics)} metrics in one message; at most {MAX_METRICS}"
    for name in ("model_id", "round_id", "session_id"):
        if len(getattr(metric, name)) > MAX_ID_CHARS:
            return f"ModelMetric.{name} is longer than {MAX_ID_CHARS} characters"
    for elem in metric.metrics:
        if not elem.key or len(elem.key) > MAX_KEY_CHARS:
            return f"metric key {elem.key[:MAX_KEY_CHARS]!r} must be 1-{MAX_KEY_CHARS} characters"
        if not math.isfinite(elem.value):
            return f"metric {elem.key!r} is {elem.value}; only finite numbers are stored"
    return None
