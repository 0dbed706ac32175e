"""A sync session: its rounds in order, each retried with backoff, and how it ends.

Finished when every round committed a model; Failed with the last round's error when a round still
fails after round_retries retries or retry_timeout seconds; Terminated when stopped. The lease,
the start model and the end are LeasedSession's.
"""

from scaleout.controller.lease import SessionLease
from scaleout.controller.leased_session import LeasedSession, Retries
from scaleout.controller.progress import LiveRound
from scaleout.controller.rounds import RoundContext, RoundRunner
from scaleout.store.entities import Model, Session


class SessionRunner(LeasedSession):
    """Runs the rounds of one started session to its end."""

    def __init__(self, context: RoundContext, session: Session, lease: SessionLease) -> None:
        super().__init__(context, session, lease)
        self.rounds = RoundRunner(context, session, lease)

    @property
    def live(self) -> LiveRound | None:
        """The running round's live status, if a round runs."""
        return self.rounds.live

    async def _work(self) -> str:
        model = await self._start_model()
        for index in range(self.session.rounds_done, self.session.config.rounds):
            model = await self._run_round(index, model)
        return f"{self.session.config.rounds} round(s) done"

    async def _run_round(self, index: int, parent: Model) -> Model:
        """The committed model of round `index`, retrying with backoff; RoundFailed once the
        retries or the retry_timeout are spent."""
        retries = Retries(self.session, self.ctx)
        while True:
            outcome = await self.rounds.run(index, parent, retries.attempt)
            if outcome.model is not None:
                return outcome.model
            await retries.wait(f"round {index + 1}", outcome.error, "round_retry", outcome.round_id)
