"""The state of one training round at a combiner: who was asked, who reported, what was averaged in.

Updates are keyed by the correlation id of the task each selected client got. The round's ``done``
event is set by the arrival that completes it (every selected client reported, or ``buffer_size``
updates accepted), so the round handler waits on that event, bounded by ``round_timeout``.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scaleout.aggregation.strategy import ClientAggregator
from scaleout.proto import scaleout_pb2 as pb


@dataclass(eq=False)
class TrainingRound:
    config: pb.RoundConfig
    combiner: str
    started: float = field(default_factory=time.monotonic)
    aggregator: ClientAggregator | None = None
    correlation_of: dict[str, str] = field(default_factory=dict)  # client id -> its task's correlation id
    client_of: dict[str, str] = field(default_factory=dict)  # correlation id -> client id
    published_at: dict[str, float] = field(default_factory=dict)
    reporting: set[str] = field(default_factory=set)  # clients whose report arrived (maybe still folding)
    arrived: dict[str, tuple[float, datetime]] = field(default_factory=dict)  # monotonic and wall clock
    reported: set[str] = field(default_factory=set)  # clients whose report is settled
    gone: list[str] = field(default_factory=list)  # selected clients whose stream closed before reporting
    polled: set[str] = field(default_factory=set)  # clients whose train task went out in a poll answer
    clients: list[pb.ClientResult] = field(default_factory=list)
    rejected: list[pb.RejectedUpdate] = field(default_factory=list)
    closed: bool = False
    failure: str = ""  # set when the round cannot produce an average whatever arrives next
    done: asyncio.Event = field(default_factory=asyncio.Event)
    events: asyncio.Queue[pb.RoundEvent] = field(default_factory=asyncio.Queue)
    # Folds must not interleave; checks take their own slot so one update is checked while another
    # folds, and memory stays at the accumulator plus about two update arrays.
    fold_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    check_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @property
    def round_id(self) -> str:
        return self.config.round_id

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def is_task(self, correlation_id: str) -> bool:
        return not self.closed and correlation_id in self.client_of

    def arrive(self, client_id: str) -> None:
        """A selected client's report arrived: it counts as reporting from now, timed from now."""
        self.reporting.add(client_id)
        self.arrived[client_id] = (time.monotonic(), datetime.now(UTC))

    def accept(self, client_id: str, num_examples: int, meta: dict, fold_seconds: float) -> None:
        """An update was folded in (the caller holds the fold lock)."""
        # Timed at arrival, so neither the array checks nor the wait for the fold lock count as training.
        arrived, received_at = self.arrived.get(client_id, (time.monotonic(), datetime.now(UTC)))
        result = pb.ClientResult(
            client_id=client_id,
            num_examples=num_examples,
            train_seconds=arrived - self.published_at.get(client_id, self.started),
            fold_seconds=fold_seconds,
            meta=json.dumps(meta),
            delivery="poll" if client_id in self.polled else "stream",
        )
        result.received_at.FromDatetime(received_at)
        self.clients.append(result)
        self.reported.add(client_id)
        self.progress("update", client_id, f"update from {client_id} averaged in ({num_examples} examples)")
        self._check_end()

    def reject(self, client_id: str, reason: str, *, counts: bool) -> None:
        """Record a rejected update or failed task; ``counts`` when it is a selected client's report."""
        self.rejected.append(pb.RejectedUpdate(client_id=client_id, reason=reason))
        if counts:
            self.reported.add(client_id)
        self.progress("rejected", client_id, reason)
        if counts:
            self._check_end()

    def leave(self, client_id: str) -> None:
        """A selected client's task stream closed before it reported: it leaves the round at once.

        Its task can no longer be answered on that stream, so waiting for it would only spend the
        round's timeout; the round ends once every other selected client has reported or left.
        """
        if self.closed or client_id not in self.correlation_of or client_id in self.reporting:
            return
        self.gone.append(client_id)
        self.reporting.add(client_id)
        self.reject(
            client_id,
            f"client {client_id} left round {self.round_id} before reporting: its task stream closed "
            "(the client stopped, lost its connection or did not answer keepalive pings)",
            counts=True,
        )

    def fail(self, reason: str) -> None:
        self.failure = reason
        self.closed = True
        self.done.set()

    def progress(self, stage: str, client_id: str = "", message: str = "") -> None:
        self.events.put_nowait(
            pb.RoundEvent(
                progress=pb.RoundProgress(
                    round_id=self.round_id,
                    stage=stage,
                    clients_selected=len(self.correlation_of),
                    updates_received=len(self.clients),
                    updates_rejected=len(self.rejected),
                    client_id=client_id,
                    message=message,
                    elapsed=self.elapsed(),
                )
            )
        )

    def _check_end(self) -> None:
        buffer_size = self.config.buffer_size
        # Counted first: building the set of selected clients at every report made a round O(N^2).
        everyone = len(self.reported) >= len(self.correlation_of) and self.reported.issuperset(
            self.correlation_of
        )
        if (buffer_size and len(self.clients) >= buffer_size) or everyone:
            # Closed at once, in the same step as the arrival that ended it: no later update slips in.
            self.closed = True
            self.done.set()

    def result(self, ok: bool, error: str = "", model_id: str = "") -> pb.RoundResult:
        return pb.RoundResult(
            round_id=self.round_id,
            ok=ok,
            error=error,
            model_id=model_id,
            num_examples=self.aggregator.total if ok and self.aggregator else 0,
            clients=self.clients,
            rejected=self.rejected,
            seconds=self.elapsed(),
        )
