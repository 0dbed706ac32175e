"""Roles on the REST API: every route with every role against scaleout.roles.REST_RULES, client
credentials (hashes only, bound to their client id, revocable), enrollment, and the docs setting."""

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from scaleout.api.app import create_app
from scaleout.api.auth import TOKEN_HELP
from scaleout.api.client import APIError
from scaleout.api.settings import ApiSettings
from scaleout.credentials import controller_token
from scaleout.roles import REST_RULES, Role, rest_rule
from scaleout.store.entities import Combiner
from tests.api.conftest import ApiServer, run_api

ADMIN = "s3cret-token"
REFUSED = {401, 403}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path, token=ADMIN) as server:
        yield server


def admin(server: ApiServer):
    return server.client(token=ADMIN)


def app_routes(server_app) -> list[tuple[str, str, str]]:
    """(method, path template, a concrete path) of every route and mount the app serves."""
    routes = []
    for route in iter_route_contexts(server_app.routes):
        if isinstance(route.original_route, Mount):
            mount = route.original_route.path  # the dashboard, the docs' assets
            routes.append(("GET", f"{mount}/{{path:path}}", f"{mount}/"))
            continue
        for method in sorted(route.methods - {"HEAD"}):
            routes.append((method, route.path_format, re.sub(r"\{[^}]+\}", "x", route.path_format)))
    return routes


def test_every_route_is_in_the_access_table():
    routes = app_routes(create_app(ApiSettings(token=ADMIN)))
    unlisted = [(m, t) for m, t, _ in routes if rest_rule(m, t) is None]
    assert unlisted == []
    assert {(m, t) for m, t, _ in routes} | {("GET", "/dashboard")} == set(REST_RULES)


def test_every_route_with_every_role_follows_the_access_table(secured: ApiServer):
    with admin(secured) as api:
        client = api.create_client_token("site-a", "a")
        revoked = api.create_client_token("site-b", "b")
        api.revoke_client_token(revoked["id"])
    tokens = {
        "none": None,
        "admin": ADMIN,
        "controller": controller_token(ADMIN, None),
        "client": client["token"],
        "revoked client": revoked["token"],
    }
    roles = {"admin": Role.ADMIN, "controller": Role.CONTROLLER, "client": Role.CLIENT}
    found, expected = {}, {}
    base = f"http://127.0.0.1:{secured.port}"
    for who, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for method, template, path in app_routes(create_app(ApiSettings(token=ADMIN))):
                rule = rest_rule(method, template)
                if rule.public:
                    want = "allowed"
                elif who not in roles:
                    want = 401
                else:
                    want = "allowed" if roles[who] in rule.roles else 403
                status = http.request(method, path).status_code
                assert status < 500, (who, method, path)
                found[who, method, template] = status if status in REFUSED else "allowed"
                expected[who, method, template] = want
    assert found == expected


def test_a_route_missing_from_the_table_is_refused_even_to_the_admin(tmp_path: Path):
    def add_unlisted_route(app: FastAPI) -> None:
        app.add_api_route("/api/v1/unlisted", lambda: {"secret": "leaked"})

    with run_api(tmp_path, extend=add_unlisted_route, token=ADMIN) as server, server.http(ADMIN) as http:
        response = http.get("/unlisted")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "GET /api/v1/unlisted is not in the access table (scaleout/roles.py REST_RULES), so nobody may "
        "call it; list it there with the roles that need it"
    )


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_token_is_401_saying_how_to_pass_it(secured: ApiServer, token: str | None):
    with secured.client(token=token) as api, pytest.raises(APIError) as error:
        api.get_sessions()

    assert error.value.status_code == 401
    assert error.value.message == TOKEN_HELP
    assert "Authorization: Bearer <token>" in TOKEN_HELP and "scaleout client token create" in TOKEN_HELP


def test_health_needs_no_token(secured: ApiServer):
    with secured.client() as api:
        assert api.health() == {"status": "ok", "statestore": "ok"}


def test_an_upload_without_the_token_is_refused_before_its_body_is_read(secured: ApiServer):
    with secured.http() as http:
        response = http.post("/packages/", files={"file": ("p.tgz", b"\x1f\x8b" + b"\0" * 100_000)})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert secured.statestore.packages.count() == 0


def test_a_client_credential_cannot_upload_a_package_or_start_a_session(secured: ApiServer):
    with admin(secured) as api:
        token = api.create_client_token("site-a")["token"]
    with secured.http(token) as http:
        upload = http.post("/packages/", files={"file": ("p.tgz", b"\x1f\x8b" + b"\0" * 100_000)})
        start = http.post("/sessions/start", json={})
    assert (upload.status_code, start.status_code) == (403, 403)
    assert upload.json()["detail"] == (
        "a client credential may not call POST /api/v1/packages/; only admin may "
        "(operators use the admin token, --token / SCALEOUT_API_TOKEN)"
    )
    assert secured.statestore.packages.count() == 0 and secured.statestore.sessions.count() == 0


def test_a_client_credential_is_shown_once_and_stored_only_as_its_hash(secured: ApiServer):
    with admin(secured) as api:
        issued = api.create_client_token("site-a")
        listed = api.get_client_tokens()
    stored = secured.statestore.credentials.get(issued["id"])
    assert stored.token_hash == hashlib.sha256(issued["token"].encode()).hexdigest()
    assert (stored.client_id, stored.name) == (issued["client_id"], "site-a")
    assert listed["count"] == 1
    assert "token" not in listed["result"][0] and "token_hash" not in listed["result"][0]
    database = b"".join(p.read_bytes() for p in secured.models_dir.parent.glob("statestore.db*"))
    assert issued["token"].encode() not in database
    assert issued["token"].partition(".")[2].encode() not in database


def test_a_client_credential_assigns_only_its_own_client_and_says_who_it_is(secured: ApiServer):
    secured.statestore.combiners.add(Combiner(id="c1", name="c1", address="127.0.0.1", port=12080))
    with admin(secured) as api:
        issued = api.create_client_token("site-a", "a")
    with secured.client(issued["token"]) as client:
        assert client.whoami() == {"role": "client", "client_id": "a", "name": "site-a"}
        with pytest.raises(APIError) as refused:
            client.add_client("b")
        status, assignment = client.add_client("a", package="local")
    assert (status, assignment["combiner"]["name"]) == (200, "c1")
    assert secured.statestore.clients.get("a").combiner_id == "c1"
    assert refused.value.status_code == 403
    assert refused.value.message == (
        "this client credential belongs to client 'a', not 'b'; start the client without --client-id to "
        "use the credential's"
    )
    assert secured.statestore.clients.count({"id": "b"}) == 0


def test_a_revoked_client_credential_is_refused_at_once(secured: ApiServer):
    with admin(secured) as api:
        issued = api.create_client_token("site-a", "a")
        with secured.client(issued["token"]) as client:
            assert client.whoami()["client_id"] == "a"
            revoked = api.revoke_client_token(issued["id"])
            with pytest.raises(APIError) as refused:
                client.whoami()
        assert api.revoke_client_token(issued["id"])["revoked_at"] == revoked["revoked_at"]
    assert revoked["revoked_at"] is not None
    assert refused.value.status_code == 401


def test_an_enrollment_secret_enrolls_as_many_clients_as_its_uses_then_no_more(secured: ApiServer):
    with admin(secured) as api:
        enrollment = api.create_enrollment("fleet", uses=2)
    with secured.client() as anonymous:
        first = anonymous.enroll(enrollment["secret"], "edge-1")
        second = anonymous.enroll(enrollment["secret"])
        with pytest.raises(APIError) as used_up:
            anonymous.enroll(enrollment["secret"])
    assert first["client_id"] != second["client_id"]
    assert (first["name"], first["enrollment_id"]) == ("edge-1", enrollment["id"])
    with secured.client(first["token"]) as client:
        assert client.whoami() == {"role": "client", "client_id": first["client_id"], "name": "edge-1"}
    assert used_up.value.status_code == 401
    assert used_up.value.message == (
        "the enrollment secret has been used up; ask an operator for a new one "
        "(`scaleout client enrollment create`)"
    )
    assert secured.statestore.credentials.get(enrollment["id"]).uses_left == 0


@pytest.mark.parametrize("how", ["revoked", "expired", "wrong secret"])
def test_a_revoked_expired_or_wrong_enrollment_secret_enrolls_nobody(secured: ApiServer, how: str):
    with admin(secured) as api:
        enrollment = api.create_enrollment(uses=5, expires_in=0.001 if how == "expired" else 3600)
        if how == "revoked":
            api.revoke_enrollment(enrollment["id"])
    secret = enrollment["secret"] + ("x" if how == "wrong secret" else "")
    with secured.client() as anonymous, pytest.raises(APIError) as refused:
        anonymous.enroll(secret)
    assert refused.value.status_code == 401
    assert refused.value.message.startswith("the enrollment secret is unknown, revoked or expired")
    assert secured.statestore.credentials.count({"kind": "client"}) == 0


def test_docs_need_the_admin_token(secured: ApiServer):
    base = f"http://127.0.0.1:{secured.port}"
    assert httpx.get(f"{base}/openapi.json").status_code == 401
    assert httpx.get(f"{base}/docs").status_code == 401
    schema = httpx.get(f"{base}/openapi.json", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_docs_are_public_when_configured_so(tmp_path: Path):
    with run_api(tmp_path, token=ADMIN, public_docs=True) as server:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/openapi.json").status_code == 200
        assert httpx.get(f"{base}/redoc").status_code == 200
        assert httpx.get(f"{base}/api/v1/sessions/").status_code == 401


def test_an_api_without_a_token_is_open(tmp_path: Path):
    with run_api(tmp_path) as server, server.client() as api:
        assert api.get_sessions() == {"count": 0, "result": []}
        assert api.whoami() == {"role": "admin", "client_id": None, "name": "open mode"}
