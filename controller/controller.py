"""The controller the API hosts: starts and stops sessions, one at a time, as asyncio tasks.

Every method runs on the API's event loop; blocking store calls go through asyncio.to_thread.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from scaleout.controller.combiners import CombinerChannels
from scaleout.controller.events import record_event
from scaleout.controller.rounds import RoundContext
from scaleout.controller.session_runner import SessionRunner
from scaleout.controller.settings import ControllerSettings
from scaleout.errors import ScaleoutError
from scaleout.store.entities import EventLevel, RoundStatus, Session, SessionStatus, utcnow
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the API restarted"


class SessionConflict(ScaleoutError):
    """A session cannot be started or stopped in its current state."""


@dataclass
class _Running:
    session_id: str
    runner: SessionRunner
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
        self._channels: CombinerChannels | None = None
        self._running: _Running | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    async def start(self) -> list[str]:
        """Fail sessions a crash left Started (nothing is resumed yet); returns their ids."""
        self._channels = CombinerChannels(
            self.settings.grpc_max_message_size, self.settings.token, self.settings.tls
        )
        self._lock = asyncio.Lock()
        page = await asyncio.to_thread(self.statestore.sessions.list, {"status": SessionStatus.STARTED.value})
        for session in page.items:
            await self._fail_interrupted(session)
        return [s.id for s in page.items]

    async def _fail_interrupted(self, session: Session) -> None:
        now = utcnow()
        rounds = await asyncio.to_thread(
            self.statestore.rounds.list, {"session_id": session.id, "status": RoundStatus.RUNNING.value}
        )
        for record in rounds.items:
            changes = {"status": RoundStatus.FAILED, "error": INTERRUPTED, "finished_at": now}
            await asyncio.to_thread(self.statestore.rounds.update, record.id, changes)
        changes = {"status": SessionStatus.FAILED, "error": INTERRUPTED, "finished_at": now}
        await asyncio.to_thread(self.statestore.sessions.update, session.id, changes)
        await record_event(
            self.statestore, "session_failed", INTERRUPTED, EventLevel.ERROR, session_id=session.id
        )

    async def close(self) -> None:
        """Stop the running session (it ends Terminated) and close the combiner channels."""
        self._closed = True
        running = self._running
        if running is not None and not running.task.done():
            await self._cancel(running)
        if self._channels is not None:
            await self._channels.close()

    @property
    def running_session_id(self) -> str | None:
        """The id of the session that runs now, or None."""
        running = self._running
        return running.session_id if running is not None and not running.task.done() else None

    async def start_session(self, session_id: str) -> None:
        """Mark a Created session Started and run it in a task on this loop.

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
            if session.status != SessionStatus.CREATED:
                raise SessionConflict(
                    f"session {session_id} is {session.status.value}; only a Created session can be "
                    "started: create a new session"
                )
            changes = {"status": SessionStatus.STARTED, "started_at": utcnow()}
            session = await asyncio.to_thread(self.statestore.sessions.update, session_id, changes)
            await record_event(
                self.statestore, "session_started", f"session {session.name!r} started", session_id=session_id
            )
            context = RoundContext(self.statestore, self.repository, self.settings, self._channels)
            runner = SessionRunner(context, session)
            task = asyncio.create_task(runner.run(), name=f"session-{session_id}")
            self._running = _Running(session_id, runner, task)

    async def stop_session(self, session_id: str) -> Session:
        """Stop a running session (Terminated; its running round Failed "stopped") and return it.

        A Created session that never ran becomes Terminated as well. Raises NotFound for an unknown
        id and SessionConflict for a session that already ended.
        """
        running = self._running
        if running is not None and running.session_id == session_id and not running.task.done():
            await self._cancel(running)
            return await asyncio.to_thread(self.statestore.sessions.get, session_id)
        session = await asyncio.to_thread(self.statestore.sessions.get, session_id)
        if session.status != SessionStatus.CREATED:
            raise SessionConflict(f"session {session_id} is not running: it is {session.status.value}")
        changes = {"status": SessionStatus.TERMINATED, "finished_at": utcnow()}
        return await asyncio.to_thread(self.statestore.sessions.update, session_id, changes)

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
