"""Run one task from the combiner: download the model, run the entry point SISO, send the result back.

The entry points see exactly what ``scaleout run`` gives them: ``train IN OUT`` with the model at
``IN`` and the task's round settings in ``IN-metadata``, writing ``OUT`` and ``OUT-metadata``;
``validate IN OUT`` writing a JSON object at ``OUT``. Paths end in ``.npz`` because numpy appends
it otherwise. Every file of a task is deleted when it ends, whatever the outcome, and a task that
fails for any reason is reported to the combiner (SendStatus) so its round need not wait for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from scaleout.client.dispatcher import Dispatcher, RunResult
from scaleout.client.model_transfer import ModelStreams, Pace, download_model, upload_model
from scaleout.client.outputs import metadata_path, read_metrics, read_train_metadata
from scaleout.client.threads import run_blocking
from scaleout.errors import ScaleoutError
from scaleout.proto import scaleout_pb2, scaleout_pb2_grpc

logger = logging.getLogger(__name__)

TRAIN = "Scaleout_ModelUpdate"
STOP_POLL = 0.2  # seconds between stops of an abandoned entry point that may still be starting
STOP_BOUND = 30.0  # seconds to wait for it (Dispatcher.stop SIGKILLs after 5)
VALIDATE = "Scaleout_Validation"


# Files of one task: <uuid hex>.npz / .json, and their -metadata.
_TASK_FILE = re.compile(r"[0-9a-f]{32}\.(npz|json)(-metadata)?")


def remove_stale_task_files(work_dir: Path) -> int:
    """Delete task files a killed client left behind (a normal run deletes its own); return how many."""
    stale = [p for p in work_dir.iterdir() if p.is_file() and _TASK_FILE.fullmatch(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


class TaskFailed(ScaleoutError):
    """A task could not be completed; the message is what the combiner records as the reason."""


@dataclass
class Link:
    """One connection to a combiner: its stubs, and whether it still stands.

    ``open_upload`` opens a connection of its own for one upload, closed when it ends: gRPC keeps a
    connection's read buffers sized for the largest burst it has received (~1-2 MB after a 1 MB model)
    for as long as it is open, so uploads over the long-lived task-stream connection left every
    client's connection holding that much at the combiner (~1 GB at 1,000 clients).
    """

    combiner: scaleout_pb2_grpc.CombinerClientStub
    models: ModelStreams
    name: str
    open_upload: Callable[[], grpc.aio.Channel]
    established: bool = False
    closed: bool = False


class TaskRunner:
    """Runs the tasks of one client with one compute package (``TaskLoop`` runs one at a time).

    Every call to the combiner has a deadline: ``rpc_deadline`` for reports, ``pace`` for models.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        work_dir: Path,
        client_id: str,
        chunk_size: int,
        task_timeout: float | None,
        rpc_deadline: float,
        pace: Pace,
    ) -> None:
        self.dispatcher = dispatcher
        self.work_dir = work_dir
        self.client_id = client_id
        self.chunk_size = chunk_size
        self.task_timeout = task_timeout
        self.rpc_deadline = rpc_deadline
        self.pace = pace
        self.running: str | None = None  # the entry point running now, for the shutdown log
        self.entry_point_idle = threading.Event()  # no entry point thread is running
        self.entry_point_idle.set()

    async def run(self, task: scaleout_pb2.TaskRequest, link: Link) -> None:
        """Do ``task`` and report its result, or its failure, to the combiner of ``link``."""
        files: list[Path] = []
        started = asyncio.get_running_loop().time()
        try:
            if task.type == TRAIN:
                await self._train(task, link, files)
            elif task.type == VALIDATE:
                await self._validate(task, link, files)
            else:
                raise TaskFailed(f"unknown task type {task.type!r}; this client runs {TRAIN} and {VALIDATE}")
            elapsed = asyncio.get_running_loop().time() - started
            logger.info("%s task %s done in %.2f s", kind(task), task.correlation_id, elapsed)
        except Exception as exc:  # every failure is the task's reason, reported to the combiner
            if not isinstance(exc, ScaleoutError | grpc.RpcError | OSError):
                logger.exception("unexpected error in task %s (a bug in the client)", task.correlation_id)
            await self._report_failure(task, link, _describe(exc))
        finally:
            for path in files:
                path.unlink(missing_ok=True)

    async def _train(self, task: scaleout_pb2.TaskRequest, link: Link, files: list[Path]) -> None:
        in_path = await self._stage_model(task, link, files)
        out_path = self._new_path(".npz", files)
        files.append(metadata_path(out_path))
        run = await self._run_entry_point("train", in_path, out_path)
        logger.info(
            "train entry point of task %s (round %s) ran in %.3f s",
            task.correlation_id,
            task.round_id,
            run.seconds,
        )
        if not out_path.is_file():
            raise TaskFailed(f"entry point 'train' exited 0 but wrote no model at OUT ({out_path})")
        # The same check as `scaleout run train`: a model without a positive num_examples is not sent.
        meta = read_train_metadata(out_path)
        update_id = uuid.uuid4().hex
        async with link.open_upload() as channel:
            await _grpc_step(
                "upload of the update",
                upload_model(
                    ModelStreams(channel),
                    out_path,
                    update_id,
                    self.client_id,
                    self.chunk_size,
                    self.pace,
                ),
            )
        update = scaleout_pb2.ModelUpdate(
            client_id=self.client_id,
            model_id=task.model_id,
            model_update_id=update_id,
            correlation_id=task.correlation_id,
            round_id=task.round_id,
            session_id=task.session_id,
            meta=json.dumps(meta),
            config=task.data,
        )
        update.timestamp.GetCurrentTime()
        response = await _grpc_step(
            "SendModelUpdate", link.combiner.SendModelUpdate(update, timeout=self.rpc_deadline)
        )
        _log_answer("update", task, response.response)

    async def _validate(self, task: scaleout_pb2.TaskRequest, link: Link, files: list[Path]) -> None:
        in_path = await self._stage_model(task, link, files)
        out_path = self._new_path(".json", files)
        await self._run_entry_point("validate", in_path, out_path)
        metrics = read_metrics(out_path)
        validation = scaleout_pb2.ModelValidation(
            client_id=self.client_id,
            model_id=task.model_id,
            data=json.dumps(metrics),
            correlation_id=task.correlation_id,
            session_id=task.session_id,
        )
        validation.timestamp.GetCurrentTime()
        response = await _grpc_step(
            "SendModelValidation", link.combiner.SendModelValidation(validation, timeout=self.rpc_deadline)
        )
        _log_answer("validation", task, response.response)

    async def _stage_model(self, task: scaleout_pb2.TaskRequest, link: Link, files: list[Path]) -> Path:
        """Download the task's model to IN and write the task's data to IN-metadata."""
        settings = _task_data(task)
        in_path = self._new_path(".npz", files)
        meta_path = metadata_path(in_path)
        files.append(meta_path)
        meta_path.write_text(json.dumps(settings), encoding="utf-8")
        await _grpc_step(
            f"download of model {task.model_id}",
            download_model(link.models, task.model_id, in_path, self.pace),
        )
        return in_path

    async def _run_entry_point(self, name: str, in_path: Path, out_path: Path) -> RunResult:
        self.running = name
        self.entry_point_idle.clear()
        try:
            return await run_blocking(
                self._entry_point, name, [str(in_path), str(out_path)], name=f"entry-point-{name}"
            )
        finally:
            self.running = None

    def _entry_point(self, name: str, args: list[str]) -> RunResult:
        """Run in a worker thread, which may outlive a cancelled task: ``entry_point_idle`` tells when
        it is done, so that a stop cannot miss a process that was only about to start."""
        try:
            return self.dispatcher.run(name, args, None, self.task_timeout)
        finally:
            self.entry_point_idle.set()

    def stop_entry_point(self, bound: float = STOP_BOUND) -> int:
        """Stop the entry point of a cancelled task and wait until its thread is done; blocking.

        Returns how many process groups were stopped. Gives up after ``bound`` seconds (logged).
        """
        stopped = 0
        deadline = time.monotonic() + bound
        while True:
            stopped += self.dispatcher.stop()
            if self.entry_point_idle.wait(STOP_POLL):
                return stopped
            if time.monotonic() > deadline:
                logger.error("the entry point of an abandoned task did not end within %.0f s", bound)
                return stopped

    def _new_path(self, suffix: str, files: list[Path]) -> Path:
        path = self.work_dir / f"{uuid.uuid4().hex}{suffix}"
        files.append(path)
        return path

    async def report_abandoned(self, task: scaleout_pb2.TaskRequest, link: Link, reason: str) -> None:
        """Tell the combiner of ``link`` that ``task`` will get no answer from this client."""
        await self._send_failure(task, link, f"task abandoned by the client: {reason}")

    async def _report_failure(self, task: scaleout_pb2.TaskRequest, link: Link, error: str) -> None:
        logger.error("%s task %s failed: %s", kind(task), task.correlation_id, error)
        await self._send_failure(task, link, error)

    async def _send_failure(self, task: scaleout_pb2.TaskRequest, link: Link, error: str) -> None:
        status = scaleout_pb2.Status(
            client_id=self.client_id,
            status=json.dumps(
                {
                    "correlation_id": task.correlation_id,
                    "session_id": task.session_id,
                    "round_id": task.round_id,
                    "error": error,
                }
            ),
            log_level=scaleout_pb2.LogLevel.ERROR,
            type=task.type,
        )
        status.timestamp.GetCurrentTime()
        try:
            await link.combiner.SendStatus(status, timeout=self.rpc_deadline)
        except (grpc.RpcError, grpc.aio.UsageError) as exc:
            logger.error(
                "could not report the failure of task %s to combiner %s (%s)",
                task.correlation_id,
                link.name,
                _describe(exc),
            )


async def _grpc_step(what: str, call: Any) -> Any:
    """Await a gRPC call, turning its error into a TaskFailed that names the step."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise TaskFailed(
                f"{what} failed: no answer within its deadline (client settings rpc_deadline, "
                "min_transfer_rate)"
            ) from exc
        raise TaskFailed(f"{what} failed: {exc.code().name}: {exc.details()}") from exc
    except grpc.aio.UsageError as exc:  # the channel was closed under the call: the connection is gone
        raise TaskFailed(f"{what} failed: the connection to the combiner closed") from exc


def _task_data(task: scaleout_pb2.TaskRequest) -> dict[str, Any]:
    try:
        data = json.loads(task.data) if task.data else {}
    except json.JSONDecodeError as exc:
        raise TaskFailed(f"the task's data is not JSON ({exc}): {task.data[:200]!r}") from exc
    if not isinstance(data, dict):
        raise TaskFailed(f"the task's data must be a JSON object, got {task.data[:200]!r}")
    return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) if isinstance(exc, ScaleoutError) else f"{type(exc).__name__}: {exc}"


def kind(task: scaleout_pb2.TaskRequest) -> str:
    return {TRAIN: "train", VALIDATE: "validate"}.get(task.type, task.type or "untyped")


def _log_answer(what: str, task: scaleout_pb2.TaskRequest, answer: str) -> None:
    if answer.startswith("rejected"):
        logger.warning("combiner %s the %s of task %s", answer, what, task.correlation_id)
    else:
        logger.info("combiner answered %r to the %s of task %s", answer, what, task.correlation_id)
