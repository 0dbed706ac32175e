"""An async session (FedBuff, Nguyen et al. AISTATS 2022): clients train all the time, and every
buffer_size folded updates make a new model version.

The controller opens Control.RunAsync on every chosen combiner (max_concurrency shared in proportion
to their clients) from the latest version, counts the updates they fold, and once the count reaches
buffer_size sends FlushBuffer to all of them. Each answers with its buffer as a partial model
(sum n s delta / sum n); the num_examples-weighted reduce of the partials is the mean delta over
every folded update, the server step (async_step.py) makes the next version from it, and the
version is committed like a round (Round index = version - 1, its clients the folded updates with
their staleness), then announced to the combiners with NewVersion. The controller alone steps the
model, so versions stay consistent across combiners.

Bounds: a flush is answered within round_margin seconds or that combiner is dropped; with no update
folded for round_timeout + round_margin seconds (task_timeout frees a slot after round_timeout),
the streams count as failed. A combiner whose stream fails is dropped, its buffered updates lost
(recorded as rejected); with none left, the streams are re-opened under the session's retry budget
(round_retries, retry_timeout, reset by every committed version), then the session fails.
It ends after max_versions versions or max_duration seconds from its start (Finished), when stopped
(Terminated), or when the lease is lost (nothing more written here).
"""

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from scaleout import round_rules as rules
from scaleout.controller.async_step import next_version
from scaleout.controller.combiners import Participant, choose_combiners
from scaleout.controller.commit import commit_round
from scaleout.controller.lease import LeaseLost, SessionLease
from scaleout.controller.leased_session import LeasedSession, Retries
from scaleout.controller.progress import LiveAsync
from scaleout.controller.reduce import PartialModel, discard_models, reduce_models
from scaleout.controller.rounds import (
    RoundContext,
    client_result,
    combiner_label,
    proportional_shares,
    validate_model,
)
from scaleout.controller.server_step import RoundModel
from scaleout.errors import RoundFailed
from scaleout.proto import scaleout_pb2 as pb
from scaleout.store.entities import (
    ClientRoundResult,
    CombinerRoundResult,
    EventLevel,
    Model,
    RejectedUpdate,
    Round,
    RoundStatus,
    Session,
    utcnow,
)

log = logging.getLogger(__name__)

MAX_VALIDATIONS = 2  # validations of versions in flight at once; a version due beyond them is skipped
MAX_REJECTED = 1000  # rejected updates kept per version record; more are counted, not listed


@dataclass(eq=False)
class _Stream:
    """One combiner's RunAsync call and what it folded since its last flush."""

    participant: Participant
    max_concurrency: int
    call: Any = None  # grpc.aio.StreamStreamCall
    commands: asyncio.Queue[pb.AsyncCommand | None] = field(default_factory=asyncio.Queue)
    pending: list[pb.FoldedUpdate] = field(default_factory=list)
    flushed: asyncio.Future[pb.BufferFlushed | None] | None = None
    reader: asyncio.Task[None] | None = None
    error: str | None = None
    closed: bool = False

    @property
    def id(self) -> str:
        return self.participant.id


@dataclass
class _Version:
    """What the version being built collects until it is committed."""

    started_at: Any = field(default_factory=utcnow)
    rejected: list[RejectedUpdate] = field(default_factory=list)
    rejected_unlisted: int = 0
    failed: list[CombinerRoundResult] = field(default_factory=list)  # combiners lost meanwhile

    def reject(self, update: RejectedUpdate) -> None:
        if len(self.rejected) < MAX_REJECTED:
            self.rejected.append(update)
        else:
            self.rejected_unlisted += 1


class AsyncSessionRunner(LeasedSession):
    """Runs one started async session to its end."""

    def __init__(self, context: RoundContext, session: Session, lease: SessionLease) -> None:
        super().__init__(context, session, lease)
        config = session.config
        self.buffer_size = config.buffer_size or rules.DEFAULT_ASYNC_BUFFER_SIZE
        self.version = session.rounds_done
        self.model: Model | None = None
        self._live: LiveAsync | None = None
        self._streams: dict[str, _Stream] = {}
        self._wake = asyncio.Event()
        self._building = _Version()
        self._last_fold = time.monotonic()
        self._retries = Retries(session, context)
        self._validations: set[asyncio.Task[None]] = set()
        self._writes: set[asyncio.Future[Any]] = set()
        self._uncommitted: list[str] = []  # repository objects of a step not committed yet
        self._errors: list[str] = []  # why streams failed since they were opened

    @property
    def live(self) -> LiveAsync | None:
        return self._live

    # -- the session: versions until an end ------------------------------------------------------

    async def _work(self) -> str:
        self.model = await self._start_model()
        self.version = self.session.rounds_done
        self._live = LiveAsync(self.session.id, self.version, self.buffer_size)
        try:
            reason = await self._versions()
            await self._close_streams()
            await self._finish_validations()
        except BaseException:
            await self._abandon()
            raise
        finally:
            self._live = None
        return f"{self.version} version(s) committed; {reason}"

    async def _versions(self) -> str:
        """Train and commit versions until an end; returns why it ended."""
        while (reason := self._end_reason()) is None:
            try:
                reason = await self._train()
            except RoundFailed as err:
                await self._close_streams(f"the streams were re-opened: {err}")
                attempt = f"async training at version {self.version}"
                await self._retries.wait(attempt, str(err), "async_retry")
                assert self._live is not None
                self._live.attempt = self._retries.attempt
                continue
            return reason
        return reason

    def _end_reason(self) -> str | None:
        config = self.session.config
        if config.max_versions is not None and self.version >= config.max_versions:
            return f"max_versions of {config.max_versions} reached"
        if config.max_duration is not None and self._duration_left() <= 0:
            return f"max_duration of {config.max_duration:g} s reached"
        return None

    def _duration_left(self) -> float:
        """Seconds of max_duration left, counted from the session's start (a resumed session too)."""
        config = self.session.config
        if config.max_duration is None:
            return float("inf")
        started = self.session.started_at or utcnow()
        return config.max_duration - (utcnow() - started).total_seconds()

    async def _train(self) -> str:
        """Open the streams and step whenever the buffers hold buffer_size updates, until an end.

        Raises RoundFailed when no stream is left, or none folded an update in the stall bound.
        """
        self._set_stage("choosing combiners")
        participants = await choose_combiners(self.ctx.statestore, self.ctx.channels, self.ctx.settings)
        await self._open(participants)
        stall = self.session.config.round_timeout + self.ctx.settings.round_margin
        while True:
            self._wake.clear()
            await self._drop_failed()
            if (reason := self._end_reason()) is not None:
                return reason
            if not self._streams:
                raise RoundFailed(f"every combiner's RunAsync stream failed: {'; '.join(self._errors)}")
            if self._fill() >= self.buffer_size:
                await self._step()
                continue
            quiet = time.monotonic() - self._last_fold
            if quiet >= stall:
                raise RoundFailed(
                    f"no update was folded for {quiet:.0f} s (round_timeout + round_margin is {stall:g} s) "
                    f"on {len(self._streams)} combiner(s); check that their clients train"
                )
            self._set_stage("training")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(stall - quiet, self._duration_left()))

    def _fill(self) -> int:
        return sum(len(s.pending) for s in self._streams.values())

    # -- the streams -----------------------------------------------------------------------------

    async def _open(self, participants: Sequence[Participant]) -> None:
        """RunAsync on each combiner with its share of max_concurrency (a combiner whose share is 0
        sits out), from the latest version."""
        assert self.model is not None and self._live is not None
        config = self.session.config
        if config.max_concurrency is None:
            shares = [0] * len(participants)  # 0: every client of the combiner
        else:
            total = sum(p.client_count for p in participants)
            shares = proportional_shares(participants, min(config.max_concurrency, total))
        deadline = (config.max_duration or rules.MAX_ROUND_TIMEOUT) + self.ctx.settings.round_margin
        self._last_fold = time.monotonic()
        self._errors = []
        self._live.combiners.clear()
        for participant, share in zip(participants, shares, strict=True):
            if config.max_concurrency is not None and share == 0:
                continue
            stream = _Stream(participant, share)
            stream.commands.put_nowait(pb.AsyncCommand(start=self._async_config(share)))
            stream.call = participant.stub.RunAsync(_commands(stream.commands), timeout=deadline)
            stream.reader = asyncio.create_task(self._read(stream), name=f"async-{participant.id}")
            self._streams[participant.id] = stream
            self._live.opened(participant.id, share)
        opened = ", ".join(
            f"{combiner_label(s.id)} (max_concurrency {s.max_concurrency or 'all'})"
            for s in self._streams.values()
        )
        await self.events.record(
            "async_started",
            f"async training from version {self.version} (model {self.model.id}) on {opened}; "
            f"a version every {self.buffer_size} update(s)",
        )

    def _async_config(self, share: int) -> pb.AsyncConfig:
        assert self.model is not None
        config = self.session.config
        return pb.AsyncConfig(
            session_id=self.session.id,
            model_id=self.model.id,
            version=self.version,
            max_concurrency=share,
            staleness=config.staleness,
            staleness_exponent=config.staleness_exponent,
            max_staleness=-1 if config.max_staleness is None else config.max_staleness,
            task_timeout=config.round_timeout,
            helper=config.helper,
            client_settings=json.dumps(config.client_settings),
            max_update_norm=config.max_update_norm or 0.0,
            clip_updates=config.clip_updates,
        )

    async def _read(self, stream: _Stream) -> None:
        """Take in a combiner's events until its stream ends; an end not asked for is its failure."""
        try:
            async for event in stream.call:
                self._on_event(stream, event)
            error = f"combiner {stream.id} ended its RunAsync stream"
        except grpc.aio.AioRpcError as err:
            error = f"combiner {stream.id}: RunAsync failed: {err.code().name}: {err.details()}"
        except asyncio.CancelledError:
            if stream.closed:
                return
            raise
        self._fail(stream, error)

    def _on_event(self, stream: _Stream, event: pb.AsyncEvent) -> None:
        assert self._live is not None
        kind = event.WhichOneof("event")
        if kind == "folded":
            stream.pending.append(event.folded)
            self._last_fold = time.monotonic()
            self._live.fill(stream.id, len(stream.pending))
        elif kind == "rejected":
            reason, client = event.rejected.reason, event.rejected.client_id
            self._building.reject(RejectedUpdate(client_id=client, reason=reason, combiner_id=stream.id))
            self._live.rejected += 1
        elif kind == "flushed":
            # Updates folded from here on come after the flush: they belong to the next buffer.
            stream.pending = []
            self._live.fill(stream.id, 0)
            if stream.flushed is not None and not stream.flushed.done():
                stream.flushed.set_result(event.flushed)
        elif kind == "progress":
            self._live.update(stream.id, event.progress)
        self._wake.set()

    def _fail(self, stream: _Stream, error: str) -> None:
        """Mark a stream failed (it is dropped by the main loop) and cancel its call."""
        if stream.error is None and not stream.closed:
            stream.error = error
            stream.call.cancel()
        if stream.flushed is not None and not stream.flushed.done():
            stream.flushed.set_result(None)
        self._wake.set()

    async def _drop_failed(self) -> None:
        """Drop failed streams: their buffered updates are lost, recorded as rejected."""
        for stream in [s for s in self._streams.values() if s.error is not None]:
            del self._streams[stream.id]
            if self._live is not None:
                self._live.combiners.pop(stream.id, None)
            lost = len(stream.pending)
            self._errors.append(stream.error or "")
            self._lose(stream, stream.error or "")
            await self.events.record(
                "combiner_lost",
                f"{stream.error}; {lost} folded update(s) lost; training goes on with "
                f"{len(self._streams)} combiner(s)",
                EventLevel.WARNING,
                combiner_id=stream.id,
            )

    def _lose(self, stream: _Stream, error: str) -> None:
        """Record a stream's buffered updates as rejected and its combiner as failed."""
        for update in stream.pending:
            self._building.reject(
                RejectedUpdate(
                    client_id=update.client.client_id,
                    reason=f"its combiner's stream ended before a flush: {error}",
                    combiner_id=stream.id,
                )
            )
        self._building.failed.append(CombinerRoundResult(combiner_id=stream.id, error=error))
        stream.pending = []

    async def _close_streams(self, reason: str | None = None) -> None:
        """Cancel every stream (the combiners end their async work); with a reason, the updates
        in their buffers are recorded as lost."""
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.closed = True
            stream.commands.put_nowait(None)
            if stream.call is not None:
                stream.call.cancel()
            if stream.reader is not None:
                stream.reader.cancel()
            if reason is not None:
                self._lose(stream, reason)
        readers = [s.reader for s in streams if s.reader is not None]
        if readers:
            await asyncio.gather(*readers, return_exceptions=True)

    async def _send(self, command: pb.AsyncCommand) -> None:
        for stream in self._streams.values():
            stream.commands.put_nowait(command)

    # -- a server step ---------------------------------------------------------------------------

    async def _step(self) -> None:
        """Flush every buffer, reduce, step and commit the next version; announce it."""
        assert self.model is not None and self._live is not None
        target = self.version + 1
        answers = await self._flush(target)
        updates = [(cid, u) for cid, answer in answers for u in answer.updates]
        await self._drop_failed()
        if not updates:
            return  # the buffers were lost with their combiners: keep training on this version
        record = Round(
            session_id=self.session.id,
            index=target - 1,
            status=RoundStatus.RUNNING,
            config=self.session.config,
            parent_model_id=self.model.id,
            started_at=self._building.started_at,
        )
        made = await self._server_step(record, answers, updates)
        self._set_stage("committing")
        model = await self._commit(record, made, answers, updates)
        built, self._building = self._building, _Version()
        self.version, self.model = target, model
        self._live.committed(target)
        self._retries = Retries(self.session, self.ctx)  # training works again: a fresh budget
        self._live.attempt = 0
        await self._send(pb.AsyncCommand(version=pb.NewVersion(model_id=model.id, version=target)))
        summary = _summary(target, model, updates, built)
        await self.events.record("version_committed", summary, round_id=record.id)
        self._validate(record.id, model)

    async def _flush(self, target: int) -> list[tuple[str, pb.BufferFlushed]]:
        """FlushBuffer(target) to every stream; the answers within round_margin seconds. A combiner
        that does not answer in time is dropped."""
        self._set_stage("flushing")
        loop = asyncio.get_running_loop()
        streams = list(self._streams.values())
        for stream in streams:
            stream.flushed = loop.create_future()
        await self._send(pb.AsyncCommand(flush=pb.FlushBuffer(version=target)))
        bound = self.ctx.settings.round_margin
        futures = [s.flushed for s in streams if s.flushed is not None]
        await asyncio.wait(futures, timeout=bound)
        answers = []
        for stream in streams:
            answer = stream.flushed.result() if stream.flushed and stream.flushed.done() else None
            stream.flushed = None
            if answer is None:
                self._fail(
                    stream, stream.error or f"combiner {stream.id}: no answer to FlushBuffer in {bound:g} s"
                )
            else:
                answers.append((stream.id, answer))
                if answer.model_id:
                    self._uncommitted.append(answer.model_id)
        return answers

    async def _server_step(
        self,
        record: Round,
        answers: list[tuple[str, pb.BufferFlushed]],
        updates: list[tuple[str, pb.FoldedUpdate]],
    ) -> RoundModel:
        """Reduce the partial buffers and step from the latest version; RoundFailed (the version's
        record Failed, its updates rejected) when the partials do not fit."""
        assert self.model is not None
        self._set_stage("reducing")
        parts = [PartialModel(cid, a.model_id, a.num_examples) for cid, a in answers if a.model_id]
        config, repository, work_dir = self.session.config, self.ctx.repository, self.ctx.settings.work_dir
        try:
            delta_id = await asyncio.to_thread(reduce_models, repository, parts, config.helper, work_dir)
            self._uncommitted = [delta_id]
            self._set_stage("server step")
            made = await asyncio.to_thread(
                next_version, repository, config, self.model, delta_id, len(updates), work_dir
            )
        except (ValueError, OSError) as err:
            await self._discard_uncommitted()
            error = f"version {record.index + 1}: server step failed: {err}"
            for cid, update in updates:
                reason = f"not averaged: {error}"
                self._building.reject(
                    RejectedUpdate(client_id=update.client.client_id, reason=reason, combiner_id=cid)
                )
            failed = {**self._results(record, answers, []), "status": RoundStatus.FAILED, "error": error}
            await self._shielded(self._add_failed, record, failed)
            raise RoundFailed(error) from err
        self._uncommitted = [made.model_id, *([made.optimizer_state_id] if made.optimizer_state_id else [])]
        return made

    def _add_failed(self, record: Round, changes: dict[str, Any]) -> None:
        self.lease.fence(record.index)
        self.ctx.statestore.rounds.add(record.model_copy(update={**changes, "finished_at": utcnow()}))

    async def _commit(
        self,
        record: Round,
        made: RoundModel,
        answers: list[tuple[str, pb.BufferFlushed]],
        updates: list[tuple[str, pb.FoldedUpdate]],
    ) -> Model:
        """Add the version's record and commit its model, in a thread a stop waits for."""
        assert self.model is not None
        changes = {
            **self._results(record, answers, updates),
            "status": RoundStatus.FINISHED,
            "optimizer_state_id": made.optimizer_state_id,
        }
        parent = self.model

        def write() -> Model:
            self.lease.fence(record.index)
            self.ctx.statestore.rounds.add(record)
            return commit_round(
                self.ctx.statestore,
                self.ctx.repository,
                model_id=made.model_id,
                parent=parent,
                session=self.session,
                round_id=record.id,
                index=record.index,
                round_changes=changes,
                fence=self.lease.fence,
                optimizer_state_id=made.optimizer_state_id,
            )

        try:
            model = await self._shielded(write)
        except LeaseLost:
            await self._discard_uncommitted()
            raise
        self._uncommitted = []
        return model

    def _results(
        self,
        record: Round,
        answers: list[tuple[str, pb.BufferFlushed]],
        updates: list[tuple[str, pb.FoldedUpdate]],
    ) -> dict[str, Any]:
        """combiners, clients (the folded updates with their staleness) and rejected of the record."""
        combiners = [
            CombinerRoundResult(combiner_id=cid, model_id=a.model_id or None, num_examples=a.num_examples)
            for cid, a in answers
        ]
        return {
            "combiners": [*combiners, *self._building.failed],
            "clients": [_folded_result(u, cid) for cid, u in updates],
            "rejected": list(self._building.rejected),
        }

    async def _shielded(self, fn: Any, *args: Any) -> Any:
        """A blocking store write in a thread that a stop does not cut off: the stop waits for it."""
        write = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return await asyncio.shield(write)

    async def _discard_uncommitted(self) -> None:
        ids, self._uncommitted = self._uncommitted, []
        if ids:
            await asyncio.to_thread(discard_models, self.ctx.repository, ids)

    # -- validations -----------------------------------------------------------------------------

    def _validate(self, round_id: str, model: Model) -> None:
        """StartValidation of version k in the background when k % validate_every == 0."""
        config = self.session.config
        if not config.validate_models or self.version % config.validate_every:
            return
        self._validations = {t for t in self._validations if not t.done()}
        if len(self._validations) >= MAX_VALIDATIONS:
            task = asyncio.create_task(
                self.events.record(
                    "validation_skipped",
                    f"version {self.version} not validated: {MAX_VALIDATIONS} validations still run",
                    EventLevel.WARNING,
                    round_id=round_id,
                )
            )
        else:
            participants = [s.participant for s in self._streams.values()]
            task = asyncio.create_task(
                validate_model(self.ctx, self.session, round_id, model, participants, lambda *_: None),
                name=f"validate-{model.id}",
            )
        self._validations.add(task)
        task.add_done_callback(_log_failure)

    async def _finish_validations(self) -> None:
        """Let the validations in flight end (each is bounded by its deadline) before the session does."""
        running = [t for t in self._validations if not t.done()]
        if running:
            self._set_stage("validating")
            bound = self.ctx.settings.validation_deadline(self.session.config.round_timeout)
            await asyncio.wait(running, timeout=bound + 2 * self.ctx.settings.round_margin)

    # -- stopping --------------------------------------------------------------------------------

    async def _abandon(self) -> None:
        """After a stop, a lost lease or an error: cancel streams and validations, let writes in
        flight land (bounded), and free the repository objects of a step that did not commit."""
        for task in self._validations:
            task.cancel()
        await self._close_streams()
        if self._writes:
            await asyncio.wait(self._writes, timeout=self.ctx.settings.stop_timeout)
        with contextlib.suppress(Exception):
            await self._discard_uncommitted()

    # -- reporting -------------------------------------------------------------------------------

    def _set_stage(self, stage: str) -> None:
        if self._live is not None:
            self._live.stage = stage


async def _commands(queue: asyncio.Queue[pb.AsyncCommand | None]) -> AsyncIterator[pb.AsyncCommand]:
    """The request stream of a RunAsync call: the commands queued for it, until None."""
    while (command := await queue.get()) is not None:
        yield command


def _folded_result(update: pb.FoldedUpdate, combiner_id: str) -> ClientRoundResult:
    result = client_result(update.client, combiner_id)
    return result.model_copy(
        update={
            "base_version": update.base_version,
            "staleness": update.staleness,
            "staleness_weight": update.staleness_weight,
        }
    )


def _summary(version: int, model: Model, updates: list[tuple[str, pb.FoldedUpdate]], built: _Version) -> str:
    """The version_committed message: what was folded, how stale, what was rejected."""
    staleness = [u.staleness for _, u in updates]
    rejected = len(built.rejected) + built.rejected_unlisted
    unlisted = f" ({built.rejected_unlisted} not listed in the record)" if built.rejected_unlisted else ""
    return (
        f"version {version} committed model {model.id}: {len(updates)} update(s) from "
        f"{len({cid for cid, _ in updates})} combiner(s), staleness mean {statistics.fmean(staleness):.2f} "
        f"max {max(staleness)}; {rejected} update(s) rejected{unlisted}"
    )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background task %s failed", task.get_name(), exc_info=error)
