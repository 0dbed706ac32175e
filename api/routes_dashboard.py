"""The web dashboard: one static page at /dashboard/ that reads /api/v1 from the browser.

No build step and no CDN: index.html, dashboard.js and dashboard.css ship as package data, so the
dashboard works offline. The page itself needs no token; it asks for one when /api/v1 answers 401.
"""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC_DIR = Path(__file__).parent / "static"
DASHBOARD_PATH = "/dashboard"
# Everything the page loads comes from this server: a stray CDN link fails loudly in development
# instead of silently on an offline machine, and injected markup cannot run scripts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def redirect_to_dashboard() -> RedirectResponse:
    # Relative, so the redirect also works behind a reverse proxy that serves us under a prefix.
    return RedirectResponse(f"{DASHBOARD_PATH.lstrip('/')}/", status_code=307)


class DashboardFiles(StaticFiles):
    """The static files, revalidated on every load so an upgraded API never runs a stale script."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount(app: FastAPI) -> None:
    """Serve the dashboard at /dashboard/ and redirect / to it."""
    app.include_router(router)
    app.mount(DASHBOARD_PATH, DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")
