"""Event records of sessions and rounds: what the API and dashboard show as the session's log."""

import asyncio
import logging

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
