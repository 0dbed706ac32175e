"""Asynchronous training (FedBuff, Nguyen et al. AISTATS 2022) at one combiner: Control.RunAsync.

The controller opens RunAsync and sends commands; the combiner streams events back.

Commands:
- ``start`` (AsyncConfig) first, exactly once. Anything else first, or a second start, ends the call
  with INVALID_ARGUMENT naming it; so does a config error (model id, staleness, bounds, task_timeout,
  client_settings not a JSON object), naming the field. A start model not in the model repository is
  NOT_FOUND. While a sync round or another session's RunAsync runs at this combiner,
  FAILED_PRECONDITION names it (and StartRound is refused while RunAsync runs); a new RunAsync of the
  same session supersedes the running one (which ends ABORTED), so a restarted controller resumes at
  once. max_staleness -1 means no bound (0 accepts only updates of the current version).
- ``version`` (NewVersion): the controller committed a version. It is staged, and tasks published from
  then on train on it (a progress event of stage "version" says when). Its number must be above the
  current one (else INVALID_ARGUMENT).
- ``flush`` (FlushBuffer): the buffer so far is written as the partial model
  sum(n s delta) / sum(n), in the model's dtypes, to the model repository under a new id, and answered
  with BufferFlushed{version (echoed), model_id, num_examples = sum(n), updates}. An empty buffer
  answers model_id "" and num_examples 0. An update folds into the buffer of the first flush after its
  fold completes: updates still being checked when the flush arrives go to the next buffer (folds wait
  while the partial is written to local disk). The partial is the controller's from then on: it
  deletes it once reduced.
- The controller ending its stream (or the call being cancelled) ends the run: no new tasks, the
  buffer is dropped, a partial written but not yet delivered is deleted from the model repository, and
  a later update of the run's tasks is rejected as stale, as a stale sync task's is.

Tasks: up to ``max_concurrency`` (0: every one) of the combiner's clients with an open task stream hold
a train task at once, each on the latest version the combiner was told (start's, then each
``version``'s). A slot frees when its update is accepted or rejected, its client reports the task
failed, its client's stream closes, or ``task_timeout`` seconds pass without its update; the slot goes
to the client idle longest (the same client again when it is the only one idle). Clients that connect
later get tasks as slots free. Each task has a round id of its own ("async-v<version>-..."), so a new
task supersedes a hung one at the client. Validations (StartValidation) may overlap the run.

Updates: tau = the combiner's current version - the task's base version, taken when the update folds.
tau > max_staleness (when >= 0) rejects it ("stale update: trained on version 3, the current version is
9 and max_staleness is 5"); else it is checked as in a sync round (num_examples, arrays, max_update_norm
or clipping against its base version) and its delta u - x_base folds into the buffer with weight
n * s(tau) (aggregation/deltabuffer.py). Each outcome is an event: ``folded`` (FoldedUpdate with its
ClientResult, base version, staleness and weight) or ``rejected``. A late update of a timed-out task is
rejected, naming the timeout.

Memory: the buffer is one accumulator of the model's size; a version stays held in staging (on disk)
only while it is the current one or a task in flight trains from it, beyond the staging area's few
newest models. A task that ends without its update takes its client's unclaimed uploads with it.
Progress events (tasks published, timed out, clients left) come at most once a second per kind.
"""

import asyncio
import json
import logging
import math
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from scaleout import round_rules as rules
from scaleout.aggregation.deltabuffer import DeltaBuffer, staleness_weight
from scaleout.aggregation.npzfile import ArraySpec, read_specs
from scaleout.combiner.asyncrun import AsyncRun, AsyncRunError, AsyncTask
from scaleout.combiner.bounds import CLIPPED_SUFFIX, bound_update
from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.spool import SpooledUpdate, UpdateSpool, discard
from scaleout.combiner.staging import StagedModels
from scaleout.combiner.tasks import TRAIN, make_task
from scaleout.combiner.updates import ACCEPTED, UpdateRejected, check_arrays, parse_meta, rejected
from scaleout.errors import InvalidId, NotFound
from scaleout.logs import set_log_ids
from scaleout.proto import scaleout_pb2 as pb
from scaleout.store import validate_id
from scaleout.store.entities import new_id
from scaleout.store.repository import ModelRepository

log = logging.getLogger(__name__)

ASYNC_ROUND_PREFIX = "async-v"  # the round id of every async task starts so: its late updates come here
START_TIMEOUT = 60.0  # seconds RunAsync waits for its first command

_INVALID = grpc.StatusCode.INVALID_ARGUMENT

TASKS_PUBLISHED = Counter(
    "scaleout_combiner_async_tasks_published", "Train tasks of asynchronous sessions published to clients."
)
TASK_TIMEOUTS = Counter(
    "scaleout_combiner_async_task_timeouts",
    "Train tasks of asynchronous sessions whose update did not arrive within task_timeout.",
)
TASKS_IN_FLIGHT = Gauge(
    "scaleout_combiner_async_tasks_in_flight", "Train tasks of the running asynchronous session in flight."
)
STALENESS = Histogram(
    "scaleout_combiner_async_staleness",
    "Staleness (versions committed since its base version) of each update folded into an async buffer.",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100),
)
FLUSHES = Counter(
    "scaleout_combiner_async_flushes", "Async buffers flushed as partial models, by content.", ["buffer"]
)


def async_config_error(config: pb.AsyncConfig) -> str | None:
    """Why the combiner will not run this AsyncConfig, naming the field; or None."""
    if not config.session_id:
        return "AsyncConfig.session_id is required"
    try:
        validate_id(config.model_id)
    except InvalidId as error:
        return f"AsyncConfig.model_id: {error}"
    checks = [
        ("max_concurrency", rules.count_error(config.max_concurrency, 0)),
        ("staleness", rules.name_error(config.staleness, rules.STALENESS, "staleness function")),
        ("max_staleness", rules.count_error(config.max_staleness, -1, rules.MAX_ROUNDS)),
        ("task_timeout", rules.timeout_error(config.task_timeout)),
    ]
    exponent = config.staleness_exponent
    if not (math.isfinite(exponent) and 0 <= exponent <= rules.MAX_STALENESS_EXPONENT):
        checks.append(
            ("staleness_exponent", f"must be >= 0 and <= {rules.MAX_STALENESS_EXPONENT:g}, got {exponent!r}")
        )
    if config.helper:
        checks.append(("helper", rules.name_error(config.helper, rules.HELPERS, "helper")))
    if config.max_update_norm:
        checks.append(("max_update_norm", rules.update_norm_error(config.max_update_norm)))
    for name, error in checks:
        if error:
            return f"AsyncConfig.{name} {error}"
    return _client_settings_error(config.client_settings)


def _client_settings_error(text: str) -> str | None:
    if len(text) > rules.MAX_CLIENT_SETTINGS_BYTES:
        return (
            f"AsyncConfig.client_settings is {len(text)} bytes of JSON, more than "
            f"{rules.MAX_CLIENT_SETTINGS_BYTES}; it goes with every train task: pass data by reference"
        )
    try:
        settings = json.loads(text) if text else {}
    except ValueError as error:
        return f"AsyncConfig.client_settings is not JSON: {error}"
    if not isinstance(settings, dict):
        return "AsyncConfig.client_settings must be a JSON object"
    return None


async def _start_command(commands: AsyncIterator[pb.AsyncCommand]) -> pb.AsyncConfig:
    """The AsyncConfig of the first command; AsyncRunError when the first command is anything else."""
    try:
        first = await asyncio.wait_for(anext(commands), START_TIMEOUT)
    except StopAsyncIteration:
        raise AsyncRunError(
            _INVALID, "RunAsync ended before its first command: send start (AsyncConfig) first"
        ) from None
    except TimeoutError:
        raise AsyncRunError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"no command within {START_TIMEOUT:g} s of opening RunAsync: send start (AsyncConfig) first",
        ) from None
    kind = first.WhichOneof("command")
    if kind != "start":
        raise AsyncRunError(
            _INVALID, f"the first AsyncCommand must be start (AsyncConfig), got {kind or 'an empty command'}"
        )
    return first.start


class FedBuff:
    """The asynchronous runs of one combiner (one at a time); every method runs on the event loop."""

    def __init__(
        self,
        name: str,
        registry: ClientRegistry,
        staged: StagedModels,
        spool: UpdateSpool,
        repository: ModelRepository,
        work_dir: Path,
        max_num_examples: int,
        sync_round: Callable[[], str | None],
    ) -> None:
        """``sync_round`` names the sync round running at this combiner, or returns None."""
        self.name = name
        self._registry = registry
        self._staged = staged
        self._spool = spool
        self._repository = repository
        self._max_num_examples = max_num_examples
        self._sync_round = sync_round
        self._partials = work_dir / "partials"
        self._partials.mkdir(parents=True, exist_ok=True)
        for leftover in self._partials.iterdir():  # written by a combiner killed mid-flush
            discard(leftover)
        self._run: AsyncRun | None = None
        self._background: set[asyncio.Task[Any]] = set()
        registry.on_stream_opened(self._stream_opened)
        registry.on_stream_closed(self._stream_closed)

    @property
    def current_run(self) -> AsyncRun | None:
        return self._run

    def running(self) -> str | None:
        """What runs, for messages ("async session S"), or None."""
        run = self._run
        return f"async session {run.session_id}" if run is not None and not run.closed else None

    def is_task(self, correlation_id: str) -> bool:
        """Whether a train task is in flight in the running session (stale ones are not sent)."""
        run = self._run
        return run is not None and not run.closed and correlation_id in run.tasks

    def owns(self, update: pb.ModelUpdate) -> bool:
        """Whether an update answers an async task: one in flight, or one that ended (stale)."""
        return self.is_task(update.correlation_id) or update.round_id.startswith(ASYNC_ROUND_PREFIX)

    def note_polled(self, correlation_id: str) -> None:
        """The task went out in a poll answer (the official client): its result says "poll"."""
        run = self._run
        task = run.tasks.get(correlation_id) if run is not None else None
        if task is not None:
            task.polled = True

    # -- the RPC -------------------------------------------------------------------------------

    async def run(self, commands: AsyncIterator[pb.AsyncCommand]) -> AsyncIterator[pb.AsyncEvent]:
        """RunAsync's events until the controller ends its stream; AsyncRunError ends it with a status."""
        commands = aiter(commands)
        config = await _start_command(commands)
        if error := async_config_error(config):
            raise AsyncRunError(_INVALID, error)
        self._refuse_if_busy(config)
        run = self._run = AsyncRun(config, version=config.version, model_id=config.model_id)
        set_log_ids(session_id=config.session_id)
        reader: asyncio.Task[None] | None = None
        undelivered = ""  # the partial of a BufferFlushed being sent: gRPC resumes us once it was sent
        try:
            await self._begin(run)
            reader = asyncio.create_task(self._read(run, commands), name=f"async-{config.session_id}")
            while (event := await run.events.get()) is not None:
                if isinstance(event, AsyncRunError):
                    raise event
                undelivered = event.flushed.model_id if event.WhichOneof("event") == "flushed" else ""
                yield event
                undelivered = ""
        finally:
            if reader is not None:
                reader.cancel()
            self._end(run, undelivered)

    def _refuse_if_busy(self, config: pb.AsyncConfig) -> None:
        """FAILED_PRECONDITION while a sync round or another session's run runs here; a newer RunAsync of
        the same session supersedes the older (its controller restarted or lost the stream)."""
        running = self._run
        if running is not None and not running.closed and running.session_id == config.session_id:
            log.warning(
                "async session %s: a new RunAsync supersedes the running one at combiner %s",
                config.session_id,
                self.name,
            )
            running.fail(
                AsyncRunError(
                    grpc.StatusCode.ABORTED,
                    f"superseded by a newer RunAsync of async session {config.session_id} at combiner "
                    f"{self.name}",
                )
            )
            self._close(running)
            return
        if busy := self._sync_round() or self.running():
            raise AsyncRunError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"combiner {self.name} is running {busy}; async session {config.session_id} can start "
                "once it ended (one training run at a time)",
            )

    async def _begin(self, run: AsyncRun) -> None:
        """Stage the start model, then publish the first tasks."""
        try:
            path = await self._staged.stage(run.model_id)
            run.specs = await asyncio.to_thread(read_specs, path)
        except NotFound:
            raise AsyncRunError(
                grpc.StatusCode.NOT_FOUND,
                f"AsyncConfig.model_id {run.model_id} is not in the model repository",
            ) from None
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise AsyncRunError(
                _INVALID, f"AsyncConfig.model_id {run.model_id} is not a readable npz model: {error}"
            ) from None
        if run.closed:  # superseded while staging: its events say so
            return
        self._hold(run, run.version, run.model_id)
        run.buffer = DeltaBuffer(run.specs)
        run.ready = True
        run.idle.update(dict.fromkeys(self._registry.streaming()))
        log.info(
            "async session %s started at combiner %s on version %d (model %s)",
            run.session_id,
            self.name,
            run.version,
            run.model_id,
        )
        self._fill(run)

    async def _read(self, run: AsyncRun, commands: AsyncIterator[pb.AsyncCommand]) -> None:
        """Run the controller's commands in order; None on the event queue once it ended its stream."""
        try:
            async for command in commands:
                kind = command.WhichOneof("command")
                if kind == "flush":
                    await self._flush(run, command.flush)
                elif kind == "version":
                    await self._new_version(run, command.version)
                elif kind == "start":
                    raise AsyncRunError(
                        _INVALID,
                        f"AsyncCommand.start sent again while async session {run.session_id} runs: start "
                        "is the first command only, once per RunAsync",
                    )
                else:
                    raise AsyncRunError(_INVALID, "AsyncCommand holds no command: send flush or version")
        except AsyncRunError as error:
            run.fail(error)
            return
        except Exception as error:  # the stream broke, or the model repository failed a flush
            log.exception("async session %s at combiner %s failed", run.session_id, self.name)
            run.fail(
                AsyncRunError(
                    grpc.StatusCode.INTERNAL,
                    f"async session {run.session_id} at combiner {self.name} failed: {error}",
                )
            )
            return
        run.events.put_nowait(None)

    def _end(self, run: AsyncRun, undelivered: str) -> None:
        """The RPC ended: close the run and delete the partials its controller never got."""
        superseded = self._run is not run
        self._close(run)
        if not superseded:
            self._run = None
            TASKS_IN_FLIGHT.set(0)
            if dropped := self._spool.discard_all():
                log.info("async session %s: deleted %d upload(s) never claimed", run.session_id, dropped)
        partials = [undelivered] if undelivered else []
        while not run.events.empty():
            event = run.events.get_nowait()
            if isinstance(event, pb.AsyncEvent) and event.flushed.model_id:
                partials.append(event.flushed.model_id)
        for model_id in partials:
            self._spawn(self._delete_partial(run, model_id))
        log.info(
            "async session %s ended at combiner %s: %d update(s) folded, %d rejected",
            run.session_id,
            self.name,
            run.updates_folded,
            run.updates_rejected,
        )

    def _close(self, run: AsyncRun) -> None:
        """No more tasks or folds; the versions it held may be evicted. Idempotent."""
        if run.closed:
            return
        run.close()
        for model_id in run.versions.values():
            self._staged.release(model_id)
        run.versions.clear()

    # -- commands ------------------------------------------------------------------------------

    async def _flush(self, run: AsyncRun, command: pb.FlushBuffer) -> None:
        """Answer with the buffer's partial model; updates folded from now on go to a fresh buffer.

        Folds wait while the partial is written to local disk (a fraction of a second per 100 MB), so
        the combiner holds one buffer at a time, not two; the upload to the repository does not hold them.
        """
        async with run.fold_lock:
            buffer, updates = run.buffer, run.folded
            run.buffer, run.folded = DeltaBuffer(run.specs), []
            flushed = pb.BufferFlushed(version=command.version, updates=updates)
            path = None
            if buffer is not None and buffer.count:
                flushed.num_examples = buffer.num_examples
                path = await self._write_partial(buffer)
            buffer = None  # freed before the next fold touches the fresh buffer
        if path is not None:
            flushed.model_id = await self._store_partial(run, path)
        FLUSHES.labels("updates" if flushed.model_id else "empty").inc()
        if run.closed:  # superseded while writing: no stream will deliver it
            if flushed.model_id:
                self._spawn(self._delete_partial(run, flushed.model_id))
            return
        run.events.put_nowait(pb.AsyncEvent(flushed=flushed))

    async def _write_partial(self, buffer: DeltaBuffer) -> Path:
        """The partial model written to a file under a new id (its stem)."""
        path = self._partials / f"{new_id()}.npz"
        write = self._spawn(asyncio.to_thread(buffer.write, path))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:  # the run ended: the file goes once the thread wrote it
            write.add_done_callback(lambda _: discard(path))
            raise
        except BaseException:
            discard(path)
            raise
        return path

    async def _store_partial(self, run: AsyncRun, path: Path) -> str:
        """Move the partial into the model repository; deleted there if the run ends meanwhile."""
        model_id = path.stem
        put = self._spawn(self._put_partial(model_id, path))
        try:
            await asyncio.shield(put)
        except asyncio.CancelledError:
            put.add_done_callback(lambda _: self._spawn(self._delete_partial(run, model_id)))
            raise
        return model_id

    async def _put_partial(self, model_id: str, path: Path) -> None:
        try:
            await asyncio.to_thread(self._repository.put_model, model_id, path)
        finally:
            discard(path)

    async def _delete_partial(self, run: AsyncRun, model_id: str) -> None:
        try:
            await asyncio.to_thread(self._repository.delete_model, model_id)
        except NotFound:
            return
        except Exception:  # a store outage: the repository sweep removes the unnamed model later
            log.exception(
                "async session %s: deleting its undelivered partial %s failed", run.session_id, model_id
            )
            return
        log.info(
            "async session %s ended before its partial %s was delivered: deleted it from the repository",
            run.session_id,
            model_id,
        )

    async def _new_version(self, run: AsyncRun, command: pb.NewVersion) -> None:
        """Stage the committed version; tasks published from now on train on it."""
        version, model_id = command.version, command.model_id
        if version <= run.version:
            raise AsyncRunError(
                _INVALID,
                f"NewVersion.version {version} is not above the current version {run.version} of async "
                f"session {run.session_id}",
            )
        try:
            validate_id(model_id)
        except InvalidId as error:
            raise AsyncRunError(_INVALID, f"NewVersion.model_id: {error}") from None
        try:
            specs = await self._staged.specs(model_id)
        except NotFound:
            raise AsyncRunError(
                grpc.StatusCode.NOT_FOUND,
                f"NewVersion.model_id {model_id} (version {version}) is not in the model repository",
            ) from None
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise AsyncRunError(
                _INVALID,
                f"NewVersion.model_id {model_id} (version {version}) is not a readable npz model: {error}",
            ) from None
        if specs != run.specs:
            raise AsyncRunError(
                _INVALID,
                f"NewVersion.model_id {model_id} (version {version}) does not hold the arrays of the "
                f"session's model: {_describe(specs)} instead of {_describe(run.specs)}",
            )
        if run.closed:
            return
        self._hold(run, version, model_id)
        previous, run.version, run.model_id = run.version, version, model_id
        self._release_unreferenced(run, previous)
        run.progress("version", f"version {version} (model {model_id}) staged: new tasks train on it")
        log.info(
            "async session %s: version %d (model %s) at combiner %s",
            run.session_id,
            version,
            model_id,
            self.name,
        )

    def _hold(self, run: AsyncRun, version: int, model_id: str) -> None:
        run.versions[version] = model_id
        self._staged.hold(model_id)

    def _release_unreferenced(self, run: AsyncRun, version: int) -> None:
        """Let staging drop a version neither the current one nor trained from by a task in flight."""
        if version == run.version or run.refs[version] > 0 or version not in run.versions:
            return
        del run.refs[version]
        self._staged.release(run.versions.pop(version))

    # -- tasks ---------------------------------------------------------------------------------

    def _fill(self, run: AsyncRun) -> None:
        """Give idle clients tasks, longest idle first, until max_concurrency are in flight."""
        if run.closed or not run.ready:
            return
        limit = run.config.max_concurrency or math.inf
        while len(run.tasks) < limit and run.idle:
            client_id, _ = run.idle.popitem(last=False)
            if client_id not in run.busy:
                self._publish(run, client_id)
        TASKS_IN_FLIGHT.set(len(run.tasks))

    def _publish(self, run: AsyncRun, client_id: str) -> None:
        message = make_task(TRAIN, client_id, run.model_id, run.session_id, "", run.task_data())
        # A round id per task: a new task supersedes a hung one at the client (client/task_loop.py).
        message.round_id = f"{ASYNC_ROUND_PREFIX}{run.version}-{message.correlation_id[:12]}"
        task = AsyncTask(message.correlation_id, client_id, run.version, run.model_id)
        run.tasks[task.correlation_id] = task
        run.busy[client_id] = task.correlation_id
        run.refs[task.version] += 1
        if not self._registry.publish(client_id, message):  # its stream closed: not idle after all
            run.end_task(task)
            return
        task.timer = asyncio.get_running_loop().call_later(
            run.config.task_timeout, self._timed_out, run, task
        )
        run.note("published", client_id)
        TASKS_PUBLISHED.inc()

    def _settle(self, run: AsyncRun, task: AsyncTask, reason: str = "", *, gone: bool = False) -> None:
        """The task ended (``reason`` says why when not folded): its slot goes to an idle client."""
        run.end_task(task, reason)
        self._release_unreferenced(run, task.version)
        if run.closed:
            return
        if not gone:
            run.idle[task.client_id] = None
            run.idle.move_to_end(task.client_id)
        self._fill(run)

    def _timed_out(self, run: AsyncRun, task: AsyncTask) -> None:
        task.timer = None
        if run.closed or task.arrived is not None or task.correlation_id not in run.tasks:
            return
        timeout = run.config.task_timeout
        log.warning(
            "async session %s: task %s of client %s timed out after %g s",
            run.session_id,
            task.correlation_id,
            task.client_id,
            timeout,
        )
        TASK_TIMEOUTS.inc()
        run.note("timeout", task.client_id)
        reason = (
            f"task {task.correlation_id} timed out after {timeout:g} s (task_timeout) before its update "
            "arrived and its slot went to another client (stale update); not averaged"
        )
        self._spool.discard_client(task.client_id)  # an upload without its ModelUpdate: never folded now
        self._settle(run, task, reason)

    def _stream_opened(self, client_id: str) -> None:
        run = self._run
        if run is None or run.closed or not run.ready or client_id in run.busy:
            return
        run.idle.setdefault(client_id, None)
        self._fill(run)

    def _stream_closed(self, client_id: str) -> None:
        run = self._run
        if run is None or run.closed:
            return
        run.idle.pop(client_id, None)
        task = run.tasks.get(run.busy.get(client_id, ""))
        if task is None or task.arrived is not None:  # no task, or its update is being folded
            return
        run.note("left", client_id)
        reason = (
            f"client {client_id} left with task {task.correlation_id} in flight: its task stream closed; "
            "not averaged (stale update)"
        )
        self._spool.discard_client(client_id)
        self._settle(run, task, reason, gone=True)

    # -- client reports ------------------------------------------------------------------------

    def task_failed(self, client_id: str, correlation_id: str, reason: str) -> str:
        """A client reported its task failed: a rejection that frees its slot."""
        run = self._run
        task = run.tasks.get(correlation_id) if run is not None and not run.closed else None
        if run is None or task is None:
            return "status received"
        if task.client_id != client_id:
            return rejected(f"task {correlation_id} was not published to client {client_id}")
        if task.arrived is not None:
            return rejected(f"client {client_id} already reported task {correlation_id}")
        task.arrive()
        log.warning("async session %s: %s", run.session_id, reason)
        run.rejected(client_id, reason)
        self._settle(run, task, reason)
        return "failure recorded"

    async def receive_update(self, update: pb.ModelUpdate) -> str:
        """Check an update of an async task and fold its delta in; "accepted" or "rejected: why"."""
        update_id, client_id = update.model_update_id, update.client_id
        spooled = self._spool.claim(update_id, client_id) if update_id else None
        try:
            run, task, reason = self._admit(update)
            if reason is None and run is not None and task is not None:
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
                    fold = self._spawn(self._check_and_fold(run, task, spooled, meta, count))
                    spooled = (
                        None  # the fold owns the file and settles the task, even if this RPC is cancelled
                    )
                    return await asyncio.shield(fold)
        finally:
            if spooled is not None:
                self._spool.release(spooled)
        reason = reason or "not averaged"
        if run is not None and not run.closed:
            run.rejected(client_id, reason)
            if task is not None:
                self._settle(run, task, reason)
        log.warning(
            "update from client %s for task %s rejected: %s", client_id, update.correlation_id, reason
        )
        return rejected(reason)

    def _admit(self, update: pb.ModelUpdate) -> tuple[AsyncRun | None, AsyncTask | None, str | None]:
        """The run and task an update answers, or why it has none; marks the task as reported."""
        run = self._run
        if run is None or run.closed:
            return (
                None,
                None,
                f"update answers async task {update.correlation_id!r} (session {update.session_id}) while "
                f"no async session runs at combiner {self.name} (stale update); not averaged",
            )
        task = run.tasks.get(update.correlation_id)
        if task is None:
            reason = run.finished.get(update.correlation_id) or (
                f"update answers task {update.correlation_id!r}, which is not in flight in async session "
                f"{run.session_id} at combiner {self.name} (stale update); not averaged"
            )
            return run, None, reason
        if task.client_id != update.client_id:
            return run, None, f"task {update.correlation_id} was not published to client {update.client_id}"
        if task.arrived is not None:
            return (
                run,
                None,
                f"duplicate update from client {update.client_id} for task {update.correlation_id}; "
                "only its first report counts",
            )
        task.arrive()
        if update.model_id != task.model_id:
            return (
                run,
                task,
                f"update was trained from model {update.model_id!r}, its task trains version {task.version} "
                f"(model {task.model_id})",
            )
        return run, task, None

    async def _check_and_fold(
        self, run: AsyncRun, task: AsyncTask, spooled: SpooledUpdate, meta: dict, count: int
    ) -> str:
        """Check the update against its base version, then fold its delta in; settle the task either way."""
        ended = (
            f"update arrived after async session {run.session_id} ended at combiner {self.name} "
            "(stale update); not averaged"
        )
        try:
            self._staleness(run, task)  # early, so a stale update costs no array check
            base = self._staged.path(task.model_id)
            if run.closed or base is None:
                raise UpdateRejected(ended)
            async with run.check_slot:
                spooled = await self._spool.on_disk(spooled)  # its delta is folded from the file
                await asyncio.to_thread(check_arrays, spooled.path, run.specs)
                path = await self._within_norm_bound(run, spooled.path, base)
            async with run.fold_lock:
                buffer = run.buffer
                if run.closed or buffer is None:
                    raise UpdateRejected(ended)
                staleness = self._staleness(run, task)
                weight = staleness_weight(run.config.staleness, run.config.staleness_exponent, staleness)
                started = time.monotonic()
                try:
                    await asyncio.to_thread(buffer.fold, path, base, count, weight)
                except Exception as error:  # the buffer may hold part of this update: the run cannot go on
                    run.fail(
                        AsyncRunError(
                            grpc.StatusCode.INTERNAL,
                            f"async session {run.session_id} at combiner {self.name}: folding the update of "
                            f"client {task.client_id} failed midway ({error}); the buffer is unusable",
                        )
                    )
                    raise UpdateRejected(f"folding the update failed: {error}") from error
                run.folded_update(task, count, meta, time.monotonic() - started, staleness, weight)
                STALENESS.observe(staleness)
            self._settle(run, task)
            return ACCEPTED
        except UpdateRejected as error:
            reason = str(error)
            if not run.closed:
                run.rejected(task.client_id, reason)
            self._settle(run, task, reason)
            log.warning(
                "update from client %s in async session %s rejected: %s",
                task.client_id,
                run.session_id,
                reason,
            )
            return rejected(reason)
        finally:
            self._spool.release(spooled)
            discard(spooled.path.with_name(spooled.path.stem + CLIPPED_SUFFIX))

    @staticmethod
    def _staleness(run: AsyncRun, task: AsyncTask) -> int:
        """tau of the task's update now; UpdateRejected beyond max_staleness."""
        staleness = run.version - task.version
        bound = run.config.max_staleness
        if 0 <= bound < staleness:
            raise UpdateRejected(
                f"stale update: trained on version {task.version}, the current version is {run.version} "
                f"and max_staleness is {bound}; not averaged"
            )
        return staleness

    async def _within_norm_bound(self, run: AsyncRun, update: Path, base: Path) -> Path:
        """The update, or its clipped copy, when the session bounds update norms; else UpdateRejected."""
        if not run.config.max_update_norm:
            return update
        return await asyncio.to_thread(
            bound_update, update, base, run.specs, run.config.max_update_norm, run.config.clip_updates
        )

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _describe(specs: list[ArraySpec]) -> str:
    return ", ".join(f"{spec.dtype}{list(spec.shape)}" for spec in specs)
