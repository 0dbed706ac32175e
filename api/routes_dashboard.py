"""The web dashboard: one static page at /dashboard/ that reads /api/v1 from the browser, and the few
read routes its pages need beyond the entity routes (a client's activity, a session's final metrics).

No build step and no CDN: index.html, the ES modules under js/ and dashboard.css ship as package data,
so the dashboard works offline. The page itself needs no token; it asks for one when /api/v1 answers 401.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.responses import Response

from scaleout.api import deps
from scaleout.store.entities import EventLevel, RoundStatus
from scaleout.store.statestore import Statestore

STATIC_DIR = Path(__file__).parent / "static"
DASHBOARD_PATH = "/dashboard"
# Everything the page loads comes from this server: a stray CDN link fails loudly in development
# instead of silently on an offline machine, and injected markup cannot run scripts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)

# A client's activity is counted over this many of the latest rounds: the statestore cannot filter rounds
# by a client inside them, and an unbounded scan would grow with the federation's whole history.
ACTIVITY_ROUNDS = 2000
# The last validated round is nearly always among a session's last few: read its rounds a page at a time.
ROUNDS_PAGE = 10

router = APIRouter(include_in_schema=False)
api_router = APIRouter()


class ClientActivity(BaseModel):
    """What a client did, for the dashboard's client page."""

    rounds_joined: int = Field(description="rounds among the latest `rounds_scanned` that took its update")
    rounds_scanned: int = Field(description=f"rounds looked at: the latest, at most {ACTIVITY_ROUNDS}")
    last_error: str | None = Field(
        None, description="why its latest rejected update was rejected; else its latest error event"
    )
    round_numbers: dict[str, int] = Field(
        default_factory=dict, description="round id -> 0-based index, of rounds it joined or was rejected in"
    )


class FinalMetrics(BaseModel):
    """The mean over clients of each numeric metric in the session's last validated round."""

    round_index: int | None = Field(None, description="0-based index of that round; None before any")
    metrics: dict[str, float] = Field(default_factory=dict)


@api_router.get(
    "/clients/{id}/activity",
    response_model=ClientActivity,
    tags=["clients"],
    summary="A client's rounds joined and its latest error",
)
def client_activity(id: str, store: deps.StatestoreDep) -> ClientActivity:
    """The rounds this client joined (among the latest rounds) and its last error."""
    store.clients.get(id)  # NotFound: 404 naming the client
    rounds = store.rounds.list(sort_key="created_at", sort_order="desc", limit=ACTIVITY_ROUNDS).items
    joined = [r for r in rounds if any(c.client_id == id for c in r.clients)]
    rejected = [(r, x) for r in rounds for x in r.rejected if x.client_id == id]
    if rejected:
        round_, update = rejected[0]
        last_error = f"round {round_.index + 1} rejected its update: {update.reason}"
    else:
        last_error = _latest_error_event(store, id)
    numbers = {r.id: r.index for r in joined} | {r.id: r.index for r, _ in rejected}
    return ClientActivity(
        rounds_joined=len(joined), rounds_scanned=len(rounds), last_error=last_error, round_numbers=numbers
    )


def _latest_error_event(store: Statestore, client_id: str) -> str | None:
    # Errors only: a disconnect is a warning, and a client that restarted has not failed.
    errors = {"client_id": client_id, "level": EventLevel.ERROR.value}
    events = store.events.list(errors, sort_key="timestamp", sort_order="desc", limit=1).items
    return events[0].message if events else None


@api_router.get(
    "/sessions/{id}/final-metrics",
    response_model=FinalMetrics,
    tags=["sessions"],
    summary="Mean validation metrics of the session's last validated round",
)
def final_metrics(id: str, store: deps.StatestoreDep) -> FinalMetrics:
    """The mean validation metrics of the last finished round that was validated, for the sessions list."""
    store.sessions.get(id)  # NotFound: 404 naming the session
    finished = {"session_id": id, "status": RoundStatus.FINISHED.value}
    skip = 0
    while rounds := store.rounds.list(finished, "index", "desc", limit=ROUNDS_PAGE, skip=skip).items:
        for round_ in rounds:
            validations = store.validations.list({"round_id": round_.id}).items
            if validations:
                return FinalMetrics(round_index=round_.index, metrics=_means(v.metrics for v in validations))
        skip += len(rounds)
    return FinalMetrics()


def _means(all_metrics: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The mean of each numeric metric over the validations that report it; text and flags are skipped."""
    values: dict[str, list[float]] = {}
    for metrics in all_metrics:
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values.setdefault(name, []).append(float(value))
    return {name: sum(v) / len(v) for name, v in sorted(values.items())}


@router.get("/")
def redirect_to_dashboard() -> RedirectResponse:
    # Relative, so the redirect also works behind a reverse proxy that serves us under a prefix.
    return RedirectResponse(f"{DASHBOARD_PATH.lstrip('/')}/", status_code=307)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    # Browsers ask for /favicon.ico whatever the page declares; an SVG answers (every current browser
    # draws one), without an ICO file to keep in step with it.
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


class DashboardFiles(StaticFiles):
    """The static files, revalidated on every load so an upgraded API never runs a stale script."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount(app: FastAPI, prefix: str, secured: list[Any]) -> None:
    """Serve the dashboard at /dashboard/, redirect / to it, and add its read routes under `prefix`."""
    app.include_router(api_router, prefix=prefix, dependencies=secured)
    app.include_router(router)
    app.mount(DASHBOARD_PATH, DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")
