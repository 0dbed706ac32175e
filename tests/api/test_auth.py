"""The optional API token: every /api/v1 route but /health needs it once the API is started with one."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scaleout.api.client import APIError
from tests.api.conftest import ApiServer, run_api

TOKEN = "s3cret-token"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path, token=TOKEN) as server:
        yield server


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_token_is_401_saying_how_to_pass_it(secured: ApiServer, token: str | None):
    with secured.client(token=token) as api, pytest.raises(APIError) as error:
        api.get_sessions()

    assert error.value.status_code == 401
    assert error.value.message.startswith("invalid or missing API token")
    assert "Authorization: Bearer <token>" in error.value.message


def test_the_right_token_is_let_through(secured: ApiServer):
    with secured.client(token=TOKEN) as api:
        assert api.get_sessions() == {"count": 0, "result": []}


def test_health_needs_no_token(secured: ApiServer):
    with secured.client() as api:
        assert api.health() == {"status": "ok", "statestore": "ok"}


def test_an_upload_without_the_token_is_refused_before_its_body_is_read(secured: ApiServer, tmp_path: Path):
    with secured.http() as http:
        response = http.post("/packages/", files={"file": ("p.tgz", b"\x1f\x8b" + b"\0" * 100_000)})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert secured.statestore.packages.count() == 0


def test_docs_stay_open_and_declare_the_bearer_scheme(secured: ApiServer):
    schema = httpx.get(f"http://127.0.0.1:{secured.port}/openapi.json").json()

    assert "HTTPBearer" in schema["components"]["securitySchemes"]
