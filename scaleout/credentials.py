"""The one credential model of REST and gRPC: bearer tokens, and who a token belongs to.

- The **admin** token is the API's ``--token`` / ``SCALEOUT_API_TOKEN`` (configured, never stored).
- The **controller** token is ``SCALEOUT_CONTROLLER_TOKEN``; left out, it is derived from the admin
  token by HMAC, so a deployment configured with one secret keeps working and a combiner can be given
  the controller token alone (it then never holds the admin secret).
- **Client** credentials and **enrollment** secrets are issued by an admin: ``<credential id>.<secret>``,
  32 random bytes of secret, stored only as the sha256 of the whole token (a random secret of that size
  needs no slow hash), compared in constant time, revocable.

``Authenticator`` answers "who is this token?" for the API and the combiner, from a short cache so a call
costs a dict lookup; a revoked credential stops working within ``cache_seconds`` everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from scaleout.errors import NotFound
from scaleout.roles import Principal, Role
from scaleout.store.entities import Credential, CredentialKind, new_id, utcnow
from scaleout.store.statestore import Statestore

SECRET_BYTES = 32
CONTROLLER_DERIVATION = b"scaleout-edge controller credential v1"
# A cache of every token ever presented would let random tokens grow memory without bound.
MAX_CACHED = 100_000
_CREDENTIAL_ID = re.compile(r"[0-9a-f]{32}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def controller_token(admin_token: str | None, given: str | None) -> str | None:
    """The controller's service token: the one given, else derived from the admin token, else None."""
    if given:
        return given
    if not admin_token:
        return None
    return hmac.new(admin_token.encode(), CONTROLLER_DERIVATION, hashlib.sha256).hexdigest()


def _new_token(credential_id: str) -> str:
    return f"{credential_id}.{secrets.token_urlsafe(SECRET_BYTES)}"


def credential_id_of(token: str) -> str | None:
    """The credential id a token names, or None when it is not shaped like an issued token."""
    credential_id, dot, secret = token.partition(".")
    return credential_id if dot and secret and _CREDENTIAL_ID.fullmatch(credential_id) else None


def issue_client_credential(
    name: str, client_id: str | None = None, enrollment_id: str | None = None
) -> tuple[Credential, str]:
    """A new client credential (to store) and its token (to show once); a new client id unless given."""
    credential_id = new_id()
    token = _new_token(credential_id)
    client_id = client_id or uuid.uuid4().hex
    credential = Credential(
        id=credential_id,
        kind=CredentialKind.CLIENT,
        name=name or f"client-{client_id[:8]}",
        client_id=client_id,
        token_hash=hash_token(token),
        enrollment_id=enrollment_id,
    )
    return credential, token


def issue_enrollment(name: str, uses: int, expires_at: datetime | None) -> tuple[Credential, str]:
    """A new enrollment secret good for ``uses`` clients until ``expires_at``, and the secret."""
    credential_id = new_id()
    token = _new_token(credential_id)
    credential = Credential(
        id=credential_id,
        kind=CredentialKind.ENROLLMENT,
        name=name,
        token_hash=hash_token(token),
        uses_left=uses,
        expires_at=expires_at,
    )
    return credential, token


def stored_credential(statestore: Statestore, token: str, kind: CredentialKind) -> Credential | None:
    """The unrevoked, unexpired credential of this kind the token belongs to, or None. Blocking."""
    credential = token_owner(statestore, token)
    return credential if credential is not None and usable(credential, kind) else None


def token_owner(statestore: Statestore, token: str) -> Credential | None:
    """The stored credential whose hash the token matches, whatever its state, or None. Blocking."""
    credential_id = credential_id_of(token)
    if credential_id is None:
        return None
    try:
        credential = statestore.credentials.get(credential_id)
    except NotFound:
        return None
    return credential if hmac.compare_digest(credential.token_hash, hash_token(token)) else None


def usable(credential: Credential, kind: CredentialKind) -> bool:
    """Of this kind, not revoked and not expired."""
    if credential.kind != kind or credential.revoked_at is not None:
        return False
    return credential.expires_at is None or credential.expires_at > utcnow()


@dataclass(frozen=True)
class _Entry:
    principal: Principal | None
    until: float  # monotonic time the answer is good until


class Authenticator:
    """Who a bearer token belongs to; admin and controller tokens from settings, clients from the store."""

    def __init__(
        self,
        statestore: Statestore | None,
        admin_token: str | None,
        controller_token: str | None,
        cache_seconds: float = 5.0,
    ) -> None:
        self._statestore = statestore
        self._fixed = [
            (token.encode(), Principal(role))
            for token, role in ((admin_token, Role.ADMIN), (controller_token, Role.CONTROLLER))
            if token
        ]
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Entry] = {}
        self.revoked: set[str] = set()  # credential ids seen revoked by this process

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(known, principal) without I/O: known is False when the store must be asked (``lookup``)."""
        given = token.encode()
        for expected, principal in self._fixed:
            if hmac.compare_digest(given, expected):
                return True, principal
        entry = self._cache.get(token)
        if entry is not None and entry.until > time.monotonic():
            # A lookup that raced a revocation may have cached the credential as still valid.
            revoked = entry.principal is not None and entry.principal.credential_id in self.revoked
            return True, None if revoked else entry.principal
        if credential_id_of(token) is None or self._statestore is None:
            return True, None
        return False, None

    def lookup(self, token: str) -> Principal | None:
        """Ask the statestore about a client token and cache the answer (also a refusal). Blocking."""
        credential = token_owner(self._statestore, token)
        if credential is not None and credential.revoked_at is not None:
            self.revoked.add(credential.id)  # so the refusal can say why
        principal = (
            Principal(Role.CLIENT, credential.client_id, credential.id, credential.name)
            if credential is not None and usable(credential, CredentialKind.CLIENT)
            else None
        )
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[token] = _Entry(principal, time.monotonic() + self._cache_seconds)
        return principal

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a bearer token, or None; the store is asked off the event loop."""
        known, principal = self.cached(token)
        if known:
            return principal
        return await asyncio.to_thread(self.lookup, token)

    def forget(self, credential_ids: set[str]) -> None:
        """These credentials were revoked: drop their cached answers, so the next call asks the store."""
        self.revoked |= credential_ids
        for token in [t for t in self._cache if credential_id_of(t) in credential_ids]:
            del self._cache[token]
