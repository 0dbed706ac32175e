"""What every kind of session run shares: its lease, the model it starts from, retries, its end.

A run (rounds of a sync session, versions of an async one) is the body of the session's asyncio
task. While it runs, the lease is renewed; once the lease is lost the task is cancelled and writes
nothing. The session ends Finished with the run's own message, Failed with the error of a failure
that outlived its retries (round_retries, retry_timeout), or Terminated when stopped (its task
cancelled). A session resumed by another controller continues from its last committed model.
"""

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import Any

from scaleout.controller.events import SessionEvents
from scaleout.controller.lease import LeaseLost, SessionLease
from scaleout.controller.rounds import RoundContext
from scaleout.errors import NotFound, RoundFailed
from scaleout.store.entities import EventLevel, Model, Session, SessionStatus, utcnow

log = logging.getLogger(__name__)

Ending = tuple[SessionStatus, str | None, str, str]  # status, error, event type, event message


class LeasedSession(ABC):
    """Runs one started session to its end under its lease; subclasses say what the run is."""

    def __init__(self, context: RoundContext, session: Session, lease: SessionLease) -> None:
        self.ctx = context
        self.session = session
        self.lease = lease
        self.events = SessionEvents(context.statestore, session.id)

    @property
    @abstractmethod
    def live(self) -> Any | None:
        """The live status the API shows (an object with as_dict()), or None."""

    @abstractmethod
    async def _work(self) -> str:
        """Run the session's work to its end; return the message of the session_finished event.

        Raises RoundFailed to fail the session, LeaseLost when this controller may no longer write.
        """

    async def run(self) -> None:
        """Run the work and record the session's end; never raises except CancelledError."""
        task = asyncio.current_task()
        assert task is not None
        keeper = asyncio.create_task(self._keep_lease(task), name=f"lease-{self.session.id}")
        # The keeper stops before the end is written: a renewal racing that write would take the
        # ended session for a lost lease.
        try:
            ending = await self._to_end()
        except asyncio.CancelledError:
            keeper.cancel()
            if self.lease.lost is not None and not self.lease.ended_elsewhere:
                log.warning("session %s stopped here: %s", self.session.id, self.lease.lost)
                raise
            await self._end(SessionStatus.TERMINATED, None, "session_terminated", "session stopped")
            raise
        keeper.cancel()
        if ending is not None:
            await self._end(*ending)

    async def _to_end(self) -> Ending | None:
        """Run the work; how the session ends, or None when this controller lost the session's
        lease and must write nothing."""
        try:
            finished = await self._work()
        except LeaseLost as err:
            log.warning("session %s stopped here: %s", self.session.id, err)
            return None
        except RoundFailed as err:
            return SessionStatus.FAILED, str(err), "session_failed", f"session failed: {err}"
        except Exception as err:
            log.exception("session %s failed", self.session.id)
            error = f"internal error: {err!r}"
            return SessionStatus.FAILED, error, "session_failed", f"session failed: {error}"
        return SessionStatus.FINISHED, None, "session_finished", finished

    async def _keep_lease(self, session_task: asyncio.Task[None]) -> None:
        """Renew the lease every lease_seconds / 3; cancel the session's task once it is lost."""
        interval = self.lease.seconds / 3
        while True:
            await asyncio.sleep(interval)  # a period: a lease lapses by the clock, no event marks it
            try:
                await asyncio.to_thread(self.lease.renew)
                continue
            except LeaseLost:
                pass
            except Exception as err:  # the statestore is unreachable: keep trying until the lease ends
                if utcnow() < self.lease.expires:
                    log.warning("session %s: could not renew its lease: %r", self.session.id, err)
                    continue
                self.lease.give_up(f"the lease of session {self.session.id} expired unrenewed: {err!r}")
            log.warning("session %s: %s; stopping its work here", self.session.id, self.lease.lost)
            session_task.cancel()
            return

    async def _start_model(self) -> Model:
        """The model the work starts from: the last committed one of the session (a resumed
        session), else its seed. Its record and bytes must both exist."""
        if self.session.rounds_done > 0:
            latest = await asyncio.to_thread(self.ctx.statestore.models.latest, self.session.id)
            if latest is None:
                raise RoundFailed(
                    f"session {self.session.id} has {self.session.rounds_done} round(s) done but no "
                    "committed model; start a new session from its seed"
                )
            return await self._with_bytes(latest)
        seed_id = self.session.seed_model_id
        if not seed_id:
            raise RoundFailed(
                f"session {self.session.id} has no seed model; upload one (APIClient.set_active_model) "
                "and start a new session"
            )
        try:
            model = await asyncio.to_thread(self.ctx.statestore.models.get, seed_id)
        except NotFound as err:
            raise RoundFailed(f"seed model {seed_id} is not in the statestore: {err}") from err
        return await self._with_bytes(model, "seed model")

    async def _with_bytes(self, model: Model, what: str = "model") -> Model:
        if not await asyncio.to_thread(self.ctx.repository.model_exists, model.id):
            raise RoundFailed(f"{what} {model.id} has no bytes in the model repository")
        return model

    async def _end(self, status: SessionStatus, error: str | None, event: str, message: str) -> None:
        """Store the final status and release the lease; a store failure is logged (the task must
        still end). Nothing is written when another controller holds the session by now."""
        changes = {"status": status, "error": error, "finished_at": utcnow()}
        try:
            ended = await asyncio.to_thread(self.lease.end, changes)
        except Exception:
            log.exception("could not record session %s as %s", self.session.id, status)
        else:
            if ended is None:
                why = self.lease.lost or "this controller no longer holds its lease"
                log.warning("session %s: its end (%s) not recorded: %s", self.session.id, status, why)
                return
        level = EventLevel.ERROR if status == SessionStatus.FAILED else EventLevel.INFO
        await self.events.record(event, message, level)


class Retries:
    """The retry budget of a failing step of work: round_retries retries within retry_timeout
    seconds of the first failure, each after a backoff that doubles (ControllerSettings)."""

    def __init__(self, session: Session, context: RoundContext) -> None:
        self.config = session.config
        self.ctx = context
        self.events = SessionEvents(context.statestore, session.id)
        self.attempt = 0
        self._first_failure: float | None = None

    def backoff(self, what: str, error: str | None) -> tuple[float, str]:
        """After a failure of `what` (e.g. "round 3"): the delay before the next attempt and the
        message saying so; RoundFailed naming `what` and `error` once the budget is spent."""
        now = time.monotonic()
        self._first_failure = now if self._first_failure is None else self._first_failure
        left = self.config.retry_timeout - (now - self._first_failure)
        if self.attempt >= self.config.round_retries or left <= 0:
            spent = (
                "retries"
                if self.attempt >= self.config.round_retries
                else f"retry_timeout of {self.config.retry_timeout:g} s"
            )
            raise RoundFailed(f"{what} failed after {self.attempt + 1} attempt(s) ({spent} spent): {error}")
        delay = min(self.ctx.settings.retry_backoff(self.attempt), left)
        message = (
            f"retrying {what} in {delay:g} s ({self.attempt + 1} of {self.config.round_retries} retries, "
            f"{left:g} s of retry_timeout left)"
        )
        self.attempt += 1
        return delay, message

    async def wait(self, what: str, error: str | None, event: str, round_id: str | None = None) -> None:
        """Record the retry as `event` and sleep its backoff; RoundFailed once the budget is spent."""
        delay, message = self.backoff(what, error)
        await self.events.record(event, message, EventLevel.WARNING, round_id=round_id)
        await asyncio.sleep(delay)  # a backoff, not a wait for a condition: cancellable by stop
