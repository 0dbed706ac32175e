"""Client credentials and enrollment secrets: issued by an admin, shown once, stored as hashes, revocable.

A client credential is bound to one client id: with it a client can only be assigned, fetch the active
package and use the combiner's client services as that client. An enrollment secret lets a fleet
onboard itself: each client exchanges it (``POST /clients/enroll``) for a credential of its own.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from scaleout.api import deps
from scaleout.api.routes_entities import DEFAULT_LIMIT, Limit, Skip
from scaleout.credentials import (
    Authenticator,
    issue_client_credential,
    issue_enrollment,
    stored_credential,
)
from scaleout.store.entities import Credential, CredentialKind, utcnow
from scaleout.store.statestore import Statestore

router = APIRouter(prefix="/clients", tags=["credentials"])
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
MAX_ENROLLMENT_SECONDS = 365 * 24 * 3600.0
ENROLL_HELP = "ask an operator for a new one (`scaleout client enrollment create`)"


class CredentialInfo(BaseModel):
    """A stored credential as listed: everything but its hash."""

    id: str
    kind: CredentialKind
    name: str
    client_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    uses_left: int | None
    enrollment_id: str | None


class CredentialList(BaseModel):
    count: int
    result: list[CredentialInfo]


class IssuedToken(CredentialInfo):
    token: str = Field(description="the client's bearer token; shown only now, store it safely")


class IssuedEnrollment(CredentialInfo):
    secret: str = Field(description="the enrollment secret; shown only now, give it to the clients")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="whom the credential is for")
    client_id: str | None = Field(
        None, pattern=CLIENT_ID_PATTERN, description="the client id it acts as; a new one if omitted"
    )


class EnrollmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    uses: int = Field(1, ge=1, le=1_000_000, description="how many clients may enroll with it")
    expires_in: float = Field(
        24 * 3600.0, gt=0, le=MAX_ENROLLMENT_SECONDS, description="seconds until it expires"
    )


class EnrollRequest(BaseModel):
    """Ours: the secret in the body. The official client's: the secret as its bearer token, and maybe
    the client id it wants (``scaleout client enroll --client-id``)."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(None, min_length=1, max_length=500)
    name: str = Field("", max_length=200)
    client_id: str | None = Field(
        None, pattern=CLIENT_ID_PATTERN, description="the client id to enroll as; a new one if omitted"
    )


class EnrolledClient(IssuedToken):
    access_token: str = Field(description="the same token, for the official Scaleout Edge client")
    refresh_token: str = Field(description="the same token, for the official Scaleout Edge client")


class Identity(BaseModel):
    role: str
    client_id: str | None
    name: str


def _info(credential: Credential) -> dict[str, Any]:
    return credential.model_dump(exclude={"token_hash"})


def _list(store: Statestore, kind: CredentialKind, limit: int, skip: int) -> dict[str, Any]:
    page = store.credentials.list({"kind": kind.value}, sort_key="created_at", limit=limit, skip=skip)
    return {"count": page.count, "result": [_info(c) for c in page.items]}


def _revoke(store: Statestore, auth: Authenticator | None, id: str, kind: CredentialKind) -> dict[str, Any]:
    credential = store.credentials.get(id)  # NotFound: 404 naming it
    if credential.kind != kind:
        raise HTTPException(404, f"{id!r} is not a {kind.value} credential")
    if credential.revoked_at is None:  # revoking twice keeps the first time
        credential = store.credentials.update(id, {"revoked_at": utcnow()})
    if auth is not None:
        auth.forget({id})
    return _info(credential)


@router.post("/tokens", response_model=IssuedToken, status_code=201, summary="Issue a client credential")
def create_token(body: TokenRequest, store: deps.StatestoreDep) -> dict[str, Any]:
    """Issue a bearer credential bound to one client id; the token is in this answer only (stored as its
    sha256).
    """
    credential, token = issue_client_credential(body.name, body.client_id)
    store.credentials.add(credential)
    return {**_info(credential), "token": token}


@router.get("/tokens", response_model=CredentialList, summary="Client credentials (never their secrets)")
def list_tokens(store: deps.StatestoreDep, limit: Limit = DEFAULT_LIMIT, skip: Skip = 0) -> dict[str, Any]:
    """The client credentials issued (a page of them, oldest first), without the tokens themselves."""
    return _list(store, CredentialKind.CLIENT, limit, skip)


@router.delete("/tokens/{id}", response_model=CredentialInfo, summary="Revoke a client credential")
def revoke_token(id: str, store: deps.StatestoreDep, auth: deps.AuthenticatorDep) -> dict[str, Any]:
    """Its client is refused from then on and dropped by its combiner within seconds."""
    return _revoke(store, auth, id, CredentialKind.CLIENT)


@router.post(
    "/enrollments", response_model=IssuedEnrollment, status_code=201, summary="Issue an enrollment secret"
)
def create_enrollment(body: EnrollmentRequest, store: deps.StatestoreDep) -> dict[str, Any]:
    """Issue an enrollment secret that clients exchange for credentials of their own (POST /clients/enroll);
    the secret is in this answer only.
    """
    expires_at = utcnow() + timedelta(seconds=body.expires_in)
    credential, secret = issue_enrollment(body.name, body.uses, expires_at)
    store.credentials.add(credential)
    return {**_info(credential), "secret": secret}


@router.get("/enrollments", response_model=CredentialList, summary="Enrollment secrets (never the secrets)")
def list_enrollments(
    store: deps.StatestoreDep, limit: Limit = DEFAULT_LIMIT, skip: Skip = 0
) -> dict[str, Any]:
    """The enrollment secrets issued (a page of them, oldest first), without the secrets themselves."""
    return _list(store, CredentialKind.ENROLLMENT, limit, skip)


@router.delete("/enrollments/{id}", response_model=CredentialInfo, summary="Revoke an enrollment secret")
def revoke_enrollment(id: str, store: deps.StatestoreDep) -> dict[str, Any]:
    """No client can enroll with it any more; credentials already obtained with it stay valid."""
    return _revoke(store, None, id, CredentialKind.ENROLLMENT)


@router.post(
    "/enroll",
    response_model=EnrolledClient,
    status_code=201,
    summary="Exchange an enrollment secret for a client credential of one's own",
    responses={
        401: {"description": "unknown, revoked, expired or used-up secret"},
        409: {"description": "the client id asked for already has a credential"},
    },
)
def enroll(
    body: EnrollRequest, store: deps.StatestoreDep, authorization: Annotated[str, Header()] = ""
) -> dict[str, Any]:
    """Exchange an enrollment secret (in the body, or as the bearer token as the official client sends
    it) for a client credential of one's own, bound to the client id asked for, if any."""
    scheme, _, bearer = authorization.partition(" ")
    secret = body.secret or (bearer.strip() if scheme.lower() == "bearer" else "")
    if not secret:
        raise HTTPException(
            401,
            "no enrollment secret: send it as 'secret' in the body or as 'Authorization: Bearer <secret>'",
        )
    enrollment = stored_credential(store, secret, CredentialKind.ENROLLMENT)
    if enrollment is None:
        raise HTTPException(401, f"the enrollment secret is unknown, revoked or expired; {ENROLL_HELP}")
    if body.client_id and store.credentials.count({"client_id": body.client_id}):
        raise HTTPException(
            409,
            f"client {body.client_id!r} already has a credential; enroll without a client id, or ask an "
            "operator to revoke the old credential first",
        )
    if store.credentials.use_enrollment(enrollment.id) is None:
        raise HTTPException(401, f"the enrollment secret has been used up; {ENROLL_HELP}")
    credential, token = issue_client_credential(body.name, body.client_id, enrollment_id=enrollment.id)
    store.credentials.add(credential)
    return {**_info(credential), "token": token, "access_token": token, "refresh_token": token}


@router.get("/me", response_model=Identity, summary="Who the caller's credential is: role and client id")
def whoami(caller: deps.PrincipalDep) -> dict[str, Any]:
    """The role and client id of the credential this request carries."""
    return {"role": caller.role.value, "client_id": caller.client_id, "name": caller.name}
