"""The lease on a running session: which controller runs it, and until when (ARCHITECTURE §8).

A controller runs a Started session only while it holds the session's lease (`lease_owner`,
`lease_expires`), taken and renewed with the statestore's compare_and_set so that two controllers
never both hold it. The holder renews it every `lease_seconds / 3`; another controller takes the
session over once `lease_expires` has passed.

Every write that moves a session forward (adding a round, committing a model) is fenced: it first
renews the lease on condition that this controller still holds it, the session is still Started and
at the round it believes. A controller that lost the lease therefore cannot commit, and a fenced
write lands within lease_seconds of its fence, before anyone may take the session over. This relies
on the controllers' clocks agreeing to well within lease_seconds.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scaleout.errors import ScaleoutError
from scaleout.store.entities import Session, SessionStatus, utcnow
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)


class LeaseLost(ScaleoutError):
    """This controller no longer holds the session's lease: it must stop without writing to it."""


def lease_is_free(session: Session, owner: str, now: datetime) -> bool:
    """Whether `owner` may take the session: nobody holds it, it lapsed, or `owner` holds it already
    (the same controller restarted under its stable id)."""
    return (
        session.lease_owner in (None, owner) or session.lease_expires is None or session.lease_expires <= now
    )


def acquire(
    statestore: Statestore, session: Session, owner: str, seconds: float, changes: dict[str, Any]
) -> Session | None:
    """Take the lease of `session` as read, with `changes`; None when another controller was faster
    or holds a lease that has not lapsed. Blocking: run it through asyncio.to_thread."""
    now = utcnow()
    if not lease_is_free(session, owner, now):
        return None
    expected = {
        "status": session.status.value,
        "lease_owner": session.lease_owner,
        "lease_expires": session.lease_expires,
    }
    taken = {"lease_owner": owner, "lease_expires": now + timedelta(seconds=seconds), **changes}
    return statestore.sessions.compare_and_set(session.id, expected, taken)


@dataclass
class SessionLease:
    """The lease this controller holds on one session. Its methods block: call them in a thread."""

    statestore: Statestore
    session_id: str
    owner: str
    seconds: float
    expires: datetime = field(default_factory=utcnow)
    lost: str | None = None  # why the lease was lost, once it was
    ended_elsewhere: bool = False  # lost because the session was ended (stopped) by another API process

    def renew(self) -> None:
        """Extend the lease while this controller holds it; LeaseLost naming why otherwise."""
        self._renew({})

    def fence(self, rounds_done: int) -> None:
        """Renew, on condition the session has `rounds_done` rounds: call it right before a write
        that moves the session forward. LeaseLost when this controller may not write."""
        self._renew({"rounds_done": rounds_done})

    def _renew(self, expected: dict[str, Any]) -> None:
        if self.lost is not None:
            raise LeaseLost(self.lost)
        expires = utcnow() + timedelta(seconds=self.seconds)
        held = {"lease_owner": self.owner, "status": SessionStatus.STARTED.value, **expected}
        if self.statestore.sessions.compare_and_set(self.session_id, held, {"lease_expires": expires}):
            self.expires = expires
            return
        self.lost = self._why_lost(expected.get("rounds_done"))
        raise LeaseLost(self.lost)

    def give_up(self, reason: str) -> None:
        """Count the lease as lost from now on, without a write: the session's work stops here
        and writes nothing more (the statestore could not be reached in time, or the API shuts down)."""
        self.lost = reason

    def release(self) -> Session | None:
        """Free the lease, if this controller holds it, so another controller may resume at once."""
        held = {"lease_owner": self.owner, "status": SessionStatus.STARTED.value}
        return self.statestore.sessions.compare_and_set(
            self.session_id, held, {"lease_owner": None, "lease_expires": None}
        )

    def _why_lost(self, rounds_done: int | None) -> str:
        session = self.statestore.sessions.get(self.session_id)
        if session.status != SessionStatus.STARTED:
            self.ended_elsewhere = True
            return f"session {self.session_id} is {session.status.value}: it was ended by another API process"
        if session.lease_owner != self.owner:
            return (
                f"session {self.session_id} was taken over by controller {session.lease_owner!r} "
                f"after this controller's ({self.owner!r}) lease lapsed"
            )
        return (
            f"session {self.session_id} has {session.rounds_done} round(s) done, this controller "
            f"expected {rounds_done}: another controller moved it on"
        )

    def end(self, changes: dict[str, Any]) -> Session | None:
        """Write the session's end and release the lease in one step, if this controller holds it."""
        held = {"lease_owner": self.owner, "status": SessionStatus.STARTED.value}
        released = {**changes, "lease_owner": None, "lease_expires": None}
        return self.statestore.sessions.compare_and_set(self.session_id, held, released)
