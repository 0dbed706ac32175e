"""scaleout.credentials: who a token belongs to, from settings or the statestore, cached briefly."""

import asyncio
import hashlib
import hmac

from scaleout.credentials import Authenticator, controller_token, issue_client_credential
from scaleout.roles import Principal, Role
from scaleout.store.entities import utcnow
from scaleout.store.sqlite import SQLiteStatestore


def test_the_controller_token_is_the_given_one_or_an_hmac_of_the_admin_token():
    derived = hmac.new(b"admin", b"scaleout-edge controller credential v1", hashlib.sha256).hexdigest()
    assert controller_token("admin", None) == derived != "admin"
    assert controller_token("admin", "given") == "given"
    assert controller_token(None, None) is None


def authenticate(auth: Authenticator, token: str) -> Principal | None:
    return asyncio.run(auth.authenticate(token))


def test_tokens_map_to_their_roles_and_a_client_to_its_bound_id(tmp_path):
    store = SQLiteStatestore(tmp_path / "db.sqlite")
    credential, token = issue_client_credential("site-a", "a")
    store.credentials.add(credential)
    auth = Authenticator(store, "admin", "controller")
    assert authenticate(auth, "admin") == Principal(Role.ADMIN)
    assert authenticate(auth, "controller") == Principal(Role.CONTROLLER)
    assert authenticate(auth, token) == Principal(Role.CLIENT, "a", credential.id, "site-a")
    assert authenticate(auth, token + "x") is None
    assert authenticate(auth, "") is None


def test_a_client_check_is_cached_and_malformed_tokens_never_reach_the_store(tmp_path):
    reads: list[str] = []
    store = SQLiteStatestore(tmp_path / "db.sqlite", trace=reads.append)
    credential, token = issue_client_credential("site-a", "a")
    store.credentials.add(credential)
    auth = Authenticator(store, "admin", None, cache_seconds=60)
    reads.clear()
    for _ in range(5):
        assert authenticate(auth, token).client_id == "a"
    for guess in ("guess", "not-hex.secret", "a" * 32):
        assert authenticate(auth, guess) is None
    assert len([r for r in reads if r.startswith("SELECT")]) == 1


def test_a_forgotten_credential_is_checked_again_and_refused_once_revoked(tmp_path):
    store = SQLiteStatestore(tmp_path / "db.sqlite")
    credential, token = issue_client_credential("site-a", "a")
    store.credentials.add(credential)
    auth = Authenticator(store, "admin", None, cache_seconds=60)
    assert authenticate(auth, token) is not None
    store.credentials.update(credential.id, {"revoked_at": utcnow()})
    assert authenticate(auth, token) is not None  # cached: a revocation elsewhere takes cache_seconds
    auth.forget({credential.id})
    assert authenticate(auth, token) is None
