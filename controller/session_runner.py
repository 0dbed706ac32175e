"""A session: its rounds in order, each retried up to round_retries times, and how it ends.

Finished when every round committed a model; Failed with the last round's error when a round
failed more often than round_retries allows; Terminated when stopped (its task cancelled).
"""

import asyncio
import logging

from scaleout.controller.events import record_event
from scaleout.controller.progress import LiveRound
from scaleout.controller.rounds import RoundContext, RoundRunner
from scaleout.errors import NotFound, RoundFailed
from scaleout.store.entities import EventLevel, Model, Session, SessionStatus, utcnow

log = logging.getLogger(__name__)


class SessionRunner:
    """Runs one started session to its end; `run` is the body of the session's asyncio task."""

    def __init__(self, context: RoundContext, session: Session) -> None:
        self.ctx = context
        self.session = session
        self.rounds = RoundRunner(context, session)

    @property
    def live(self) -> LiveRound | None:
        """The running round's live status, if a round runs."""
        return self.rounds.live

    async def run(self) -> None:
        """Run the rounds and record the session's end; never raises except CancelledError."""
        try:
            await self._run_rounds()
        except asyncio.CancelledError:
            await self._end(SessionStatus.TERMINATED, None, "session_terminated", "session stopped")
            raise
        except RoundFailed as err:
            await self._end(SessionStatus.FAILED, str(err), "session_failed", f"session failed: {err}")
        except Exception as err:
            log.exception("session %s failed", self.session.id)
            error = f"internal error: {err!r}"
            await self._end(SessionStatus.FAILED, error, "session_failed", f"session failed: {error}")
        else:
            rounds = self.session.config.rounds
            await self._end(SessionStatus.FINISHED, None, "session_finished", f"{rounds} round(s) done")

    async def _run_rounds(self) -> None:
        model = await self._seed_model()
        for index in range(self.session.rounds_done, self.session.config.rounds):
            model = await self._run_round(index, model)

    async def _run_round(self, index: int, parent: Model) -> Model:
        """The committed model of round `index`, retrying; RoundFailed once the retries are spent."""
        retries = self.session.config.round_retries
        for attempt in range(retries + 1):
            outcome = await self.rounds.run(index, parent, attempt)
            if outcome.model is not None:
                return outcome.model
            if attempt < retries:
                delay = self.ctx.settings.retry_backoff(attempt)
                await record_event(
                    self.ctx.statestore,
                    "round_retry",
                    f"retrying round {index} in {delay:g} s ({attempt + 1} of {retries} retries)",
                    EventLevel.WARNING,
                    session_id=self.session.id,
                    round_id=outcome.round_id,
                )
                await asyncio.sleep(delay)  # a backoff, not a wait for a condition: cancellable by stop
        raise RoundFailed(f"round {index} failed after {retries + 1} attempt(s): {outcome.error}")

    async def _seed_model(self) -> Model:
        """The model the session starts from: its record and bytes must both exist."""
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
        if not await asyncio.to_thread(self.ctx.repository.model_exists, seed_id):
            raise RoundFailed(f"seed model {seed_id} has no bytes in the model repository")
        return model

    async def _end(self, status: SessionStatus, error: str | None, event: str, message: str) -> None:
        """Store the final status; a store failure is logged (the task must still end)."""
        changes = {"status": status, "error": error, "finished_at": utcnow()}
        try:
            await asyncio.to_thread(self.ctx.statestore.sessions.update, self.session.id, changes)
        except Exception:
            log.exception("could not record session %s as %s", self.session.id, status)
        level = EventLevel.ERROR if status == SessionStatus.FAILED else EventLevel.INFO
        await record_event(self.ctx.statestore, event, message, level, session_id=self.session.id)
