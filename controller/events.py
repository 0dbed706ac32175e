"""Event records of sessions and rounds: what the API and dashboard show as the session's log."""

import asyncio
import logging
from dataclasses import dataclass

from scaleout.store.entities import Event, EventLevel
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

_LOG_LEVELS = {
    EventLevel.DEBUG: logging.DEBUG,
    EventLevel.INFO: logging.INFO,
    EventLevel.WARNING: logging.WARNING,
    EventLevel.ERROR: logging.ERROR,
}


async def record_event(
    statestore: Statestore,
    type: str,
    message: str,
    level: EventLevel = EventLevel.INFO,
    *,
    session_id: str | None = None,
    round_id: str | None = None,
    combiner_id: str | None = None,
) -> None:
    """Log and store an event. A statestore failure here is logged, not raised: an event is a
    report about the session, and losing one must not fail the session it reports on."""
    ids = f"session={session_id} round={round_id}" + (f" combiner={combiner_id}" if combiner_id else "")
    log.log(_LOG_LEVELS[level], "%s: %s (%s)", type, message, ids)
    event = Event(
        level=level,
        type=type,
        message=message,
        session_id=session_id,
        round_id=round_id,
        combiner_id=combiner_id,
    )
    try:
        await asyncio.to_thread(statestore.events.add, event)
    except Exception:
        log.exception("could not store event %s (%s)", type, ids)


@dataclass(frozen=True)
class SessionEvents:
    """The event log of one session: record_event with the statestore and session id bound, so
    every runner of a session (its rounds, its async versions, its end) records events one way."""

    statestore: Statestore
    session_id: str

    async def record(
        self,
        type: str,
        message: str,
        level: EventLevel = EventLevel.INFO,
        *,
        round_id: str | None = None,
        combiner_id: str | None = None,
    ) -> None:
        await record_event(
            self.statestore,
            type,
            message,
            level,
            session_id=self.session_id,
            round_id=round_id,
            combiner_id=combiner_id,
        )
