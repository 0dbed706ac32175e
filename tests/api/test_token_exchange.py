"""The official Scaleout Edge client's auth calls, mapped onto our one credential model: its token
refresh (/api/auth/refresh, /api/v1/clients/token) and its enrollment (/api/v1/clients/enroll with the
secret as bearer token). Request shapes as scaleoututil 1.1.0 sends them (auth/token_manager.py,
auth/login.py)."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scaleout.credentials import controller_token
from tests.api.conftest import ApiServer, run_api

ADMIN = "s3cret-token"
REFRESH_PATHS = ["/api/auth/refresh", "/api/v1/clients/token"]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path, token=ADMIN) as server:
        yield server


def anonymous(server: ApiServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=30)


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_a_client_credential_is_exchanged_for_itself_as_access_token(secured: ApiServer, path: str):
    with secured.client(token=ADMIN) as api:
        issued = api.create_client_token("edge", "edge-1")
    with anonymous(secured) as http:
        answer = http.post(path, json={"refresh_token": issued["token"], "role": "client"})

    assert answer.status_code == 200
    assert answer.json() == {
        "access_token": issued["token"],
        "refresh_token": issued["token"],
        "expires_in": 3600,
        "client_id": "edge-1",
    }


@pytest.mark.parametrize("path", REFRESH_PATHS)
def test_a_revoked_unknown_or_controller_token_is_not_exchanged(secured: ApiServer, path: str):
    with secured.client(token=ADMIN) as api:
        issued = api.create_client_token("edge", "edge-1")
        api.revoke_client_token(issued["id"])
    for token in (issued["token"], "not-a-token", controller_token(ADMIN, None)):
        with anonymous(secured) as http:
            answer = http.post(path, json={"refresh_token": token, "role": "client"})
        assert answer.status_code == 401, token
        assert answer.json()["detail"] == (
            "the token is unknown, revoked or expired; start the client with a client credential "
            "(`scaleout client token create`) or enroll it again"
        )


def test_the_official_enrollment_sends_the_secret_as_bearer_and_gets_its_client_id(secured: ApiServer):
    with secured.client(token=ADMIN) as api:
        enrollment = api.create_enrollment("fleet", uses=3)
    with anonymous(secured, token=enrollment["secret"]) as http:
        enrolled = http.post("/api/v1/clients/enroll", json={"name": "edge", "client_id": "serial-42"})
        again = http.post("/api/v1/clients/enroll", json={"client_id": "serial-42"})
        fresh = http.post("/api/v1/clients/enroll", json={})

    assert enrolled.status_code == 201
    body = enrolled.json()
    assert (body["client_id"], body["name"], body["enrollment_id"]) == ("serial-42", "edge", enrollment["id"])
    assert body["access_token"] == body["refresh_token"] == body["token"]
    with anonymous(secured, token=body["access_token"]) as http:
        assert http.get("/api/v1/clients/me").json()["client_id"] == "serial-42"
    assert again.status_code == 409
    assert again.json()["detail"].startswith("client 'serial-42' already has a credential")
    assert fresh.status_code == 201 and fresh.json()["client_id"] not in ("", "serial-42")
    assert secured.statestore.credentials.get(enrollment["id"]).uses_left == 1  # the refusal used none


def test_an_enrollment_without_a_secret_says_where_to_put_it(secured: ApiServer):
    with anonymous(secured) as http:
        answer = http.post("/api/v1/clients/enroll", json={"name": "edge"})

    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "no enrollment secret: send it as 'secret' in the body or as 'Authorization: Bearer <secret>'"
    )
