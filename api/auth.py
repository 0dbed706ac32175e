"""Roles on the REST API: every request is matched to its route and checked against scaleout.roles.

Enforced in an ASGI middleware rather than a route dependency so that an unauthenticated or unauthorised
upload is refused before its body is read, not after a gigabyte has been spooled to disk. Installed
only when the API has an admin token; without one (open mode) every route is open, as before.
"""

from __future__ import annotations

import re
from functools import cache

from fastapi import HTTPException
from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from scaleout.credentials import Authenticator
from scaleout.roles import API, REST_RULES, Principal, Role, Rule, allowed_roles, rest_rule

API_PREFIX = API
TOKEN_HELP = (
    "invalid or missing API token; pass the token the API was started with (--token / SCALEOUT_API_TOKEN), "
    "or a client credential from `scaleout client token create`, as 'Authorization: Bearer <token>', "
    "e.g. APIClient(host, port, token=...)"
)
# The principal of a request without auth (open mode): everything is allowed.
OPEN_MODE = Principal(Role.ADMIN, name="open mode")

# Declared on the routers so /docs shows the Authorize button; the middleware does the checking.
bearer_scheme = HTTPBearer(auto_error=False, description="the admin token or a client credential")


def bearer_token(scope: Scope) -> str:
    """The token of ``Authorization: Bearer <token>``, or "" without one."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    """The table's path templates as regexes, static paths first (as the routes are declared, so
    /packages/active is not taken for /packages/{id})."""
    templates = sorted({t for _, t in REST_RULES}, key=lambda t: (t.count("{"), -len(t)))
    return [(compile_path(t)[0], t) for t in templates]


def route_path(scope: Scope) -> str:
    """The path the router matches: without the root_path a proxy's prefix is served under."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def matched_rule(method: str, path: str) -> tuple[str, Rule | None]:
    """The table's template and rule for this request; (path, None) when no listed route matches.

    Matched against the table, not the app's routes, so a route nobody listed is refused whatever the
    router would do with it. A path differing by a trailing slash matches (the router redirects it).
    """
    for candidate in (path, path.rstrip("/") or "/", path + "/"):
        for regex, template in _templates():
            if regex.match(candidate) and (rule := rest_rule(method, template)) is not None:
                return template, rule
    return path, None


def refusal(rule: Rule | None, principal: Principal, method: str, template: str) -> str | None:
    """Why this principal may not call this route, or None when it may."""
    if rule is None:
        return (
            f"{method} {template[:200]} is not in the access table (scaleout/roles.py REST_RULES), so "
            "nobody may call it; list it there with the roles that need it"
        )
    if rule.allows(principal):
        return None
    return (
        f"a {principal.role} credential may not call {method} {template}; only {allowed_roles(rule)} may "
        "(operators use the admin token, --token / SCALEOUT_API_TOKEN)"
    )


class AuthMiddleware:
    """401 without a known token, 403 when the token's role is not allowed on the route, naming the fix."""

    def __init__(self, app: ASGIApp, public_docs: bool = False) -> None:
        self.app = app
        self.public_docs = public_docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        template, rule = matched_rule(method, route_path(scope))
        if rule is not None and (rule.public or (rule.docs and self.public_docs)):
            await self.app(scope, receive, send)
            return
        authenticator: Authenticator = scope["app"].state.authenticator
        principal = await authenticator.authenticate(bearer_token(scope))
        if principal is None:
            response = JSONResponse({"detail": TOKEN_HELP}, 401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        if why := refusal(rule, principal, method, template):
            await JSONResponse({"detail": why}, 403)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def require_own_client(principal: Principal, client_id: str) -> None:
    """A client credential acts only as the client it was issued for: 403 otherwise."""
    if principal.role is Role.CLIENT and client_id != principal.client_id:
        raise HTTPException(
            403,
            f"this client credential belongs to client {principal.client_id!r}, not {client_id[:200]!r}; "
            "start the client without --client-id to use the credential's",
        )
