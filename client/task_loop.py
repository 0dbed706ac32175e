"""The client's task loop: tasks run one at a time, and none waits behind a task that cannot finish.

One at a time, so two entry points never compete for the machine. A task is abandoned, and the next
one runs, when:

- a train task of another round arrives: the combiner runs one training round at a time, so the
  round of the running task is over there and its answer would be refused as stale (a stuck entry
  point or call of an old round must not hold every later round). Only a train task is superseded,
  and only a train task supersedes: validations may overlap training at the combiner (an async
  session sends a client its next train task while it validates a version), so each waits its turn;
- the connection the task came on closes: the combiner has dropped this client from that round,
  and the task's answer can no longer be sent on that connection.

Abandoning cancels the task's calls, stops its entry point (and that entry point's children), and
reports the abandonment to the combiner: on the task's connection, or on the one that replaced it (a
combiner that has not yet noticed the old connection gone then need not wait for the task).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from scaleout.client.tasks import TRAIN, Link, TaskRunner, kind
from scaleout.proto import scaleout_pb2

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Running:
    task: scaleout_pb2.TaskRequest
    link: Link
    job: asyncio.Task[None]
    abandoned: str = ""  # why, once abandoned


class TaskLoop:
    """Queues the tasks that arrive and runs them in order; ``run`` is the worker coroutine."""

    def __init__(self, runner: TaskRunner) -> None:
        self._runner = runner
        self._pending: deque[tuple[scaleout_pb2.TaskRequest, Link]] = deque()
        self._arrived = asyncio.Event()
        self._running: _Running | None = None
        self._link: Link | None = None  # the newest connection, for reports of abandoned tasks
        self._unreported: list[tuple[scaleout_pb2.TaskRequest, str]] = []  # abandoned while none stood
        self._reports: set[asyncio.Task[None]] = set()

    def use_link(self, link: Link) -> None:
        """A new connection to the combiner: abandoned tasks are reported on it from now."""
        self._link = link
        unreported, self._unreported = self._unreported, []
        for task, reason in unreported:
            report = asyncio.create_task(self._runner.report_abandoned(task, link, reason))
            self._reports.add(report)
            report.add_done_callback(self._reports.discard)

    def submit(self, task: scaleout_pb2.TaskRequest, link: Link) -> None:
        """Queue a task; a train task of another round supersedes the running and queued train tasks."""
        if task.type == TRAIN:
            newer = f"superseded by task {task.correlation_id} of round {task.round_id}"
            running = self._running
            if running is not None and running.task.type == TRAIN and running.task.round_id != task.round_id:
                self._abandon(running, newer)
            for item in [i for i in self._pending if i[0].type == TRAIN and i[0].round_id != task.round_id]:
                self._pending.remove(item)
                logger.warning("dropping task %s before it started: %s", item[0].correlation_id, newer)
        self._pending.append((task, link))
        self._arrived.set()

    async def close_link(self, link: Link) -> None:
        """The connection ``link`` closed: abandon its tasks; returns once none of them makes calls."""
        reason = f"the connection to combiner {link.name} it came on closed"
        for item in [item for item in self._pending if item[1] is link]:
            self._pending.remove(item)
            logger.warning("dropping task %s: %s before it could start", item[0].correlation_id, reason)
        running = self._running
        if running is not None and running.link is link:
            self._abandon(running, reason)
            await asyncio.wait({running.job})

    async def run(self) -> None:
        """Run queued tasks until cancelled; cancelling it cancels the running task too."""
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            task, link = self._pending.popleft()
            running = self._running = _Running(task, link, asyncio.create_task(self._runner.run(task, link)))
            try:
                await asyncio.wait({running.job})  # unlike `await job`, the job's end never raises here
            finally:
                if not running.job.done():  # the loop itself was cancelled: the client is stopping
                    running.job.cancel()
                self._running = None
            if running.abandoned:
                await self._wind_down(running)

    def _abandon(self, running: _Running, reason: str) -> None:
        if not running.abandoned and not running.job.done():  # a task that just ended is not abandoned
            running.abandoned = reason
            running.job.cancel()

    async def _wind_down(self, running: _Running) -> None:
        """Stop the abandoned task's entry point before the next task starts one, then report it."""
        task = running.task
        logger.warning(
            "%s task %s (round %s) abandoned: %s",
            kind(task),
            task.correlation_id,
            task.round_id,
            running.abandoned,
        )
        if stopped := await asyncio.to_thread(self._runner.stop_entry_point):
            logger.warning(
                "stopped the entry point of abandoned task %s (%d process group(s))",
                task.correlation_id,
                stopped,
            )
        link = running.link if not running.link.closed else self._link
        if link is not None and not link.closed:
            await self._runner.report_abandoned(task, link, running.abandoned)
        else:
            self._unreported.append((task, running.abandoned))
