"""One round of a session: choose combiners, run StartRound on each in parallel, reduce, commit.

A round either commits a model (returned) or is recorded Failed with its error (returned for the
session to retry or give up). Every wait is bounded: Info by info_deadline, StartRound by
round_timeout + round_margin, StartValidation by the validation timeout + round_margin.
"""

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar

from scaleout.controller.combiners import (
    CombinerChannels,
    CombinerOutcome,
    Participant,
    ProgressHandler,
    choose_combiners,
    stream_round,
)
from scaleout.controller.commit import commit_round
from scaleout.controller.events import SessionEvents
from scaleout.controller.lease import LeaseLost, SessionLease
from scaleout.controller.progress import LiveRound
from scaleout.controller.reduce import PartialModel, discard_models, reduce_models
from scaleout.controller.server_step import RoundModel, finish_model, needs_step
from scaleout.controller.settings import ControllerSettings
from scaleout.errors import NotFound, RoundFailed
from scaleout.proto import scaleout_pb2
from scaleout.store.entities import (
    ClientRoundResult,
    CombinerRoundResult,
    EventLevel,
    Model,
    RejectedUpdate,
    Round,
    RoundStatus,
    Session,
    SessionConfig,
    utcnow,
)
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)
T = TypeVar("T")

STOPPED = "stopped"


@dataclass
class RoundContext:
    """What every round of the controller shares."""

    statestore: Statestore
    repository: ModelRepository
    settings: ControllerSettings
    channels: CombinerChannels


@dataclass(frozen=True)
class RoundOutcome:
    """A committed model, or the error the round failed with."""

    round_id: str
    model: Model | None = None
    error: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A combiner's share of a round: the min_clients and requested_clients sent to it."""

    participant: Participant
    min_clients: int
    requested_clients: int


def plan_round(participants: Sequence[Participant], config: SessionConfig) -> list[Assignment]:
    """Split the session's client counts across combiners.

    One combiner gets min_clients and requested_clients as configured. Several share
    requested_clients in proportion to their connected clients (largest remainder; a combiner
    whose share is 0 sits the round out), and each needs just one update of its own: min_clients
    holds for the sum, which the controller checks after the round. (A per-combiner minimum would
    throw away a combiner's good updates when one of its clients is lost, although the sum may
    still reach min_clients.)
    """
    total = sum(p.client_count for p in participants)
    if total < config.min_clients:
        raise RoundFailed(
            f"{total} connected client(s) on {len(participants)} combiner(s), min_clients is "
            f"{config.min_clients}; connect more clients or lower min_clients"
        )
    requested = config.requested_clients or 0
    if len(participants) == 1:
        return [Assignment(participants[0], config.min_clients, requested)]
    shares = (
        proportional_shares(participants, min(requested, total))
        if requested
        else [p.client_count for p in participants]
    )
    return [
        Assignment(p, 1, share if requested else 0)
        for p, share in zip(participants, shares, strict=True)
        if share > 0
    ]


def proportional_shares(participants: Sequence[Participant], requested: int) -> list[int]:
    total = sum(p.client_count for p in participants)
    exact = [requested * p.client_count / total for p in participants]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[: requested - sum(shares)]:
        shares[i] += 1
    return shares


def round_config(
    session: Session, round_id: str, index: int, model_id: str, assignment: Assignment
) -> scaleout_pb2.RoundConfig:
    """The typed RoundConfig a combiner receives."""
    config = session.config
    return scaleout_pb2.RoundConfig(
        session_id=session.id,
        round_id=round_id,
        round_index=index,
        model_id=model_id,
        round_timeout=config.round_timeout,
        min_clients=assignment.min_clients,
        requested_clients=assignment.requested_clients,
        buffer_size=config.buffer_size or 0,
        aggregator=config.aggregator,
        aggregator_kwargs=config.aggregator_kwargs,
        helper=config.helper,
        client_settings=json.dumps(config.client_settings),
        max_update_norm=config.max_update_norm or 0.0,
        clip_updates=config.clip_updates,
    )


class RoundRunner:
    """Runs the rounds of one session, one at a time."""

    def __init__(self, context: RoundContext, session: Session, lease: SessionLease) -> None:
        self.ctx = context
        self.session = session
        self.lease = lease
        self.events = SessionEvents(context.statestore, session.id)
        self.live: LiveRound | None = None
        self._outcomes: list[CombinerOutcome] = []
        self._writes: set[asyncio.Future[Any]] = set()

    async def run(self, index: int, parent: Model, attempt: int) -> RoundOutcome:
        """Run round `index` from `parent`; a stop (cancellation) records the round Failed "stopped".

        Raises LeaseLost, having written nothing, once this controller lost the session's lease.
        """
        record = Round(
            session_id=self.session.id,
            index=index,
            status=RoundStatus.RUNNING,
            config=self.session.config,
            parent_model_id=parent.id,
            started_at=utcnow(),
        )
        self.live = LiveRound(self.session.id, record.id, index, attempt)
        self._outcomes, self._writes = [], set()
        try:
            await self._shielded(self.lease.fence, index)
            await self._shielded(self.ctx.statestore.rounds.add, record)
            started = f"round {index + 1} started (attempt {attempt + 1})"
            await self.events.record("round_started", started, round_id=record.id)
            return await self._train_and_commit(record, parent)
        except asyncio.CancelledError:
            await self._record_stopped(record)
            raise
        except LeaseLost:
            await self._discard_partials()  # the round's record is the new owner's to fail
            raise
        except RoundFailed as err:
            return await self._record_failure(record, str(err))
        except Exception as err:
            log.exception("round %s of session %s failed", record.id, self.session.id)
            return await self._record_failure(record, f"internal error: {err!r}")
        finally:
            self.live = None

    async def _train_and_commit(self, record: Round, parent: Model) -> RoundOutcome:
        participants = await choose_combiners(self.ctx.statestore, self.ctx.channels, self.ctx.settings)
        assignments = plan_round(participants, self.session.config)
        self._outcomes = await self._start_rounds(record, parent, assignments)
        parts = self._accepted_parts()
        self._set_stage("reducing")
        try:
            model_id = await asyncio.to_thread(
                reduce_models,
                self.ctx.repository,
                parts,
                self.session.config.helper,
                self.ctx.settings.work_dir,
            )
        except (ValueError, OSError) as err:
            raise RoundFailed(f"reduce failed: {err}") from err
        made = await self._server_step(parent, model_id, assignments)
        self._set_stage("committing")
        model = await self._commit_model(record, parent, made)
        warnings = [o.error for o in self._outcomes if o.error]
        note = f"; ignored: {'; '.join(warnings)}" if warnings else ""
        await self.events.record(
            "round_finished", f"round {record.index + 1} committed model {model.id}{note}", round_id=record.id
        )
        if self.session.config.validate_models:
            await self._validate(record, model, [a.participant for a in assignments])
        return RoundOutcome(record.id, model=model)

    async def _server_step(
        self, parent: Model, mean_id: str, assignments: Sequence[Assignment]
    ) -> RoundModel:
        """DP noise and the server optimizer's step on the reduced mean; the mean itself for fedavg."""
        config = self.session.config
        if not needs_step(config):
            return RoundModel(mean_id)
        self._set_stage("server step")
        updates = sum(len(o.result.clients) for o in self._outcomes if o.ok)
        rates = await asyncio.to_thread(self._sampling_rates, assignments)
        try:
            return await asyncio.to_thread(
                finish_model,
                self.ctx.repository,
                config,
                parent,
                mean_id,
                updates,
                rates,
                self.ctx.settings.work_dir,
            )
        except (ValueError, OSError) as err:
            await asyncio.to_thread(discard_models, self.ctx.repository, [mean_id])
            raise RoundFailed(f"server step failed: {err}") from err

    def _sampling_rates(self, assignments: Sequence[Assignment]) -> list[float]:
        """The DP sampling rates of the session's committed rounds, then this round's (selected /
        connected clients). Blocking."""
        connected = sum(a.participant.client_count for a in assignments)
        selected = sum(
            min(a.requested_clients or a.participant.client_count, a.participant.client_count)
            for a in assignments
        )
        finished = self.ctx.statestore.rounds.list(
            {"session_id": self.session.id, "status": RoundStatus.FINISHED.value}, sort_key="index"
        ).items
        earlier = [r.dp_sampling_rate for r in finished if r.dp_sampling_rate is not None]
        return [*earlier, min(selected / max(connected, 1), 1.0)]

    async def _start_rounds(
        self, record: Round, parent: Model, assignments: Sequence[Assignment]
    ) -> list[CombinerOutcome]:
        """StartRound on every chosen combiner at once, each bounded by round_timeout + margin."""
        self._set_stage("training")
        deadline = self.session.config.round_timeout + self.ctx.settings.round_margin
        calls = [
            stream_round(
                a.participant,
                round_config(self.session, record.id, record.index, parent.id, a),
                deadline,
                self._on_progress,
            )
            for a in assignments
        ]
        return list(await asyncio.gather(*calls))

    def _accepted_parts(self) -> list[PartialModel]:
        """The ok combiners' models; RoundFailed unless they hold at least min_clients updates."""
        ok = [o for o in self._outcomes if o.ok]
        if not ok:
            raise RoundFailed("; ".join(o.error or "" for o in self._outcomes))
        accepted = sum(len(o.result.clients) for o in ok)
        if accepted < self.session.config.min_clients:
            errors = "".join(f"; {o.error}" for o in self._outcomes if o.error)
            raise RoundFailed(
                f"{accepted} accepted update(s) across {len(ok)} combiner(s), "
                f"min_clients is {self.session.config.min_clients}{errors}"
            )
        return [PartialModel(o.combiner_id, o.result.model_id, o.result.num_examples) for o in ok]

    async def _commit_model(self, record: Round, parent: Model, made: RoundModel) -> Model:
        """Commit in a thread that a stop does not interrupt: a stop waits for it instead."""
        changes = {
            **self._results(),
            "status": RoundStatus.FINISHED,
            "optimizer_state_id": made.optimizer_state_id,
            "epsilon": made.epsilon,
            "dp_sampling_rate": made.dp_sampling_rate,
        }
        model_id = made.model_id
        try:
            return await self._shielded(
                commit_round,
                self.ctx.statestore,
                self.ctx.repository,
                model_id=model_id,
                parent=parent,
                session=self.session,
                round_id=record.id,
                index=record.index,
                round_changes=changes,
                fence=self.lease.fence,
                optimizer_state_id=made.optimizer_state_id,
            )
        except LeaseLost:  # the fence refused the commit: the reduced model is nobody's
            own = [model_id, *([made.optimizer_state_id] if made.optimizer_state_id else [])]
            await asyncio.to_thread(discard_models, self.ctx.repository, own)
            raise

    async def _shielded(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store write in a thread that a stop does not cut off: the thread would
        finish anyway, so the stop waits for it (in _record_stopped) instead of racing it."""
        write = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._writes.add(write)
        return await asyncio.shield(write)

    async def _validate(self, record: Round, model: Model, participants: Sequence[Participant]) -> None:
        self._set_stage("validating")
        await validate_model(self.ctx, self.session, record.id, model, participants, self._on_progress)

    def _results(self) -> dict[str, Any]:
        """combiners, clients and rejected of the Round record, from every combiner that answered."""
        combiners, clients, rejected = [], [], []
        for o in self._outcomes:
            result = o.result
            combiners.append(
                CombinerRoundResult(
                    combiner_id=o.combiner_id,
                    model_id=result.model_id if o.ok else None,
                    num_examples=result.num_examples if result else 0,
                    seconds=o.seconds,
                    error=o.error,
                )
            )
            if result is None:
                continue
            if o.ok:
                clients += [client_result(c, o.combiner_id) for c in result.clients]
            else:  # its aggregate is not in the model: its clients' updates count as rejected
                rejected += [
                    RejectedUpdate(
                        client_id=c.client_id,
                        reason=f"its combiner's round failed: {o.error}",
                        combiner_id=o.combiner_id,
                    )
                    for c in result.clients
                ]
            rejected += [
                RejectedUpdate(client_id=r.client_id, reason=r.reason, combiner_id=o.combiner_id)
                for r in result.rejected
            ]
        return {"combiners": combiners, "clients": clients, "rejected": rejected}

    async def _record_failure(self, record: Round, error: str) -> RoundOutcome:
        changes = {**self._results(), "status": RoundStatus.FAILED, "error": error, "finished_at": utcnow()}
        await asyncio.to_thread(self.ctx.statestore.rounds.update, record.id, changes)
        await self._discard_partials()
        await self.events.record(
            "round_failed", f"round {record.index + 1} failed: {error}", EventLevel.ERROR, round_id=record.id
        )
        return RoundOutcome(record.id, error=error)

    async def _record_stopped(self, record: Round) -> None:
        """After a stop: let writes in flight land, then fail the round unless it committed."""
        if self._writes:
            await asyncio.wait(self._writes, timeout=self.ctx.settings.stop_timeout)
        if self.lease.lost is not None and not self.lease.ended_elsewhere:
            await self._discard_partials()  # the session is another controller's: its records too
            return
        try:
            current = await asyncio.to_thread(self.ctx.statestore.rounds.get, record.id)
        except NotFound:
            return  # stopped before the round was stored
        if current.status != RoundStatus.RUNNING:
            return
        changes = {**self._results(), "status": RoundStatus.FAILED, "error": STOPPED, "finished_at": utcnow()}
        await asyncio.to_thread(self.ctx.statestore.rounds.update, record.id, changes)
        await self._discard_partials()
        stopped = f"round {record.index + 1} {STOPPED}"
        await self.events.record("round_failed", stopped, EventLevel.WARNING, round_id=record.id)

    async def _discard_partials(self) -> None:
        """Combiner models of a round that did not commit are not in any trail; free their bytes."""
        ids = [o.result.model_id for o in self._outcomes if o.ok and o.result.model_id]
        if ids:
            await asyncio.to_thread(discard_models, self.ctx.repository, ids)

    def _on_progress(self, combiner_id: str, progress: scaleout_pb2.RoundProgress) -> None:
        log.debug(
            "session %s round %s combiner %s: %s selected=%d received=%d rejected=%d %s",
            self.session.id,
            progress.round_id,
            combiner_id,
            progress.stage,
            progress.clients_selected,
            progress.updates_received,
            progress.updates_rejected,
            progress.message,
        )
        if self.live is not None:
            self.live.update(combiner_id, progress)

    def _set_stage(self, stage: str) -> None:
        if self.live is not None:
            self.live.stage = stage


async def validate_model(
    context: RoundContext,
    session: Session,
    round_id: str,
    model: Model,
    participants: Sequence[Participant],
    on_progress: ProgressHandler,
) -> None:
    """StartValidation of a committed model on the given combiners; failures are events only."""
    timeout = context.settings.validation_deadline(session.config.round_timeout)
    request = scaleout_pb2.ValidationConfig(
        session_id=session.id, round_id=round_id, model_id=model.id, timeout=timeout
    )
    deadline = timeout + context.settings.round_margin
    outcomes = await asyncio.gather(*(stream_round(p, request, deadline, on_progress) for p in participants))
    events = SessionEvents(context.statestore, session.id)
    for outcome in outcomes:
        if outcome.ok:
            stored = outcome.result.validations
            message = (
                f"{combiner_label(outcome.combiner_id)} stored {stored} validation(s) of model {model.id}"
            )
            event, level = "validation_finished", EventLevel.INFO
        else:
            message, event, level = (
                f"validation of model {model.id}: {outcome.error}",
                "validation_failed",
                EventLevel.WARNING,
            )
        await events.record(event, message, level, round_id=round_id, combiner_id=outcome.combiner_id)


def client_result(client: scaleout_pb2.ClientResult, combiner_id: str) -> ClientRoundResult:
    return ClientRoundResult(
        client_id=client.client_id,
        combiner_id=combiner_id,
        num_examples=client.num_examples,
        train_seconds=client.train_seconds,
        fold_seconds=client.fold_seconds,
        meta=_meta(client.meta),
        received_at=client.received_at.ToDatetime(UTC) if client.HasField("received_at") else None,
        delivery=client.delivery,
    )


def combiner_label(combiner_id: str) -> str:
    """How events name a combiner: "combiner eu-1", but a combiner named "combiner-1" is not said twice."""
    return combiner_id if combiner_id.startswith("combiner") else f"combiner {combiner_id}"


def _meta(text: str) -> dict[str, Any]:
    """The update's metadata as a dict; text that is not a JSON object is kept under "raw"."""
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": text}
