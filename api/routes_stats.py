"""A session's pace and staleness, from its stored rounds: how fast versions (or rounds) are committed,
how stale the folded updates were, and why updates were rejected.

An async (FedBuff) session's version k is the Round record with index k - 1, Finished at its commit, its
clients the updates folded into it with their staleness; a sync session's rounds count the same way, so
one route serves both modes. Computed from records only, so it answers for a running, ended or resumed
session alike, whichever controller ran it.
"""

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from scaleout import round_rules as rules
from scaleout.api import deps
from scaleout.rejections import rejection_kind
from scaleout.store.entities import Round, RoundStatus, Session

router = APIRouter(prefix="/sessions", tags=["sessions"])
DEFAULT_WINDOW = 10


class StalenessStats(BaseModel):
    """The staleness of the updates folded into committed versions (async sessions only)."""

    updates: int = Field(0, description="folded updates with a recorded staleness")
    counts: list[int] = Field(
        default_factory=list, description="counts[tau]: updates folded tau versions stale (a histogram)"
    )
    mean: float | None = Field(None, description="mean staleness; None without updates")
    max: int | None = Field(None, description="largest staleness; None without updates")


class VersionStats(BaseModel):
    """One committed version (a Finished round)."""

    version: int = Field(description="the version number: the round's index + 1")
    round_id: str = Field(description="the Round record of this version")
    committed_at: datetime | None = Field(None, description="when it was committed (the round's finished_at)")
    seconds: float | None = Field(None, description="seconds from the session's start to its commit")
    updates: int = Field(description="updates folded into it")
    staleness_min: int | None = Field(None, description="least staleness of its updates")
    staleness_mean: float | None = Field(None, description="mean staleness of its updates")
    staleness_max: int | None = Field(None, description="largest staleness of its updates")


class SessionStats(BaseModel):
    """A session's pace, staleness and rejections, computed from its Round records."""

    session_id: str = Field(description="the session")
    mode: str = Field(description="sync or async")
    status: str = Field(description="the session's status")
    versions: int = Field(description="versions committed: Finished rounds (async: server steps)")
    target: int = Field(
        description="versions the session ends at: async max_versions (0: by time only), sync rounds"
    )
    seconds: float | None = Field(None, description="from the session's start to its last commit")
    versions_per_second: float | None = Field(None, description="versions / seconds; None before two points")
    window: int = Field(description="the recent rate counts the last this many versions")
    recent_versions_per_second: float | None = Field(
        None, description="the last `window` versions over the time since the commit before them (or start)"
    )
    updates: int = Field(description="updates folded into committed versions")
    updates_per_version: float | None = Field(None, description="updates / versions")
    staleness: StalenessStats = Field(description="the staleness of those updates")
    rejected: dict[str, int] = Field(
        description="rejected updates over all rounds by kind (the titles of scaleout.rejections.KINDS): "
        "stale, timeout, client left, update norm, task failed, arrays, metadata, ... or other"
    )
    per_version: list[VersionStats] = Field(description="each committed version, oldest first")


def _rate(count: int, start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end <= start or count == 0:
        return None
    return count / (end - start).total_seconds()


def _version(round_: Round, started_at: datetime | None) -> VersionStats:
    taus = [c.staleness for c in round_.clients if c.staleness is not None]
    seconds = None
    if started_at is not None and round_.finished_at is not None:
        seconds = (round_.finished_at - started_at).total_seconds()
    return VersionStats(
        version=round_.index + 1,
        round_id=round_.id,
        committed_at=round_.finished_at,
        seconds=seconds,
        updates=len(round_.clients),
        staleness_min=min(taus) if taus else None,
        staleness_mean=statistics.fmean(taus) if taus else None,
        staleness_max=max(taus) if taus else None,
    )


def _staleness(rounds: Sequence[Round]) -> StalenessStats:
    taus = [c.staleness for r in rounds for c in r.clients if c.staleness is not None]
    if not taus:
        return StalenessStats()
    histogram = Counter(taus)
    counts = [histogram.get(tau, 0) for tau in range(max(taus) + 1)]
    return StalenessStats(updates=len(taus), counts=counts, mean=statistics.fmean(taus), max=max(taus))


def session_stats(session: Session, rounds: Sequence[Round], window: int = DEFAULT_WINDOW) -> SessionStats:
    """The stats of `session` from all its rounds (any order)."""
    committed = sorted((r for r in rounds if r.status == RoundStatus.FINISHED), key=lambda r: r.index)
    started = session.started_at
    commits = [r.finished_at for r in committed]
    last = commits[-1] if commits else None
    recent = min(window, len(committed))
    recent_start = started if recent == len(committed) else commits[len(committed) - recent - 1]
    updates = sum(len(r.clients) for r in committed)
    config = session.config
    target = (config.max_versions or 0) if config.mode == "async" else config.rounds
    rejected = Counter(rejection_kind(x.reason).title for r in rounds for x in r.rejected)
    return SessionStats(
        session_id=session.id,
        mode=config.mode,
        status=session.status.value,
        versions=len(committed),
        target=target,
        seconds=(last - started).total_seconds() if started and last else None,
        versions_per_second=_rate(len(committed), started, last),
        window=window,
        recent_versions_per_second=_rate(recent, recent_start, last),
        updates=updates,
        updates_per_version=updates / len(committed) if committed else None,
        staleness=_staleness(committed),
        rejected=dict(sorted(rejected.items())),
        per_version=[_version(r, started) for r in committed],
    )


@router.get("/{id}/stats", response_model=SessionStats, summary="A session's pace, staleness and rejections")
def get_session_stats(
    id: str,
    store: deps.StatestoreDep,
    window: Annotated[
        int, Query(ge=1, le=rules.MAX_ROUNDS, description="versions the recent rate is taken over")
    ] = DEFAULT_WINDOW,
) -> SessionStats:
    """Versions (async) or rounds (sync) committed and their rate over the session and over its last
    `window`, the staleness distribution of the folded updates, rejections by reason and each version's
    updates and staleness: from the stored Round records."""
    session = store.sessions.get(id)  # NotFound: 404 naming the session
    rounds = store.rounds.list({"session_id": id}, sort_key="index").items
    return session_stats(session, rounds, window)
