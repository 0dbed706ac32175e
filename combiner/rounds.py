"""The round handler: runs StartRound and StartValidation and routes client reports to them.

A round selects clients, publishes train tasks, folds each accepted update into the running FedAvg as
it arrives, and ends on the first of: every selected client reported; ``buffer_size`` updates
accepted; ``round_timeout`` (ok with at least ``min_clients`` updates, else failed). It waits on the
round's ``done`` event under ``asyncio.wait_for``: no polling. The aggregate goes to the model
repository under a new id before the result names it. Failures are results, not gRPC errors.
One training round runs at a time, and none while an async session runs (combiner/fedbuff.py, which
takes the updates of its own tasks); validations may overlap either.
"""

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

from scaleout.aggregation.dp import dp_options
from scaleout.aggregation.fedavg import FedAvg
from scaleout.aggregation.strategies import client_aggregator
from scaleout.aggregation.strategy import ClientAggregator
from scaleout.combiner.bounds import CLIPPED_SUFFIX, DP_CLIPPED_SUFFIX, bound_update, round_settings_error
from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.fedbuff import FedBuff
from scaleout.combiner.spool import SpooledUpdate, UpdateSpool, discard
from scaleout.combiner.staging import StagedModels
from scaleout.combiner.tasks import TRAIN, VALIDATE, make_task
from scaleout.combiner.training import TrainingRound
from scaleout.combiner.updates import (
    ACCEPTED,
    UpdateRejected,
    check_arrays,
    load_checked,
    parse_meta,
    rejected,
)
from scaleout.combiner.validations import ValidationRun
from scaleout.errors import InvalidId, NotFound
from scaleout.proto import scaleout_pb2 as pb
from scaleout.store import validate_id
from scaleout.store.entities import EventLevel, Validation, new_id
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

DEFAULT_MAX_NUM_EXAMPLES = 10**9  # per update; CombinerSettings.max_num_examples
# Updates up to this size are read once, checked into memory and folded from there, instead of read
# twice (check, then fold): ~1 ms of worker CPU per update of a 1 MB model, ~1 s a round at 1,000.
IN_MEMORY_BYTES = 16 * 1024 * 1024


class RoundHandler:
    """Rounds and validations of one combiner; every method runs on the event loop."""

    def __init__(
        self,
        name: str,
        registry: ClientRegistry,
        staged: StagedModels,
        spool: UpdateSpool,
        statestore: Statestore,
        repository: ModelRepository,
        work_dir: Path,
        max_num_examples: int = DEFAULT_MAX_NUM_EXAMPLES,
    ) -> None:
        self.name = name
        self._max_num_examples = max_num_examples
        self._registry = registry
        self._staged = staged
        self._spool = spool
        self._statestore = statestore
        self._repository = repository
        self._aggregates = work_dir / "aggregates"
        self._aggregates.mkdir(parents=True, exist_ok=True)
        for leftover in self._aggregates.iterdir():  # written by a combiner killed mid-round
            discard(leftover)
        self._round: TrainingRound | None = None
        self._validations: dict[str, ValidationRun] = {}  # correlation id -> its validation
        self._round_index: dict[str, int] = {}  # round id -> index, for validate task data
        self._helper = "numpyhelper"
        self._background: set[asyncio.Task[Any]] = set()
        registry.on_stream_closed(self._client_left)
        # Asynchronous sessions (RunAsync): one training run at a time, sync or async.
        self.fedbuff = FedBuff(
            name, registry, staged, spool, repository, work_dir, max_num_examples, self._running_round
        )

    @property
    def current_round(self) -> TrainingRound | None:
        return self._round

    def is_active(self, correlation_id: str) -> bool:
        """Whether a task still belongs to a running round or validation (stale tasks are not sent)."""
        current = self._round
        return (
            (current is not None and current.is_task(correlation_id))
            or correlation_id in self._validations
            or self.fedbuff.is_task(correlation_id)
        )

    def _running_round(self) -> str | None:
        """The sync round running here, for messages ("round R of session S"), or None."""
        current = self._round
        if current is None or current.closed:
            return None
        return f"round {current.round_id} of session {current.config.session_id}"

    # -- config checks (bad config is a gRPC INVALID_ARGUMENT, naming the field) -------------------

    @staticmethod
    def round_config_error(config: pb.RoundConfig) -> str | None:
        if not config.session_id or not config.round_id:
            return "RoundConfig.session_id and RoundConfig.round_id are required"
        try:
            validate_id(config.model_id)
        except InvalidId as error:
            return f"RoundConfig.model_id: {error}"
        if error := round_settings_error(config):
            return error
        if config.requested_clients and config.requested_clients < config.min_clients:
            return (
                f"RoundConfig.requested_clients ({config.requested_clients}) is below min_clients "
                f"({config.min_clients}): the round could never succeed"
            )
        try:
            settings = json.loads(config.client_settings) if config.client_settings else {}
        except ValueError as error:
            return f"RoundConfig.client_settings is not JSON: {error}"
        if not isinstance(settings, dict):
            return "RoundConfig.client_settings must be a JSON object"
        return None

    @staticmethod
    def validation_config_error(config: pb.ValidationConfig) -> str | None:
        try:
            validate_id(config.model_id)
        except InvalidId as error:
            return f"ValidationConfig.model_id: {error}"
        if not (config.timeout > 0 and math.isfinite(config.timeout)):
            return f"ValidationConfig.timeout must be a positive number of seconds, got {config.timeout}"
        return None

    # -- training rounds -----------------------------------------------------------------------

    async def start_round(self, config: pb.RoundConfig) -> AsyncIterator[pb.RoundEvent]:
        """Progress events, then exactly one result; cancelling the stream abandons the round."""
        if running := self._running_round() or self.fedbuff.running():
            busy = TrainingRound(config, self.name)
            yield pb.RoundEvent(
                result=busy.result(
                    False,
                    f"round {config.round_id}: combiner {self.name} is already running {running}; "
                    "one round at a time",
                )
            )
            return
        training = self._round = TrainingRound(config, self.name)
        runner = asyncio.create_task(self._run_round(training), name=f"round-{config.round_id}")
        undelivered = ""  # the aggregate of a result being sent: gRPC resumes us once it was sent
        try:
            async for event in _drain(training.events, runner):
                undelivered = event.result.model_id if event.WhichOneof("event") == "result" else ""
                yield event
                undelivered = ""
        finally:
            if undelivered:  # the controller went away before it got the result naming the aggregate
                self._spawn(self._delete_aggregate(training, undelivered))

    async def _run_round(self, training: TrainingRound) -> None:
        config = training.config
        log.info(
            "round %s (session %s) starting at combiner %s", config.round_id, config.session_id, self.name
        )
        try:
            result = await self._train(training)
        except Exception as error:  # a bug or a store outage: the round fails with the reason
            log.exception(
                "round %s (session %s) failed at combiner %s", config.round_id, config.session_id, self.name
            )
            result = training.result(False, f"round {config.round_id}: combiner {self.name} error: {error}")
        finally:
            training.closed = True
            if training.aggregator is not None:  # free the accumulator or kept updates now
                training.aggregator.close()
                training.aggregator = None
            dropped = self._spool.discard_all()
            if dropped:
                log.info(
                    "round %s: deleted %d upload(s) never claimed by an update", config.round_id, dropped
                )
        level = logging.INFO if result.ok else logging.WARNING
        log.log(
            level,
            "round %s (session %s) at combiner %s: ok=%s %s",
            config.round_id,
            config.session_id,
            self.name,
            result.ok,
            result.error or f"model {result.model_id}",
        )
        training.events.put_nowait(pb.RoundEvent(result=result))

    async def _train(self, training: TrainingRound) -> pb.RoundResult:
        config = training.config
        min_clients = max(config.min_clients, 1)
        if error := self._too_few_clients(config.round_id, min_clients):
            return training.result(False, error)
        try:
            specs = await self._staged.specs(config.model_id)
        except NotFound:
            return training.result(
                False,
                f"round {config.round_id}: global model {config.model_id} is not in the model repository",
            )
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            return training.result(
                False,
                f"round {config.round_id}: global model {config.model_id} is not a "
                f"readable npz file: {error}",
            )
        training.aggregator = client_aggregator(
            config.aggregator, dict(config.aggregator_kwargs), specs, self._aggregates
        )
        self._round_index[config.round_id] = config.round_index
        self._helper = config.helper or self._helper
        # Select after staging (which awaited): these clients have an open stream right now.
        if error := self._too_few_clients(config.round_id, min_clients):
            return training.result(False, error)
        self._publish_train_tasks(training)

        try:
            await asyncio.wait_for(training.done.wait(), config.round_timeout)
        except TimeoutError:
            async with training.fold_lock:  # let an update being folded finish; no fold after this
                training.closed = True
        if training.failure:
            return training.result(False, training.failure)
        accepted = len(training.clients)
        if accepted < min_clients:
            return training.result(False, self._shortfall(training, accepted, min_clients))
        model_id = await self._write_aggregate(training)
        return training.result(True, model_id=model_id)

    def _too_few_clients(self, round_id: str, min_clients: int) -> str | None:
        connected = len(self._registry.streaming())
        if connected >= min_clients:
            return None
        return (
            f"round {round_id}: {connected} client(s) connected to combiner {self.name}, "
            f"min_clients is {min_clients}"
        )

    def _publish_train_tasks(self, training: TrainingRound) -> None:
        config = training.config
        candidates = self._registry.streaming()
        count = min(config.requested_clients or len(candidates), len(candidates))
        data = {
            "round_index": config.round_index,
            "helper": config.helper or "numpyhelper",
            "client_settings": json.loads(config.client_settings) if config.client_settings else {},
        }
        for client_id in random.sample(candidates, count):
            task = make_task(TRAIN, client_id, config.model_id, config.session_id, config.round_id, data)
            training.correlation_of[client_id] = task.correlation_id
            training.client_of[task.correlation_id] = client_id
            training.published_at[client_id] = time.monotonic()
            self._registry.publish(client_id, task)
        training.progress("published", message=f"train tasks published to {count} client(s)")

    def _client_left(self, client_id: str) -> None:
        """A task stream closed: a client that has not answered leaves the running round and validations."""
        training = self._round
        if training is not None:
            training.leave(client_id)
        for correlation_id, run in list(self._validations.items()):
            if run.client_of.get(correlation_id) == client_id and client_id not in run.reporting:
                run.reporting.add(client_id)
                run.settle(client_id, f"client {client_id} left before validating: its task stream closed")

    def _shortfall(self, training: TrainingRound, accepted: int, min_clients: int) -> str:
        config = training.config
        if training.gone and training.done.is_set():
            return (
                f"round {config.round_id}: {accepted} update(s) accepted, min_clients is {min_clients}; "
                f"selected client(s) gone before reporting: {', '.join(training.gone)}"
            )
        if training.done.is_set():
            return (
                f"round {config.round_id}: all {len(training.correlation_of)} selected client(s) reported "
                f"but {accepted} update(s) were accepted, min_clients is {min_clients}"
            )
        return (
            f"round {config.round_id}: {accepted} update(s) by the timeout of {config.round_timeout:g} s, "
            f"min_clients is {min_clients}"
        )

    async def _write_aggregate(self, training: TrainingRound) -> str:
        """Average, write to the model repository under a new id, keep the file as a staged model.

        The write runs to its end even when the round is abandoned meanwhile (its controller went away,
        so the worker thread could not be stopped anyway); the aggregate no result will name is then
        deleted, so an abandoned round leaves no model in the repository.
        """
        assert training.aggregator is not None
        model_id = new_id()
        write = self._spawn(self._store_aggregate(training.aggregator, model_id))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            write.add_done_callback(lambda _: self._spawn(self._delete_aggregate(training, model_id)))
            raise
        return model_id

    async def _store_aggregate(self, aggregator: ClientAggregator, model_id: str) -> None:
        path = self._aggregates / f"{model_id}.npz"
        try:
            await asyncio.to_thread(aggregator.write, path)
            await asyncio.to_thread(self._repository.put_model, model_id, path)
            self._staged.adopt(model_id, path)
        finally:
            discard(path)  # a no-op once adopted

    async def _delete_aggregate(self, training: TrainingRound, model_id: str) -> None:
        """Delete the aggregate of a round whose result never reached its controller."""
        try:
            await asyncio.to_thread(self._repository.delete_model, model_id)
        except NotFound:
            return
        except Exception:  # a store outage: the repository sweep removes the unnamed model later
            log.exception(
                "round %s: deleting its undelivered aggregate %s failed", training.round_id, model_id
            )
            return
        log.info(
            "round %s was abandoned by its controller: deleted its aggregate %s from the model repository",
            training.round_id,
            model_id,
        )

    # -- client reports ------------------------------------------------------------------------

    async def receive_update(self, update: pb.ModelUpdate) -> str:
        """Check an update against the running round and fold it in; "accepted" or "rejected: why"."""
        if self.fedbuff.owns(update):
            return await self.fedbuff.receive_update(update)
        update_id, client_id = update.model_update_id, update.client_id
        spooled = self._spool.claim(update_id, client_id) if update_id else None
        try:
            training, reason, counts = self._admit(update)
            if reason is None and training is not None:
                try:
                    meta, count = parse_meta(update.meta, self._max_num_examples)
                    if spooled is None:
                        raise UpdateRejected(
                            f"model_update_id {update_id!r} is unknown: no upload with that id from client "
                            f"{client_id} (Upload the update with call metadata model-id and client-id first)"
                        )
                except UpdateRejected as error:
                    reason = str(error)
                else:
                    fold = self._spawn(self._check_and_fold(training, update.client_id, spooled, meta, count))
                    spooled = (
                        None  # the fold owns the file and records the outcome, even if this RPC is cancelled
                    )
                    return await asyncio.shield(fold)
        finally:
            if spooled is not None:
                self._spool.release(spooled)
        if training is not None:
            training.reject(update.client_id, reason, counts=counts)
        log.warning(
            "update from client %s for round %s rejected: %s", update.client_id, update.round_id, reason
        )
        return rejected(reason)

    def _admit(self, update: pb.ModelUpdate) -> tuple[TrainingRound | None, str | None, bool]:
        """The round an update belongs to, or why it has none; marks the client as reporting."""
        training = self._round
        if training is None or training.closed:
            return (
                None,
                (
                    f"update for round {update.round_id} arrived while no round is running at combiner "
                    f"{self.name} (stale update); not averaged"
                ),
                False,
            )
        config = training.config
        if update.round_id != config.round_id or update.session_id != config.session_id:
            return (
                training,
                (
                    f"update for round {update.round_id} (session {update.session_id}) arrived while "
                    f"round {config.round_id} (session {config.session_id}) is running (stale update); "
                    "not averaged"
                ),
                False,
            )
        expected = training.correlation_of.get(update.client_id)
        if expected is None:
            return training, f"client {update.client_id} was not selected for round {config.round_id}", False
        if update.client_id in training.gone:
            return training, f"client {update.client_id} left round {config.round_id}; not averaged", False
        if update.client_id in training.reporting:
            return (
                training,
                (
                    f"duplicate update from client {update.client_id} for round {config.round_id}; "
                    "only its first report counts"
                ),
                False,
            )
        if update.correlation_id != expected:
            return (
                training,
                (
                    f"update answers task {update.correlation_id!r}, not the task {expected} "
                    f"published to client {update.client_id} for round {config.round_id}"
                ),
                False,
            )
        training.arrive(update.client_id)
        if update.model_id != config.model_id:
            return (
                training,
                (
                    f"update was trained from model {update.model_id!r}, round {config.round_id} "
                    f"trains model {config.model_id}"
                ),
                True,
            )
        return training, None, True

    async def _check_and_fold(
        self, training: TrainingRound, client_id: str, spooled: SpooledUpdate, meta: dict, count: int
    ) -> str:
        """Check the update's arrays, then fold it in under the round's lock; record either outcome."""
        try:
            aggregator = training.aggregator
            if aggregator is None or training.closed:
                raise UpdateRejected(f"update arrived after round {training.round_id} ended; not averaged")
            # A plain FedAvg update small enough to hold is read once: checked into memory, folded from
            # there. Others are checked, maybe bounded or clipped to a copy, and folded from their file.
            fedavg = self._in_memory(training, spooled)
            async with training.check_slot:
                if fedavg is not None:
                    arrays = await asyncio.to_thread(load_checked, spooled.source(), fedavg.specs)
                    fold = functools.partial(fedavg.fold_slices, arrays)
                else:
                    spooled = await self._spool.on_disk(spooled)
                    await asyncio.to_thread(check_arrays, spooled.path, aggregator.specs)
                    path = await self._within_norm_bound(training, spooled.path)
                    fold = functools.partial(aggregator.fold, await self._dp_clipped(training, path))
            # DP averages unweighted: a client's num_examples must not scale its contribution.
            weight = 1 if dp_options(training.config.aggregator_kwargs) else count
            async with training.fold_lock:
                if training.closed:
                    raise UpdateRejected(
                        f"update arrived after round {training.round_id} ended; not averaged"
                    )
                started = time.monotonic()
                try:
                    await asyncio.to_thread(fold, weight)
                except Exception as error:  # the accumulator may hold part of this update: fail the round
                    training.fail(
                        f"round {training.round_id}: folding the update of client {client_id} "
                        f"failed midway ({error}); the average is unusable"
                    )
                    raise UpdateRejected(f"folding the update failed: {error}") from error
                training.accept(client_id, count, meta, time.monotonic() - started)
                return ACCEPTED
        except UpdateRejected as error:
            training.reject(client_id, str(error), counts=True)
            log.warning(
                "update from client %s for round %s rejected: %s", client_id, training.round_id, error
            )
            return rejected(str(error))
        finally:
            self._spool.release(spooled)
            discard(spooled.path.with_name(spooled.path.stem + CLIPPED_SUFFIX))
            discard(spooled.path.with_name(spooled.path.stem + DP_CLIPPED_SUFFIX))

    @staticmethod
    def _in_memory(training: TrainingRound, spooled: SpooledUpdate) -> FedAvg | None:
        """The round's FedAvg when this update may be checked into memory and folded from there: no
        norm bound or DP clipping reads it again, and it is at most IN_MEMORY_BYTES (with one update
        checked while another folds, two such updates are held at most)."""
        aggregator, config = training.aggregator, training.config
        if not isinstance(aggregator, FedAvg) or spooled.size > IN_MEMORY_BYTES:
            return None
        if config.max_update_norm or dp_options(config.aggregator_kwargs) is not None:
            return None
        return aggregator

    async def _within_norm_bound(self, training: TrainingRound, update: Path) -> Path:
        """The update, or its clipped copy, when the session bounds update norms; else UpdateRejected."""
        config = training.config
        if not config.max_update_norm or training.aggregator is None:
            return update
        global_model = await self._staged.stage(config.model_id)
        return await asyncio.to_thread(
            bound_update,
            update,
            global_model,
            training.aggregator.specs,
            config.max_update_norm,
            config.clip_updates,
        )

    async def _dp_clipped(self, training: TrainingRound, update: Path) -> Path:
        """In DP mode, the update with its delta clipped to dp_clip_norm (a copy when it was over)."""
        options = dp_options(training.config.aggregator_kwargs)
        if options is None or training.aggregator is None:
            return update
        global_model = await self._staged.stage(training.config.model_id)
        stem = update.name.split(".")[0]
        return await asyncio.to_thread(
            bound_update,
            update,
            global_model,
            training.aggregator.specs,
            options.clip_norm,
            True,
            update.with_name(stem + DP_CLIPPED_SUFFIX),
        )

    async def receive_status(self, status: pb.Status) -> str:
        """A failed task counts as its client's report, with the error as the rejection reason."""
        try:
            info = json.loads(status.status) if status.status else {}
        except ValueError:
            info = {}
        if not isinstance(info, dict) or not (info.get("error") or status.log_level == pb.ERROR):
            log.info("status from client %s: %s", status.client_id, status.status[:500])
            return "status received"
        correlation_id = str(info.get("correlation_id", ""))
        reason = f"task failed on client {status.client_id}: {info.get('error') or status.status}"
        if self.fedbuff.is_task(correlation_id):
            return self.fedbuff.task_failed(status.client_id, correlation_id, reason)
        training = self._round
        if training is not None and training.is_task(correlation_id):
            if training.client_of.get(correlation_id) != status.client_id:
                return rejected(f"task {correlation_id} was not published to client {status.client_id}")
            if status.client_id in training.reporting:
                return rejected(f"client {status.client_id} already reported for round {training.round_id}")
            training.arrive(status.client_id)
            training.reject(status.client_id, reason, counts=True)
            log.warning("round %s: %s", training.round_id, reason)
            ids = {"session_id": training.config.session_id, "round_id": training.round_id}
            self._registry.record_event(status.client_id, "task_failed", reason, EventLevel.WARNING, **ids)
            return "failure recorded"
        run = self._validations.get(correlation_id)
        if run is not None and run.client_of.get(correlation_id) == status.client_id:
            if status.client_id not in run.reporting:
                run.reporting.add(status.client_id)
                run.settle(status.client_id, reason)
            return "failure recorded"
        log.warning("failure of an unknown or finished task %r: %s", correlation_id, reason)
        return "status received"

    # -- validations ---------------------------------------------------------------------------

    async def start_validation(self, config: pb.ValidationConfig) -> AsyncIterator[pb.RoundEvent]:
        run = ValidationRun(config)
        runner = asyncio.create_task(self._run_validation(run), name=f"validation-{config.model_id}")
        async for event in _drain(run.events, runner):
            yield event

    async def _run_validation(self, run: ValidationRun) -> None:
        try:
            result = await self._validate(run)
        except Exception as error:
            log.exception(
                "validation of model %s (round %s) failed", run.config.model_id, run.config.round_id
            )
            result = run.result(False, f"validation of model {run.config.model_id}: combiner error: {error}")
        finally:
            for correlation_id in run.client_of:
                self._validations.pop(correlation_id, None)
        run.events.put_nowait(pb.RoundEvent(result=result))

    async def _validate(self, run: ValidationRun) -> pb.RoundResult:
        config = run.config
        try:
            await self._staged.stage(config.model_id)
        except NotFound:
            return run.result(False, f"validation: model {config.model_id} is not in the model repository")
        streaming = set(self._registry.streaming())
        wanted = list(config.client_ids) or sorted(streaming)
        for client_id in wanted:
            if client_id not in streaming:
                run.rejected.append(pb.RejectedUpdate(client_id=client_id, reason="client is not connected"))
        clients = [c for c in wanted if c in streaming]
        if not clients:
            return run.result(
                False, f"validation of model {config.model_id}: no client connected to combiner {self.name}"
            )
        data = {"round_index": self._round_index.get(config.round_id, 0), "helper": self._helper}
        for client_id in clients:
            task = make_task(VALIDATE, client_id, config.model_id, config.session_id, config.round_id, data)
            run.client_of[task.correlation_id] = client_id
            self._validations[task.correlation_id] = run
            self._registry.publish(client_id, task)
        run.progress("published", message=f"validate tasks published to {len(clients)} client(s)")
        try:
            await asyncio.wait_for(run.done.wait(), config.timeout)
        except TimeoutError:
            for client_id in set(clients) - run.reported:
                run.rejected.append(
                    pb.RejectedUpdate(
                        client_id=client_id, reason=f"no validation by the timeout of {config.timeout:g} s"
                    )
                )
        return run.result()

    async def receive_validation(self, validation: pb.ModelValidation) -> str:
        """Store a client's metrics for the validation its correlation id names."""
        run = self._validations.get(validation.correlation_id)
        client_id = validation.client_id
        if run is None:
            return rejected(
                f"validation answers unknown or finished task {validation.correlation_id!r}; not stored"
            )
        if run.client_of.get(validation.correlation_id) != client_id:
            return rejected(f"task {validation.correlation_id} was not published to client {client_id}")
        if client_id in run.reporting:
            return rejected(f"duplicate validation from client {client_id}; only its first report counts")
        run.reporting.add(client_id)
        try:
            metrics = json.loads(validation.data)
        except ValueError:
            metrics = None
        if not isinstance(metrics, dict):
            reason = "validation data is not a JSON object; send the validate entry point's output"
            run.settle(client_id, reason)
            return rejected(reason)
        record = Validation(
            model_id=run.config.model_id,
            client_id=client_id,
            session_id=run.config.session_id or validation.session_id or None,
            round_id=run.config.round_id or None,
            metrics=metrics,
        )
        try:
            await self._shielded(asyncio.to_thread(self._statestore.validations.add, record))
        except Exception as error:
            log.exception("storing the validation of client %s failed", client_id)
            run.settle(client_id, f"storing the validation failed: {error}")
            return rejected(f"storing the validation failed: {error}")
        run.settle(client_id)
        return ACCEPTED

    # -- helpers -------------------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _shielded(self, coroutine: Awaitable[Any]) -> Any:
        return await asyncio.shield(self._spawn(coroutine))


async def _drain(
    events: asyncio.Queue[pb.RoundEvent], runner: asyncio.Task[None]
) -> AsyncIterator[pb.RoundEvent]:
    """Yield a run's events up to and including its result; cancel the run if the caller goes away."""
    try:
        while True:
            event = await events.get()  # bounded: the runner always ends with a result (round_timeout)
            yield event
            if event.WhichOneof("event") == "result":
                return
    finally:
        if not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
