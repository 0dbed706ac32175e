"""Optional bearer-token auth for /api/v1.

Enforced in an ASGI middleware rather than a route dependency so that an unauthenticated upload is
refused before its body is read, not after a gigabyte has been spooled to disk.
"""

import secrets

from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/v1"
OPEN_PATHS = frozenset({f"{API_PREFIX}/health"})
TOKEN_HELP = (
    "invalid or missing API token; pass the token the API was started with (--token / SCALEOUT_API_TOKEN) "
    "as 'Authorization: Bearer <token>', e.g. APIClient(host, port, token=...)"
)

# Declared on the routers so /docs shows the Authorize button; the middleware does the checking.
bearer_scheme = HTTPBearer(auto_error=False, description="the API token, when the API was started with one")


def token_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of an Authorization header against the expected token."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


class TokenAuthMiddleware:
    """Refuse /api/v1 requests (except /health) without the bearer token, with 401 naming the fix."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX) or path.rstrip("/") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if token_matches(authorization, self.token):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": TOKEN_HELP}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)
