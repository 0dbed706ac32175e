"""The controller the API hosts: runs sessions, one at a time, as asyncio tasks.

A session runs where its lease is held (controller/lease.py). On start, and every
lease_check_interval seconds after, the controller looks for Started sessions whose lease is free
and resumes one: from its last committed model and round, with its configuration; a round that was
in flight is recorded Failed (INTERRUPTED) and re-run under a new round id. So a restarted API
resumes its sessions, and with several API processes on one statestore another one takes a session
over when its controller dies. Every method runs on the API's event loop; blocking store calls go
through asyncio.to_thread.
"""

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from scaleout.controller.async_session import AsyncSessionRunner
from scaleout.controller.combiners import CombinerChannels
from scaleout.controller.events import record_event
from scaleout.controller.lease import SessionLease, acquire
from scaleout.controller.leased_session import LeasedSession
from scaleout.controller.rounds import RoundContext
from scaleout.controller.session_runner import SessionRunner
from scaleout.controller.settings import ControllerSettings
from scaleout.controller.sweep import sweep_repository
from scaleout.errors import ScaleoutError
from scaleout.store.entities import EventLevel, Round, RoundStatus, Session, SessionStatus, new_id, utcnow
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the controller running the session stopped; the round is re-run under a new id"


class SessionConflict(ScaleoutError):
    """A session cannot be started or stopped in its current state."""


@dataclass
class _Running:
    session_id: str
    runner: LeasedSession
    task: asyncio.Task[None]


class Controller:
    """Runs sessions of rounds against the combiners registered in the statestore."""

    def __init__(
        self,
        statestore: Statestore,
        repository: ModelRepository,
        settings: ControllerSettings | None = None,
    ) -> None:
        self.statestore = statestore
        self.repository = repository
        self.settings = settings or ControllerSettings()
        self.owner = self.settings.owner_id or f"{socket.gethostname()}-{os.getpid()}-{new_id()[-8:]}"
        self._channels: CombinerChannels | None = None
        self._running: _Running | None = None
        self._lock: asyncio.Lock | None = None
        self._background: list[asyncio.Task[None]] = []
        self._closed = False

    async def start(self) -> list[str]:
        """Resume a session a crash left Started, if its lease is free, and start watching for
        others and sweeping the repository; returns the ids of the sessions resumed."""
        self._channels = CombinerChannels(
            self.settings.grpc_max_message_size, self.settings.token, self.settings.tls
        )
        self._lock = asyncio.Lock()
        resumed = await self._claim()
        self._background = [
            asyncio.create_task(self._watch(), name="controller-lease-watch"),
            asyncio.create_task(self._sweep_periodically(), name="controller-sweep"),
        ]
        return resumed

    async def close(self) -> None:
        """Hand the running session off and close the combiner channels.

        The session stays Started with its lease released, so the restarted API or another API
        process resumes it at once: restarting the API does not end a session, stopping it does.
        """
        self._closed = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        running = self._running
        if running is not None and not running.task.done():
            await self._hand_off(running)
        if self._channels is not None:
            await self._channels.close()

    async def _hand_off(self, running: _Running) -> None:
        """Stop the session's work here without ending it, then free its lease."""
        lease = running.runner.lease
        lease.give_up(f"controller {self.owner} shut down and handed the session off")
        await self._cancel(running)
        if await asyncio.to_thread(lease.release) is not None:
            await record_event(
                self.statestore,
                "session_handed_off",
                f"controller {self.owner} shut down; the session waits for an API process to resume it",
                EventLevel.WARNING,
                session_id=running.session_id,
            )

    @property
    def running_session_id(self) -> str | None:
        """The id of the session that runs now, or None."""
        running = self._running
        return running.session_id if running is not None and not running.task.done() else None

    async def start_session(self, session_id: str) -> None:
        """Mark a Created session Started, holding its lease, and run it in a task on this loop.

        Raises NotFound for an unknown id and SessionConflict if it is not Created or another
        session runs.
        """
        if self._lock is None or self._channels is None:
            raise ScaleoutError("the controller is not started; await Controller.start() first")
        async with self._lock:
            if self._closed:
                raise ScaleoutError("the controller is closed; restart the API")
            if (busy := self.running_session_id) is not None:
                raise SessionConflict(
                    f"session {busy} is running; wait for it or stop it (POST /api/v1/sessions/{busy}/stop)"
                )
            session = await asyncio.to_thread(self.statestore.sessions.get, session_id)
            started = None
            if session.status == SessionStatus.CREATED:
                changes = {"status": SessionStatus.STARTED, "started_at": utcnow()}
                started = await asyncio.to_thread(self._acquire, session, changes)
            if started is None:
                session = await asyncio.to_thread(self.statestore.sessions.get, session_id)
                raise SessionConflict(
                    f"session {session_id} is {session.status.value}; only a Created session can be "
                    "started: create a new session"
                )
            await record_event(
                self.statestore, "session_started", f"session {started.name!r} started", session_id=session_id
            )
            self._run(started)

    def _acquire(self, session: Session, changes: dict[str, Any]) -> Session | None:
        return acquire(self.statestore, session, self.owner, self.settings.lease_seconds, changes)

    def _run(self, session: Session) -> None:
        assert self._channels is not None and session.lease_expires is not None
        lease = SessionLease(
            self.statestore, session.id, self.owner, self.settings.lease_seconds, session.lease_expires
        )
        context = RoundContext(self.statestore, self.repository, self.settings, self._channels)
        kind = AsyncSessionRunner if session.config.mode == "async" else SessionRunner
        runner = kind(context, session, lease)
        task = asyncio.create_task(runner.run(), name=f"session-{session.id}")
        self._running = _Running(session.id, runner, task)

    # -- resuming sessions whose controller is gone ----------------------------------------------

    async def _watch(self) -> None:
        """Every lease_check_interval, resume a Started session whose lease lapsed."""
        while True:
            await asyncio.sleep(self.settings.lease_check_interval)  # a lease lapses by the clock
            try:
                await self._claim()
            except Exception:
                log.exception("controller %s: looking for sessions to resume failed", self.owner)

    async def _claim(self) -> list[str]:
        """Resume the first Started session whose lease is free, unless one runs here already."""
        assert self._lock is not None
        async with self._lock:
            if self._closed or self.running_session_id is not None:
                return []
            page = await asyncio.to_thread(
                self.statestore.sessions.list, {"status": SessionStatus.STARTED.value}
            )
            for session in page.items:
                taken = await asyncio.to_thread(self._acquire, session, {"resumed": session.resumed + 1})
                if taken is not None:
                    await self._resume(taken, previous=session.lease_owner)
                    return [taken.id]
            return []

    async def _resume(self, session: Session, previous: str | None) -> None:
        """Settle the rounds the previous controller left Running, then run the session on."""
        failed, session = await asyncio.to_thread(self._settle_rounds, session)
        for record in failed:
            await record_event(
                self.statestore,
                "round_failed",
                f"round {record.index + 1} {INTERRUPTED}",
                EventLevel.WARNING,
                session_id=session.id,
                round_id=record.id,
            )
        if session.config.mode == "async":
            at = f"version {session.rounds_done}"
        else:
            at = f"round {session.rounds_done + 1} of {session.config.rounds}"
        message = (
            f"session {session.name!r} resumed by controller {self.owner} at {at} "
            f"(resumed {session.resumed} time(s); previous controller: {previous})"
        )
        await record_event(
            self.statestore, "session_resumed", message, EventLevel.WARNING, session_id=session.id
        )
        self._run(session)

    def _settle_rounds(self, session: Session) -> tuple[list[Round], Session]:
        """Finish a Running round whose model was committed before the crash, fail the others
        (INTERRUPTED), and make rounds_done count the session's committed models."""
        now = utcnow()
        running = self.statestore.rounds.list({"session_id": session.id, "status": RoundStatus.RUNNING.value})
        failed = []
        for record in running.items:
            committed = self.statestore.models.list({"round_id": record.id}, limit=1).items
            if committed:
                changes = {
                    "status": RoundStatus.FINISHED,
                    "model_id": committed[0].id,
                    "finished_at": committed[0].committed_at,
                }
            else:
                changes = {"status": RoundStatus.FAILED, "error": INTERRUPTED, "finished_at": now}
                failed.append(record)
            self.statestore.rounds.update(record.id, changes)
        done = self.statestore.models.count({"session_id": session.id})
        if done != session.rounds_done:
            held = {"lease_owner": self.owner, "rounds_done": session.rounds_done}
            session = (
                self.statestore.sessions.compare_and_set(session.id, held, {"rounds_done": done}) or session
            )
        return failed, session

    async def _sweep_periodically(self) -> None:
        """Sweep the repository at start and every sweep_interval seconds."""
        while True:
            try:
                await asyncio.to_thread(
                    sweep_repository, self.statestore, self.repository, self.settings.sweep_grace
                )
            except Exception:
                log.exception("controller %s: the repository sweep failed", self.owner)
            await asyncio.sleep(self.settings.sweep_interval)  # a period, not a wait for a condition

    # -- stopping and waiting ----------------------------------------------------------------------

    async def stop_session(self, session_id: str) -> Session:
        """Stop a session (Terminated; its running round Failed "stopped") and return it.

        A Created session that never ran becomes Terminated as well, and so does a session that
        another API process runs (its controller sees it at its next lease renewal and stops).
        Raises NotFound for an unknown id and SessionConflict for a session that already ended.
        """
        running = self._running
        if running is not None and running.session_id == session_id and not running.task.done():
            await self._cancel(running)
            return await asyncio.to_thread(self.statestore.sessions.get, session_id)
        session = await asyncio.to_thread(self.statestore.sessions.get, session_id)
        if session.status not in (SessionStatus.CREATED, SessionStatus.STARTED):
            raise SessionConflict(f"session {session_id} is not running: it is {session.status.value}")
        changes = {
            "status": SessionStatus.TERMINATED,
            "finished_at": utcnow(),
            "lease_owner": None,
            "lease_expires": None,
        }
        expected = {"status": session.status.value}
        stopped = await asyncio.to_thread(
            self.statestore.sessions.compare_and_set, session_id, expected, changes
        )
        if stopped is None:
            return await self.stop_session(session_id)  # it changed meanwhile: decide again
        if session.status == SessionStatus.STARTED:
            await record_event(
                self.statestore,
                "session_terminated",
                f"session stopped through controller {self.owner}",
                session_id=session_id,
            )
        return stopped

    async def _cancel(self, running: _Running) -> None:
        """Cancel the session task and wait, bounded, for it to record its end."""
        running.task.cancel()
        done, _ = await asyncio.wait({running.task}, timeout=self.settings.stop_timeout)
        if not done:
            log.error(
                "session %s did not record its end within %g s of being stopped",
                running.session_id,
                self.settings.stop_timeout,
            )

    async def wait_for_session(self, session_id: str, timeout: float) -> Session:
        """The session once its task ended, or as it is after `timeout` seconds."""
        running = self._running
        if running is not None and running.session_id == session_id:
            await asyncio.wait({running.task}, timeout=timeout)
        return await asyncio.to_thread(self.statestore.sessions.get, session_id)

    def progress(self, session_id: str | None = None) -> dict[str, Any] | None:
        """The live status of the running round (of this session, if given), or None."""
        running = self._running
        if running is None or running.task.done():
            return None
        if session_id is not None and running.session_id != session_id:
            return None
        live = running.runner.live
        return live.as_dict() if live is not None else None
