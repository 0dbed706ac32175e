"""A session: its rounds in order, each retried with backoff, and how it ends.

Finished when every round committed a model; Failed with the last round's error when a round still
fails after round_retries retries or retry_timeout seconds; Terminated when stopped (its task
cancelled). A session resumed by another controller continues from its last committed model. While
it runs, the runner keeps the session's lease; once the lease is lost it stops and writes nothing.
"""

import asyncio
import logging
import time

from scaleout.controller.events import record_event
from scaleout.controller.lease import LeaseLost, SessionLease
from scaleout.controller.progress import LiveRound
from scaleout.controller.rounds import RoundContext, RoundRunner
from scaleout.errors import NotFound, RoundFailed
from scaleout.store.entities import EventLevel, Model, Session, SessionStatus, utcnow

log = logging.getLogger(__name__)


class SessionRunner:
    """Runs one started session to its end; `run` is the body of the session's asyncio task."""

    def __init__(self, context: RoundContext, session: Session, lease: SessionLease) -> None:
        self.ctx = context
        self.session = session
        self.lease = lease
        self.rounds = RoundRunner(context, session, lease)

    @property
    def live(self) -> LiveRound | None:
        """The running round's live status, if a round runs."""
        return self.rounds.live

    async def run(self) -> None:
        """Run the rounds and record the session's end; never raises except CancelledError."""
        task = asyncio.current_task()
        assert task is not None
        keeper = asyncio.create_task(self._keep_lease(task), name=f"lease-{self.session.id}")
        # The keeper stops before the end is written: a renewal racing that write would take the
        # ended session for a lost lease.
        try:
            ending = await self._rounds_to_end()
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

    async def _rounds_to_end(self) -> tuple[SessionStatus, str | None, str, str] | None:
        """Run the rounds; how the session ends (status, error, event, message), or None when this
        controller lost the session's lease and must write nothing."""
        try:
            await self._run_rounds()
        except LeaseLost as err:
            log.warning("session %s stopped here: %s", self.session.id, err)
            return None
        except RoundFailed as err:
            return SessionStatus.FAILED, str(err), "session_failed", f"session failed: {err}"
        except Exception as err:
            log.exception("session %s failed", self.session.id)
            error = f"internal error: {err!r}"
            return SessionStatus.FAILED, error, "session_failed", f"session failed: {error}"
        rounds = self.session.config.rounds
        return SessionStatus.FINISHED, None, "session_finished", f"{rounds} round(s) done"

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

    async def _run_rounds(self) -> None:
        model = await self._start_model()
        for index in range(self.session.rounds_done, self.session.config.rounds):
            model = await self._run_round(index, model)

    async def _run_round(self, index: int, parent: Model) -> Model:
        """The committed model of round `index`, retrying with backoff; RoundFailed once the
        retries or the retry_timeout are spent."""
        config = self.session.config
        first_failure: float | None = None
        attempt = 0
        while True:
            outcome = await self.rounds.run(index, parent, attempt)
            if outcome.model is not None:
                return outcome.model
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            left = config.retry_timeout - (now - first_failure)
            if attempt >= config.round_retries or left <= 0:
                spent = (
                    "retries"
                    if attempt >= config.round_retries
                    else f"retry_timeout of {config.retry_timeout:g} s"
                )
                raise RoundFailed(
                    f"round {index + 1} failed after {attempt + 1} attempt(s) ({spent} spent): "
                    f"{outcome.error}"
                )
            delay = min(self.ctx.settings.retry_backoff(attempt), left)
            await record_event(
                self.ctx.statestore,
                "round_retry",
                f"retrying round {index + 1} in {delay:g} s "
                f"({attempt + 1} of {config.round_retries} retries, {left:g} s of retry_timeout left)",
                EventLevel.WARNING,
                session_id=self.session.id,
                round_id=outcome.round_id,
            )
            await asyncio.sleep(delay)  # a backoff, not a wait for a condition: cancellable by stop
            attempt += 1

    async def _start_model(self) -> Model:
        """The model the next round starts from: the last committed one of the session (a resumed
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
        await record_event(self.ctx.statestore, event, message, level, session_id=self.session.id)
