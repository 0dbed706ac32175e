"""The state of one asynchronous (FedBuff) run at a combiner: its tasks in flight, idle clients,
model versions, the delta buffer, and the events RunAsync streams back.

A task remembers the version it trains from; the versions referenced by tasks in flight (and the
current one, which new tasks train on) are the only ones the run keeps staged. Progress events about
tasks published, timed out or left are coalesced to at most one per stage per PROGRESS_INTERVAL, so
a thousand clients cost a few events a second, not one per task.
"""

import asyncio
import json
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from scaleout.aggregation.deltabuffer import DeltaBuffer
from scaleout.aggregation.npzfile import ArraySpec
from scaleout.proto import scaleout_pb2 as pb

PROGRESS_INTERVAL = 1.0  # seconds between two progress events of one stage
MAX_ENDED = 10_000  # ended tasks whose end is remembered, to name it when their late update arrives
MAX_NAMED = 10  # client ids a coalesced progress message names


class AsyncRunError(Exception):
    """Ends RunAsync with a gRPC status; str() is the message, naming what was wrong."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class AsyncTask:
    """A train task in flight: published, its update not yet settled."""

    correlation_id: str
    client_id: str
    version: int  # the version it trains from
    model_id: str
    published: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    polled: bool = False  # delivered in a poll answer (the official client), not on a task stream
    arrived: tuple[float, datetime] | None = None  # monotonic and wall clock of its report

    def arrive(self) -> None:
        """Its update (or failure) arrived: the task no longer times out."""
        self.arrived = (time.monotonic(), datetime.now(UTC))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


# An event for the RPC to send, an error ending it, or None: the controller ended its stream.
Outgoing = pb.AsyncEvent | AsyncRunError | None


@dataclass(eq=False)
class AsyncRun:
    config: pb.AsyncConfig
    version: int
    model_id: str
    started: float = field(default_factory=time.monotonic)
    specs: list[ArraySpec] = field(default_factory=list)
    buffer: DeltaBuffer | None = None
    folded: list[pb.FoldedUpdate] = field(default_factory=list)  # in the buffer, since the last flush
    versions: dict[int, str] = field(default_factory=dict)  # staged and held: version -> model id
    refs: Counter[int] = field(default_factory=Counter)  # version -> tasks in flight trained from it
    tasks: dict[str, AsyncTask] = field(default_factory=dict)  # correlation id -> task in flight
    busy: dict[str, str] = field(default_factory=dict)  # client id -> correlation id of its task
    idle: OrderedDict[str, None] = field(default_factory=OrderedDict)  # longest idle first
    finished: OrderedDict[str, str] = field(default_factory=OrderedDict)  # correlation id -> why it ended
    ready: bool = False  # the start model is staged: tasks may go out
    closed: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set once closed
    updates_folded: int = 0
    updates_rejected: int = 0
    events: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    # As in a sync round: one update checked while another folds; folds never interleave.
    fold_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    check_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    _pending: dict[str, list[str]] = field(default_factory=dict)  # progress stage -> client ids
    _last_progress: dict[str, float] = field(default_factory=dict)
    _progress_timer: asyncio.TimerHandle | None = None

    @property
    def session_id(self) -> str:
        return self.config.session_id

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def task_data(self) -> dict:
        """What a train task hands the entry point in IN-metadata; round_index is the base version,
        as a sync round's index is that of the model it trains from."""
        settings = json.loads(self.config.client_settings) if self.config.client_settings else {}
        return {
            "round_index": self.version,
            "version": self.version,
            "helper": self.config.helper or "numpyhelper",
            "client_settings": settings,
        }

    def end_task(self, task: AsyncTask, reason: str = "") -> None:
        """The task is no longer in flight; ``reason`` is kept to answer a late update with it."""
        if self.tasks.pop(task.correlation_id, None) is None:
            return
        if self.busy.get(task.client_id) == task.correlation_id:
            del self.busy[task.client_id]
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        self.refs[task.version] -= 1
        if reason:
            self.finished[task.correlation_id] = reason
            while len(self.finished) > MAX_ENDED:
                self.finished.popitem(last=False)

    def folded_update(
        self,
        task: AsyncTask,
        num_examples: int,
        meta: dict,
        fold_seconds: float,
        staleness: int,
        weight: float,
    ) -> pb.FoldedUpdate:
        """Record an update folded into the buffer (the caller holds the fold lock) and emit it."""
        arrived, received_at = task.arrived or (time.monotonic(), datetime.now(UTC))
        client = pb.ClientResult(
            client_id=task.client_id,
            num_examples=num_examples,
            train_seconds=arrived - task.published,
            fold_seconds=fold_seconds,
            meta=json.dumps(meta),
            delivery="poll" if task.polled else "stream",
        )
        client.received_at.FromDatetime(received_at)
        folded = pb.FoldedUpdate(
            client=client, base_version=task.version, staleness=staleness, staleness_weight=weight
        )
        self.folded.append(folded)
        self.updates_folded += 1
        self.events.put_nowait(pb.AsyncEvent(folded=folded))
        return folded

    def rejected(self, client_id: str, reason: str) -> None:
        self.updates_rejected += 1
        self.events.put_nowait(pb.AsyncEvent(rejected=pb.RejectedUpdate(client_id=client_id, reason=reason)))

    def fail(self, error: AsyncRunError) -> None:
        """End the run with this error: RunAsync sends it as its status."""
        self.events.put_nowait(error)

    # -- coalesced progress ------------------------------------------------------------------------

    def note(self, stage: str, client_id: str) -> None:
        """Count a task published, timed out or left; one event per stage per PROGRESS_INTERVAL."""
        self._pending.setdefault(stage, []).append(client_id)
        if self._progress_timer is not None:
            return
        last = min(self._last_progress.get(s, -PROGRESS_INTERVAL) for s in self._pending)
        delay = max(0.0, last + PROGRESS_INTERVAL - time.monotonic())
        self._progress_timer = asyncio.get_running_loop().call_later(delay, self._emit_progress)

    def _emit_progress(self) -> None:
        self._progress_timer = None
        if self.closed:
            return
        now = time.monotonic()
        for stage in list(self._pending):
            if now - self._last_progress.get(stage, -PROGRESS_INTERVAL) < PROGRESS_INTERVAL:
                continue
            clients = self._pending.pop(stage)
            self._last_progress[stage] = now
            self.events.put_nowait(pb.AsyncEvent(progress=self._progress(stage, clients)))
        if self._pending:  # a stage still within its interval
            delay = min(self._last_progress[s] for s in self._pending) + PROGRESS_INTERVAL - now
            self._progress_timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._emit_progress)

    def progress(self, stage: str, message: str, client_id: str = "") -> None:
        """Emit a progress event now (for rare ones: a new version)."""
        self.events.put_nowait(pb.AsyncEvent(progress=self._progress_event(stage, message, client_id)))

    def _progress(self, stage: str, clients: list[str]) -> pb.RoundProgress:
        named = ", ".join(clients[:MAX_NAMED]) + (
            f" and {len(clients) - MAX_NAMED} more" if len(clients) > MAX_NAMED else ""
        )
        if stage == "published":
            message = f"train tasks published to {len(clients)} client(s): {named}; on version {self.version}"
        elif stage == "timeout":
            message = (
                f"{len(clients)} task(s) timed out after {self.config.task_timeout:g} s (task_timeout), "
                f"their slots went to idle clients: {named}"
            )
        else:
            message = f"{len(clients)} client(s) left with a task in flight (task stream closed): {named}"
        return self._progress_event(stage, message, clients[0] if len(clients) == 1 else "")

    def _progress_event(self, stage: str, message: str, client_id: str) -> pb.RoundProgress:
        return pb.RoundProgress(
            stage=stage,
            clients_selected=len(self.tasks),
            updates_received=self.updates_folded,
            updates_rejected=self.updates_rejected,
            client_id=client_id,
            message=message,
            elapsed=self.elapsed(),
        )

    def close(self) -> None:
        """No more tasks, timers or events: the run ended."""
        self.closed = True
        self.ended.set()
        for task in self.tasks.values():
            if task.timer is not None:
                task.timer.cancel()
        if self._progress_timer is not None:
            self._progress_timer.cancel()
            self._progress_timer = None
        self.buffer = None
