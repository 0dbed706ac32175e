"""The token exchange the official Scaleout Edge client makes before every other call.

The official client (scaleoututil 1.1.0, ``Login``/``TokenManager``) treats the token it is started
with as a refresh token: it posts ``{"refresh_token": ..., "role": "client"}`` to ``/api/auth/refresh``
(or, for its own enrolled clients, ``/api/v1/clients/token``) and sends the ``access_token`` it gets
back as its bearer token. This project has one credential model (scaleout/credentials.py): a client
credential is a long-lived bearer token, checked and revocable on every call. The exchange therefore
maps onto it without a second kind of token: a valid client (or admin) token is answered with itself as
both access and refresh token, and a revoked or unknown one with 401, so revocation works as it does
for our own clients. ``expires_in`` only sets how often the official client asks again.
"""

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from scaleout.api import deps
from scaleout.roles import Role

router = APIRouter(tags=["credentials"])
ACCESS_SECONDS = 3600  # the official client asks again shortly before this; each ask re-checks the token
REFUSED = (
    "the token is unknown, revoked or expired; start the client with a client credential "
    "(`scaleout client token create`) or enroll it again"
)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the official client also sends "role"

    refresh_token: str = Field(min_length=1, max_length=500)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="seconds until the client should exchange its token again")
    client_id: str | None = Field(description="the client the token acts as; None for the admin token")


async def _exchange(
    body: RefreshRequest, settings: deps.SettingsDep, auth: deps.AuthenticatorDep
) -> dict[str, Any]:
    """Answer a valid client (or admin) credential with itself as access and refresh token; 401 when it is
    unknown, revoked or expired. Revocation works as for our own clients: the next exchange is refused."""
    token = body.refresh_token
    if not settings.token:  # open mode: no token is checked anywhere, so any is good
        return {
            "access_token": token,
            "refresh_token": token,
            "expires_in": ACCESS_SECONDS,
            "client_id": None,
        }
    principal = await auth.authenticate(token) if auth is not None else None
    if principal is None or principal.role not in (Role.CLIENT, Role.ADMIN):
        raise HTTPException(401, REFUSED)
    return {
        "access_token": token,
        "refresh_token": token,
        "expires_in": ACCESS_SECONDS,
        "client_id": principal.client_id,
    }


router.add_api_route(
    "/api/auth/refresh",
    _exchange,
    methods=["POST"],
    response_model=TokenPair,
    summary="Exchange a client credential for an access token (the official client's refresh)",
    responses={401: {"description": "unknown, revoked or expired token"}},
)
router.add_api_route(
    "/api/v1/clients/token",
    _exchange,
    methods=["POST"],
    response_model=TokenPair,
    summary="Exchange an enrolled client's credential for an access token (the official client)",
    responses={401: {"description": "unknown, revoked or expired token"}},
)
